from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from fsd.errors import ValidationError
from fsd.routing.schedule import (
    DateException,
    Interval,
    Schedule,
    WeeklyInterval,
    is_open,
    next_change,
    next_open,
)

MSK = ZoneInfo("Europe/Moscow")
BER = ZoneInfo("Europe/Berlin")


def weekdays(tz, *specs, days=range(5), exceptions=()):
    weekly = tuple(WeeklyInterval(weekday=d, interval=Interval.parse(s)) for d in days for s in specs)
    return Schedule(timezone=tz, weekly=weekly, exceptions=tuple(exceptions))


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def local(tz, *args):
    return datetime(*args, tzinfo=tz)


def test_interval_parsing_and_validation():
    assert Interval.parse("09:00-18:00") == Interval(start_minute=540, end_minute=1080)
    assert Interval.parse("20:00-24:00").end_minute == 1440
    assert Interval.from_times(time(20, 0), time(0, 0)).end_minute == 1440
    assert Interval.from_times(time(9), time(12)).label() == "09:00-12:00"
    for bad in ("18:00-09:00", "09:00-09:00", "25:00-26:00", "9-10", "24:30-24:40", "10:61-11:00"):
        with pytest.raises(ValidationError):
            Interval.parse(bad)
    with pytest.raises(ValidationError):
        WeeklyInterval(weekday=7, interval=Interval.parse("09:00-10:00"))
    with pytest.raises(ValidationError):
        Schedule(timezone="Mars/Olympus")
    with pytest.raises(ValidationError):
        Schedule(timezone="UTC", mode="sometimes")


def test_summary_groups_weekdays():
    s = weekdays("Europe/Moscow", "09:00-13:00", "14:00-18:00", exceptions=[DateException(day=date(2026, 12, 31))])
    assert s.summary() == ("Mon-Fri 09:00-13:00, 14:00-18:00", "Sat-Sun closed", "1 dated exception")
    weekly = (
        WeeklyInterval(weekday=0, interval=Interval.parse("10:00-24:00")),
        WeeklyInterval(weekday=2, interval=Interval.parse("10:00-24:00")),
    )
    assert Schedule(timezone="UTC", weekly=weekly).summary() == (
        "Mon 10:00-24:00",
        "Tue closed",
        "Wed 10:00-24:00",
        "Thu-Sun closed",
    )
    assert Schedule.always().summary() == ("24/7",)


def test_naive_now_rejected():
    with pytest.raises(ValidationError):
        is_open(Schedule.always(), datetime(2026, 1, 1, 12))


def test_always_mode():
    s = Schedule.always(timezone="Europe/Moscow")
    now = utc(2026, 11, 28, 3, 0)
    assert is_open(s, now)
    assert next_change(s, now) is None
    assert next_open(s, now) == now


def test_moscow_weekday_hours():
    s = weekdays("Europe/Moscow", "09:00-18:00")
    # Friday 2026-11-27 08:59 MSK = 05:59 UTC
    assert not is_open(s, local(MSK, 2026, 11, 27, 8, 59))
    assert is_open(s, local(MSK, 2026, 11, 27, 9, 0))
    assert is_open(s, local(MSK, 2026, 11, 27, 17, 59, 59))
    assert not is_open(s, local(MSK, 2026, 11, 27, 18, 0))
    assert next_change(s, local(MSK, 2026, 11, 27, 10, 0)) == utc(2026, 11, 27, 15, 0)
    # Friday evening -> Monday 09:00 MSK
    assert next_change(s, local(MSK, 2026, 11, 27, 18, 0)) == utc(2026, 11, 30, 6, 0)
    assert next_open(s, local(MSK, 2026, 11, 28, 12, 0)) == utc(2026, 11, 30, 6, 0)
    assert next_open(s, utc(2026, 11, 30, 7, 0)) == utc(2026, 11, 30, 7, 0)


def test_several_intervals_per_day_lunch_break():
    s = weekdays("Europe/Moscow", "09:00-13:00", "14:00-18:00")
    assert not is_open(s, local(MSK, 2026, 11, 26, 13, 30))
    assert next_change(s, local(MSK, 2026, 11, 26, 12, 0)) == local(MSK, 2026, 11, 26, 13, 0)
    assert next_change(s, local(MSK, 2026, 11, 26, 13, 0)) == local(MSK, 2026, 11, 26, 14, 0)


def test_overlapping_intervals_merge():
    s = weekdays("UTC", "09:00-12:00", "11:00-15:00")
    assert next_change(s, utc(2026, 11, 26, 10)) == utc(2026, 11, 26, 15)


def test_end_of_day_and_night_shift_across_midnight():
    # Mon 20:00-24:00 and Tue 00:00-02:00 -> one opening
    weekly = (
        WeeklyInterval(weekday=0, interval=Interval.parse("20:00-24:00")),
        WeeklyInterval(weekday=1, interval=Interval.parse("00:00-02:00")),
    )
    s = Schedule(timezone="Europe/Moscow", weekly=weekly)
    mon = local(MSK, 2026, 11, 30, 23, 59)
    assert is_open(s, mon)
    assert is_open(s, local(MSK, 2026, 12, 1, 0, 0))
    assert next_change(s, mon) == local(MSK, 2026, 12, 1, 2, 0)
    assert next_change(s, local(MSK, 2026, 11, 30, 12, 0)) == local(MSK, 2026, 11, 30, 20, 0)


def test_holiday_exception_closed_all_day():
    s = weekdays("Europe/Moscow", "09:00-18:00", exceptions=[DateException(day=date(2026, 12, 31))])
    assert not is_open(s, local(MSK, 2026, 12, 31, 12, 0))
    assert is_open(s, local(MSK, 2026, 12, 30, 12, 0))
    # Wed 30th 18:00 -> Thu 31st is a holiday -> Fri 1st Jan 09:00
    assert next_change(s, local(MSK, 2026, 12, 30, 12, 0)) == local(MSK, 2026, 12, 30, 18, 0)
    assert next_open(s, local(MSK, 2026, 12, 30, 18, 0)) == local(MSK, 2027, 1, 1, 9, 0)


def test_short_day_and_open_weekend_exception():
    s = weekdays(
        "Europe/Moscow",
        "09:00-18:00",
        exceptions=[
            DateException(day=date(2026, 12, 30), intervals=(Interval.parse("09:00-15:00"),)),
            DateException(day=date(2026, 11, 28), intervals=(Interval.parse("10:00-14:00"),)),  # Saturday
        ],
    )
    assert not is_open(s, local(MSK, 2026, 12, 30, 16, 0))
    assert next_change(s, local(MSK, 2026, 12, 30, 10, 0)) == local(MSK, 2026, 12, 30, 15, 0)
    assert is_open(s, local(MSK, 2026, 11, 28, 11, 0))
    assert next_open(s, local(MSK, 2026, 11, 27, 19, 0)) == local(MSK, 2026, 11, 28, 10, 0)


def test_duplicate_exception_rejected():
    with pytest.raises(ValidationError):
        weekdays("UTC", "09:00-18:00", exceptions=[DateException(day=date(2026, 1, 1))] * 2)


def test_berlin_hours_track_dst():
    s = weekdays("Europe/Berlin", "09:00-18:00", days=range(7))
    # Winter: 09:00 CET = 08:00 UTC; summer: 09:00 CEST = 07:00 UTC
    assert next_open(s, utc(2026, 1, 15, 3)) == utc(2026, 1, 15, 8)
    assert next_open(s, utc(2026, 7, 15, 3)) == utc(2026, 7, 15, 7)
    # Across the spring-forward night (29 March 2026): Saturday 18:00 CET close -> Sunday 09:00 CEST
    assert next_change(s, utc(2026, 3, 28, 18)) == utc(2026, 3, 29, 7)
    # Across fall-back (25 October 2026): Sunday 09:00 CET = 08:00 UTC
    assert next_change(s, utc(2026, 10, 24, 17)) == utc(2026, 10, 25, 8)
    assert not is_open(s, utc(2026, 10, 25, 7, 30))


def test_bound_inside_spring_forward_gap_takes_effect_at_transition():
    # 02:30 does not exist in Berlin on 2026-03-29: clocks jump 02:00 CET -> 03:00 CEST at 01:00 UTC.
    s = Schedule(
        timezone="Europe/Berlin",
        weekly=(WeeklyInterval(weekday=6, interval=Interval.parse("02:30-05:00")),),
    )
    assert next_open(s, utc(2026, 3, 28, 23)) == utc(2026, 3, 29, 1, 0)
    assert not is_open(s, utc(2026, 3, 29, 0, 59, 59))
    assert is_open(s, utc(2026, 3, 29, 1, 0))
    assert next_change(s, utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 29, 3, 0)  # 05:00 CEST


def test_opening_wholly_inside_spring_forward_gap_never_happens():
    s = Schedule(
        timezone="Europe/Berlin",
        weekly=(
            WeeklyInterval(weekday=6, interval=Interval.parse("02:00-03:00")),
            WeeklyInterval(weekday=6, interval=Interval.parse("10:00-11:00")),
        ),
    )
    # Sunday 29 March 2026: 02:00-03:00 does not exist, so the next opening is 10:00 CEST
    assert next_change(s, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 8)
    assert not is_open(s, utc(2026, 3, 29, 1, 0))
    # a week later it exists again (02:00 CEST = 00:00 UTC)
    assert next_open(s, utc(2026, 4, 4, 12)) == utc(2026, 4, 5, 0)


def test_bound_inside_fall_back_hour_uses_first_occurrence():
    # Berlin 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00 UTC; 02:30 happens twice.
    s = Schedule(
        timezone="Europe/Berlin",
        weekly=(WeeklyInterval(weekday=6, interval=Interval.parse("00:00-02:30")),),
    )
    first_0230 = utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert is_open(s, first_0230 - timedelta(seconds=1))
    assert not is_open(s, first_0230)
    # second 02:15 (CET, 01:15 UTC) stays closed: no re-opening when the hour repeats
    assert not is_open(s, utc(2026, 10, 25, 1, 15))
    assert next_change(s, utc(2026, 10, 24, 23)) == first_0230
    # the opening lasted 3.5 hours of real time
    assert next_open(s, utc(2026, 10, 24, 12)) == utc(2026, 10, 24, 22, 0)


def test_sunday_midnight_bound_in_dst_week_is_exact_real_time():
    s = weekdays("Europe/Berlin", "00:00-24:00", days=[6])  # open all Sunday
    # Sunday 29 March 2026 (23 real hours long)
    opens = next_open(s, utc(2026, 3, 28, 12))
    closes = next_change(s, opens)
    assert opens == utc(2026, 3, 28, 23)
    assert closes - opens == timedelta(hours=23)
    # Sunday 25 October 2026 (25 real hours long)
    opens = next_open(s, utc(2026, 10, 24, 12))
    assert next_change(s, opens) - opens == timedelta(hours=25)


def test_open_around_the_clock_never_changes_and_empty_never_opens():
    all_week = weekdays("Europe/Berlin", "00:00-24:00", days=range(7))
    assert is_open(all_week, utc(2026, 3, 29, 1, 30))
    assert next_change(all_week, utc(2026, 3, 29, 1, 30)) is None
    empty = Schedule(timezone="Europe/Moscow")
    assert not is_open(empty, utc(2026, 3, 29))
    assert next_open(empty, utc(2026, 3, 29)) is None


def test_exception_far_ahead_is_found():
    all_week = weekdays("UTC", "00:00-24:00", days=range(7), exceptions=[DateException(day=date(2027, 6, 1))])
    assert next_change(all_week, utc(2026, 11, 28)) == utc(2027, 6, 1)
    assert next_change(all_week, utc(2027, 6, 1, 5)) == utc(2027, 6, 2)


def test_now_in_other_timezone_is_accepted():
    s = weekdays("Europe/Moscow", "09:00-18:00")
    now = datetime(2026, 11, 26, 8, 0, tzinfo=BER)  # 10:00 MSK
    assert is_open(s, now)
    assert next_change(s, now).tzinfo is UTC


# ---- property: next_change really is the next flip -------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as hs  # noqa: E402

_bounds = hs.sampled_from([0, 60, 120, 150, 180, 540, 780, 840, 1080, 1380, 1440])


@hs.composite
def schedules(draw):
    weekly = []
    for day in range(7):
        for _ in range(draw(hs.integers(0, 2))):
            a, b = sorted(draw(hs.lists(_bounds, min_size=2, max_size=2, unique=True)))
            weekly.append(WeeklyInterval(weekday=day, interval=Interval(start_minute=a, end_minute=b)))
    tz = draw(hs.sampled_from(["Europe/Berlin", "Europe/Moscow", "America/New_York", "America/Santiago", "UTC"]))
    return Schedule(timezone=tz, weekly=tuple(weekly))


_instants = hs.datetimes(min_value=datetime(2026, 3, 20), max_value=datetime(2026, 11, 10), timezones=hs.just(UTC))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schedules(), _instants)
def test_next_change_is_the_first_flip(schedule, now):
    change = next_change(schedule, now)
    state = is_open(schedule, now)
    if change is None:
        # never changes: spot-check the coming week
        for h in range(0, 24 * 8, 5):
            assert is_open(schedule, now + timedelta(hours=h)) == state
        return
    assert change > now
    assert is_open(schedule, change) != state
    # constant up to the change: every bound is on a whole minute, so minute-aligned samples suffice
    t = now
    step = timedelta(minutes=30)
    while t + step < change:
        t += step
        assert is_open(schedule, t) == state
    assert is_open(schedule, change - timedelta(seconds=1)) == state
    opened = next_open(schedule, now)
    assert opened == (now if state else change)


def test_midnight_inside_gap_santiago():
    # America/Santiago springs forward at 24:00 on Saturday 5 Sept 2026: Sunday has no 00:00.
    s = Schedule(
        timezone="America/Santiago",
        weekly=(WeeklyInterval(weekday=6, interval=Interval.parse("00:00-24:00")),),
    )
    opens = next_open(s, utc(2026, 9, 5, 12))
    assert opens == utc(2026, 9, 6, 4)  # the transition instant (local 01:00 -03)
    assert not is_open(s, opens - timedelta(seconds=1))
    assert next_change(s, opens) - opens == timedelta(hours=23)
