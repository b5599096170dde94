"""The call driver: every call reaching fsd over the outbound socket is handled here.

Wiring (composition root)::

    driver = CallDriver(pool=pool, switches={"fs1": inbound_client}, config=config, metrics=metrics)
    driver.register_metrics()
    outbound = OutboundServer(host=..., port=..., handler=driver.handle)
    app.on_change(driver.on_change); app.on_listener_reconnect(driver.invalidate)
    driver.start(); outbound.start()
    ...
    outbound.drain(timeout); driver.drain(timeout); driver.stop()

If fsd cannot route a call (unknown number, no configuration and no database, an internal error
before the caller was answered) it closes the socket without touching the call, so FreeSWITCH runs
the dialplan fallback after ``socket``.
"""

from __future__ import annotations

import logging
import os
import time

import gevent
import gevent.event
import gevent.pool

from fsd.calls.call import Call, CallerGone, _safe
from fsd.calls.callbacks import CallbackWorker
from fsd.calls.clock import as_clock
from fsd.calls.dbgate import DbGate
from fsd.calls.history import HistoryWriter
from fsd.calls.links import SwitchLink
from fsd.calls.members import MemberBoard, Registrations, RegistrationTableError, parse_registrations, reg_key
from fsd.calls.snapshot import SnapshotCache
from fsd.config import CallsConfig
from fsd.errors import ESLError, FsdError
from fsd.metrics import Metrics
from fsd.queue.waiting import ImpatientConfig, WaitingQueue
from fsd.routing.steps import RingDepartment, RingEmployee

log = logging.getLogger(__name__)

INTERNAL_CONTEXT_MARK = "internal"
# the part of myevents' event list no call uses (mod_event_socket's nixevent clears them from the listener):
# FreeSWITCH then neither serializes nor sends them (each carries every channel variable, 5-9 KB), and fsd
# does not parse them. What stays: hangup, bridge. CHANNEL_EXECUTE_COMPLETE is off too until the call first
# waits for an application's end (OutboundSession.execute turns it on in the same write): a department call
# that only answers, sets a variable and plays ring-back does not get its three completions, nor the two
# after the hangup (ring-back, socket), nor CHANNEL_ANSWER of its own answer and CHANNEL_HANGUP_COMPLETE.
NIX_EVENTS = ("nixevent CHANNEL_CREATE CHANNEL_DATA CHANNEL_DESTROY CHANNEL_EXECUTE CHANNEL_STATE CHANNEL_PROGRESS "
              "CHANNEL_PROGRESS_MEDIA CHANNEL_OUTGOING CHANNEL_PARK CHANNEL_UNPARK CHANNEL_APPLICATION "
              "CHANNEL_ORIGINATE CHANNEL_UUID DETECTED_SPEECH CHANNEL_ANSWER CHANNEL_EXECUTE_COMPLETE "
              "CHANNEL_HANGUP_COMPLETE CHANNEL_UNBRIDGE DTMF TALK NOTALK")


class CallDriver:
    def __init__(self, *, pool, switches: dict, config, metrics: Metrics | None = None, clock=None,
                 node: str | None = None, storage_dir: str | None = None, prompts_dir: str | None = None,
                 callbacks: bool = True, callback_poll_s: float = 1.0, history_flush_s: float = 2.0,
                 db_hold_s: float = 2.0):
        calls_cfg = config.calls if hasattr(config, "calls") else config
        if not isinstance(calls_cfg, CallsConfig):
            calls_cfg = CallsConfig()
        self.calls_cfg = calls_cfg
        self.cabinet_url = config.http.public_url if hasattr(config, "http") else ""
        self.node = node or (config.node.name if hasattr(config, "node") else os.uname().nodename)
        self.pool = pool
        self.metrics = metrics or Metrics()
        self.clock = as_clock(clock)
        self.storage_dir = storage_dir or calls_cfg.storage_dir
        self.prompts_dir = prompts_dir or calls_cfg.prompts_dir or None
        self.links = {name: SwitchLink(name=name, client=c, on_registration=self._registration_handler(name))
                      for name, c in switches.items()}
        # who is registered where: each switch's `show registrations` table, read when its inbound
        # connection is (re)established, kept up to date by its sofia::register/unregister/expire events
        self.registrations = Registrations()
        self.registration_timeout_s = 10.0
        self._reg_jobs = gevent.pool.Group()
        self._hooked: set[str] = set()
        self.registration_tables_read = 0
        self.gate = DbGate(hold_s=db_hold_s)
        self.cache = SnapshotCache(pool=pool, storage_dir=self.storage_dir, prompts_dir=self.prompts_dir,
                                   gate=self.gate)
        self.board = MemberBoard(pool=pool, node=self.node, clock=self.clock,
                                 poll_interval_s=min(0.5, max(0.02, self.clock.real(2.0))), gate=self.gate)
        self.board.registration_source = self._registration_state
        self.history = HistoryWriter(pool=pool, storage_dir=self.storage_dir, metrics=self.metrics,
                                     flush_interval_s=history_flush_s, gate=self.gate)
        self.callbacks = CallbackWorker(driver=self, poll_s=callback_poll_s) if callbacks else None
        self.active: dict[str, Call] = {}
        self.queues: dict = {}
        self._idle = gevent.event.Event()
        self._idle.set()
        self._accepting = True
        self.offer_lateness: list[float] = []  # seconds each impatient offer's timer fired late (first 100,000)
        self._connect_t: dict[str, float] = {}  # call uuid -> socket connect (monotonic), until its first originate
        self.calls_handled = 0
        self.calls_fallback = 0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> CallDriver:
        for name, link in self.links.items():
            link.attach()  # the registration events are subscribed before the table is asked for
            self._hook_switch(name, link.client)
            if link.client.connected:
                self._switch_connected(name)
        self.board.start()
        self.history.start()
        if self.callbacks is not None:
            self.callbacks.start()
        log.info("calls_driver_started node=%s switches=%s", self.node, ",".join(self.links))
        return self

    def drain(self, timeout: float | None = None) -> bool:
        """Refuse new calls (they take the dialplan fallback) and wait for running ones."""
        self._accepting = False
        if self.callbacks is not None:
            self.callbacks.stop()
        return self._idle.wait(timeout) if self.active else True

    def stop(self) -> None:
        self._accepting = False
        if self.callbacks is not None:
            self.callbacks.stop()
        self._reg_jobs.kill(block=False)
        self.board.stop()
        self.history.stop()
        log.info("calls_driver_stopped node=%s", self.node)

    def on_change(self, payload: dict) -> None:
        """A configuration change (NOTIFY from any fsd process): reload that tenant on next use."""
        self.cache.on_change(payload)

    def invalidate(self) -> None:
        self.cache.invalidate_all()

    def wake_callbacks(self) -> None:
        if self.callbacks is not None:
            self.callbacks.wake()

    # ------------------------------------------------------------------ metrics
    def register_metrics(self, metrics: Metrics | None = None) -> None:
        """Scrape-time gauges: callers waiting and longest wait per department, members by state."""
        m = metrics or self.metrics

        def waiting():
            for dept_id, q in list(self.queues.items()):
                yield (str(dept_id),), float(len(q))

        def longest():
            now = self.clock.monotonic()
            for dept_id, q in list(self.queues.items()):
                yield (str(dept_id),), float(q.longest_wait(now))

        def members():
            counts = dict.fromkeys(("free", "ringing", "busy", "unregistered"), 0)
            seen = set()
            for snap in self.cache.snapshots():
                for d in snap.departments.values():
                    for e in d.member_ids:
                        if e not in seen:
                            seen.add(e)
                            counts[self.board.state(e)] += 1
            return [((k,), float(v)) for k, v in counts.items()]

        m.add_collector("fsd_callers_waiting", "Callers waiting in a department queue", ["department"], waiting)
        m.add_collector("fsd_queue_longest_wait_seconds", "Longest current wait in a department queue",
                        ["department"], longest)
        m.add_collector("fsd_members", "Department members by state", ["state"], members)

    # ------------------------------------------------------------------ shared state
    def waiting_queue(self, dept_id, impatient: ImpatientConfig | None) -> WaitingQueue:
        q = self.queues.get(dept_id)
        if q is None:
            q = self.queues[dept_id] = WaitingQueue(department_id=dept_id, impatient=impatient)
        elif impatient is not None:
            q.impatient = impatient
        return q

    def note_offer(self, late_s: float) -> None:
        """How late (this clock's seconds) an impatient offer's timer fired; kept for the bench."""
        if len(self.offer_lateness) < 100_000:
            self.offer_lateness.append(late_s)

    def note_originate(self, call: Call) -> None:
        """A member leg is being originated: the call's first one observes its setup time."""
        t0 = self._connect_t.pop(call.uuid, None)
        if t0 is not None:
            self.metrics.call_setup.observe(time.monotonic() - t0)

    # ------------------------------------------------------------------ registrations
    def _registration_handler(self, switch: str):
        return lambda user, domain, registered: self._on_registration(switch, user, domain, registered)

    def _on_registration(self, switch: str, user, domain, registered: bool) -> None:
        if not user or not domain:
            return
        self.registrations.event(switch, user, domain, registered)
        for snap in self.cache.snapshots():
            if snap.domain == domain.lower():
                e = snap.employee_by_user(user)
                if e is not None:
                    v = self.registrations.state(_reg_keys(snap, e))
                    self.board.set_registered(e.id, registered if v is None else v)

    def _hook_switch(self, name: str, client) -> None:
        """Chain the driver's connect/disconnect handling onto the inbound client's callbacks (the
        application's own ones still run first)."""
        if name in self._hooked:
            return
        self._hooked.add(name)
        prev_up = getattr(client, "on_connect", None)
        prev_down = getattr(client, "on_disconnect", None)

        def up(c):
            try:
                if prev_up is not None:
                    prev_up(c)
            finally:
                self._switch_connected(name)

        def down(c, error):
            try:
                if prev_down is not None:
                    prev_down(c, error)
            finally:
                self._switch_disconnected(name)

        client.on_connect = up
        client.on_disconnect = down

    def _switch_connected(self, name: str) -> None:
        self.registrations.connected(name)
        self._reg_jobs.spawn(self.refresh_registrations, name)

    def _switch_disconnected(self, name: str) -> None:
        self.registrations.disconnected(name)
        self._push_registrations()

    def refresh_registrations(self, name: str) -> bool:
        """Read switch ``name``'s registration table and set every known employee's registration from
        it (events handled after the request still win). True when the table was applied."""
        link = self.links[name]
        token = self.registrations.table_requested(name)
        try:
            res = link.api("show registrations as json", timeout=self.registration_timeout_s)
            if not res.ok:
                raise RegistrationTableError(res.body.strip()[:200])
            keys = parse_registrations(res.body)
        except (ESLError, RegistrationTableError) as e:
            self.registrations.table_failed(name, token)
            log.warning("calls_registrations_unread switch=%s error=%s", name, e)
            return False
        if not self.registrations.table(name, token, keys):
            return False  # superseded: a newer request, or the connection was lost meanwhile
        self.registration_tables_read += 1
        log.info("calls_registrations_read switch=%s registered=%d", name, len(keys))
        self._push_registrations()
        return True

    def _push_registrations(self) -> None:
        """Every employee of the loaded tenants gets the registration state the switches give now (the
        others get it when first asked, see _registration_state)."""
        for snap in self.cache.snapshots():
            for e in snap.employees.values():
                v = self.registrations.state(_reg_keys(snap, e))
                if v is not None:
                    self.board.set_registered(e.id, v)

    def _registration_state(self, employee_id: int) -> bool | None:
        if not self.registrations.informed():
            return None
        for snap in self.cache.snapshots():
            e = snap.employees.get(employee_id)
            if e is not None:
                return self.registrations.state(_reg_keys(snap, e))
        return None

    def link_for(self, data) -> SwitchLink | None:
        if len(self.links) == 1:
            return next(iter(self.links.values()))
        host = data.get("FreeSWITCH-Hostname")
        for link in self.links.values():
            if link.hostname == host:
                return link
        for link in self.links.values():
            if link.resolve_hostname() == host:
                return link
        return None

    # ------------------------------------------------------------------ the outbound handler
    def handle(self, session) -> None:
        t_connect = time.monotonic()
        # myevents (minus what no call reads) and linger pipelined behind connect: one write, one round
        # trip. They are harmless when the call then goes back to the dialplan (the socket is closed
        # before a hangup, so linger never applies).
        data = session.connect(then=("myevents", NIX_EVENTS, "linger"))
        self.metrics.outbound_sessions.inc()
        uuid = session.uuid
        if not self._accepting:
            self.calls_fallback += 1
            return
        link = self.link_for(data)
        if link is None or not link.client.connected:
            # Without the node's inbound connection fsd can neither ring members nor see them answer.
            log.warning("calls_no_switch call=%s host=%s action=fallback", uuid, data.get("FreeSWITCH-Hostname"))
            self.calls_fallback += 1
            return
        context = data.get("Caller-Context") or ""
        dest = data.get("Caller-Destination-Number") or ""
        internal = INTERNAL_CONTEXT_MARK in context or data.get("variable_sofia_profile_name") == "internal"
        try:
            if internal:
                presence = data.get("variable_presence_id") or ""
                domain = (data.get("variable_domain_name") or presence.partition("@")[2]
                          or data.get("variable_sip_from_host") or data.get("variable_dialed_domain") or "")
                snap = self.cache.by_domain(domain)
                number = None
                user = (data.get("variable_user_name") or data.get("variable_sip_from_user")
                        or data.get("Caller-Caller-ID-Number") or "")
                caller_emp = snap.employee_by_user(user) if snap is not None else None
                if snap is None or caller_emp is None:
                    snap = None
            else:
                found = self.cache.by_did(dest)
                snap, number = found if found else (None, None)
        except FsdError as e:
            log.warning("calls_route_failed call=%s dest=%s error=%s action=fallback", uuid, dest, e)
            snap = None
        if snap is None:
            log.info("calls_unrouted call=%s dest=%s context=%s action=fallback", uuid, dest, context)
            self.calls_fallback += 1
            return
        call = Call(driver=self, session=session, data=data, link=link, snap=snap,
                    direction="internal" if internal else "inbound")
        self._connect_t[uuid] = t_connect
        self.active[uuid] = call
        self._idle.clear()
        self.calls_handled += 1
        try:
            if internal:
                self._run_internal(call, caller_emp, dest)
            else:
                call.run_did(number)
        except CallerGone:
            pass
        except (ESLError, FsdError) as e:
            log.warning("calls_failed call=%s error=%s", uuid, e)
            self._rescue(call)
        except Exception:
            log.exception("calls_crashed call=%s", uuid)
            self._rescue(call)
        finally:
            self._finish(call)

    def _rescue(self, call: Call) -> None:
        if call.answered and not call.caller_gone:
            call.hangup("NORMAL_TEMPORARY_FAILURE")
        # not answered: returning closes the socket and FreeSWITCH runs the fallback

    def _finish(self, call: Call) -> None:
        self._connect_t.pop(call.uuid, None)
        for leg in list(call.legs.values()):
            if not leg.done and leg is not call.bridged_leg:
                call._stop(leg)
        # members whose legs are gone are free now; the others when FreeSWITCH reports their legs gone
        call.release_when_gone()
        if not call.caller_gone and call.answered:
            call.hangup()
        call.rec.ended_at = self.clock.now()
        row = call.history_row()
        try:
            self.history.write(row)
        except Exception:
            log.exception("calls_history_failed call=%s", call.uuid)
        self.metrics.calls_finished.labels(row["direction"], row["result"]).inc()
        log.info("calls_finished call=%s direction=%s result=%s route=%s wait=%.1f talk=%.1f", call.uuid,
                 row["direction"], row["result"], row["route"], row["wait_s"], row["talk_s"])
        self.active.pop(call.uuid, None)
        if not self.active:
            self._idle.set()

    def _run_internal(self, call: Call, caller_emp, dest: str) -> None:
        snap = call.snap
        call.rec.employee_id = None
        call.exclude = {caller_emp.id}
        got = self.board.reserve(call.uuid, [caller_emp.id])
        call.held |= got
        dest = dest.strip()
        if dest in snap.by_extension:
            call.rec.employee_id = snap.by_extension[dest]
            call.run_steps((RingEmployee(employee_id=snap.by_extension[dest]),))
        elif dest in snap.dept_by_extension:
            call.run_steps((RingDepartment(department_id=snap.dept_by_extension[dest]),))
        elif _looks_external(dest):
            call.rec.direction = "outbound"
            call.route("outbound")
            cid = snap.main_number or caller_emp.mobile or ""
            ok = call.bridge_out(_safe(dest), 60.0, cid=cid)
            if not ok:
                call.rec.result = "missed"
                call.hangup()
        else:
            call.route("unknown_destination")
            call.rec.result = "missed"
            call.ensure_answered()
            call.play(snap.prompt("invalid_choice"))
            call.hangup()


def _reg_keys(snap, e) -> tuple[str, ...]:
    """The registrations that count for employee ``e``: their login (the SIP username) and their
    extension (the directory's number-alias), at the company's domain."""
    return (reg_key(e.login, snap.domain), reg_key(e.extension, snap.domain))


def _looks_external(dest: str) -> bool:
    d = dest[1:] if dest.startswith("+") else dest
    return d.isdigit() and len(d) >= 5
