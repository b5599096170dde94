import random

import pytest

from fsd.errors import ValidationError
from fsd.queue.strategy import (
    Answered,
    DepartmentPolicy,
    Dispatcher,
    LegEnded,
    Member,
    MemberChanged,
    NoAnswer,
    Ring,
    Stop,
    next_actions,
    next_deadline,
    plan_ring,
    start_ring,
)


def M(eid, **kw):
    return Member(employee_id=eid, **kw)


def policy(strategy, step=10, timeout=45):
    return DepartmentPolicy(strategy=strategy, step_delay_s=step, ring_timeout_s=timeout)


def timeline(plan):
    """[(at, kind, member, target)] for compact assertions."""
    out = []
    for a in plan.actions:
        if isinstance(a, Ring):
            out.append((a.at, "ring", a.member_id, a.target))
        elif isinstance(a, Stop):
            out.append((a.at, "stop", a.member_id, a.target))
        else:
            assert isinstance(a, NoAnswer)
            out.append((a.at, "noanswer", None, None))
    return out


def rings(plan):
    return [(t, m, tg) for t, k, m, tg in timeline(plan) if k == "ring"]


def test_policy_and_member_validation():
    with pytest.raises(ValidationError):
        DepartmentPolicy(strategy="random")
    with pytest.raises(ValidationError):
        DepartmentPolicy(step_delay_s=0)
    with pytest.raises(ValidationError):
        Member(employee_id=1, forward_mode="sometimes")
    with pytest.raises(ValidationError):
        start_ring([M(1), M(1)], policy("simultaneous"), 0.0)


def test_member_legs():
    assert M(1).legs() == (("desk", 0.0),)
    assert M(1, busy=True, forward_mode="instant", mobile="+7900").legs() == ()
    assert M(1, registered=False).legs() == ()
    assert M(1, forward_mode="instant", mobile="+7900").legs() == (("mobile", 0.0),)
    assert M(1, forward_mode="delayed", forward_delay_s=15, mobile="+7900").legs() == (
        ("desk", 0.0),
        ("mobile", 15.0),
    )
    assert M(1, registered=False, forward_mode="delayed", mobile="+7900").legs() == (("mobile", 0.0),)
    assert M(1, registered=False, forward_mode="instant", mobile="+7900").legs() == (("mobile", 0.0),)
    # forwarding without a number behaves as off
    assert M(1, forward_mode="instant").legs() == (("desk", 0.0),)
    assert M(1, registered=False, forward_mode="delayed").legs() == ()


def test_simultaneous_skips_busy_and_unregistered_and_forwards():
    members = [
        M("a"),
        M("busy", busy=True),
        M("away", registered=False),
        M("inst", forward_mode="instant", mobile="+79001"),
        M("del", forward_mode="delayed", forward_delay_s=15, mobile="+79002"),
        M("del_away", registered=False, forward_mode="delayed", forward_delay_s=15, mobile="+79003"),
    ]
    plan = plan_ring(members, policy("simultaneous", timeout=30))
    assert rings(plan) == [
        (0.0, "a", "desk"),
        (0.0, "inst", "mobile"),
        (0.0, "del", "desk"),
        (0.0, "del_away", "mobile"),
        (15.0, "del", "mobile"),
    ]
    mobile_numbers = {a.member_id: a.number for a in plan.actions if isinstance(a, Ring) and a.target == "mobile"}
    assert mobile_numbers == {"inst": "+79001", "del": "+79002", "del_away": "+79003"}
    tl = timeline(plan)
    assert tl[-1] == (30.0, "noanswer", None, None)
    stopped = {(m, tg) for t, k, m, tg in tl if k == "stop"}
    assert stopped == {("a", "desk"), ("inst", "mobile"), ("del", "desk"), ("del", "mobile"), ("del_away", "mobile")}
    assert all(t == 30.0 for t, k, _, _ in tl if k == "stop")


def test_simultaneous_first_answer_wins_others_stop():
    st, acts = start_ring(
        [M(1), M(2), M(3, forward_mode="delayed", forward_delay_s=5, mobile="+7")], policy("simultaneous"), 100.0
    )
    assert {(a.member_id, a.target) for a in acts} == {(1, "desk"), (2, "desk"), (3, "desk")}
    assert next_deadline(st) == 105.0
    st, acts = next_actions(st, 105.0)
    assert acts == [Ring(member_id=3, target="mobile", number="+7", at=105.0)]
    st, acts = next_actions(st, 107.0, [Answered(member_id=3, target="mobile")])
    assert st.done and st.answered_by == 3
    assert {(a.member_id, a.target) for a in acts} == {(1, "desk"), (2, "desk"), (3, "desk")}
    assert all(isinstance(a, Stop) for a in acts)
    assert next_actions(st, 200.0) == (st, [])
    assert next_deadline(st) is None


def test_simultaneous_member_becomes_free_or_busy_while_waiting():
    st, acts = start_ring([M(1, busy=True), M(2)], policy("simultaneous", timeout=60), 0.0)
    assert [(a.member_id, a.target) for a in acts] == [(2, "desk")]
    st, acts = next_actions(st, 12.0, [MemberChanged(member=M(1))])
    assert acts == [Ring(member_id=1, target="desk", number=None, at=12.0)]
    st, acts = next_actions(st, 13.0, [MemberChanged(member=M(2, busy=True))])
    assert acts == [Stop(member_id=2, target="desk", at=13.0)]
    # the member unregisters but has instant forwarding: desk stops, mobile rings
    st, acts = next_actions(
        st, 14.0, [MemberChanged(member=M(1, registered=False, forward_mode="instant", mobile="+7"))]
    )
    assert acts == [Stop(member_id=1, target="desk", at=14.0), Ring(member_id=1, target="mobile", number="+7", at=14.0)]
    st, acts = next_actions(st, 60.0)
    assert acts == [Stop(member_id=1, target="mobile", at=60.0), NoAnswer(at=60.0)]


def test_no_eligible_member_waits_until_timeout_then_no_answer():
    plan = plan_ring([M(1, busy=True), M(2, registered=False)], policy("in_order", timeout=30))
    assert timeline(plan) == [(30.0, "noanswer", None, None)]


def test_rejected_leg_is_not_rerung_in_simultaneous():
    st, _ = start_ring([M(1), M(2)], policy("simultaneous"), 0.0)
    st, acts = next_actions(st, 3.0, [LegEnded(member_id=1, target="desk")])
    assert acts == []  # the leg is already gone on the switch side; nothing to stop or re-ring
    assert (1, "desk") not in st.ringing
    st, acts = next_actions(st, 10.0)
    assert acts == []


def test_in_order_timeline_cycles_after_last():
    plan = plan_ring([M("a"), M("b"), M("c")], policy("in_order", step=10, timeout=45))
    assert timeline(plan) == [
        (0.0, "ring", "a", "desk"),
        (10.0, "stop", "a", "desk"),
        (10.0, "ring", "b", "desk"),
        (20.0, "stop", "b", "desk"),
        (20.0, "ring", "c", "desk"),
        (30.0, "stop", "c", "desk"),
        (30.0, "ring", "a", "desk"),
        (40.0, "stop", "a", "desk"),
        (40.0, "ring", "b", "desk"),
        (45.0, "stop", "b", "desk"),
        (45.0, "noanswer", None, None),
    ]


def test_in_order_skips_busy_and_unregistered_and_rings_forwarded():
    members = [
        M("a", busy=True),
        M("b", registered=False),
        M("c", registered=False, forward_mode="delayed", forward_delay_s=15, mobile="+7c"),
        M("d", forward_mode="delayed", forward_delay_s=15, mobile="+7d"),
        M("e"),
    ]
    plan = plan_ring(members, policy("in_order", step=20, timeout=60))
    assert rings(plan) == [
        (0.0, "c", "mobile"),  # unregistered with delayed forwarding: mobile at its start
        (20.0, "d", "desk"),
        (35.0, "d", "mobile"),  # delay 15 < step 20: the mobile joins within d's slot
        (40.0, "e", "desk"),
    ]
    assert (40.0, "stop", "d", "mobile") in timeline(plan)


def test_in_order_slot_shorter_than_forward_delay_never_reaches_mobile():
    members = [M("d", forward_mode="delayed", forward_delay_s=15, mobile="+7d"), M("e")]
    plan = plan_ring(members, policy("in_order", step=10, timeout=35))
    assert rings(plan) == [(0.0, "d", "desk"), (10.0, "e", "desk"), (20.0, "d", "desk"), (30.0, "e", "desk")]


def test_single_member_keeps_ringing_and_reaches_mobile():
    plan = plan_ring(
        [M("d", forward_mode="delayed", forward_delay_s=15, mobile="+7d")], policy("in_order", step=10, timeout=40)
    )
    assert timeline(plan) == [
        (0.0, "ring", "d", "desk"),
        (15.0, "ring", "d", "mobile"),
        (40.0, "stop", "d", "desk"),
        (40.0, "stop", "d", "mobile"),
        (40.0, "noanswer", None, None),
    ]


def test_in_order_current_goes_busy_moves_on_at_once():
    st, acts = start_ring([M(1), M(2), M(3)], policy("in_order", step=10, timeout=60), 0.0)
    assert acts == [Ring(member_id=1, target="desk", number=None, at=0.0)]
    st, acts = next_actions(st, 4.0, [MemberChanged(member=M(1, busy=True))])
    assert acts == [Stop(member_id=1, target="desk", at=4.0), Ring(member_id=2, target="desk", number=None, at=4.0)]
    assert next_deadline(st) == 14.0
    st, acts = next_actions(st, 14.0)
    assert acts == [Stop(member_id=2, target="desk", at=14.0), Ring(member_id=3, target="desk", number=None, at=14.0)]
    # 1 is free again: the round (2, 3 tried; 1 had its turn cut) starts over with 1
    st, acts = next_actions(st, 20.0, [MemberChanged(member=M(1))])
    assert acts == []
    st, acts = next_actions(st, 24.0)
    assert acts == [Stop(member_id=3, target="desk", at=24.0), Ring(member_id=1, target="desk", number=None, at=24.0)]


def test_in_order_rejection_moves_on_and_idle_resumes_when_someone_frees():
    st, acts = start_ring([M(1), M(2, busy=True)], policy("in_order", step=10, timeout=60), 0.0)
    st, acts = next_actions(st, 2.0, [LegEnded(member_id=1, target="desk")])
    assert acts == []  # nobody else: 1 gets a fresh turn at the slot end
    st, acts = next_actions(st, 10.0)
    assert acts == [Ring(member_id=1, target="desk", number=None, at=10.0)]
    st, acts = next_actions(st, 11.0, [MemberChanged(member=M(1, busy=True))])
    assert acts == [Stop(member_id=1, target="desk", at=11.0)]
    assert st.current is None
    assert next_deadline(st) == 60.0
    st, acts = next_actions(st, 30.0, [MemberChanged(member=M(2))])
    assert acts == [Ring(member_id=2, target="desk", number=None, at=30.0)]
    st, acts = next_actions(st, 31.0, [LegEnded(member_id=2, target="desk"), MemberChanged(member=M(1))])
    assert acts == [Ring(member_id=1, target="desk", number=None, at=31.0)]


def test_cascade_timeline_earlier_keep_ringing():
    members = [M("a"), M("b", busy=True), M("c", forward_mode="instant", mobile="+7c"), M("d")]
    plan = plan_ring(members, policy("cascade", step=10, timeout=25))
    assert timeline(plan) == [
        (0.0, "ring", "a", "desk"),
        (10.0, "ring", "c", "mobile"),
        (20.0, "ring", "d", "desk"),
        (25.0, "stop", "a", "desk"),
        (25.0, "stop", "c", "mobile"),
        (25.0, "stop", "d", "desk"),
        (25.0, "noanswer", None, None),
    ]


def test_cascade_busy_member_joins_later_and_rejoins_after_busy():
    st, acts = start_ring([M("a"), M("b", busy=True), M("c")], policy("cascade", step=10, timeout=60), 0.0)
    st, acts = next_actions(st, 10.0)
    assert acts == [Ring(member_id="c", target="desk", number=None, at=10.0)]
    st, acts = next_actions(st, 12.0, [MemberChanged(member=M("b"))])
    assert acts == []  # b joins at the next step
    assert next_deadline(st) == 20.0
    st, acts = next_actions(st, 20.0)
    assert acts == [Ring(member_id="b", target="desk", number=None, at=20.0)]
    st, acts = next_actions(st, 21.0, [MemberChanged(member=M("a", busy=True))])
    assert acts == [Stop(member_id="a", target="desk", at=21.0)]
    st, acts = next_actions(st, 22.0, [MemberChanged(member=M("a"))])
    assert acts == [Ring(member_id="a", target="desk", number=None, at=22.0)]


def test_evenly_longest_idle_first_ties_by_order():
    members = [
        M("recent", last_call_ended_at=900.0),
        M("old", last_call_ended_at=100.0),
        M("never1"),
        M("mid", last_call_ended_at=500.0),
        M("never2"),
    ]
    plan = plan_ring(members, policy("evenly", step=10, timeout=50))
    assert [m for _, m, _ in rings(plan)] == ["never1", "never2", "old", "mid", "recent"]


def test_evenly_uses_updated_last_call_when_member_changes():
    members = [M("a", last_call_ended_at=1.0), M("b", last_call_ended_at=2.0), M("c", last_call_ended_at=3.0)]
    st, acts = start_ring(members, policy("evenly", step=10, timeout=60), 0.0)
    assert acts[0].member_id == "a"
    # b finished another call meanwhile (across departments): now c has waited longest
    st, _ = next_actions(st, 5.0, [MemberChanged(member=M("b", last_call_ended_at=4.0))])
    st, acts = next_actions(st, 10.0)
    assert acts[-1].member_id == "c"


def test_late_tick_catches_up():
    st, _ = start_ring([M(1), M(2), M(3)], policy("in_order", step=10, timeout=100), 0.0)
    st, acts = next_actions(st, 25.0)  # missed the tick at 10
    assert acts == [Stop(member_id=1, target="desk", at=25.0), Ring(member_id=3, target="desk", number=None, at=25.0)]
    assert next_deadline(st) == 30.0


def test_plan_agrees_with_live_machine_on_random_inputs():
    rnd = random.Random(7)
    for _ in range(200):
        members = [
            M(
                i,
                registered=rnd.random() < 0.7,
                busy=rnd.random() < 0.2,
                forward_mode=rnd.choice(["off", "instant", "delayed"]),
                forward_delay_s=rnd.choice([5, 15]),
                mobile=rnd.choice([None, f"+7{i}"]),
                last_call_ended_at=rnd.choice([None, rnd.random() * 100]),
            )
            for i in range(rnd.randint(0, 6))
        ]
        pol = policy(
            rnd.choice(["simultaneous", "evenly", "in_order", "cascade"]),
            step=rnd.choice([5, 10, 20]),
            timeout=rnd.choice([15, 30, 60]),
        )
        plan = plan_ring(members, pol)
        assert isinstance(plan.actions[-1], NoAnswer) and plan.actions[-1].at == pol.ring_timeout_s
        ringing = set()
        for a in plan.actions[:-1]:
            assert 0 <= a.at <= pol.ring_timeout_s
            leg = (a.member_id, a.target)
            if isinstance(a, Ring):
                m = next(x for x in members if x.employee_id == a.member_id)
                assert m.eligible and leg not in ringing
                ringing.add(leg)
            else:
                ringing.remove(leg)
        assert not ringing  # every leg stopped by the end
        if pol.strategy in ("in_order", "evenly"):
            # one member at a time
            live = set()
            for a in plan.actions[:-1]:
                (live.add if isinstance(a, Ring) else live.discard)((a.member_id, a.target))
                assert len({m for m, _ in live}) <= 1


# ---- Dispatcher -------------------------------------------------------------------------------------


def test_dispatcher_evenly_across_departments():
    d = Dispatcher()
    for e in ("a", "b", "c"):
        d.add_member(department_id="sales", employee_id=e)
    for e in ("c", "x"):
        d.add_member(department_id="support", employee_id=e)
    d.call_ended("a", 10.0)
    d.call_ended("b", 5.0)
    d.call_ended("c", 1.0)
    assert d.pick("sales", strategy="evenly") == "c"
    # c takes a support call and finishes it later: fairness spans departments
    d.reserve("c")
    assert d.pick("sales", strategy="evenly") == "b"
    d.call_ended("c", 20.0)
    assert d.pick("sales", strategy="evenly") == "b"
    assert d.pick("support", strategy="evenly") == "x"  # never had a call: first
    assert d.pick("sales", strategy="evenly", exclude={"b"}) == "a"
    assert d.pick("sales", strategy="evenly", exclude={"a", "b", "c"}) is None
    assert d.pick("sales", strategy="evenly") == "b"  # skipped entries were restored


def test_dispatcher_in_order_wraps_and_skips():
    d = Dispatcher()
    for e in range(1, 6):
        d.add_member(department_id=1, employee_id=e)
    d.set_free(2, False)
    assert d.pick(1, strategy="in_order") == 1
    assert d.pick(1, strategy="in_order", after=1) == 3
    assert d.pick(1, strategy="in_order", after=5) == 1
    assert d.pick(1, strategy="in_order", after=3, exclude={4, 5}) == 1
    assert d.free_members(1) == [1, 3, 4, 5]
    assert d.free_count(1) == 4
    d.remove_member(department_id=1, employee_id=3)
    assert d.free_members(1) == [1, 4, 5]
    assert d.pick(1, strategy="evenly") == 1
    d.set_free(2, True)
    assert d.pick(1, strategy="simultaneous") == 1
    assert d.pick("nope", strategy="evenly") is None
    with pytest.raises(ValidationError):
        d.add_member(department_id=1, employee_id=1)


def test_dispatcher_matches_brute_force_under_random_updates():
    rnd = random.Random(3)
    d = Dispatcher()
    n = 300
    free = {}
    last = {}
    for e in range(n):
        d.add_member(department_id="q", employee_id=e)
        free[e], last[e] = True, None
    for step in range(3000):
        e = rnd.randrange(n)
        r = rnd.random()
        if r < 0.4:
            d.set_free(e, False)
            free[e] = False
        elif r < 0.8:
            d.call_ended(e, float(step))
            free[e], last[e] = True, float(step)
        excl = set(rnd.sample(range(n), 3))
        cands = [x for x in range(n) if free[x] and x not in excl]
        want = min(cands, key=lambda x: (last[x] is not None, last[x] or 0.0, x)) if cands else None
        assert d.pick("q", strategy="evenly", exclude=excl) == want
        after = rnd.randrange(n)
        ordered = [x for x in range(after + 1, n) if free[x]] + [x for x in range(0, after + 1) if free[x]]
        assert d.pick("q", strategy="in_order", after=after) == (ordered[0] if ordered else None)


def test_live_machine_invariants_under_random_events():
    rnd = random.Random(11)

    def rand_member(i):
        return M(
            i,
            registered=rnd.random() < 0.7,
            busy=rnd.random() < 0.25,
            forward_mode=rnd.choice(["off", "instant", "delayed"]),
            forward_delay_s=rnd.choice([3, 8]),
            mobile=rnd.choice([None, f"+7{i}"]),
            last_call_ended_at=rnd.choice([None, rnd.random() * 100]),
        )

    for _ in range(300):
        n = rnd.randint(1, 6)
        members = {i: rand_member(i) for i in range(n)}
        pol = policy(
            rnd.choice(["simultaneous", "evenly", "in_order", "cascade"]), step=rnd.choice([4, 10]), timeout=40
        )
        now = 1000.0
        st, acts = start_ring(list(members.values()), pol, now)
        ringing = set()
        finished = False
        for _step in range(60):
            for a in acts:
                assert not finished
                if isinstance(a, Ring):
                    assert (a.member_id, a.target) not in ringing
                    assert members[a.member_id].eligible
                    ringing.add((a.member_id, a.target))
                elif isinstance(a, Stop):
                    ringing.remove((a.member_id, a.target))
                else:
                    finished = True
            assert ringing == set(st.ringing)
            for mid, target in ringing:
                assert target in dict(members[mid].legs())
            if pol.strategy in ("in_order", "evenly"):
                assert len({m for m, _ in ringing}) <= 1
            if st.done:
                break
            events = []
            r = rnd.random()
            if r < 0.3:
                i = rnd.randrange(n)
                members[i] = rand_member(i)
                events.append(MemberChanged(member=members[i]))
            elif r < 0.45 and ringing:
                mid, target = rnd.choice(sorted(ringing, key=str))
                events.append(LegEnded(member_id=mid, target=target))
                ringing.discard((mid, target))
            elif r < 0.48 and ringing:
                mid, target = rnd.choice(sorted(ringing, key=str))
                events.append(Answered(member_id=mid, target=target))
                ringing.discard((mid, target))
            deadline = next_deadline(st)
            assert deadline is not None and deadline > now - 1e-9
            now = min(deadline, now + rnd.choice([0.0, 0.5, 2.0, 7.0]))
            st, acts = next_actions(st, now, events)
        assert st.done or now < st.deadline
        if st.done and st.answered_by is None:
            assert finished and not ringing


def test_dispatcher_pick_members_orders():
    d = Dispatcher()
    for e, last in (("a", 30.0), ("b", None), ("c", 10.0), ("d", 20.0)):
        d.add_member(department_id=1, employee_id=e, last_call_ended_at=last)
    assert d.pick_members(1, strategy="evenly") == ["b", "c", "d", "a"]
    assert d.pick_members(1, strategy="evenly", count=2, exclude={"b"}) == ["c", "d"]
    assert d.pick_members(1, strategy="in_order", after="b") == ["c", "d", "a", "b"]
    assert d.pick_members(1, strategy="simultaneous", count=3) == ["a", "b", "c"]
    d.reserve("c")
    assert d.pick_members(1, strategy="cascade") == ["a", "b", "d"]
    assert d.pick_members(1, strategy="evenly") == ["b", "d", "a"]  # heap intact after the picks
    assert d.pick_members(2, strategy="evenly") == []
