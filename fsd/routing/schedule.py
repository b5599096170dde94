"""Company working schedule: is the company open at a given instant, and when does that change.

Pure code: no I/O, no clock reads. Every function takes the instant it reasons about (`now_utc`, an
*aware* datetime; any timezone is accepted, results are returned in UTC).

Representation (chosen and documented here once):

- Times of day are **minutes since local midnight**. An interval is ``[start_minute, end_minute)``
  with ``0 <= start_minute < end_minute <= 1440``; ``end_minute == 1440`` means "until 24:00", i.e.
  up to the start of the next local day. ``Interval.parse("09:00-18:00")`` and ``"20:00-24:00"``
  are accepted. An interval never crosses midnight: a night shift 22:00-02:00 is written as two
  intervals (22:00-24:00 on one weekday, 00:00-02:00 on the next); adjacent intervals merge, so the
  company is seen as continuously open across midnight.
- Weekly intervals are keyed by ``weekday`` (0 = Monday .. 6 = Sunday); several per day are allowed
  (a lunch break is two intervals), overlapping ones are merged.
- A dated exception replaces the weekly intervals of that local date: with no intervals the date is
  closed all day (a holiday), otherwise only its own intervals apply (a short day).
- Interval bounds are **local wall-clock** times in the tenant's zone. Daylight-saving transitions are
  handled by "first instant the wall clock reaches that time on that date": a bound that falls in a
  spring-forward gap takes effect at the transition itself; a bound that falls in a fall-back
  ambiguous hour takes effect at its first occurrence (the company does not re-open or re-close when
  the wall clock repeats the hour).
- Mode ``always`` means 24/7: always open, the state never changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fsd.errors import ValidationError

MODES = ("always", "schedule")
MINUTES_PER_DAY = 1440
#: How far ahead ``next_change`` looks before concluding the state never changes.
HORIZON_DAYS = 400

_HHMM = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*\Z")


def _parse_hhmm(text: str) -> int:
    m = _HHMM.match(text)
    if not m:
        raise ValidationError(f"time must be HH:MM, got {text!r}", field="interval")
    hh, mm = int(m.group(1)), int(m.group(2))
    if mm > 59 or hh > 24 or (hh == 24 and mm != 0):
        raise ValidationError(f"time out of range: {text!r} (00:00..24:00)", field="interval")
    return hh * 60 + mm


@dataclass(frozen=True, kw_only=True, order=True)
class Interval:
    """``[start_minute, end_minute)`` in local minutes since midnight; end 1440 = 24:00."""

    start_minute: int
    end_minute: int

    def __post_init__(self):
        if not (0 <= self.start_minute < MINUTES_PER_DAY):
            raise ValidationError("interval start must be within 00:00..23:59", field="interval")
        if not (0 < self.end_minute <= MINUTES_PER_DAY):
            raise ValidationError("interval end must be within 00:01..24:00", field="interval")
        if self.end_minute <= self.start_minute:
            raise ValidationError(
                "interval end must be after its start (split intervals that cross midnight)", field="interval"
            )

    @classmethod
    def parse(cls, text: str) -> Interval:
        """``"09:00-18:00"`` -> Interval(540, 1080); ``"24:00"`` is accepted as an end."""
        parts = text.split("-")
        if len(parts) != 2:
            raise ValidationError(f"interval must be HH:MM-HH:MM, got {text!r}", field="interval")
        return cls(start_minute=_parse_hhmm(parts[0]), end_minute=_parse_hhmm(parts[1]))

    @classmethod
    def from_times(cls, start: time, end: time, *, end_of_day: bool = False) -> Interval:
        """Build from ``datetime.time`` values; ``end_of_day=True`` (or end == 00:00) means 24:00."""
        end_minute = end.hour * 60 + end.minute
        if end_of_day or end_minute == 0:
            end_minute = MINUTES_PER_DAY
        return cls(start_minute=start.hour * 60 + start.minute, end_minute=end_minute)

    def label(self) -> str:
        return f"{_fmt(self.start_minute)}-{_fmt(self.end_minute)}"


def _fmt(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@dataclass(frozen=True, kw_only=True)
class WeeklyInterval:
    """An opening interval on a weekday (0 = Monday .. 6 = Sunday)."""

    weekday: int
    interval: Interval

    def __post_init__(self):
        if not (0 <= self.weekday <= 6):
            raise ValidationError("weekday must be 0 (Monday) .. 6 (Sunday)", field="weekday")


@dataclass(frozen=True, kw_only=True)
class DateException:
    """A local date whose opening replaces the weekly one: no intervals = closed all day."""

    day: date
    intervals: tuple[Interval, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """A tenant's working schedule. ``mode='always'`` ignores the intervals (24/7)."""

    timezone: str
    mode: str = "schedule"
    weekly: tuple[WeeklyInterval, ...] = ()
    exceptions: tuple[DateException, ...] = ()
    _by_weekday: tuple[tuple[tuple[int, int], ...], ...] = field(init=False, repr=False, compare=False)
    _by_date: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValidationError(f"schedule mode must be one of {MODES}", field="mode")
        _zone(self.timezone)
        days: list[list[tuple[int, int]]] = [[] for _ in range(7)]
        for w in self.weekly:
            days[w.weekday].append((w.interval.start_minute, w.interval.end_minute))
        object.__setattr__(self, "_by_weekday", tuple(_merge(d) for d in days))
        by_date = {}
        for ex in self.exceptions:
            if ex.day in by_date:
                raise ValidationError(f"duplicate exception for {ex.day.isoformat()}", field="exceptions")
            by_date[ex.day] = _merge([(i.start_minute, i.end_minute) for i in ex.intervals])
        object.__setattr__(self, "_by_date", by_date)

    @classmethod
    def always(cls, *, timezone: str = "UTC") -> Schedule:
        return cls(timezone=timezone, mode="always")

    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)

    def local_intervals(self, day: date) -> tuple[tuple[int, int], ...]:
        """The merged ``(start_minute, end_minute)`` opening intervals of a local date."""
        if self.mode == "always":
            return ((0, MINUTES_PER_DAY),)
        if day in self._by_date:
            return self._by_date[day]
        return self._by_weekday[day.weekday()]

    def summary(self) -> tuple[str, ...]:
        """Human-readable weekly hours, consecutive weekdays with equal hours grouped, e.g.
        ``("Mon-Fri 09:00-13:00, 14:00-18:00", "Sat-Sun closed", "2 dated exceptions")``."""
        if self.mode == "always":
            return ("24/7",)
        names = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
        out = []
        day = 0
        while day < 7:
            end = day
            while end + 1 < 7 and self._by_weekday[end + 1] == self._by_weekday[day]:
                end += 1
            hours = ", ".join(f"{_fmt(a)}-{_fmt(b)}" for a, b in self._by_weekday[day]) or "closed"
            span = names[day] if end == day else f"{names[day]}-{names[end]}"
            out.append(f"{span} {hours}")
            day = end + 1
        if self.exceptions:
            n = len(self.exceptions)
            out.append(f"{n} dated exception{'s' if n != 1 else ''}")
        return tuple(out)


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown timezone {name!r}", field="timezone") from exc


def _merge(intervals) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return tuple((s, e) for s, e in out)


def _check_aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValidationError("now must be an aware datetime", field="now")
    return now.astimezone(UTC)


def _wall_to_utc(zone: ZoneInfo, day: date, minute: int) -> datetime:
    """First UTC instant at which the local wall clock on ``day`` reaches ``minute`` (1440 = next day)."""
    if minute >= MINUTES_PER_DAY:
        day = day + timedelta(days=1)
        minute = 0
    naive = datetime.combine(day, time(minute // 60, minute % 60))
    early = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if early.astimezone(zone).replace(tzinfo=None) == naive:
        return early  # exists; fold=0 is the first occurrence of an ambiguous time
    # The wall time is in a gap: find the transition instant by bisection (whole seconds).
    late = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(early, late), max(early, late)
    while (hi - lo) > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid.astimezone(zone).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return hi


def _utc_intervals(schedule: Schedule, day: date) -> list[tuple[datetime, datetime]]:
    """The day's openings as UTC ``(start, end)``; an opening wholly inside a DST gap is empty and
    dropped (its wall-clock times never happen)."""
    zone = schedule.zone()
    out = []
    for s, e in schedule.local_intervals(day):
        start, end = _wall_to_utc(zone, day, s), _wall_to_utc(zone, day, e)
        if start < end:
            out.append((start, end))
    return out


def is_open(schedule: Schedule, now_utc: datetime) -> bool:
    """True when the company is open at the aware instant ``now_utc`` (intervals are half-open)."""
    now = _check_aware(now_utc)
    if schedule.mode == "always":
        return True
    day = now.astimezone(schedule.zone()).date()
    return any(s <= now < e for s, e in _utc_intervals(schedule, day))


def next_change(schedule: Schedule, now_utc: datetime) -> datetime | None:
    """The first instant strictly after ``now_utc`` at which ``is_open`` flips, in UTC.

    Returns None for mode ``always`` and when the state does not change within ``HORIZON_DAYS``
    (e.g. a schedule that is open around the clock, or one with no intervals at all). Adjacent
    intervals (also across midnight) are one continuous opening, not a change.
    """
    now = _check_aware(now_utc)
    if schedule.mode == "always":
        return None
    zone = schedule.zone()
    start_day = now.astimezone(zone).date()
    # Walk the openings in time order, merging those that touch.
    current: list[datetime] | None = None  # the merged opening that contains `now`, if any
    opened = is_open(schedule, now)
    for offset in range(HORIZON_DAYS + 1):
        for s, e in _utc_intervals(schedule, start_day + timedelta(days=offset)):
            if opened:
                if current is None:
                    if s <= now < e:
                        current = [s, e]
                    continue
                if s <= current[1]:
                    current[1] = max(current[1], e)
                    continue
                return current[1]
            if s > now:
                return s
    return None


def next_open(schedule: Schedule, now_utc: datetime) -> datetime | None:
    """``now_utc`` (in UTC) if open now, else the instant it next opens; None if it never opens
    within ``HORIZON_DAYS``. Use it to place callbacks "within the company schedule"."""
    now = _check_aware(now_utc)
    if is_open(schedule, now):
        return now
    return next_change(schedule, now)
