"""A circuit breaker for the database on the call path.

When PostgreSQL is unreachable every attempt costs a connect timeout; a caller must not wait for
that. After a failure the gate stays closed for ``hold_s`` real seconds: call-path code skips the
database (last good configuration, history to the spool, releases queued) and the background loops
(history flush, reservation poll, configuration reload) probe it again.

Two kinds of failure close the gate, and only one of them is an outage:

* *unreachable* — a connection could not be opened, or an open one was lost, or the server is
  shutting down (:func:`fsd.store.calls_repo.db_unreachable`). Only then may a process act without
  the database where the database is the authority: member reservations fall back to this process
  (``unreachable()``).
* *slow* — no pooled connection free in time, a statement or lock timeout, a deadlock. The database
  is there and still decides: a reservation it did not grant is not granted (``ok()`` is False, but
  ``unreachable()`` stays False).
"""

from __future__ import annotations

import logging
import time

from fsd.store.calls_repo import db_unreachable

log = logging.getLogger(__name__)


class DbGate:
    def __init__(self, *, hold_s: float = 2.0):
        self.hold_s = hold_s
        self._down_until = 0.0
        self._unreachable_until = 0.0
        self.trips = 0  # outages seen (unreachable after reachable)
        self.slow = 0  # failures that were slowness, not an outage

    def ok(self) -> bool:
        """The database is worth asking now (no failure within the hold)."""
        return time.monotonic() >= self._down_until

    def unreachable(self) -> bool:
        """PostgreSQL could not be reached within the hold: the only state in which call-path code may
        decide without it (local-only reservations)."""
        return time.monotonic() < self._unreachable_until

    def failed(self, error: BaseException | str = "") -> None:
        now = time.monotonic()
        if isinstance(error, BaseException) and db_unreachable(error):
            if not self.unreachable():
                self.trips += 1
                log.warning("calls_db_unreachable hold_s=%.1f error=%s", self.hold_s, error)
            self._unreachable_until = now + self.hold_s
        else:
            self.slow += 1
            if self.ok():
                log.warning("calls_db_slow hold_s=%.1f error=%s", self.hold_s, error)
        self._down_until = max(self._down_until, now + self.hold_s)

    def succeeded(self) -> None:
        if not self.ok() or self.unreachable():
            log.info("calls_db_reachable_again")
        self._down_until = 0.0
        self._unreachable_until = 0.0
