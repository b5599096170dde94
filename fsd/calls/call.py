"""One call, driven end to end over its outbound socket session.

The outbound session controls the caller (answer, playback, play_and_get_digits, record, bridge
app); member legs are originated with ``bgapi originate`` on the node's inbound connection with our
own ``origination_uuid`` and bridged to the caller with ``uuid_bridge`` — so fsd keeps control of
the caller while members ring. Every wait has a deadline.

A call's greenlet is the outbound handler's greenlet. Everything that happens to the call (member
legs answering or hanging up, the caller hanging up, the offer prompt finishing, a member becoming
free) is put on the call's queue and handled in that one greenlet, in order.
"""

from __future__ import annotations

import logging
import os
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import gevent
import gevent.event
import gevent.queue

from fsd import mailtemplates
from fsd import prompts as fprompts
from fsd.calls import adapters
from fsd.errors import ESLError, FsdError, StoreError
from fsd.esl.connection import CommandFailed, SessionHangup
from fsd.esl.inbound import ESLNotConnected
from fsd.looptimer import call_later
from fsd.queue import callback as cbq
from fsd.queue import waiting as wq
from fsd.queue.noanswer import resolve_no_answer
from fsd.queue.strategy import (
    DESK,
    MOBILE,
    Answered,
    BridgeRefused,
    DepartmentPolicy,
    LegEnded,
    MemberChanged,
    NoAnswer,
    Ring,
    Stop,
    next_actions,
    next_deadline,
    start_ring,
)
from fsd.routing import ivr as rivr
from fsd.routing.flow import route_call
from fsd.routing.steps import (
    EnterIvr,
    Forward,
    Hangup,
    PlayGreetingWhileRinging,
    PlayMessage,
    RingDepartment,
    RingEmployee,
    Voicemail,
)
from fsd.store import calls_repo

log = logging.getLogger(__name__)

RINGBACK = "tone_stream://%(2000,4000,440,480);loops=-1"
NOT_REGISTERED = ("USER_NOT_REGISTERED", "SUBSCRIBER_ABSENT")
MAX_TALK_S = 12 * 3600.0
OFFER_TIMEOUT_MS = 5000
VOICEMAIL_MAX_S = 120


class CallerGone(Exception):
    """The caller hung up."""


@dataclass(slots=True)
class Leg:
    uuid: str
    member_id: int
    target: str
    stopped: bool = False
    answered: bool = False
    done: bool = False  # the leg is gone (hung up, or originate failed)
    job_done: bool = False
    seen: bool = False  # an event of the channel arrived: FreeSWITCH created it
    killing: bool = False  # a uuid_kill greenlet runs for it
    alive_at: float = 0.0  # monotonic time uuid_exists last said true


@dataclass(slots=True)
class Record:
    """The history row being built."""

    tenant_id: int | None = None
    call_uuid: str = ""
    direction: str = "inbound"
    caller: str = ""
    caller_name: str = ""
    called: str = ""
    number_id: int | None = None
    route: list = field(default_factory=list)
    department_id: int | None = None
    employee_id: int | None = None
    answered_by: int | None = None
    started_at: float = 0.0
    answered_at: float | None = None
    ended_at: float | None = None
    wait_s: float = 0.0
    talk_s: float = 0.0
    result: str | None = None
    hangup_cause: str = ""


def _dt(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


class Call:
    def __init__(self, *, driver, session, data, link, snap, direction: str):
        self.d = driver
        self.s = session
        self.link = link
        self.snap = snap
        self.clock = driver.clock
        self.uuid = session.uuid
        self.q: gevent.queue.Queue = gevent.queue.Queue()
        self.legs: dict[str, Leg] = {}
        self.held: set[int] = set()  # members this call holds a reservation for
        self._finished = False  # the driver is done with this call (release_when_gone ran)
        self._stragglers = False  # a greenlet waits for stopped legs to end
        self._straggler_timer = None  # the first check for stopped legs (a loop timer, see _spawn_stragglers)
        self._legs_settled = gevent.event.Event()  # set when a leg ends or a member is released (wakes it)
        self.caller_gone = False
        self.answered = False
        self.ringback: str | None = None
        self.ringback_playing = False
        self.bridged_leg: Leg | None = None
        self.bridge_over = False  # the conversation ended; the bridged leg is an ordinary stopped leg now
        # (member, target) rings asked for while that member's previous leg of this call was still being
        # stopped: started once it is gone, so a phone never gets two INVITEs of one call at once
        self._deferred: set[tuple[int, str]] = set()
        self._cb_position = 0
        self.exclude: set[int] = set()  # never ring these members (the caller of an internal call)
        # socket_resume as the dialplan left it (restored when a bridge fsd cleared it for did not happen)
        self._socket_resume = data.get("variable_socket_resume") or "false"
        self.caller_number = data.get("Caller-Caller-ID-Number") or ""
        self.caller_name = data.get("Caller-Caller-ID-Name") or ""
        self.rec = Record(
            tenant_id=snap.tenant_id if snap else None,
            call_uuid=self.uuid,
            direction=direction,
            caller=self.caller_number,
            caller_name=self.caller_name if self.caller_name != self.caller_number else "",
            called=data.get("Caller-Destination-Number") or "",
            started_at=self.clock.now(),
        )
        self._wait_started: float | None = None
        session.hung_up.rawlink(lambda _e: self.q.put(("caller_hangup",)))

    # ------------------------------------------------------------------ helpers
    @property
    def metrics(self):
        return self.d.metrics

    def _labels(self, dept_id):
        return (str(self.snap.tenant_id), str(dept_id))

    def now(self) -> float:
        return self.clock.monotonic()

    def route(self, text: str) -> None:
        self.rec.route.append(text)

    def _wait(self, res, seconds: float):
        """Wait for an execute to complete (simulated ``seconds`` at most, plus slack)."""
        try:
            return res.get(timeout=self.clock.real(seconds) + 5.0)
        except SessionHangup as e:
            self.caller_gone = True
            raise CallerGone() from e
        except gevent.Timeout:
            return None

    def execute(self, app: str, arg: str | None = None, *, track: bool = True):
        """``track=False``: nobody waits for the application's end (returns None)."""
        if self.caller_gone or self.s.hung_up.is_set():
            self.caller_gone = True
            raise CallerGone()
        try:
            return self.s.execute(app, arg, track=track)
        except SessionHangup as e:
            self.caller_gone = True
            raise CallerGone() from e

    def play(self, path: str, max_s: float = 300.0):
        self.stop_ringback()
        return self._wait(self.execute("playback", path), max_s)

    def ensure_answered(self, ringback: bool = False) -> None:
        """Answer the caller (once); with ``ringback`` the ring-back starts too. The applications go in
        one pipelined write."""
        if self.answered:
            if ringback:
                self.start_ringback()
            return
        self.answered = True
        # When a member's bridge ends the caller must not fall into the dialplan fallback.
        apps = [("answer", None), ("set", "hangup_after_bridge=true")]
        if ringback and not self.ringback_playing:
            self.ringback_playing = True
            apps.append(("endless_playback", self.ringback or RINGBACK))
        if self.caller_gone or self.s.hung_up.is_set():
            self.caller_gone = True
            raise CallerGone()
        try:
            self.s.execute_many(apps, track=False)
        except SessionHangup as e:
            self.caller_gone = True
            raise CallerGone() from e

    def start_ringback(self) -> None:
        if self.ringback_playing or self.caller_gone:
            return
        self.ringback_playing = True
        self.execute("endless_playback", self.ringback or RINGBACK, track=False)

    def stop_ringback(self) -> None:
        if self.ringback_playing:
            self.ringback_playing = False
            self._break(all_=True)

    def _break(self, all_: bool = False) -> None:
        try:
            self.link.api(f"uuid_break {self.uuid}{' all' if all_ else ''}", timeout=5.0)
        except ESLError as e:
            log.info("calls_break_failed call=%s error=%s", self.uuid, e)

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        if self.caller_gone or self.s.hung_up.is_set():
            return
        try:
            self.s.hangup(cause)
        except (ESLError, SessionHangup):
            pass
        self.s.hung_up.wait(timeout=self.clock.real(5.0) + 2.0)
        self.caller_gone = True

    # ------------------------------------------------------------------ plans
    def run_did(self, number) -> None:
        cfg = adapters.number_config(number, prompt_path=self.snap.prompt_path,
                                     offhours_default=self.snap.prompt("offhours"))
        self.rec.number_id = number.id
        plan = route_call(cfg, self.snap.schedule, self.clock.utcnow())
        self.route("in_hours" if plan.in_hours else "out_of_hours")
        self.run_steps(plan.steps)

    def run_steps(self, steps, depth: int = 0) -> None:
        if depth > 8:
            log.warning("calls_plan_too_deep call=%s", self.uuid)
            self.voicemail("company", None, None)
            return
        for step in steps:
            if self.caller_gone:
                return
            if isinstance(step, PlayGreetingWhileRinging):
                self.ringback = step.prompt
                self.route("greeting")
                continue
            if isinstance(step, PlayMessage):
                self.ensure_answered()
                self.route("message")
                self.play(step.prompt)
                continue
            if isinstance(step, Hangup):
                self.route("hangup")
                if self.rec.result is None:
                    self.rec.result = "missed"
                self.hangup(step.cause)
                return
            if isinstance(step, RingDepartment):
                more = self.ring_department(step.department_id, step.chain)
                if more:
                    self.run_steps(more, depth + 1)
                return
            if isinstance(step, RingEmployee):
                more = self.ring_employee(step.employee_id)
                if more:
                    self.run_steps(more, depth + 1)
                return
            if isinstance(step, EnterIvr):
                more = self.ivr(step.menu_id)
                if more:
                    self.run_steps(more, depth + 1)
                return
            if isinstance(step, Voicemail):
                self.voicemail(step.box_kind, step.box_id, step.greeting)
                return
            if isinstance(step, Forward):
                more = self.forward(step.number, step.timeout_s)
                if more is not None:
                    self.run_steps(step.on_no_answer, depth + 1)
                return
        if not self.caller_gone and self.rec.result is None:
            self.rec.result = "missed"

    # ------------------------------------------------------------------ departments / employees
    def ring_department(self, dept_id, chain) -> tuple | None:
        dept = self.snap.departments.get(dept_id)
        if dept is None:
            log.warning("calls_department_missing call=%s department=%s", self.uuid, dept_id)
            self.voicemail("company", None, None)
            return None
        self.route(f"department:{dept_id}")
        self.rec.department_id = dept_id
        self.metrics.calls_offered.labels(*self._labels(dept_id)).inc()
        policy = adapters.department_policy(dept)
        imp = adapters.impatient_config(dept, prompt_path=self.snap.prompt_path,
                                        default_threshold_s=self.d.calls_cfg.impatient_threshold_s)
        outcome = self.ring(member_ids=dept.member_ids, policy=policy, dept_id=dept_id, impatient=imp)
        labels = self._labels(dept_id)
        if outcome == "no_answer":
            self.metrics.calls_missed.labels(*labels).inc()
            na = adapters.no_answer_action(dept, prompt_path=self.snap.prompt_path,
                                           forward_timeout_s=self.d.calls_cfg.forward_external_timeout_s)
            plan = resolve_no_answer(na, department_id=dept_id, chain=tuple(chain))
            self.route(f"no_answer:{na.kind}" + (":loop_guard" if plan.loop_guarded else ""))
            return plan.steps
        if outcome == "abandoned":
            self.metrics.calls_abandoned.labels(*labels).inc()
        elif outcome == "answered":
            self.metrics.calls_answered.labels(*labels).inc()
        elif outcome == wq.CALLBACK:
            self._request_callback(dept_id, self._cb_position)
        elif outcome == "voicemail":
            na = adapters.no_answer_action(dept, prompt_path=self.snap.prompt_path)
            self.voicemail("department", dept_id, na.greeting)
        return None

    def ring_employee(self, emp_id) -> tuple | None:
        emp = self.snap.employees.get(emp_id)
        if emp is None:
            self.voicemail("company", None, None)
            return None
        self.route(f"employee:{emp_id}")
        self.rec.employee_id = emp_id
        timeout = self.d.calls_cfg.employee_ring_timeout_s + (emp.forward_delay if emp.forward_mode == "delayed" else 0)
        policy = DepartmentPolicy(strategy="simultaneous", step_delay_s=timeout, ring_timeout_s=timeout)
        outcome = self.ring(member_ids=[emp_id], policy=policy, dept_id=None, impatient=None)
        if outcome == "no_answer":
            self.route("no_answer:voicemail")
            return (Voicemail(box_kind="employee", box_id=emp_id),)
        return None

    def _member(self, emp_id):
        e = self.snap.employees.get(emp_id)
        board = self.d.board
        key = (emp_id, board.is_registered(emp_id), board.busy(emp_id, self.uuid),
               board.last_call.get(emp_id, _ts(e.last_call_ended_at)))
        cache = self.snap.member_cache
        m = cache.get(key)
        if m is None:
            if len(cache) > 50_000:
                cache.clear()
            m = cache[key] = adapters.member(e, registered=key[1], busy=key[2], last_call_ended_at=key[3])
        return m

    def ring(self, *, member_ids, policy, dept_id, impatient) -> str:
        """Ring members until one answers (bridged; returns when the conversation ends).
        Returns answered | no_answer | abandoned | callback | voicemail."""
        ids = [e for e in member_ids if e in self.snap.employees and e not in self.exclude]
        board = self.d.board
        waitq = self.d.waiting_queue(dept_id, impatient) if dept_id is not None else None
        t0 = self.now()
        self._wait_started = t0
        if waitq is not None:
            waitq.enter(self.uuid, t0)
        offer_res = None
        offer_at = None
        watcher = lambda emp: self.q.put(("member", emp))  # noqa: E731
        board.watch(ids, watcher)
        try:
            st, actions = start_ring([self._member(e) for e in ids], policy, t0)
            # Members are rung first (the caller's answer and ring-back follow at once): the time to
            # the first originate is what a caller waits for.
            pending = self._apply(actions)
            self.ensure_answered(ringback=True)
            waiting_from = self.now()  # the caller hears the ring-back from here
            if impatient is not None and impatient.enabled:
                offer_at = waiting_from + impatient.threshold_s
            while True:
                if pending is not None:
                    events, pending = pending, None
                else:
                    events = self._apply(actions)
                if events == "no_answer":
                    return "no_answer"
                if events:
                    st, actions = next_actions(st, self.now(), events)
                    continue
                dl = next_deadline(st)
                if offer_at is not None and offer_res is None:
                    dl = offer_at if dl is None else min(dl, offer_at)
                timeout = None if dl is None else self.clock.real(max(0.0, dl - self.now())) + 0.0005
                try:
                    if timeout is None:
                        timeout = self.clock.real(policy.ring_timeout_s)
                    item = self.q.get(timeout=timeout)
                except gevent.queue.Empty:
                    item = None
                now = self.now()
                if item is None:
                    if offer_at is not None and offer_res is None and now >= offer_at:
                        self.d.note_offer(now - offer_at)
                        offer_res = self._start_offer(dept_id, impatient)
                    st, actions = next_actions(st, now)
                    continue
                kind = item[0]
                if kind == "caller_hangup":
                    self.caller_gone = True
                    self.rec.wait_s = now - t0
                    self.rec.result = "abandoned"
                    self.rec.hangup_cause = self.s.hangup_cause or ""
                    self.route("abandoned")
                    if offer_res is not None and offer_res != "done":
                        self.metrics.impatient_choices.labels("none").inc()
                    return "abandoned"
                if kind == "member":
                    emp = item[1]
                    if emp in self.snap.employees:
                        st, actions = next_actions(st, now, [MemberChanged(member=self._member(emp))])
                    else:
                        actions = []
                    continue
                if kind in ("answer", "job", "leg_end"):
                    leg = self.legs.get(item[1])
                    if leg is None:
                        actions = []
                        continue
                    answered = kind == "answer" or (kind == "job" and item[2] is None)
                    if answered:
                        if leg.stopped or leg.done:
                            self._kill(leg)
                            actions = []
                            continue
                        leg.answered = True
                        if kind == "job":
                            leg.job_done = True
                        if not self._join(leg):
                            if self.caller_gone or self.s.hung_up.is_set():
                                self.caller_gone = True
                                self.rec.wait_s = now - t0
                                self.rec.result = "abandoned"
                                self.route("abandoned")
                                return "abandoned"
                            # the member's leg could not be bridged (it hung up right after answering, or
                            # the switch refused): that leg ends, the caller keeps waiting, ringing goes on,
                            # and the member (free) is offered the call again after the planner's retry delay
                            self._stop(leg)
                            self.start_ringback()
                            refused = BridgeRefused(member_id=leg.member_id, target=leg.target)
                            st, actions = next_actions(st, now, [refused])
                            continue
                        st, actions = next_actions(st, now, [Answered(member_id=leg.member_id, target=leg.target)])
                        self._apply(actions)
                        self.rec.wait_s = now - t0
                        if waitq is not None:
                            waitq.leave(self.uuid)
                        if offer_res is not None and offer_res != "done":
                            self.metrics.impatient_choices.labels("answered_during_offer").inc()
                        return self._bridge(leg, dept_id)
                    # the leg failed or ended
                    cause = item[2] if kind != "answer" else None
                    if kind == "job":
                        leg.job_done = True
                    was_done = leg.done
                    leg.done = True
                    self._maybe_release(leg.member_id)
                    if leg.stopped or was_done:
                        self._start_deferred(leg.member_id, leg.target)
                        actions = []
                        continue
                    evs = [LegEnded(member_id=leg.member_id, target=leg.target)]
                    if leg.target == DESK and cause in NOT_REGISTERED:
                        board.set_registered(leg.member_id, False)
                        evs.append(MemberChanged(member=self._member(leg.member_id)))
                    st, actions = next_actions(st, now, evs)
                    continue
                if kind == "leg_unknown":
                    # the originate's fate is unknown (no reply, link lost): the leg may ring. Stop it; its
                    # member stays held until FreeSWITCH shows the leg gone (hangup, job end, uuid_exists)
                    leg = self.legs.get(item[1])
                    if leg is None or leg.done or leg.stopped:
                        actions = []
                        continue
                    self._stop(leg)
                    st, actions = next_actions(st, now, [LegEnded(member_id=leg.member_id, target=leg.target)])
                    continue
                if kind == "offer_done":
                    if offer_res == "done":
                        actions = []
                        continue
                    offer_res = "done"
                    choice = self._offer_choice(item[1], waitq, now, dept_id)
                    if choice == wq.STAY:
                        self.start_ringback()
                        actions = []
                        continue
                    self.rec.wait_s = now - t0
                    for leg in list(self.legs.values()):
                        self._stop(leg)
                    return choice
                actions = []
        finally:
            if offer_res is not None and offer_res != "done" and self.bridged_leg is None and not self.caller_gone:
                self._break(all_=True)  # leaving the queue: the offer prompt must not hold the caller
            board.unwatch(ids, watcher)
            self._deferred.clear()
            if waitq is not None:
                waitq.leave(self.uuid)
            for leg in list(self.legs.values()):
                if leg is not self.bridged_leg and not leg.done:
                    self._stop(leg)
            for emp in list(self.held):
                if not self._talking(emp):
                    self._maybe_release(emp)
            if self._held_for_stopped_legs():
                self._spawn_stragglers()

    def _apply(self, actions):
        """Carry out Ring/Stop actions; returns follow-up events (members found busy), or
        "no_answer"."""
        rings = []
        for a in actions:
            if isinstance(a, Stop):
                self._deferred.discard((a.member_id, a.target))
                for leg in list(self.legs.values()):
                    if leg.member_id == a.member_id and leg.target == a.target and not leg.stopped and not leg.done:
                        self._stop(leg)
            elif isinstance(a, Ring):
                rings.append(a)
            elif isinstance(a, NoAnswer):
                return "no_answer"
        if not rings:
            return []
        need = sorted({a.member_id for a in rings if a.member_id not in self.held})
        events = []
        if need:
            got = self.d.board.reserve(self.uuid, need)
            self.held |= got
            for emp in need:
                if emp not in got:
                    events.append(MemberChanged(member=self._member(emp)))
        for a in rings:
            if a.member_id in self.held:
                if self._live_leg(a.member_id, a.target):
                    self._deferred.add((a.member_id, a.target))
                else:
                    self._start_leg(a.member_id, a.target)
        return events

    def _live_leg(self, emp_id, target) -> bool:
        return any(leg.member_id == emp_id and leg.target == target and not leg.done for leg in self.legs.values())

    def _start_deferred(self, emp_id, target) -> None:
        key = (emp_id, target)
        if key in self._deferred and emp_id in self.held and not self._live_leg(emp_id, target):
            self._deferred.discard(key)
            self._start_leg(emp_id, target)

    def _start_leg(self, emp_id, target) -> None:
        emp = self.snap.employees[emp_id]
        leg_uuid = str(uuidlib.uuid4())
        remaining = 120
        gw = self.snap.gateway or "trunk"
        if target == MOBILE:
            dial = f"sofia/gateway/{gw}/{adapters.dial_number(emp.mobile or '')}"
            cid = adapters.dial_number(self.caller_number) or adapters.dial_number(self.snap.main_number or "")
        else:
            dial = f"user/{emp.extension}@{self.snap.domain}"
            cid = self.caller_number
        vars_ = [
            f"origination_uuid={leg_uuid}",
            f"originate_timeout={remaining}",
            f"fsd_queue_call={self.uuid}",
            self.link.marker,
            "hangup_after_bridge=true",
            "ignore_early_media=true",
            f"origination_caller_id_number={_safe(cid)}",
        ]
        name = _safe_quoted(self.caller_name)
        if name:
            vars_.append(f"origination_caller_id_name='{name}'")
        cmd = f"originate {{{','.join(vars_)}}}{dial} &park()"
        leg = Leg(uuid=leg_uuid, member_id=emp_id, target=target)
        self.legs[leg_uuid] = leg
        self.link.own(leg_uuid, self._leg_event)
        self.d.board.ringing.add(emp_id)
        self.d.note_originate(self)
        self._originate(leg_uuid, cmd)

    def _originate(self, leg_uuid: str, cmd: str) -> None:
        """``bgapi originate`` without waiting: the job's result reaches the call's queue from the event
        loop (``_originate_done``), so no greenlet waits for each ringing leg."""
        try:
            job = self.link.bgapi_nowait(cmd, job_timeout=self.clock.real(180.0) + 10.0)
        except Exception as e:  # noqa: BLE001 - never sent (ESLNotConnected) or a write failure: handled as the job's end
            self._originate_failed(leg_uuid, e)
            return
        job.rawlink(lambda r: self._originate_done(leg_uuid, r))

    def _originate_done(self, leg_uuid: str, job) -> None:
        """Called from the event loop with the originate's finished job: must not block."""
        if not job.successful():
            self._originate_failed(leg_uuid, job.exception)
            return
        res = job.value
        if res.ok:
            self.q.put(("job", leg_uuid, None))
        else:
            self._leg_gone(leg_uuid, job=True)
            self.q.put(("job", leg_uuid, res.error or "FAILED"))

    def _originate_failed(self, leg_uuid: str, e: BaseException) -> None:
        if isinstance(e, ESLError | gevent.Timeout) and not isinstance(e, CommandFailed | ESLNotConnected):
            # the link dropped or the job never reported: whether the leg rings is unknown, so it is not
            # taken for failed (its member would be offered another call while the phone rings)
            log.warning("calls_originate_fate_unknown call=%s leg=%s error=%s", self.uuid, leg_uuid,
                        type(e).__name__)
            self.q.put(("leg_unknown", leg_uuid))
            return
        # -ERR to the bgapi or never sent (no job, no channel), or any other failure: the leg is gone
        self._leg_gone(leg_uuid, job=True)
        self.q.put(("job", leg_uuid, f"FSD_{type(e).__name__}"))

    def _leg_event(self, ev) -> None:
        name = ev.name
        leg = self.legs.get(ev.uuid)
        if leg is not None:
            leg.seen = True
        if name == "CHANNEL_ANSWER":
            self.q.put(("answer", ev.uuid, None))
        elif name == "CHANNEL_HANGUP":
            self._leg_gone(ev.uuid)
            self.q.put(("leg_end", ev.uuid, ev.get("Hangup-Cause") or "NORMAL_CLEARING"))

    def _leg_gone(self, leg_uuid: str, *, job: bool = False) -> None:
        """A leg fsd had stopped is gone: its member may be offered other calls now (not before: a
        member whose phone still rings for this call must not be offered a second one)."""
        leg = self.legs.get(leg_uuid)
        if leg is None or not leg.stopped or (leg is self.bridged_leg and not self.bridge_over):
            return
        leg.done = True
        if job:
            leg.job_done = True
        self._maybe_release(leg.member_id)
        self._legs_settled.set()

    def _stop(self, leg: Leg) -> None:
        if leg.stopped:
            return
        leg.stopped = True
        if not leg.done:
            self._kill(leg)

    def _kill(self, leg: Leg, cause: str = "ORIGINATOR_CANCEL") -> None:
        if leg.killing:
            return  # one kill at a time per leg (stopped-leg checks would otherwise pile them up)
        if leg.done:
            return  # FreeSWITCH reported the channel gone (hangup, or its originate failed)
        leg.killing = True
        cmd = f"uuid_kill {leg.uuid} {cause}"

        def first(r) -> None:
            # the usual case - the channel exists and is killed - needs no greenlet: the reply comes to
            # this callback in the event loop. Otherwise the retries run in a greenlet of their own.
            if not isinstance(r, BaseException) and not (r.ok or leg.job_done or leg.done):
                gevent.spawn(run, 19)
            else:
                leg.killing = False

        def run(tries: int):
            try:
                for _ in range(tries):
                    # The channel may not exist yet (originate still starting): try again shortly.
                    gevent.sleep(0.02)
                    if leg.done:
                        return  # FreeSWITCH reported the channel gone (hangup, or its originate failed)
                    try:
                        r = self.link.api(cmd, timeout=5.0)
                    except ESLError:
                        return
                    if r.ok or leg.job_done or leg.done:
                        return
            finally:
                leg.killing = False

        try:
            # no reply within 5 s (a switch that stopped answering, its socket still open): the leg is no
            # longer "killing", so the stopped-leg checks may kill it again
            self.link.api_nowait(cmd, first, timeout=5.0)
        except ESLError:
            leg.killing = False

    def release_when_gone(self) -> None:
        """The call is over: free every member whose legs are gone; the others as soon as FreeSWITCH
        reports their (stopped) legs gone, or after a bound. Legs are disowned once settled."""
        for emp in list(self.held):
            self._maybe_release(emp)
        self._finished = True
        if self.held:
            self._spawn_stragglers()
        else:
            self._disown_legs()

    def _disown_legs(self) -> None:
        for leg in list(self.legs.values()):
            self.link.disown(leg.uuid)

    def _spawn_stragglers(self) -> None:
        """Members held for stopped legs are released when FreeSWITCH reports those legs gone, which
        usually takes milliseconds (_leg_gone). Only if some are still held after one check interval does
        a greenlet start to ask the switch and bound the wait (_release_stragglers)."""
        if self._stragglers or self._straggler_timer is not None:
            return
        self._straggler_timer = call_later(self._straggler_every(), self._stragglers_due)

    def _straggler_every(self) -> float:
        return min(1.0, max(0.05, self.clock.real(1.0)))  # one (simulated) second between checks

    def _held_for_stopped_legs(self) -> bool:
        return any(not self._talking(e) for e in self.held)

    def _stragglers_due(self) -> None:
        self._close_straggler_timer()
        if self._held_for_stopped_legs():
            self._stragglers = True
            gevent.spawn(self._release_stragglers)
        elif self._finished:
            self._disown_legs()

    def _close_straggler_timer(self) -> None:
        timer, self._straggler_timer = self._straggler_timer, None
        if timer is not None:
            timer.close()

    def _straggler_settled(self) -> None:
        """A member was released: if no member waits for a stopped leg any more, the pending check is
        not needed (and a finished call lets go of its legs' events)."""
        if self._straggler_timer is None or self._held_for_stopped_legs():
            return
        self._close_straggler_timer()
        if self._finished:
            self._disown_legs()

    def _release_stragglers(self, wait_s: float = 60.0) -> None:
        """Members whose stopped legs have not reported their end: released when they do (see
        _leg_gone), or after `wait_s` real seconds at the latest, so no reservation is left stuck."""
        start = time.monotonic()
        deadline = start + wait_s
        every = self._straggler_every()
        next_check = time.monotonic()  # one interval has passed already (the timer in _spawn_stragglers)
        try:
            while time.monotonic() < deadline:
                self._legs_settled.clear()
                waiting = [e for e in self.held if not self._talking(e)]
                if not waiting:
                    return
                # a leg FreeSWITCH still had at the last check keeps its member held (10 × wait_s at most)
                alive = max((leg.alive_at for leg in self.legs.values()
                             if leg.member_id in waiting and not leg.done), default=0.0)
                deadline = min(max(deadline, alive + wait_s), start + 10 * wait_s)
                if time.monotonic() >= next_check:
                    # events can be lost (the switch connection dropped): ask the switch itself
                    next_check = time.monotonic() + every
                    self._check_stopped_legs()
                # woken by a leg's end or a release (_legs_settled), else at the next check
                self._legs_settled.wait(timeout=max(0.0, min(next_check, deadline) - time.monotonic()))
            for emp in list(self.held):
                if not self._talking(emp) or self._finished:
                    log.warning("calls_release_unconfirmed call=%s employee=%s", self.uuid, emp)
                    self._maybe_release(emp, force=True)
        finally:
            self._stragglers = False
            if self._finished:
                if self.held:  # held again meanwhile (should not happen): never leave it stuck
                    self.d.board.release(self.uuid, list(self.held))
                    self.held.clear()
                self._disown_legs()

    def _uuid_exists(self, uuid: str) -> bool | None:
        """uuid_exists on the switch: True/False, or None when it cannot be asked now."""
        try:
            r = self.link.api(f"uuid_exists {uuid}", timeout=2.0)
        except ESLError:
            return None
        if not r.ok:
            return None
        return not (r.body or "").strip().startswith("false")

    def _check_stopped_legs(self) -> None:
        """A stopped leg the switch no longer has is gone; one it still has is killed again."""
        for leg in list(self.legs.values()):
            if not leg.stopped or leg.done or (leg is self.bridged_leg and not self.bridge_over):
                continue
            exists = self._uuid_exists(leg.uuid)
            if exists is None:
                return  # the switch cannot be asked: again later
            if not exists:
                # not (yet) there: gone only if it existed or its originate has ended - a bgapi originate
                # runs in a thread of its own and may create the channel after this answer
                if leg.seen or leg.job_done:
                    self._leg_gone(leg.uuid)
            else:
                leg.alive_at = time.monotonic()
                self._kill(leg)

    def _talking(self, emp_id) -> bool:
        """The member is in this call's conversation (held until it ends)."""
        return self.bridged_leg is not None and emp_id == self.bridged_leg.member_id and not self.bridge_over

    def _maybe_release(self, emp_id, force: bool = False) -> None:
        if emp_id not in self.held:
            return
        if self._talking(emp_id) and not force:
            return
        live = [leg for leg in self.legs.values() if leg.member_id == emp_id and not leg.done]
        if live and not force:
            return
        self.held.discard(emp_id)
        self.d.board.release(self.uuid, [emp_id])
        self._legs_settled.set()
        self._straggler_settled()

    # ------------------------------------------------------------------ bridge
    def _survive_socket_loss(self, resume: bool = False) -> None:
        """The dialplan sets socket_resume=true before `socket`, so a caller whose outbound socket dies
        (fsd killed or stopped) leaves park/ring-back and runs the dialplan fallback (mod_event_socket
        puts the channel in CS_RESET). A conversation must not be torn down that way: before bridging,
        socket_resume goes back to false so losing fsd leaves the bridge alone (``resume``: the dialplan's
        value again, for a caller who is back in the queue because the bridge failed)."""
        value = self._socket_resume if resume else "false"
        try:
            self.link.api(f"uuid_setvar {self.uuid} socket_resume {value}", timeout=5.0)
        except ESLError as e:
            log.warning("calls_setvar_failed call=%s var=socket_resume error=%s", self.uuid, e)

    def _join(self, leg: Leg) -> bool:
        """Bridge the caller to an answered member leg; True when FreeSWITCH bridged them. On failure the
        caller is back as before (socket_resume true again; the ring-back is the caller's to restart)."""
        self.bridged_leg = leg
        if self.ringback_playing:
            self.ringback_playing = False
        # stop the ring-back (or the offer prompt), socket_resume false (see _survive_socket_loss), bridge:
        # pipelined in one write - FreeSWITCH runs them in order - so the member waits one round trip
        try:
            brk, setvar, r = self.link.api_many([f"uuid_break {self.uuid} all",
                                                 f"uuid_setvar {self.uuid} socket_resume false",
                                                 f"uuid_bridge {self.uuid} {leg.uuid}"], timeout=5.0)
            if not setvar.ok:
                log.warning("calls_setvar_failed call=%s var=socket_resume error=%s", self.uuid, setvar.text)
            ok = r.ok
            if not ok:
                log.info("calls_bridge_refused call=%s leg=%s reply=%s break=%s", self.uuid, leg.uuid,
                         r.text.strip(), brk.text.strip())
        except ESLError as e:
            log.warning("calls_bridge_failed call=%s leg=%s error=%s", self.uuid, leg.uuid, e)
            ok = False
        if not ok:
            self.bridged_leg = None
            self.route("bridge_failed")
            self._survive_socket_loss(resume=True)
        return ok

    def _bridge(self, leg: Leg, dept_id) -> str:
        """The conversation of a bridged caller and member (see _join); returns when it is over."""
        emp = leg.member_id
        answered_at = self.clock.now()
        self.rec.answered_at = answered_at
        self.rec.answered_by = emp
        self.rec.result = "answered"
        self.route(f"answered:{emp}:{leg.target}")
        self.d.board.talk(self.uuid, emp)
        if dept_id is not None:
            self.metrics.queue_wait.labels(*self._labels(dept_id)).observe(self.rec.wait_s)
            self._cancel_callbacks(dept_id)
        deadline = self.now() + MAX_TALK_S
        leg_gone = False
        while not self.caller_gone:
            left = deadline - self.now()
            if left <= 0:
                self.hangup()
                break
            wait = self.clock.real(left if not leg_gone else 5.0) + 0.5
            if self.s.closed:
                wait = min(wait, 1.0)  # the outbound socket is gone: the caller's end is asked for below
            try:
                item = self.q.get(timeout=wait)
            except gevent.queue.Empty:
                if leg_gone:
                    self.hangup()
                    break
                if self.s.closed and self._uuid_exists(self.uuid) is False:
                    # the socket died (fsd lost it, or the switch restarted its listener) and with it the
                    # caller's hangup event; the conversation survived it and is over now
                    self.caller_gone = True
                    self.rec.hangup_cause = self.s.hangup_cause or "UNKNOWN"
                continue
            if item[0] == "caller_hangup":
                self.caller_gone = True
                self.rec.hangup_cause = self.s.hangup_cause or ""
            elif item[0] == "leg_end" and item[1] == leg.uuid:
                leg.done = True
                leg_gone = True  # hangup_after_bridge hangs the caller up; wait for it briefly
        self.rec.talk_s = max(0.0, self.clock.now() - answered_at)
        self.bridge_over = True
        self._legs_settled.set()
        self.d.board.call_ended(emp)
        if not leg.done:
            # the caller is gone but the member's leg is not (yet): released when FreeSWITCH reports it
            # gone (hangup event, or uuid_exists on a leg whose originate has ended), not before
            leg.stopped = True
            self._kill(leg, "NORMAL_CLEARING")
            self._spawn_stragglers()
            return "answered"
        self.link.disown(leg.uuid)
        self.held.discard(emp)
        self.d.board.release(self.uuid, [emp])
        return "answered"

    # ------------------------------------------------------------------ impatient offer
    def _start_offer(self, dept_id, imp):
        prompt = imp.prompt or self.snap.prompt("impatient_offer")
        self.metrics.impatient_offers.labels(*self._labels(dept_id)).inc()
        self.route("impatient_offer")
        arg = (f"1 1 1 {OFFER_TIMEOUT_MS} # {prompt} silence_stream://250 fsd_offer_digit \\d "
               f"{OFFER_TIMEOUT_MS}")
        try:
            res = self.execute("play_and_get_digits", arg)
        except CallerGone:
            return "done"
        # The ring-back is still playing: break it, the offer is next in the channel's queue.
        if self.ringback_playing:
            self.ringback_playing = False
            self._break()
        res.rawlink(lambda r: self.q.put(("offer_done", r)))
        return res

    def _offer_choice(self, res, waitq, now, dept_id) -> str:
        digits = None
        try:
            ev = res.get(block=False)
            digits = ev.get("variable_fsd_offer_digit") if ev is not None else None
        except Exception:  # noqa: BLE001 - hangup/timeout: treated as no input
            digits = None
        dept = self.snap.departments.get(dept_id)
        choice, _inv = wq.offer_choice(digits)
        if dept is not None and ((choice == wq.CALLBACK and not dept.impatient_offer_callback)
                                 or (choice == wq.VOICEMAIL and not dept.impatient_offer_voicemail)):
            digits = "2"  # a choice the department does not offer: stay on the line
        if waitq is not None and self.uuid in waitq:
            outcome = waitq.offer_result(self.uuid, digits, now)
            choice, position = outcome.choice, outcome.position
        else:
            (choice, _inv), position = wq.offer_choice(digits), None
        self.metrics.impatient_choices.labels(choice if digits else "none").inc()
        self.route(f"offer:{choice}")
        self._cb_position = position or 0
        return choice

    def _cancel_callbacks(self, dept_id) -> None:
        """The customer got through: their pending callback requests to this department are moot."""
        if not self.caller_number:
            return
        try:
            with self.d.pool.transaction() as cur:
                n = calls_repo.callbacks_cancel_for(cur, tenant_id=self.snap.tenant_id, department_id=dept_id,
                                                    caller=self.caller_number, now=self.clock.utcnow())
        except (StoreError, FsdError) as e:
            log.info("calls_callback_cancel_failed call=%s error=%s", self.uuid, e)
            return
        if n:
            self.metrics.callbacks.labels("cancelled").inc(n)
            log.info("calls_callbacks_cancelled call=%s department=%s count=%d", self.uuid, dept_id, n)

    def _request_callback(self, dept_id, position: int) -> None:
        now_dt = self.clock.utcnow()
        cfg = self.d.calls_cfg
        req = cbq.new_callback(request_id=self.uuid, department_id=dept_id, caller_number=self.caller_number or "?",
                               company_number=self.snap.main_number, now=now_dt, schedule=self.snap.schedule,
                               position=position,
                               policy=cbq.CallbackPolicy(max_attempts=cfg.callback_attempts,
                                                         retry_interval_s=cfg.callback_interval_s))
        try:
            with self.d.pool.transaction() as cur:
                calls_repo.callback_insert(
                    cur, tenant_id=self.snap.tenant_id, department_id=dept_id, number_id=self.rec.number_id,
                    caller=req.caller_number, position=position, origin_call_uuid=self.uuid,
                    max_attempts=req.max_attempts, interval_s=int(req.retry_interval_s),
                    next_attempt_at=req.next_attempt_at or now_dt, status=req.status,
                    last_error=req.last_error or "")
        except (StoreError, FsdError) as e:
            log.error("calls_callback_request_failed call=%s error=%s", self.uuid, e)
        self.rec.result = "callback_requested"
        self.d.wake_callbacks()
        try:
            self.play(self.snap.prompt("callback_confirm"))
        except CallerGone:
            return
        self.hangup()

    # ------------------------------------------------------------------ IVR
    def ivr(self, menu_id) -> tuple | None:
        for _hop in range(10):
            store_menu = self.snap.menus.get(menu_id)
            if store_menu is None:
                return (Voicemail(box_kind="company"),)
            self.route(f"ivr:{menu_id}")
            menu = adapters.ivr_menu(store_menu, prompt_path=self.snap.prompt_path,
                                     default_prompt=self.snap.prompt("ivr_sample"),
                                     default_invalid=self.snap.prompt("invalid_choice"))
            self.ensure_answered()
            step = rivr.IvrState.start(menu)
            for _ in range(50):
                a = step.action
                if isinstance(a, rivr.Replay | rivr.CollectExtension):
                    if a.invalid_prompt:
                        self.play(a.invalid_prompt)
                    if isinstance(a, rivr.Replay):
                        digits = self.collect(a.prompt, 1, a.max_digits, a.timeout_s, "none", "[0-9*#]")
                    else:
                        digits = self.collect(a.prompt or "silence_stream://250", a.digits, a.digits + 1,
                                              a.timeout_s, "#", "\\d+#?")
                    self.route(f"ivr_input:{digits or '-'}")
                    step = rivr.on_digits(step.state, digits or "", known_extensions=self.snap.extension_known)
                    continue
                if isinstance(a, rivr.DialExtension):
                    return self._extension_steps(a.extension)
                action = a.action  # Route or Fallback
                if isinstance(a, rivr.Fallback):
                    self.route("ivr_fallback")
                if action.kind == "menu":
                    menu_id = action.target
                    break
                return self._ivr_action_steps(action)
            else:
                return (Hangup(),)
        return (Hangup(),)

    def _ivr_action_steps(self, action) -> tuple:
        if action.kind == "department":
            return (RingDepartment(department_id=action.target),)
        if action.kind == "employee":
            return (RingEmployee(employee_id=action.target),)
        if action.kind == "voicemail":
            t = action.target
            if isinstance(t, tuple) and len(t) == 2:
                return (Voicemail(box_kind=t[0], box_id=t[1]),)
            return (Voicemail(box_kind="company"),)
        return (PlayMessage(prompt=self.snap.prompt("goodbye")), Hangup())

    def _extension_steps(self, ext: str) -> tuple:
        if ext in self.snap.by_extension:
            return (RingEmployee(employee_id=self.snap.by_extension[ext]),)
        if ext in self.snap.dept_by_extension:
            return (RingDepartment(department_id=self.snap.dept_by_extension[ext]),)
        return (Voicemail(box_kind="company"),)

    def collect(self, prompt, min_d, max_d, timeout_s, terminators, regex) -> str | None:
        self.stop_ringback()
        ms = int(timeout_s * 1000)
        arg = f"{min_d} {max_d} 1 {ms} {terminators} {prompt} silence_stream://250 fsd_ivr_digits {regex} {ms}"
        ev = self._wait(self.execute("play_and_get_digits", arg), timeout_s + 300)
        if ev is None:
            return None
        return ev.get("variable_fsd_ivr_digits") or None

    # ------------------------------------------------------------------ forward / outbound
    def forward(self, number: str, timeout_s: float | None) -> str | None:
        """Bridge the caller to an external number through the trunk. None when answered (the
        conversation is over), "no_answer" otherwise."""
        self.route("forward")
        self.stop_ringback()
        ok = self.bridge_out(number, timeout_s or 30.0, cid=self.caller_number)
        return None if ok else "no_answer"

    def bridge_out(self, number: str, timeout_s: float, *, cid: str) -> bool:
        gw = self.snap.gateway or "trunk"
        digits = adapters.dial_number(number)
        vars_ = [f"leg_timeout={int(timeout_s)}", f"originate_timeout={int(timeout_s)}", "hangup_after_bridge=true",
                 f"origination_caller_id_number={_safe(adapters.dial_number(cid) or cid)}", "fsd_call=" + self.uuid]
        bridged = {}

        def on_bridge(ev):
            bridged.setdefault("at", self.clock.now())

        self._survive_socket_loss()
        sub = self.s.subscribe("CHANNEL_BRIDGE", on_bridge)
        try:
            ev = self._wait(self.execute("bridge", f"{{{','.join(vars_)}}}sofia/gateway/{gw}/{digits}"), MAX_TALK_S)
        except CallerGone:
            ev = None
        finally:
            sub.unsubscribe()
        disposition = ev.get("variable_originate_disposition") if ev is not None else None
        ok = "at" in bridged or disposition == "SUCCESS"
        if ok:
            at = bridged.get("at") or self.clock.now()
            self.rec.answered_at = at
            self.rec.talk_s = max(0.0, self.clock.now() - at)
            self.rec.wait_s = max(0.0, at - self.rec.started_at)
            self.rec.result = "answered"
            self.route("forward_answered")
            self.hangup()
        return ok

    # ------------------------------------------------------------------ voicemail
    def voicemail(self, box_kind: str, box_id, greeting: str | None) -> None:
        self.route(f"voicemail:{box_kind}" + (f":{box_id}" if box_id is not None else ""))
        try:
            self._voicemail(box_kind, box_id, greeting)
        except CallerGone:
            pass

    def _voicemail(self, box_kind, box_id, greeting) -> None:
        self.ensure_answered()
        self.stop_ringback()
        if self._wait_started is None:
            self.rec.wait_s = 0.0
        self.play(greeting or self.snap.prompt("voicemail_greeting"))
        self.play(self.snap.prompt("voicemail_beep"))
        folder = os.path.join(self.d.storage_dir, "voicemail", str(self.snap.tenant_id))
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{self.uuid}.wav")
        self.rec.result = "voicemail"
        try:
            self._wait(self.execute("record", f"{path} {VOICEMAIL_MAX_S} 200 3"), VOICEMAIL_MAX_S + 10)
        except CallerGone:
            pass
        finally:
            self._store_voicemail(path, box_kind, box_id)
        self.hangup()

    def _store_voicemail(self, path: str, box_kind, box_id) -> None:
        # FreeSWITCH finishes writing the file when record returns (possibly after the hangup).
        deadline = self.now() + 5.0
        while not os.path.exists(path) and self.now() < deadline:
            gevent.sleep(min(0.02, self.clock.real(0.1)) or 0.001)
        if not os.path.exists(path):
            log.warning("calls_voicemail_missing call=%s path=%s", self.uuid, path)
            return
        try:
            _rate, _ch, _w, duration = fprompts.wav_info(path)
        except FsdError:
            duration = 0.0
        with open(path, "rb") as f:
            audio = f.read()
        emp_id = box_id if box_kind == "employee" else None
        dept_id = box_id if box_kind == "department" else None
        recipients = self._voicemail_recipients(box_kind, box_id)
        snap = self.snap
        letters = self._voicemail_letters(box_kind, box_id, recipients, duration)
        try:
            with self.d.pool.transaction() as cur:
                vm_id = calls_repo.voicemail_insert(
                    cur, tenant_id=snap.tenant_id, call_uuid=self.uuid, employee_id=emp_id, department_id=dept_id,
                    caller=self.caller_number, duration_s=duration, path=path, size_bytes=len(audio), audio=audio)
                if vm_id is not None:
                    for rcpt, subject, body in letters:
                        calls_repo.email_enqueue(cur, tenant_id=snap.tenant_id, kind="voicemail", recipient=rcpt,
                                                 subject=subject, body=body,
                                                 attachment_name=f"voicemail-{self.uuid[:8]}.wav", attachment=audio)
        except (StoreError, FsdError) as e:
            log.error("calls_voicemail_store_failed call=%s path=%s error=%s", self.uuid, path, e)
            return
        self.metrics.voicemails.inc()
        log.info("calls_voicemail call=%s box=%s:%s seconds=%.1f emails=%d", self.uuid, box_kind, box_id, duration,
                 len(recipients))

    def _voicemail_letters(self, box_kind, box_id, recipients: list[tuple[str, str]], duration: float):
        """(address, subject, body) per recipient, from templates/mail/voicemail.<lang>.txt.j2."""
        snap = self.snap
        lang = snap.language if snap.language in ("ru", "en") else "ru"
        if box_kind == "employee" and box_id in snap.employees:
            box = f"{snap.employees[box_id].name} ({snap.employees[box_id].extension})"
        elif box_kind == "department" and box_id in snap.departments:
            box = snap.departments[box_id].name
        else:
            box = snap.tenant.name
        started = _dt(self.rec.started_at) or self.clock.utcnow()
        try:
            when = started.astimezone(ZoneInfo(snap.tenant.timezone)).strftime("%Y-%m-%d %H:%M:%S")
        except (ValueError, KeyError):
            when = started.strftime("%Y-%m-%d %H:%M:%S UTC")
        secs = f"{round(duration)} {'с' if lang == 'ru' else 's'}"
        out = []
        for address, name in recipients:
            subject, body = mailtemplates.render(
                "voicemail", lang, name=name, tenant_name=snap.tenant.name, caller=self.caller_number or "",
                box=box, when=when, duration=secs, cabinet_url=self.d.cabinet_url or "")
            out.append((address, subject, body))
        return out

    def _voicemail_recipients(self, box_kind, box_id) -> list[tuple[str, str]]:
        snap = self.snap
        if box_kind == "employee":
            e = snap.employees.get(box_id)
            ids = [box_id] if e else []
        elif box_kind == "department":
            d = snap.departments.get(box_id)
            ids = d.member_ids if d else []
        else:
            ids = [e.id for e in snap.employees.values() if e.role == "admin"]
        out: list[tuple[str, str]] = []
        for i in ids:
            e = snap.employees.get(i)
            if e is not None and e.email and e.email not in [a for a, _ in out]:
                out.append((e.email, e.name))
        return out

    # ------------------------------------------------------------------ history
    def history_row(self) -> dict:
        r = self.rec
        end = r.ended_at or self.clock.now()
        result = r.result or ("abandoned" if r.direction == "inbound" else "missed")
        return {
            "tenant_id": r.tenant_id,
            "call_uuid": r.call_uuid,
            "direction": r.direction,
            "caller": r.caller[:64],
            "caller_name": r.caller_name[:200],
            "called": r.called[:64],
            "number_id": r.number_id,
            "route": ">".join(r.route)[:1000],
            "department_id": r.department_id,
            "employee_id": r.employee_id,
            "answered_by": r.answered_by,
            "started_at": _dt(r.started_at),
            "answered_at": _dt(r.answered_at),
            "ended_at": _dt(max(end, r.started_at)),
            "wait_s": round(max(0.0, r.wait_s), 3),
            "talk_s": round(max(0.0, r.talk_s), 3),
            "result": result,
            "hangup_cause": r.hangup_cause or (self.s.hangup_cause or ""),
            "node": self.d.node,
        }


def _ts(dt: datetime | None) -> float | None:
    return dt.timestamp() if dt is not None else None


_UNSAFE = frozenset(",{}[]'\"\\$\n\r")


def _safe(v: str) -> str:
    """A channel-variable value without the characters that end it in a dial string (and no space: for a
    value written bare, such as a number)."""
    return "".join(ch for ch in (v or "") if ch not in _UNSAFE and ch != " ")


def _safe_quoted(v: str) -> str:
    """A value written inside '...' in a dial string: spaces kept. FreeSWITCH's originate splits its
    arguments on blanks outside single quotes and then drops the quotes (switch_separate_string), so
    ``origination_caller_id_name='Ivan Petrov'`` reaches the leg as "Ivan Petrov". A quote, a comma or a
    brace would end the value; a backslash escapes; ``$`` is left out so that nothing is ever expanded."""
    return " ".join("".join(ch for ch in (v or "") if ch not in _UNSAFE).split())
