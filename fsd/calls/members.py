"""Member state shared by every call of this fsd process: registration, reservations, last call.

Reservations are atomic in PostgreSQL (``reservations.employee_id`` is the primary key), so a
member is never offered two calls at once even when several fsd processes share the members. This
board mirrors them in memory (own reservations at once, other processes' by polling) and wakes the
calls that wait for a member to become free.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent

from fsd.errors import StoreError
from fsd.store import calls_repo

log = logging.getLogger(__name__)

OTHER = "?"  # reserved by a call we do not know (another fsd process)
RING_TTL_S = 900.0
TALK_TTL_S = 12 * 3600.0


class MemberBoard:
    def __init__(self, *, pool, node: str, clock, poll_interval_s: float = 0.5, gate=None):
        from fsd.calls.dbgate import DbGate

        self.pool = pool
        self.gate = gate or DbGate()
        self.node = node
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.reserved: dict[int, str] = {}  # employee_id -> call uuid holding it
        self.local: dict[int, str] = {}  # reservations made by this process
        self.registered: dict[int, bool] = {}
        self.ringing: set[int] = set()
        self.talking: set[int] = set()
        self.last_call: dict[int, float] = {}
        # employee_id -> {watcher: None}, in the order the calls started waiting: a freed member is
        # offered to the waiting calls first come, first served.
        self._watchers: dict[int, dict[Callable[[int], None], None]] = {}
        self._pending_release: list[tuple[int, str]] = []
        self._seq = 0  # bumped on every local reservation change (a poll must not undo newer changes)
        self._changed: dict[int, int] = {}
        self._poller: gevent.Greenlet | None = None
        self.db_errors = 0

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        try:
            with self.pool.transaction() as cur:
                n = calls_repo.release_node(cur, self.node)
            if n:
                log.info("calls_stale_reservations_released node=%s count=%d", self.node, n)
        except StoreError as e:
            log.warning("calls_release_node_failed node=%s error=%s", self.node, e)
        if self._poller is None:
            self._poller = gevent.spawn(self._poll_loop)

    def stop(self) -> None:
        if self._poller is not None:
            self._poller.kill()
            self._poller = None

    # -- queries -----------------------------------------------------------------------------------
    def busy(self, employee_id: int, call_uuid: str | None = None) -> bool:
        holder = self.reserved.get(employee_id)
        return holder is not None and holder != call_uuid

    def is_registered(self, employee_id: int) -> bool:
        return self.registered.get(employee_id, True)

    def set_registered(self, employee_id: int, registered: bool) -> None:
        if self.registered.get(employee_id, True) != registered or employee_id not in self.registered:
            self.registered[employee_id] = registered
            self._notify([employee_id])

    def state(self, employee_id: int) -> str:
        if employee_id in self.talking:
            return "busy"
        if employee_id in self.ringing:
            return "ringing"
        if employee_id in self.reserved:
            return "busy"
        if not self.is_registered(employee_id):
            return "unregistered"
        return "free"

    # -- watchers ----------------------------------------------------------------------------------
    def watch(self, employee_ids, fn: Callable[[int], None]) -> None:
        for e in employee_ids:
            self._watchers.setdefault(e, {})[fn] = None

    def unwatch(self, employee_ids, fn) -> None:
        for e in employee_ids:
            s = self._watchers.get(e)
            if s is not None:
                s.pop(fn, None)
                if not s:
                    del self._watchers[e]

    def _notify(self, employee_ids) -> None:
        for e in employee_ids:
            for fn in list(self._watchers.get(e, ())):
                try:
                    fn(e)
                except Exception:
                    log.exception("calls_member_watcher_failed employee=%s", e)

    # -- reservations ------------------------------------------------------------------------------
    def reserve(self, call_uuid: str, employee_ids) -> set[int]:
        """Reserve members for ``call_uuid``; returns those it holds now. Members this process
        already knows to be held by another call are refused without asking the database."""
        want = [e for e in employee_ids if self.reserved.get(e) in (None, call_uuid)]
        if not want:
            return set()
        if not self.gate.ok():
            got = set(want)  # database down: reserve in this process only
        else:
            try:
                with self.pool.transaction() as cur:
                    got = calls_repo.reserve(cur, want, call_uuid=call_uuid, node=self.node, ttl_s=RING_TTL_S)
            except StoreError as e:
                # Database down: reserve in this process only (calls still route on the last good config).
                self.db_errors += 1
                self.gate.failed(e)
                log.warning("calls_reserve_failed call=%s error=%s fallback=local", call_uuid, e)
                got = set(want)
        self._seq += 1
        for e in want:
            self._changed[e] = self._seq
            if e in got:
                self.reserved[e] = call_uuid
                self.local[e] = call_uuid
            else:
                self.reserved[e] = OTHER
        return got

    def release(self, call_uuid: str, employee_ids) -> None:
        mine = [e for e in employee_ids if self.local.get(e) == call_uuid]
        if not mine:
            return
        self._seq += 1
        for e in mine:
            self._changed[e] = self._seq
            self.local.pop(e, None)
            if self.reserved.get(e) == call_uuid:
                del self.reserved[e]
            self.ringing.discard(e)
            self.talking.discard(e)
        try:
            if not self.gate.ok():
                raise StoreError("database marked down")
            with self.pool.transaction() as cur:
                calls_repo.release(cur, mine, call_uuid=call_uuid)
        except StoreError as e:
            self.db_errors += 1
            self.gate.failed(e)
            log.warning("calls_release_failed call=%s error=%s retry=later", call_uuid, e)
            self._pending_release += [(m, call_uuid) for m in mine]
        self._notify(mine)

    def talk(self, call_uuid: str, employee_id: int) -> None:
        """The member answered: keep the reservation for the whole conversation."""
        self.ringing.discard(employee_id)
        self.talking.add(employee_id)
        if not self.gate.ok():
            return
        try:
            with self.pool.transaction() as cur:
                calls_repo.extend_reservation(cur, employee_id, call_uuid=call_uuid, ttl_s=TALK_TTL_S)
        except StoreError as e:
            self.gate.failed(e)
            log.warning("calls_extend_reservation_failed call=%s error=%s", call_uuid, e)

    def call_ended(self, employee_id: int) -> None:
        now = self.clock.now()
        self.last_call[employee_id] = now
        if not self.gate.ok():
            return
        try:
            with self.pool.transaction() as cur:
                calls_repo.employee_call_ended(cur, employee_id, self.clock.utcnow())
        except StoreError as e:
            self.gate.failed(e)
            log.warning("calls_last_call_update_failed employee=%s error=%s", employee_id, e)

    # -- polling other processes' reservations ----------------------------------------------------------
    def poll_once(self) -> None:
        started = self._seq
        with self.pool.transaction() as cur:
            db = calls_repo.reserved_members(cur)
            if self._pending_release:
                pend, self._pending_release = self._pending_release, []
                for emp, call in pend:
                    calls_repo.release(cur, [emp], call_uuid=call)
        changed = []
        for emp, holder in list(self.reserved.items()):
            if holder == OTHER and emp not in db:
                del self.reserved[emp]
                changed.append(emp)
        for emp in db:
            if self._changed.get(emp, -1) > started:
                continue  # reserved or released here while the query ran: the database view is older
            if emp not in self.reserved and self.local.get(emp) is None:
                self.reserved[emp] = OTHER
                changed.append(emp)
        if changed:
            self._notify(changed)

    def _poll_loop(self) -> None:
        while True:
            gevent.sleep(self.poll_interval_s)
            if not self._watchers and not self._pending_release and not any(
                    h == OTHER for h in self.reserved.values()):
                continue
            try:
                self.poll_once()
                self.gate.succeeded()
            except StoreError as e:
                self.db_errors += 1
                self.gate.failed(e)
                log.debug("calls_reservation_poll_failed error=%s", e)
            except Exception:
                log.exception("calls_reservation_poll_crashed")
