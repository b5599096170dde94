"""Member state shared by every call of this fsd process: registration, reservations, last call.

Reservations are atomic in PostgreSQL (``reservations.employee_id`` is the primary key), so a
member is never offered two calls at once even when several fsd processes share the members. This
board mirrors them in memory (own reservations at once, other processes' by polling) and wakes the
calls that wait for a member to become free.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator

import gevent
import gevent.event
import gevent.lock
import gevent.pool

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
        # asked for a member whose registration this board has not been told: True, False or None (unknown,
        # then the member counts as registered). Set by the driver from the switches' registration tables.
        self.registration_source: Callable[[int], bool | None] | None = None
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
        # employee_id -> call: reservations granted by this process alone while PostgreSQL was
        # unreachable, written to the database by the poller once it answers again
        self._unsynced: dict[int, str] = {}
        self._pending_talk: dict[int, str] = {}  # employee_id -> call: conversation TTL not written yet
        # members marked held (OTHER) only because the database was too slow to say: freed by the next
        # poll, or at once when the database turns out to be unreachable (then this process decides)
        self._refused: set[int] = set()
        # one lock per member around every reservation statement of this process: a release deciding to
        # DELETE and a reserve of the same member by the same call never interleave (the release's DELETE
        # would otherwise remove the row the reserve had just renewed). Taken before a pooled connection.
        self._mlocks: dict[int, gevent.lock.Semaphore] = {}
        self._releasing: dict[int, gevent.event.Event] = {}  # member -> its row's DELETE is under way
        self._releases = gevent.pool.Group()
        self.release_wait_s = 10.0
        self.db_errors = 0
        self.refused_slow = 0  # reservations refused because the database was slow (not down)
        self.local_only = 0  # reservations granted without the database (it was unreachable)

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

    def stop(self, timeout: float = 5.0) -> None:
        if self._poller is not None:
            self._poller.kill()
            self._poller = None
        self.wait_releases(timeout)  # DELETEs under way: no row left behind by a clean stop

    # -- queries -----------------------------------------------------------------------------------
    def busy(self, employee_id: int, call_uuid: str | None = None) -> bool:
        holder = self.reserved.get(employee_id)
        return holder is not None and holder != call_uuid

    def is_registered(self, employee_id: int) -> bool:
        v = self.registered.get(employee_id)
        if v is None:
            src = self.registration_source
            if src is not None:
                v = src(employee_id)
                if v is not None:
                    self.registered[employee_id] = v  # kept up to date by set_registered from now on
            if v is None:
                return True
        return v

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
    @contextlib.contextmanager
    def _locked(self, employee_ids: Iterable[int]) -> Iterator[None]:
        locks = [self._mlocks.setdefault(e, gevent.lock.Semaphore()) for e in sorted(set(employee_ids))]
        taken = []
        try:
            for lock in locks:
                lock.acquire()
                taken.append(lock)
            yield
        finally:
            for lock in reversed(taken):
                lock.release()

    def reserve(self, call_uuid: str, employee_ids) -> set[int]:
        """Reserve members for ``call_uuid``; returns those it holds now. Members this process
        already knows to be held by another call are refused without asking the database.

        Only the database grants a reservation. When it is slow (no pooled connection in time, a
        statement timeout, the gate closed by such a failure) the members are refused for now and
        marked held by an unknown call: the poller frees them, and wakes the waiting calls, as soon as
        the database answers that nobody holds them. Only when PostgreSQL is unreachable does this
        process reserve on its own (local-only; written to the database once it is back)."""
        want = [e for e in employee_ids if self.reserved.get(e) in (None, call_uuid)]
        if not want:
            return set()
        refused_slow = False
        if self.gate.unreachable():
            got = self._reserve_locally(call_uuid, want, "database unreachable")
        elif not self.gate.ok():
            self.refused_slow += 1
            refused_slow = True
            got = set()  # the database is slow, not gone: it still decides
        else:
            try:
                self._wait_released(want)
                with self._locked(want), self.pool.autocommit() as cur:  # one statement: atomic
                    got = calls_repo.reserve(cur, want, call_uuid=call_uuid, node=self.node, ttl_s=RING_TTL_S)
            except StoreError as e:
                self.db_errors += 1
                self.gate.failed(e)
                if self.gate.unreachable():
                    got = self._reserve_locally(call_uuid, want, e)
                else:
                    self.refused_slow += 1
                    refused_slow = True
                    log.warning("calls_reserve_refused call=%s members=%d reason=database_slow error=%s",
                                call_uuid, len(want), e)
                    got = set()
        self._seq += 1
        for e in want:
            self._changed[e] = self._seq
            if e in got:
                self.reserved[e] = call_uuid
                self.local[e] = call_uuid
                self._refused.discard(e)
            else:
                self.reserved[e] = OTHER
                if refused_slow:
                    self._refused.add(e)
                else:
                    self._refused.discard(e)
        return got

    def _reserve_locally(self, call_uuid: str, want: list[int], why) -> set[int]:
        self.local_only += len(want)
        log.warning("calls_reserve_local call=%s members=%d error=%s", call_uuid, len(want), why)
        for e in want:
            self._unsynced[e] = call_uuid
        return set(want)

    def release(self, call_uuid: str, employee_ids) -> None:
        mine = [e for e in employee_ids if self.local.get(e) == call_uuid]
        if not mine:
            return
        self._seq += 1
        for e in mine:
            self._changed[e] = self._seq
            self.local.pop(e, None)
            if self._unsynced.get(e) == call_uuid:
                del self._unsynced[e]
            if self.reserved.get(e) == call_uuid:
                del self.reserved[e]
            self.ringing.discard(e)
            self.talking.discard(e)
        if not self.gate.ok():
            self._pending_release += [(m, call_uuid) for m in mine]  # written by the poller
        else:
            # The DELETE runs in its own greenlet: release() is called from the switch's event loop (a
            # leg's hangup), which must not wait for the database. A reserve of these members waits for it
            # (_releasing), so the row is gone before anyone asks for them again.
            done = gevent.event.Event()
            for e in mine:
                self._releasing[e] = done
            self._releases.spawn(self._release_db, call_uuid, mine, done)
        self._notify(mine)

    def _release_db(self, call_uuid: str, mine: list[int], done: gevent.event.Event) -> None:
        try:
            with self._locked(mine):
                # reserved again by the same call while this waited for the lock: its row stays
                still = [e for e in mine if self.local.get(e) != call_uuid]
                if still:
                    with self.pool.autocommit() as cur:
                        calls_repo.release(cur, still, call_uuid=call_uuid)
        except StoreError as e:
            self.db_errors += 1
            self.gate.failed(e)
            log.warning("calls_release_failed call=%s error=%s retry=later", call_uuid, e)
            self._pending_release += [(m, call_uuid) for m in mine]
        finally:
            for e in mine:
                if self._releasing.get(e) is done:
                    del self._releasing[e]
            done.set()

    def wait_releases(self, timeout: float | None = None) -> bool:
        """Wait for the DELETEs of released reservations under way; True when none is left."""
        return self._releases.join(timeout=timeout)

    def _wait_released(self, employee_ids) -> None:
        """Wait until this process's own DELETEs of these members' rows are done (see release)."""
        for e in employee_ids:
            ev = self._releasing.get(e)
            if ev is not None:
                ev.wait(self.release_wait_s)

    def talk(self, call_uuid: str, employee_id: int) -> None:
        """The member answered: keep the reservation for the whole conversation (retried by the poller
        when the database cannot be asked now, so a long conversation never outlives its row)."""
        self.ringing.discard(employee_id)
        self.talking.add(employee_id)
        if not self.gate.ok():
            self._pending_talk[employee_id] = call_uuid
            return
        try:
            with self.pool.autocommit() as cur:
                calls_repo.extend_reservation(cur, employee_id, call_uuid=call_uuid, ttl_s=TALK_TTL_S)
        except StoreError as e:
            self.gate.failed(e)
            self._pending_talk[employee_id] = call_uuid
            log.warning("calls_extend_reservation_failed call=%s error=%s retry=later", call_uuid, e)

    def call_ended(self, employee_id: int) -> None:
        now = self.clock.now()
        self.last_call[employee_id] = now
        if not self.gate.ok():
            return
        try:
            with self.pool.autocommit() as cur:
                calls_repo.employee_call_ended(cur, employee_id, self.clock.utcnow())
        except StoreError as e:
            self.gate.failed(e)
            log.warning("calls_last_call_update_failed employee=%s error=%s", employee_id, e)

    # -- polling other processes' reservations ----------------------------------------------------------
    def poll_once(self) -> None:
        started = self._seq
        pend, self._pending_release = self._pending_release, []
        # a member released and then reserved again by the same call is held: its row must stay
        pend = [(emp, call) for emp, call in pend if self.local.get(emp) != call]
        unsynced = dict(self._unsynced)
        talk = {e: c for e, c in self._pending_talk.items() if self.local.get(e) == c and e in self.talking}
        self._pending_talk = {}
        try:
            with self._locked([e for e, _ in pend] + list(unsynced)), self.pool.transaction() as cur:
                db = calls_repo.reserved_members(cur)
                for emp, call in pend:
                    # checked right before its DELETE (the poll yields between statements): a member the
                    # same call reserved again meanwhile is held by it, and its row must stay
                    if self.local.get(emp) == call:
                        continue
                    calls_repo.release(cur, [emp], call_uuid=call)
                synced = self._sync_local(cur, unsynced, db)
                for emp, call in talk.items():
                    calls_repo.extend_reservation(cur, emp, call_uuid=call, ttl_s=TALK_TTL_S)
        except BaseException:
            self._pending_release = pend + self._pending_release
            self._pending_talk = {**talk, **self._pending_talk}
            raise
        # Reservations made alone are in the database now (or lost to another process meanwhile).
        # One released while the transaction ran left a row behind: release it with the next poll.
        for emp, call in unsynced.items():
            if self._unsynced.get(emp) == call:
                del self._unsynced[emp]
            if emp in synced and self.local.get(emp) != call:
                self._pending_release.append((emp, call))
        changed = []
        self._refused.clear()  # the database has answered
        for emp, holder in list(self.reserved.items()):
            if holder == OTHER and emp not in db:
                del self.reserved[emp]
                changed.append(emp)
        for emp in db:
            if self._changed.get(emp, -1) > started:
                continue  # reserved or released here while the query ran: the database view is older
            if emp in self._releasing:
                continue  # released here, its row's DELETE is under way
            if emp not in self.reserved and self.local.get(emp) is None:
                self.reserved[emp] = OTHER
                changed.append(emp)
        if changed:
            self._notify(changed)

    def _sync_local(self, cur, unsynced: dict[int, str], db: dict[int, str]) -> set[int]:
        """Write the reservations granted alone during an outage; returns the members written."""
        synced = set()
        for emp, call in unsynced.items():
            if self.local.get(emp) != call:
                continue
            if emp in db and db[emp] != call:
                log.warning("calls_local_reservation_conflict employee=%s call=%s other=%s", emp, call, db[emp])
                continue
            ttl = TALK_TTL_S if emp in self.talking else RING_TTL_S
            synced |= calls_repo.reserve(cur, [emp], call_uuid=call, node=self.node, ttl_s=ttl)
        return synced

    def _unrefuse(self) -> None:
        """PostgreSQL is unreachable after all: members refused only for its slowness are free to this
        process again (the calls waiting for them retry, and reserve locally)."""
        freed = [e for e in self._refused if self.reserved.get(e) == OTHER]
        self._refused.clear()
        for e in freed:
            del self.reserved[e]
        if freed:
            self._notify(freed)

    def _poll_needed(self) -> bool:
        return bool(self._watchers or self._pending_release or self._unsynced or self._pending_talk
                    or any(h == OTHER for h in self.reserved.values()))

    def _poll_loop(self) -> None:
        while True:
            gevent.sleep(self.poll_interval_s)
            if not self._poll_needed():
                continue
            try:
                self.poll_once()
                self.gate.succeeded()
            except StoreError as e:
                self.db_errors += 1
                self.gate.failed(e)
                log.debug("calls_reservation_poll_failed error=%s", e)
                if self.gate.unreachable():
                    self._unrefuse()
            except Exception:
                log.exception("calls_reservation_poll_crashed")


# -- registrations --------------------------------------------------------------------------------------


def reg_key(user: str, domain: str) -> str:
    """``user@domain`` as registration state is keyed (case-insensitive, like SIP user parts here)."""
    return f"{(user or '').strip().lower()}@{(domain or '').strip().lower()}"


class RegistrationTableError(ValueError):
    """A ``show registrations`` reply that is not a registration table."""


def parse_registrations(body: str) -> set[str]:
    """The ``user@realm`` keys of FreeSWITCH's ``show registrations`` reply, in either form it has:
    ``as json`` (``{"row_count": 0}\\n`` when empty, else ``{"row_count":N,"rows":[{"reg_user":...,
    "realm":...}, ...]}``) or the plain CSV (a header line ``reg_user,realm,token,...``, one line per
    registration, then ``\\nN total.\\n``; only ``\\n0 total.\\n`` when empty).
    Raises RegistrationTableError for anything else (``-ERR ...``, a truncated reply)."""
    text = (body or "").strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise RegistrationTableError(f"show registrations: bad JSON ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("row_count"), (int, float)):
            raise RegistrationTableError("show registrations: JSON without row_count")
        rows = doc.get("rows", [])
        if not isinstance(rows, list) or len(rows) != int(doc["row_count"]):
            raise RegistrationTableError("show registrations: row_count does not match the rows")
        out = set()
        for r in rows:
            if not isinstance(r, dict):
                raise RegistrationTableError("show registrations: a row is not an object")
            if r.get("reg_user") and r.get("realm"):
                out.add(reg_key(r["reg_user"], r["realm"]))
        return out
    lines = text.split("\n")
    if not lines or not lines[-1].endswith(" total.") or not lines[-1].split()[0].isdigit():
        raise RegistrationTableError(f"show registrations: unexpected reply {text[:60]!r}")
    total = int(lines[-1].split()[0])
    rows = [ln for ln in lines[:-1] if ln.strip()]
    if total == 0 and not rows:
        return set()
    if not rows or rows[0].split(",")[:2] != ["reg_user", "realm"] or len(rows) - 1 != total:
        raise RegistrationTableError(f"show registrations: unexpected table {text[:60]!r}")
    out = set()
    for ln in rows[1:]:
        user, _, rest = ln.partition(",")
        realm = rest.partition(",")[0]
        if user and realm:
            out.add(reg_key(user, realm))
    return out


class Registrations:
    """Who is registered on which switch: pure bookkeeping, fed by the driver.

    Each switch's state is its registration table (``show registrations``, read when the inbound
    connection is (re)established) updated by its sofia::register/unregister/expire events. A user is
    registered when registered on any connected switch; unregistered when every connected switch says
    so (its table, or an unregister event); unknown (None) otherwise.

    Ordering: a table supersedes every event handled before it was requested; an event handled after
    the request (it may have been received before or after the reply) wins over the table, since it is
    at least as recent as the table for its user.
    """

    def __init__(self):
        self._up: set[str] = set()
        self._regs: dict[str, set[str]] = {}  # switch -> registered keys
        self._gone: dict[str, set[str]] = {}  # switch -> keys an event unregistered (table unknown)
        self._known: set[str] = set()  # switches whose table was read since their last connect
        self._pending: dict[str, int] = {}  # switch -> token of its table request in flight
        self._since: dict[str, dict[str, bool]] = {}  # switch -> {key: state} of events since the request
        self._token = 0

    # -- switch lifecycle ----------------------------------------------------------------------------
    def connected(self, switch: str) -> None:
        self._up.add(switch)

    def disconnected(self, switch: str) -> None:
        """The switch's inbound connection is gone: its registrations no longer count (read again with
        the table on the next connect)."""
        self._up.discard(switch)
        self._known.discard(switch)
        self._regs.pop(switch, None)
        self._gone.pop(switch, None)
        self._pending.pop(switch, None)
        self._since.pop(switch, None)

    def known(self, switch: str) -> bool:
        return switch in self._known

    def informed(self) -> bool:
        """Anything at all is known about a connected switch (a table or an event)."""
        return any(self._regs.get(s) or self._gone.get(s) or s in self._known for s in self._up)

    # -- input ---------------------------------------------------------------------------------------
    def event(self, switch: str, user: str, domain: str, registered: bool) -> str:
        k = reg_key(user, domain)
        regs = self._regs.setdefault(switch, set())
        gone = self._gone.setdefault(switch, set())
        if registered:
            regs.add(k)
            gone.discard(k)
        else:
            regs.discard(k)
            if switch not in self._known:
                gone.add(k)
        since = self._since.get(switch)
        if since is not None:
            since[k] = registered
        return k

    def table_requested(self, switch: str) -> int:
        """Call right before sending ``show registrations``; pass the token to :meth:`table`."""
        self._token += 1
        self._pending[switch] = self._token
        self._since[switch] = {}
        return self._token

    def table_failed(self, switch: str, token: int) -> None:
        if self._pending.get(switch) == token:
            del self._pending[switch]
            self._since.pop(switch, None)

    def table(self, switch: str, token: int, keys: set[str]) -> bool:
        """The table read with request ``token``; False (ignored) when a newer request was made or the
        connection was lost meanwhile."""
        if self._pending.get(switch) != token or switch not in self._up:
            return False
        del self._pending[switch]
        regs = set(keys)
        for k, registered in self._since.pop(switch, {}).items():
            if registered:
                regs.add(k)
            else:
                regs.discard(k)
        self._regs[switch] = regs
        self._gone[switch] = set()
        self._known.add(switch)
        return True

    # -- queries -------------------------------------------------------------------------------------
    def state(self, keys) -> bool | None:
        """True if one of ``keys`` is registered on a connected switch; False if every connected switch
        knows none of them is; None when that is not known."""
        if not self._up:
            return None
        for s in self._up:
            regs = self._regs.get(s)
            if regs and any(k in regs for k in keys):
                return True
        for s in self._up:
            if s in self._known:
                continue
            gone = self._gone.get(s)
            if not gone or not any(k in gone for k in keys):
                return None
        return False
