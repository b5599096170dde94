"""The ring planner's member pick (an ordered walk with early exit) equals its definition: the eligible
member not excluded with the smallest (never had a call first, longest idle, configured order) for
``evenly``, the first in configured order otherwise - also after members change between picks."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fsd.queue.strategy import DepartmentPolicy, Member, RingState, _Work

idle = st.one_of(st.none(), st.sampled_from([1.0, 2.0, 5.0]), st.floats(0, 100, allow_nan=False))
member = st.fixed_dictionaries({"busy": st.booleans(), "registered": st.booleans(), "last": idle,
                                "forward": st.sampled_from(["off", "instant", "delayed"]),
                                "mobile": st.sampled_from([None, "79161234567"])})


def _m(i, d):
    return Member(employee_id=i, busy=d["busy"], registered=d["registered"], last_call_ended_at=d["last"],
                  forward_mode=d["forward"], mobile=d["mobile"])


def _reference(members, strategy, exclude):
    cands = [i for i, m in enumerate(members) if m.eligible and m.employee_id not in exclude]
    if not cands:
        return None
    if strategy == "evenly":
        def key(i):
            t = members[i].last_call_ended_at
            return (t is not None, t if t is not None else 0.0, i)
        return members[min(cands, key=key)].employee_id
    return members[min(cands)].employee_id


@settings(max_examples=200, deadline=None)
@given(st.lists(member, min_size=1, max_size=12), st.sampled_from(["evenly", "in_order", "cascade"]),
       st.lists(st.tuples(st.integers(0, 11), member, st.sets(st.integers(0, 11), max_size=4)), max_size=10))
def test_pick_equals_its_definition_through_changes(specs, strategy, steps):
    members = [_m(i, d) for i, d in enumerate(specs)]
    state = RingState(policy=DepartmentPolicy(strategy=strategy), started_at=0.0, members=tuple(members))
    w = _Work(state)
    assert w.pick_next(set()) == _reference(members, strategy, set())
    for i, d, exclude in steps:
        i %= len(members)
        members[i] = _m(i, d)
        w.replace_member(i, members[i])
        assert w.pick_next(exclude) == _reference(members, strategy, exclude)
        # the order is shared by the frozen state and copied before a change: the old state is untouched
        w = _Work(w.freeze())
    assert state.members == tuple(_m(i, d) for i, d in enumerate(specs))


def test_member_legs_are_computed_once_and_equality_ignores_them():
    a = Member(employee_id=1, forward_mode="delayed", mobile="7916", forward_delay_s=10)
    assert a.legs() == (("desk", 0.0), ("mobile", 10.0)) and a.eligible
    assert Member(employee_id=1, busy=True).legs() == () and not Member(employee_id=1, busy=True).eligible
    assert a == Member(employee_id=1, forward_mode="delayed", mobile="7916", forward_delay_s=10)
