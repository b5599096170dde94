"""Ring strategies, member skipping and cross-call reservation, over the emulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import gevent

from fsd.sim import Answer, NoAnswer, Unregistered
from tests.calls.harness import World, call, originated_at, phone
from tests.calls.harness import history_row as _row
from tests.helpers import wait_for


def _leg(node, p, i=0):
    return node.switch.channel(p.calls[i])


def _t(us):
    return us / 1e6


def _setup(pool, strategy, behaviours, step=10, ring_timeout=120):
    w = World(pool)
    emps = [w.employee(f"Member {chr(65 + i)}", str(201 + i)) for i in range(len(behaviours))]
    dept = w.department("Support", emps, strategy=strategy, step_delay=step, ring_timeout=ring_timeout)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    return w, emps, dept, num


def test_in_order_one_at_a_time_previous_stops(pool, slow_node):
    w, emps, dept, num = _setup(pool, "in_order", [0, 1, 2])
    pa = phone(slow_node, w, emps[0], NoAnswer())
    pb = phone(slow_node, w, emps[1], NoAnswer())
    pc = phone(slow_node, w, emps[2], Answer(after=2))
    ch = call(slow_node, num.did, hangup_after=60)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == emps[2].id
    la, lb, lc = _leg(slow_node, pa), _leg(slow_node, pb), _leg(slow_node, pc)
    # b is rung when a's slot ends (10 s) and a stops then; c likewise 10 s later
    oa, ob, oc = (originated_at(slow_node, leg.uuid) for leg in (la, lb, lc))
    assert 9.5 <= ob - oa <= 14
    assert _t(la.times["Channel-Hangup-Time"]) <= _t(lb.created_us) + 1.0
    assert 9.5 <= oc - ob <= 14
    assert _t(lb.times["Channel-Hangup-Time"]) <= _t(lc.created_us) + 1.0
    assert len(pa.calls) == len(pb.calls) == len(pc.calls) == 1


def test_cascade_earlier_members_keep_ringing(pool, slow_node):
    w, emps, dept, num = _setup(pool, "cascade", [0, 1])
    pa = phone(slow_node, w, emps[0], NoAnswer())
    pb = phone(slow_node, w, emps[1], Answer(after=5))
    ch = call(slow_node, num.did, hangup_after=60)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == emps[1].id
    la, lb = _leg(slow_node, pa), _leg(slow_node, pb)
    assert 8.5 <= originated_at(slow_node, lb.uuid) - originated_at(slow_node, la.uuid) <= 14
    # a was still ringing when b joined, and stopped only when b answered
    assert _t(la.times["Channel-Hangup-Time"]) >= _t(lb.times["Channel-Answered-Time"]) - 0.5


def test_evenly_longest_idle_first(pool, node):
    w, emps, dept, num = _setup(pool, "evenly", [0, 1])
    now = datetime.now(UTC)
    w.rows("UPDATE employees SET last_call_ended_at = %s WHERE id = %s RETURNING id", (now, emps[0].id))
    w.rows("UPDATE employees SET last_call_ended_at = %s WHERE id = %s RETURNING id",
           (now - timedelta(hours=1), emps[1].id))
    node.driver.invalidate()
    pa = phone(node, w, emps[0], Answer(after=2))
    pb = phone(node, w, emps[1], Answer(after=2))
    ch = call(node, num.did, hangup_after=20)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == emps[1].id
    assert len(pb.calls) == 1 and len(pa.calls) == 0
    # b's call ending makes a the longest idle: the next call goes to a
    ch2 = call(node, num.did, hangup_after=20)
    row2 = _row(w, ch2.uuid)
    assert row2["answered_by"] == emps[0].id, (row2["route"], node.driver.board.last_call)


def test_unregistered_member_without_forwarding_is_skipped(pool, node):
    w, emps, dept, num = _setup(pool, "in_order", [0, 1])
    phone(node, w, emps[0], Unregistered())
    pb = phone(node, w, emps[1], Answer(after=2))
    wait_for(lambda: node.driver.registration_tables_read, message="registration table read")
    ch = call(node, num.did, hangup_after=30)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == emps[1].id, dict(row)
    # fsd knows a is not registered (the switch's registration table): a is never originated, b rings at once
    assert not [e for e in node.switch.log if e.kind == "api" and e.text.startswith("originate")
                and "user/201@" in e.text]
    assert len(pb.calls) == 1


def test_member_whose_registration_lapsed_unseen_is_skipped_after_the_failed_originate(pool, node):
    w, emps, dept, num = _setup(pool, "in_order", [0, 1])
    pa = phone(node, w, emps[0], Answer(after=2))
    pb = phone(node, w, emps[1], Answer(after=2))
    wait_for(lambda: node.driver.board.is_registered(emps[0].id) and node.driver.registration_tables_read,
             message="a registered")
    pa.registered = False  # the registration is gone and fsd saw no event of it: only the originate tells
    ch = call(node, num.did, hangup_after=30)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == emps[1].id, dict(row)
    # b was rung at once after a's originate failed, not after a's 10 s slot
    ta = _originated(node, "user/201@")
    tb = _originated(node, "user/202@")
    assert 0 <= tb - ta < 5.0
    assert len(pb.calls) == 1
    assert node.driver.board.is_registered(emps[0].id) is False


def _originated(node, needle):
    return next(e.t for e in node.switch.log if e.kind == "api" and e.text.startswith("originate")
                and needle in e.text)


def test_member_never_offered_two_calls_at_once(pool, node):
    w, emps, dept, num = _setup(pool, "simultaneous", [0], ring_timeout=300)
    pa = phone(node, w, emps[0], Answer(after=5), hangup_after=10)
    ch1 = call(node, num.did, hangup_after=200)
    ch2 = call(node, num.did, caller="79160000002", hangup_after=200)
    overlaps = []

    def watch():
        while True:
            live = [c for c in node.switch.channels_by_uuid.values()
                    if c.direction == "outbound" and not c.hungup.is_set() and c.uuid in pa.calls]
            if len(live) > 1:
                overlaps.append(len(live))
            gevent.sleep(0.002)

    g = gevent.spawn(watch)
    try:
        r1 = _row(w, ch1.uuid, timeout=20)
        r2 = _row(w, ch2.uuid, timeout=20)
    finally:
        g.kill()
    assert r1["answered_by"] == emps[0].id and r2["answered_by"] == emps[0].id
    assert len(pa.calls) == 2
    assert not overlaps


def test_member_who_hangs_up_as_they_answer_does_not_lose_the_caller(pool, node):
    """A member answers and hangs up at once (before fsd can bridge): uuid_bridge fails, the caller keeps
    waiting (ring-back again) and the next member is rung and bridged - the caller is never hung up on."""
    w, emps, dept, num = _setup(pool, "in_order", [0, 1], step=10)
    pa = phone(node, w, emps[0], Answer(after=1), hangup_after=0)
    pb = phone(node, w, emps[1], Answer(after=1), hangup_after=5)
    ch = call(node, num.did, hangup_after=60)
    row = _row(w, ch.uuid, timeout=20)
    assert row["result"] == "answered" and row["answered_by"] == emps[1].id
    assert row["route"] == f"in_hours>department:{dept.id}>bridge_failed>answered:{emps[1].id}:desk"
    la, lb = _leg(node, pa), _leg(node, pb)
    assert la.times["Channel-Answered-Time"] and lb.created_us > la.times["Channel-Answered-Time"]
    assert lb.get_var("bridge_uuid") == ch.uuid or lb.get_var("last_bridge_to") == ch.uuid
    # back in the queue the caller heard the ring-back again and kept socket_resume on until the real bridge
    ringbacks = [e for e in node.switch.events if e.uuid == ch.uuid and e.name == "CHANNEL_EXECUTE"
                 and e.get("Application") == "endless_playback"]
    assert len(ringbacks) == 2
    setvars = [e.text for e in node.switch.log if e.kind == "api" and e.text.startswith(f"uuid_setvar {ch.uuid}")]
    assert setvars == [f"uuid_setvar {ch.uuid} socket_resume false", f"uuid_setvar {ch.uuid} socket_resume true",
                       f"uuid_setvar {ch.uuid} socket_resume false"]
    wait_for(lambda: not w.rows("SELECT * FROM reservations"), message="members released")
