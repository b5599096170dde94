"""Ring planning for departments: which member phones ring, when, and when they stop.

Pure code: no I/O and no clock reads. Times are monotonic floats in seconds supplied by the caller
(``now``); the timeline returned by :func:`plan_ring` is relative to t = 0.

Rules (spec §3, seed §1.2), with the readings chosen here:

- ``simultaneous`` — every eligible member rings at once; the first to answer wins and every other
  leg stops. A member who becomes eligible while the caller waits starts ringing at once.
- ``evenly`` — one member at a time, each for ``step_delay_s``; the previous stops when the next
  starts. The next member is the one who has gone longest without a call (``last_call_ended_at``
  is shared by all departments; ``None`` = never had a call, which comes first); ties go by the
  configured order.
- ``in_order`` — like ``evenly`` but in the configured order.
- ``cascade`` — members join in the configured order every ``step_delay_s``; earlier members keep
  ringing.
- After the last member of an ``in_order``/``evenly`` round the distribution **cycles**: a new round
  starts from the first (or longest-idle) member again, because the department's no-answer timeout
  ``ring_timeout_s`` — not the length of the member list — decides when the caller gives up, and a
  member who was away during the first round may well be back. With a single eligible member that
  member simply keeps ringing. Within a round each member is tried once.
- Eligibility: busy members (on a call or reserved) are skipped. A registered member rings the desk
  phone. Forwarding ``instant`` rings only the mobile. Forwarding ``delayed`` rings the desk at the
  member's start and the mobile ``forward_delay_s`` later (only if the member is still being rung
  then — in ``in_order``/``evenly`` a slot shorter than the delay never reaches the mobile). A member
  who is not registered is skipped unless forwarding is on: then only the mobile rings, at the
  member's start (for ``delayed`` too — there is no desk phone to wait for). Forwarding without a
  mobile number behaves as ``off``.
- A leg that answered but could not be connected to the caller (:class:`BridgeRefused`: the switch
  refused the bridge, or the member hung up at once) is gone like a rejected one, but its member is free:
  the leg is offered again ``refused_retry_s`` later if the member is still being rung then (a lone
  member, or one whose turn goes on) — at most once per ``refused_retry_s`` per leg, never at or past
  ``ring_timeout_s``. In ``in_order``/``evenly`` the turn still moves on at once when another member is
  eligible.
- At ``ring_timeout_s`` every leg stops and :class:`NoAnswer` is emitted; the caller then gets the
  department's no-answer action (see :mod:`fsd.queue.noanswer`).

The live API is a pure state machine: :func:`start_ring` then :func:`next_actions` on every event
or at :func:`next_deadline`. :func:`plan_ring` runs the same machine with no events to produce the
whole timeline, so the two can never disagree.

:class:`Dispatcher` is the fast index for choosing the next free member(s) of a department among
thousands (O(log n) updates and picks), used when many callers wait at once.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from fsd.errors import ValidationError

STRATEGIES = ("simultaneous", "evenly", "in_order", "cascade")
FORWARD_MODES = ("off", "instant", "delayed")
DESK = "desk"
MOBILE = "mobile"

Ref = Hashable


@dataclass(frozen=True, kw_only=True)
class Member:
    """A department member as seen at one instant."""

    employee_id: Ref
    registered: bool = True
    busy: bool = False
    forward_mode: str = "off"
    forward_delay_s: float = 15.0
    mobile: str | None = None
    last_call_ended_at: float | None = None

    # computed once (a member is immutable): ring planning asks for them on every transition
    _legs: tuple = field(init=False, repr=False, compare=False, default=())
    _eligible: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self):
        if self.forward_mode not in FORWARD_MODES:
            raise ValidationError(f"forward_mode must be one of {FORWARD_MODES}", field="forward_mode")
        if self.forward_delay_s < 0:
            raise ValidationError("forward_delay_s must be >= 0", field="forward_delay_s")
        legs = self._compute_legs()
        object.__setattr__(self, "_legs", legs)
        object.__setattr__(self, "_eligible", bool(legs))

    def legs(self) -> tuple[tuple[str, float], ...]:
        """``(target, delay)`` legs to ring, delay relative to the member's start; () = skip."""
        return self._legs

    def _compute_legs(self) -> tuple[tuple[str, float], ...]:
        if self.busy:
            return ()
        forward = self.forward_mode if self.mobile else "off"
        if forward == "instant":
            return ((MOBILE, 0.0),)
        if forward == "delayed":
            if self.registered:
                return ((DESK, 0.0), (MOBILE, float(self.forward_delay_s)))
            return ((MOBILE, 0.0),)
        return ((DESK, 0.0),) if self.registered else ()

    @property
    def eligible(self) -> bool:
        return self._eligible


@dataclass(frozen=True, kw_only=True)
class DepartmentPolicy:
    strategy: str = "simultaneous"
    step_delay_s: float = 15.0
    ring_timeout_s: float = 60.0
    refused_retry_s: float = 5.0  # a leg whose bridge was refused is offered again this much later

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValidationError(f"strategy must be one of {STRATEGIES}", field="strategy")
        if self.step_delay_s <= 0:
            raise ValidationError("step_delay_s must be > 0", field="step_delay_s")
        if self.ring_timeout_s <= 0:
            raise ValidationError("ring_timeout_s must be > 0", field="ring_timeout_s")
        if not self.refused_retry_s > 0:
            raise ValidationError("refused_retry_s must be > 0", field="refused_retry_s")


# ---- actions -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Ring:
    """Start ringing one leg of a member: the desk phone, or the mobile ``number``."""

    member_id: Ref
    target: str
    number: str | None
    at: float


@dataclass(frozen=True, kw_only=True)
class Stop:
    """Stop ringing one leg of a member."""

    member_id: Ref
    target: str
    at: float


@dataclass(frozen=True, kw_only=True)
class NoAnswer:
    """Nobody answered within the department's ring timeout: run the no-answer action."""

    at: float


# ---- events --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MemberChanged:
    """A member's state changed (became busy/free, (un)registered, forwarding edited)."""

    member: Member


@dataclass(frozen=True, kw_only=True)
class LegEnded:
    """A ringing leg ended without an answer (rejected, unreachable, DND); it is not re-rung in
    this slot (``in_order``/``evenly``: not before the next round)."""

    member_id: Ref
    target: str


@dataclass(frozen=True, kw_only=True)
class BridgeRefused:
    """A leg answered but could not be bridged to the caller; the leg is gone. Unlike :class:`LegEnded`
    the member did not decline: the leg is offered again ``policy.refused_retry_s`` later (see the
    module notes)."""

    member_id: Ref
    target: str


@dataclass(frozen=True, kw_only=True)
class Answered:
    """A leg answered: every other leg stops and the state is done."""

    member_id: Ref
    target: str


# ---- state ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RingState:
    """Immutable state of ringing one caller's department. Build with :func:`start_ring`."""

    policy: DepartmentPolicy
    started_at: float
    members: tuple[Member, ...]
    ringing: frozenset = frozenset()  # {(member_id, target)}
    since: tuple = ()  # ((member_id, start time of the member's current turn), ...)
    ended: frozenset = frozenset()  # legs that ended unanswered in the current turn
    retry: tuple = ()  # (((member_id, target), at), ...): refused legs offered again at `at`
    current: Ref | None = None  # in_order/evenly: member whose turn it is
    slot_end: float | None = None
    tried: frozenset = frozenset()  # in_order/evenly: members tried this round
    joined: tuple = ()  # cascade: members who have joined, in join order
    next_join_at: float | None = None  # cascade
    done: bool = False
    answered_by: Ref | None = None
    _index: dict = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    # evenly: the members' sort keys (_evenly_key), sorted; built on the first pick, kept up to date
    _order: list | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self._index is None:
            object.__setattr__(self, "_index", {m.employee_id: i for i, m in enumerate(self.members)})

    @property
    def deadline(self) -> float:
        return self.started_at + self.policy.ring_timeout_s

    def member(self, member_id: Ref) -> Member | None:
        i = self._index.get(member_id)
        return None if i is None else self.members[i]


class _Work:
    """Mutable scratch copy of a RingState used inside one transition."""

    def __init__(self, st: RingState):
        self.st = st
        self.policy = st.policy
        self.members = list(st.members)
        self.index = st._index  # never changed: shared by every state of one ring
        self.order = st._order  # shared until changed (copied then: states are immutable)
        self._own_order = False
        self.since = dict(st.since)
        self.ended = set(st.ended)
        self.retry = dict(st.retry)
        self.current = st.current
        self.slot_end = st.slot_end
        self.tried = set(st.tried)
        self.joined = list(st.joined)
        self.next_join_at = st.next_join_at

    def m(self, mid):
        return self.members[self.index[mid]]

    def eligible(self, mid) -> bool:
        return self.m(mid).eligible

    def begin_turn(self, mid, t):
        self.since[mid] = t
        # a refused leg whose retry is not due yet stays ended in the new turn too
        self.ended = {leg for leg in self.ended if leg[0] != mid or leg in self.retry}

    def waiting(self, mid) -> bool:
        """Every leg of the member was refused a bridge and waits for its retry."""
        if not self.retry:
            return False
        legs = self.m(mid).legs()
        return bool(legs) and all((mid, target) in self.retry for target, _ in legs)

    def exhausted(self, mid, now) -> bool:
        """All of the member's legs ended unanswered (none pending)."""
        legs = self.m(mid).legs()
        return bool(legs) and all((mid, target) in self.ended for target, _ in legs)

    def candidates(self):
        return [m.employee_id for m in self.members if m._eligible]

    def pick_next(self, exclude, *, skip_waiting: bool = False):
        """The next eligible member not in ``exclude``: ``evenly`` the one longest without a call (never
        had one first; ties in configured order), otherwise the first in configured order. Walks a
        sorted order and stops at the first fit, so a pick among thousands of members is cheap.
        ``skip_waiting``: members whose refused legs all wait for their retry are not picked."""
        if skip_waiting and self.retry:
            exclude = set(exclude) | {mid for mid, _ in self.retry if self.waiting(mid)}
        members = self.members
        if self.policy.strategy == "evenly":
            if self.order is None:
                self.order = sorted(_evenly_key(m, i) for i, m in enumerate(members))
                self._own_order = True
            for key in self.order:
                m = members[key[2]]
                if m._eligible and m.employee_id not in exclude:
                    return m.employee_id
            return None
        for m in members:
            if m._eligible and m.employee_id not in exclude:
                return m.employee_id
        return None

    def replace_member(self, i: int, member: Member) -> None:
        before = self.members[i]
        self.members[i] = member
        if self.order is not None and before.last_call_ended_at != member.last_call_ended_at:
            if not self._own_order:
                self.order = list(self.order)
                self._own_order = True
            del self.order[bisect.bisect_left(self.order, _evenly_key(before, i))]
            bisect.insort(self.order, _evenly_key(member, i))

    def freeze(self, **changes) -> RingState:
        return replace(
            self.st,
            members=tuple(self.members),
            since=tuple(self.since.items()),
            ended=frozenset(self.ended),
            retry=tuple(self.retry.items()),
            current=self.current,
            slot_end=self.slot_end,
            tried=frozenset(self.tried),
            joined=tuple(self.joined),
            next_join_at=self.next_join_at,
            _index=self.index,
            _order=self.order,
            **changes,
        )


def start_ring(members: Sequence[Member], policy: DepartmentPolicy, now: float) -> tuple[RingState, list]:
    """Start ringing a department for one caller at monotonic time ``now``.

    ``members`` are in the department's configured order (duplicates are rejected). Returns the
    state and the actions to perform now (usually :class:`Ring` actions).
    """
    ids = [m.employee_id for m in members]
    if len(set(ids)) != len(ids):
        raise ValidationError("duplicate member in department", field="members")
    st = RingState(policy=policy, started_at=now, members=tuple(members), next_join_at=now)
    return next_actions(st, now)


def next_actions(state: RingState, now: float, events: Iterable = ()) -> tuple[RingState, list]:
    """Apply ``events`` (MemberChanged, LegEnded, Answered) and the passage of time up to ``now``.

    Returns ``(new_state, actions)``: Stop actions first, then Ring actions, then possibly a
    :class:`NoAnswer`. Actions carry ``at=now``. Once ``state.done`` nothing more is emitted. Call
    it on every event and at :func:`next_deadline`; calling it more often is harmless.
    """
    if state.done:
        return state, []
    w = _Work(state)
    strategy = w.policy.strategy
    answered = None
    gone = set()  # legs that ended on the switch side: no Stop needed
    for ev in events:
        if isinstance(ev, Answered):
            answered = ev
            break
        if isinstance(ev, MemberChanged):
            mid = ev.member.employee_id
            if mid not in w.index:
                continue
            before = w.m(mid)
            w.replace_member(w.index[mid], ev.member)
            if before.eligible and not ev.member.eligible:
                w.since.pop(mid, None)
                if w.current == mid:
                    w.current = None
            elif not before.eligible and ev.member.eligible:
                w.since.pop(mid, None)  # a new turn starts when it is made active below
        elif isinstance(ev, LegEnded):
            if ev.member_id in w.index:
                w.ended.add((ev.member_id, ev.target))
                gone.add((ev.member_id, ev.target))
        elif isinstance(ev, BridgeRefused):
            if ev.member_id in w.index:
                leg = (ev.member_id, ev.target)
                w.ended.add(leg)
                gone.add(leg)
                # kept even when due at or past the deadline (it never comes then): until it is due, the
                # member is not offered the call again (in_order/evenly: not picked for a new turn)
                w.retry[leg] = now + w.policy.refused_retry_s
        else:
            raise ValidationError(f"unknown ring event {ev!r}")

    ringing = state.ringing - gone
    if answered is not None:
        actions = [
            Stop(member_id=mid, target=t, at=now)
            for mid, t in sorted(ringing, key=_leg_key(w))
            if (mid, t) != (answered.member_id, answered.target)
        ]
        return w.freeze(ringing=frozenset(), done=True, answered_by=answered.member_id), actions

    if now >= state.deadline:
        actions = [Stop(member_id=mid, target=t, at=now) for mid, t in sorted(ringing, key=_leg_key(w))]
        actions.append(NoAnswer(at=now))
        w.retry = {}
        return w.freeze(ringing=frozenset(), done=True), actions

    if w.retry:
        for leg, at in list(w.retry.items()):
            if at <= now:  # a refused leg's retry is due: it may ring again
                del w.retry[leg]
                w.ended.discard(leg)

    if strategy == "simultaneous":
        active = []
        for mid in w.candidates():
            if mid not in w.since:
                w.begin_turn(mid, now)
            active.append(mid)
    elif strategy == "cascade":
        while w.next_join_at is not None and w.next_join_at <= now:
            nxt = w.pick_next(set(w.joined))
            if nxt is None:
                # Nobody left to join now: the pending join happens as soon as someone is eligible.
                w.next_join_at = now if w.next_join_at < now else w.next_join_at
                break
            w.joined.append(nxt)
            w.begin_turn(nxt, w.next_join_at)
            w.next_join_at = w.next_join_at + w.policy.step_delay_s
        active = []
        for mid in w.joined:
            if w.eligible(mid):
                if mid not in w.since:
                    w.begin_turn(mid, now)
                active.append(mid)
    else:  # in_order, evenly
        _advance_single(w, now)
        active = [w.current] if w.current is not None else []

    desired = set()
    for mid in active:
        s = w.since[mid]
        for target, delay in w.m(mid).legs():
            if s + delay <= now and (mid, target) not in w.ended:
                desired.add((mid, target))
    key = _leg_key(w)
    actions: list = [Stop(member_id=mid, target=t, at=now) for mid, t in sorted(ringing - desired, key=key)]
    for mid, t in sorted(desired - ringing, key=key):
        m = w.m(mid)
        actions.append(Ring(member_id=mid, target=t, number=m.mobile if t == MOBILE else None, at=now))
    return w.freeze(ringing=frozenset(desired)), actions


def _evenly_key(m: Member, i: int) -> tuple:
    idle = m.last_call_ended_at
    return (idle is not None, idle if idle is not None else 0.0, i)


def _leg_key(w: _Work):
    return lambda leg: (w.index.get(leg[0], -1), leg[1])


def _advance_single(w: _Work, now: float) -> None:
    """in_order/evenly: move the turn on at slot ends, or at once when the current member became
    ineligible or rejected every leg (an only member who rejected is rung again next slot)."""
    step = w.policy.step_delay_s
    for _ in range(len(w.members) * 2 + int((now - w.st.started_at) / step) + 4):
        cur = w.current
        if cur is not None and not w.eligible(cur):
            cur = w.current = None
            w.slot_end = None
        expired = exhausted = False
        switch_at = now
        if cur is not None:
            expired = w.slot_end <= now
            exhausted = w.exhausted(cur, now)
            if not expired and not exhausted:
                return
            if expired:
                switch_at = w.slot_end
        nxt = w.pick_next(w.tried | ({cur} if cur is not None else set()), skip_waiting=True)
        if nxt is None:
            nxt = w.pick_next({cur} if cur is not None else set(), skip_waiting=True)
            if nxt is not None:
                w.tried = set()  # a new round
        if nxt is None:
            if cur is None or not expired:
                if cur is None:
                    w.slot_end = None
                return
            # The only eligible member: its turn goes on (a fresh turn if it rejected).
            w.tried = {cur}
            if exhausted:
                w.begin_turn(cur, switch_at)
            w.slot_end = switch_at + step
            continue
        w.current = nxt
        w.tried.add(nxt)
        w.begin_turn(nxt, switch_at)
        w.slot_end = switch_at + step


def next_deadline(state: RingState) -> float | None:
    """The next monotonic time at which :func:`next_actions` must be called if no event comes
    first; None when done."""
    if state.done:
        return None
    times = [state.deadline]
    since = dict(state.since)
    if state.policy.strategy in ("in_order", "evenly"):
        active = [state.current] if state.current is not None else []
        if state.slot_end is not None:
            times.append(state.slot_end)
    elif state.policy.strategy == "cascade":
        active = list(state.joined)
        if state.next_join_at is not None and any(
            m.eligible and m.employee_id not in state.joined for m in state.members
        ):
            times.append(state.next_join_at)
    else:
        active = list(since)
    for mid in active:
        m = state.member(mid)
        if m is None or mid not in since:
            continue
        for target, delay in m.legs():
            t = since[mid] + delay
            if (mid, target) not in state.ringing and (mid, target) not in state.ended and delay > 0:
                times.append(t)
    times += [at for _leg, at in state.retry]
    future = [t for t in times if t is not None]
    return min(future) if future else None


@dataclass(frozen=True, kw_only=True)
class RingPlan:
    """The timeline of ringing a department when nothing changes, relative to t = 0."""

    actions: tuple

    def at(self, t: float) -> list:
        return [a for a in self.actions if a.at == t]


def plan_ring(members: Sequence[Member], policy: DepartmentPolicy) -> RingPlan:
    """The full timeline (Ring/Stop actions and the final NoAnswer) if no member's state changes and
    nobody answers. Produced by running :func:`start_ring`/:func:`next_actions` from t = 0."""
    state, actions = start_ring(members, policy, 0.0)
    out = list(actions)
    guard = 0
    while not state.done:
        t = next_deadline(state)
        state, actions = next_actions(state, t)
        out.extend(actions)
        guard += 1
        if guard > 100_000:  # pragma: no cover - defensive
            raise RuntimeError("ring plan did not converge")
    return RingPlan(actions=tuple(out))


# ---- Dispatcher: fast pick among thousands -----------------------------------------------------------


class _Fenwick:
    """Counts of free members by configured position; finds the k-th free in O(log n)."""

    def __init__(self, size: int = 16):
        self.n = size
        self.tree = [0] * (size + 1)
        self.flags = [0] * (size + 1)

    def _grow(self, need: int):
        n = self.n
        while n < need:
            n *= 2
        flags = self.flags
        self.n = n
        self.tree = [0] * (n + 1)
        self.flags = [0] * (n + 1)
        for i in range(1, len(flags)):
            if flags[i]:
                self.set(i, 1)

    def set(self, i: int, v: int):  # 1-based
        if i > self.n:
            self._grow(i)
        d = v - self.flags[i]
        if not d:
            return
        self.flags[i] = v
        while i <= self.n:
            self.tree[i] += d
            i += i & -i

    def prefix(self, i: int) -> int:
        i = min(i, self.n)
        s = 0
        while i > 0:
            s += self.tree[i]
            i -= i & -i
        return s

    def total(self) -> int:
        return self.prefix(self.n)

    def kth(self, k: int) -> int:
        """Smallest position with prefix count >= k (1-based k)."""
        pos = 0
        step = 1 << self.n.bit_length()
        while step:
            nxt = pos + step
            if nxt <= self.n and self.tree[nxt] < k:
                pos = nxt
                k -= self.tree[nxt]
            step >>= 1
        return pos + 1


class _Dept:
    def __init__(self):
        self.pos: dict = {}  # employee_id -> 1-based configured position
        self.by_pos: dict = {}  # position -> employee_id
        self.next_pos = 1
        self.free = _Fenwick()
        self.heap: list = []  # (never_flag, last_ended, pos, version, employee_id)


class Dispatcher:
    """Index of free members per department for O(log n) picks.

    A member is *free* when registered (or forwarded) and neither on a call nor reserved; the
    owner keeps that flag current with :meth:`set_free`. ``last_call_ended_at`` is global across
    departments, so ``evenly`` is fair across them. Updates are O(d log n) for a member in d
    departments; :meth:`pick` is O(log n) amortised (plus O(log n) per excluded member skipped).
    """

    def __init__(self):
        self._depts: dict = {}
        self._free: dict = {}  # employee_id -> bool
        self._last: dict = {}  # employee_id -> float | None
        self._version: dict = {}  # employee_id -> int
        self._member_of: dict = {}  # employee_id -> set(department_id)

    # -- membership --
    def add_member(
        self,
        *,
        department_id: Ref,
        employee_id: Ref,
        free: bool | None = None,
        last_call_ended_at: float | None = None,
    ) -> None:
        """Append a member to a department's configured order. ``free``/``last_call_ended_at``
        set the member's global state when given (first time: default free, never called)."""
        d = self._depts.setdefault(department_id, _Dept())
        if employee_id in d.pos:
            raise ValidationError("member already in department", field="employee_id")
        pos = d.next_pos
        d.next_pos += 1
        d.pos[employee_id] = pos
        d.by_pos[pos] = employee_id
        self._member_of.setdefault(employee_id, set()).add(department_id)
        if employee_id not in self._free:
            self._free[employee_id] = True if free is None else free
            self._last[employee_id] = last_call_ended_at
            self._version[employee_id] = 0
        else:
            if free is not None:
                self._free[employee_id] = free
            if last_call_ended_at is not None:
                self._last[employee_id] = last_call_ended_at
        self._reindex(employee_id)

    def remove_member(self, *, department_id: Ref, employee_id: Ref) -> None:
        d = self._depts.get(department_id)
        if d is None or employee_id not in d.pos:
            return
        pos = d.pos.pop(employee_id)
        del d.by_pos[pos]
        d.free.set(pos, 0)
        self._member_of[employee_id].discard(department_id)
        self._reindex(employee_id)  # invalidates its heap entries

    # -- state --
    def set_free(self, employee_id: Ref, free: bool) -> None:
        """Mark a member free (True) or busy/reserved/unregistered (False) in all departments."""
        if employee_id not in self._free or self._free[employee_id] == free:
            return
        self._free[employee_id] = free
        self._reindex(employee_id)

    def reserve(self, employee_id: Ref) -> None:
        """Take a picked member out of the free sets (ringing for one caller / on a call)."""
        self.set_free(employee_id, False)

    def call_ended(self, employee_id: Ref, at: float, *, free: bool = True) -> None:
        """A call of the member ended at ``at``: record it for ``evenly`` and free the member."""
        if employee_id not in self._free:
            return
        self._last[employee_id] = at
        self._free[employee_id] = free
        self._reindex(employee_id)

    def is_free(self, employee_id: Ref) -> bool:
        return bool(self._free.get(employee_id))

    def _reindex(self, employee_id: Ref) -> None:
        v = self._version[employee_id] + 1
        self._version[employee_id] = v
        free = self._free[employee_id]
        last = self._last[employee_id]
        for dept_id in self._member_of.get(employee_id, ()):
            d = self._depts[dept_id]
            pos = d.pos[employee_id]
            d.free.set(pos, 1 if free else 0)
            if free:
                heapq.heappush(d.heap, (last is not None, last if last is not None else 0.0, pos, v, employee_id))
                if len(d.heap) > 4 * len(d.pos) + 64:
                    self._compact(d)

    def _compact(self, d: _Dept) -> None:
        d.heap = [e for e in d.heap if self._valid(d, e)]
        heapq.heapify(d.heap)

    def _valid(self, d: _Dept, entry) -> bool:
        eid = entry[4]
        return d.pos.get(eid) == entry[2] and self._version.get(eid) == entry[3] and self._free.get(eid)

    # -- queries --
    def free_count(self, department_id: Ref) -> int:
        d = self._depts.get(department_id)
        return d.free.total() if d else 0

    def free_members(self, department_id: Ref) -> list:
        """All free members in configured order (for ``simultaneous``/``cascade``), O(k log n)."""
        d = self._depts.get(department_id)
        if d is None:
            return []
        return [d.by_pos[d.free.kth(k)] for k in range(1, d.free.total() + 1)]

    def pick(
        self,
        department_id: Ref,
        *,
        strategy: str,
        exclude: frozenset | set = frozenset(),
        after: Ref | None = None,
    ) -> Ref | None:
        """The next free member for one caller, or None.

        ``evenly``: the free member longest without a call (never-called first, ties by configured
        order). ``in_order``/``cascade``: the first free member after ``after`` in configured order,
        wrapping around (from the start when ``after`` is None). ``simultaneous``: the first free
        member in configured order. Members in ``exclude`` (already tried for this caller) are
        skipped. The pick does not reserve: call :meth:`reserve` if the caller takes the member.
        """
        d = self._depts.get(department_id)
        if d is None:
            return None
        if strategy == "evenly":
            return self._pick_evenly(d, exclude)
        if strategy not in STRATEGIES:
            raise ValidationError(f"strategy must be one of {STRATEGIES}", field="strategy")
        total = d.free.total()
        if total == 0:
            return None
        start = d.pos.get(after, 0) if after is not None else 0
        c = d.free.prefix(start)
        for i in range(min(total, len(exclude) + 1)):
            k = (c + i) % total + 1
            eid = d.by_pos[d.free.kth(k)]
            if eid not in exclude:
                return eid
        return None

    def pick_members(
        self,
        department_id: Ref,
        *,
        strategy: str,
        count: int | None = None,
        exclude: frozenset | set = frozenset(),
        after: Ref | None = None,
    ) -> list:
        """Up to ``count`` free members (all when None) in the order the strategy would ring them:
        ``simultaneous``/``cascade``/``in_order`` in configured order starting after ``after``
        (wrapping), ``evenly`` longest-idle first. Excluded members are skipped. Nothing is
        reserved. O(k log n) for k returned members."""
        d = self._depts.get(department_id)
        if d is None:
            return []
        limit = d.free.total() if count is None else min(count, d.free.total())
        out: list = []
        taken = set(exclude)
        if strategy == "evenly":
            while len(out) < limit:
                eid = self._pick_evenly(d, taken)
                if eid is None:
                    break
                out.append(eid)
                taken.add(eid)
            return out
        cursor = after
        while len(out) < limit:
            eid = self.pick(department_id, strategy=strategy, exclude=taken, after=cursor)
            if eid is None:
                break
            out.append(eid)
            taken.add(eid)
            cursor = eid
        return out

    def _pick_evenly(self, d: _Dept, exclude) -> Ref | None:
        heap = d.heap
        skipped = []
        found = None
        while heap:
            top = heap[0]
            if not self._valid(d, top):
                heapq.heappop(heap)
                continue
            if top[4] in exclude:
                skipped.append(heapq.heappop(heap))
                continue
            found = top[4]
            break
        for e in skipped:
            heapq.heappush(heap, e)
        return found
