"""The call driver's clock: wall time, monotonic time, sleeping and timeouts in one object.

The driver never calls ``time``/``gevent.sleep`` directly: a :class:`ScaledClock` makes the whole
driver run on simulated time (``time_scale=0.01``: 20 simulated seconds take 0.2 s), the same time
the FreeSWITCH emulator (fsd.sim) runs on, so an impatient offer "at 20 s" happens at 20 s of
simulated time in both.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import gevent


class RealClock:
    time_scale = 1.0

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def real(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of this clock's time take."""
        return max(0.0, seconds)

    def sleep(self, seconds: float) -> None:
        gevent.sleep(self.real(seconds))

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)


class ScaledClock(RealClock):
    """Simulated time = start + real elapsed / time_scale (the same formula as fsd.sim.Clock)."""

    def __init__(self, *, time_scale: float = 1.0, start: float | None = None):
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.time_scale = time_scale
        self._real0 = time.monotonic()
        self._sim0 = time.time() if start is None else start

    def now(self) -> float:
        return self._sim0 + (time.monotonic() - self._real0) / self.time_scale

    def monotonic(self) -> float:
        return self.now()

    def real(self, seconds: float) -> float:
        return max(0.0, seconds * self.time_scale)


class _Adapted(RealClock):
    """Any object with now()/real() (e.g. the emulator's Clock) used as the driver clock."""

    def __init__(self, inner):
        self.inner = inner
        self.time_scale = getattr(inner, "time_scale", 1.0)

    def now(self) -> float:
        return self.inner.now()

    def monotonic(self) -> float:
        mono = getattr(self.inner, "monotonic", None)
        return mono() if mono is not None else self.inner.now()

    def real(self, seconds: float) -> float:
        return max(0.0, self.inner.real(seconds))


def as_clock(obj) -> RealClock:
    if obj is None:
        return RealClock()
    if isinstance(obj, RealClock):
        return obj
    return _Adapted(obj)
