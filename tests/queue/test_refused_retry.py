"""A leg whose bridge was refused (the member answered, the caller could not be connected) is offered again
after ``refused_retry_s``: at most once per that delay, never at or past the ring timeout."""

import random

import pytest

from fsd.errors import ValidationError
from fsd.queue.strategy import (
    Answered,
    BridgeRefused,
    DepartmentPolicy,
    LegEnded,
    Member,
    MemberChanged,
    NoAnswer,
    Ring,
    Stop,
    next_actions,
    next_deadline,
    start_ring,
)


def M(eid, **kw):
    return Member(employee_id=eid, **kw)


def pol(strategy, step=10, timeout=30, retry=5):
    return DepartmentPolicy(strategy=strategy, step_delay_s=step, ring_timeout_s=timeout, refused_retry_s=retry)


def rings(acts):
    return [(a.member_id, a.target) for a in acts if isinstance(a, Ring)]


def test_retry_delay_must_be_positive():
    with pytest.raises(ValidationError):
        DepartmentPolicy(refused_retry_s=0)
    assert DepartmentPolicy().refused_retry_s == 5.0


@pytest.mark.parametrize("strategy", ["simultaneous", "in_order", "evenly", "cascade"])
def test_lone_member_refused_is_rung_again_after_the_retry_delay(strategy):
    st, acts = start_ring([M(1)], pol(strategy), 0.0)
    assert rings(acts) == [(1, "desk")]
    st, acts = next_actions(st, 3.0, [BridgeRefused(member_id=1, target="desk")])
    assert acts == []  # the leg is gone already: nothing to stop, and no ring at once
    assert (1, "desk") not in st.ringing
    assert next_deadline(st) == 8.0
    st, acts = next_actions(st, 7.9)
    assert acts == []
    st, acts = next_actions(st, 8.0)
    assert rings(acts) == [(1, "desk")]
    assert st.retry == ()


def test_rejected_leg_is_still_not_rerung_in_simultaneous():
    st, _ = start_ring([M(1)], pol("simultaneous"), 0.0)
    st, _ = next_actions(st, 3.0, [LegEnded(member_id=1, target="desk")])
    assert next_deadline(st) == 30.0
    st, acts = next_actions(st, 29.0)
    assert acts == []


def test_refused_again_waits_a_full_delay_each_time():
    st, _ = start_ring([M(1)], pol("simultaneous", timeout=60, retry=5), 0.0)
    offered = [0.0]
    now = 1.0
    st, _ = next_actions(st, now, [BridgeRefused(member_id=1, target="desk")])
    while not st.done:
        now = next_deadline(st)
        st, acts = next_actions(st, now)
        if rings(acts):
            offered.append(now)
            now += 0.5  # refused again half a second after each offer
            st, acts = next_actions(st, now, [BridgeRefused(member_id=1, target="desk")])
            assert acts == []
    assert offered == [0.0, 6.0, 11.5, 17.0, 22.5, 28.0, 33.5, 39.0, 44.5, 50.0, 55.5]
    assert all(b - a >= 5.0 for a, b in zip(offered[1:], offered[2:], strict=False))


def test_no_retry_at_or_past_the_ring_timeout():
    for refused_at in (25.0, 26.0):  # the retry would be due at or after the timeout (30)
        st, _ = start_ring([M(1)], pol("simultaneous", timeout=30, retry=5), 0.0)
        st, acts = next_actions(st, refused_at, [BridgeRefused(member_id=1, target="desk")])
        assert next_deadline(st) == 30.0
        st, acts = next_actions(st, 30.0)
        assert acts == [NoAnswer(at=30.0)]


def test_in_order_new_round_does_not_offer_a_refused_member_before_its_retry():
    st, _ = start_ring([M("a"), M("b")], pol("in_order", step=4, timeout=40, retry=3), 0.0)
    st, acts = next_actions(st, 37.0, [BridgeRefused(member_id=st.current, target="desk")])
    refused = "a" if rings(acts) == [("b", "desk")] else "b"
    st, acts = next_actions(st, 37.5, [LegEnded(member_id=st.current, target="desk")])
    assert refused not in [m for m, _ in rings(acts)]
    st, acts = next_actions(st, 39.9)
    assert refused not in [m for m, _ in rings(acts)]


def test_in_order_with_others_moves_on_at_once_and_the_refused_member_comes_back_in_turn():
    st, acts = start_ring([M("a"), M("b")], pol("in_order", step=10, timeout=60), 0.0)
    assert rings(acts) == [("a", "desk")]
    st, acts = next_actions(st, 2.0, [BridgeRefused(member_id="a", target="desk")])
    assert rings(acts) == [("b", "desk")]  # b's turn starts at once, as for a rejection
    st, acts = next_actions(st, 7.0)  # a's retry is due, but it is b's turn
    assert acts == [] and st.current == "b"
    st, acts = next_actions(st, 12.0)
    assert [(type(x).__name__, x.member_id) for x in acts] == [("Stop", "b"), ("Ring", "a")]


def test_in_order_members_waiting_for_a_retry_are_not_picked_before_it():
    st, acts = start_ring([M("a"), M("b")], pol("in_order", step=10, timeout=60, retry=5), 0.0)
    st, acts = next_actions(st, 1.0, [BridgeRefused(member_id="a", target="desk")])
    assert rings(acts) == [("b", "desk")]
    st, acts = next_actions(st, 2.0, [BridgeRefused(member_id="b", target="desk")])
    assert acts == []  # a waits until 6, b until 7: nobody is offered the call before
    assert next_deadline(st) == 6.0
    st, acts = next_actions(st, 6.0)
    assert rings(acts) == [("a", "desk")]


def test_in_order_lone_eligible_member_is_retried_within_its_slot():
    st, _ = start_ring([M("a"), M("b", busy=True)], pol("in_order", step=20, timeout=60), 0.0)
    st, acts = next_actions(st, 2.0, [BridgeRefused(member_id="a", target="desk")])
    assert acts == []
    st, acts = next_actions(st, next_deadline(st))
    assert st.started_at == 0.0 and rings(acts) == [("a", "desk")]
    assert dict(st.since)["a"] == 0.0  # the same turn goes on


def test_refused_desk_of_a_forwarded_member_keeps_the_mobile_plan():
    m = M(1, forward_mode="delayed", forward_delay_s=15, mobile="+79160000001")
    st, acts = start_ring([m], pol("simultaneous", timeout=60, retry=5), 0.0)
    assert rings(acts) == [(1, "desk")]
    st, acts = next_actions(st, 4.0, [BridgeRefused(member_id=1, target="desk")])
    assert next_deadline(st) == 9.0
    st, acts = next_actions(st, 9.0)
    assert rings(acts) == [(1, "desk")]
    st, acts = next_actions(st, 15.0)
    assert rings(acts) == [(1, "mobile")]


def test_member_busy_when_the_retry_is_due_is_not_rung_until_free():
    st, _ = start_ring([M(1)], pol("simultaneous", timeout=60), 0.0)
    st, _ = next_actions(st, 1.0, [BridgeRefused(member_id=1, target="desk")])
    st, acts = next_actions(st, 2.0, [MemberChanged(member=M(1, busy=True))])
    assert acts == []
    st, acts = next_actions(st, 6.0)
    assert acts == []
    st, acts = next_actions(st, 20.0, [MemberChanged(member=M(1))])
    assert rings(acts) == [(1, "desk")]


def test_answer_after_a_retry_finishes_the_ring():
    st, _ = start_ring([M(1), M(2, registered=False)], pol("cascade", step=5, timeout=60), 0.0)
    st, _ = next_actions(st, 1.0, [BridgeRefused(member_id=1, target="desk")])
    st, acts = next_actions(st, 6.0)
    assert rings(acts) == [(1, "desk")]
    st, acts = next_actions(st, 7.0, [Answered(member_id=1, target="desk")])
    assert st.done and st.answered_by == 1 and acts == []


def test_random_refusals_keep_the_machine_consistent():
    rnd = random.Random(5)
    for _ in range(300):
        n = rnd.randint(1, 4)
        members = [M(i, registered=rnd.random() < 0.8, busy=rnd.random() < 0.2) for i in range(n)]
        p = pol(rnd.choice(["simultaneous", "evenly", "in_order", "cascade"]), step=rnd.choice([4, 10]),
                timeout=40, retry=rnd.choice([1, 3, 5]))
        now = 0.0
        st, acts = start_ring(members, p, now)
        ringing = set()
        last_offer: dict = {}
        refused_at: dict = {}
        for _step in range(80):
            for a in acts:
                if isinstance(a, Ring):
                    leg = (a.member_id, a.target)
                    assert leg not in ringing
                    if leg in refused_at:  # never re-offered sooner than the retry delay after a refusal
                        assert now - refused_at[leg] >= p.refused_retry_s - 1e-9
                    assert now < p.ring_timeout_s
                    ringing.add(leg)
                    last_offer[leg] = now
                elif isinstance(a, Stop):
                    ringing.remove((a.member_id, a.target))
            assert ringing == set(st.ringing)
            if st.done:
                break
            events = []
            if ringing and rnd.random() < 0.4:
                leg = rnd.choice(sorted(ringing, key=str))
                ringing.discard(leg)
                refused_at[leg] = now
                events.append(BridgeRefused(member_id=leg[0], target=leg[1]))
            dl = next_deadline(st)
            assert dl is not None and dl > now - 1e-9
            now = min(dl, now + rnd.choice([0.0, 0.5, 2.0]))
            st, acts = next_actions(st, now, events)
