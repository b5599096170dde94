"""Event-loop lag: how late the gevent hub runs a timer it was given.

Every call, ESL frame and HTTP request of fsd runs in one event loop. When the process is short of CPU,
or something blocks the loop (a C call that does not yield), every timer and every socket read waits:
the lag of a timer due every ``interval_s`` measures exactly that, at the cost of one loop timer and no
greenlet. Observed into a histogram (``fsd_event_loop_lag_seconds``), so Prometheus has percentiles.
"""

from __future__ import annotations

import time

import gevent

from fsd.looptimer import call_later


class LoopLagMonitor:
    def __init__(self, *, histogram, interval_s: float = 0.5):
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.histogram = histogram
        self.interval_s = interval_s
        self._timer = None
        self._due = 0.0
        self.last_lag_s = 0.0

    def start(self) -> None:
        if self._timer is None:
            self._arm()

    def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()

    def _arm(self) -> None:
        gevent.get_hub().loop.update_now()  # the timer counts from now, not from when this loop iteration began
        self._due = time.monotonic() + self.interval_s
        self._timer = call_later(self.interval_s, self._tick)

    def _tick(self) -> None:
        lag = max(0.0, time.monotonic() - self._due)
        self.last_lag_s = lag
        self.histogram.observe(lag)
        if self._timer is not None:  # not stopped meanwhile
            self._arm()
