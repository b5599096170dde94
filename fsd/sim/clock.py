"""Injectable clock for the emulator.

`Clock(time_scale=0.01)` makes simulated time run 100x faster than real time: `clock.sleep(20)` returns
after 0.2 real seconds. All Event-Date-* headers, channel timestamps, HEARTBEAT intervals and scripted
endpoint delays use *simulated* time: an event fired 20 simulated seconds after start shows an
Event-Date-Timestamp 20 s later than the start, even though only 0.2 s of wall time passed.
"""

from __future__ import annotations

import time

import gevent


class Clock:
    """Simulated time = `start` + real elapsed time / time_scale."""

    def __init__(self, *, time_scale: float = 1.0, start: float | None = None):
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.time_scale = time_scale
        self._real0 = time.monotonic()
        self._sim0 = time.time() if start is None else start

    def now(self) -> float:
        """Simulated wall-clock time in seconds since the epoch."""
        return self._sim0 + (time.monotonic() - self._real0) / self.time_scale

    def now_us(self) -> int:
        return int(self.now() * 1_000_000)

    def real(self, sim_seconds: float) -> float:
        """Real seconds that `sim_seconds` of simulated time take."""
        return max(0.0, sim_seconds * self.time_scale)

    def sleep(self, sim_seconds: float) -> None:
        gevent.sleep(self.real(sim_seconds))


class Greenlet(gevent.Greenlet):
    """gevent's Greenlet without the spawning stack: gevent copies up to 10 frames of the spawner's stack
    for every greenlet (debugging aid), a good part of the cost of a spawn. The emulator spawns a few
    greenlets per call."""

    spawning_stack_limit = 0


spawn = Greenlet.spawn
spawn_later = Greenlet.spawn_later
