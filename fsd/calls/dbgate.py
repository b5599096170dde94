"""A circuit breaker for the database on the call path.

When PostgreSQL is unreachable every attempt costs a connect timeout; a caller must not wait for
that. After a failure the gate stays closed for ``hold_s`` real seconds: call-path code skips the
database (last good configuration, reservations in this process only, history to the spool) and
the background loops (history flush, reservation poll) probe it again.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class DbGate:
    def __init__(self, *, hold_s: float = 2.0):
        self.hold_s = hold_s
        self._down_until = 0.0
        self.trips = 0

    def ok(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, error: BaseException | str = "") -> None:
        if self.ok():
            self.trips += 1
            log.warning("calls_db_unreachable hold_s=%.1f error=%s", self.hold_s, error)
        self._down_until = time.monotonic() + self.hold_s

    def succeeded(self) -> None:
        if not self.ok():
            log.info("calls_db_reachable_again")
        self._down_until = 0.0
