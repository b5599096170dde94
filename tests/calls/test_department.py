"""Department calls end to end over real sockets: fsd/sim + OutboundServer + CallDriver + PostgreSQL."""

from __future__ import annotations

from fsd.sim import Answer, Busy, NoAnswer
from tests.calls.harness import World, call, phone
from tests.calls.harness import history_row as _row
from tests.helpers import wait_for


def test_simultaneous_first_answer_wins_and_one_history_row(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    b = w.employee("Boris Petrov", "202")
    dept = w.department("Sales", [a, b], strategy="simultaneous", ring_timeout=60)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    pa = phone(node, w, a, NoAnswer())
    pb = phone(node, w, b, Answer(after=3))
    ch = call(node, num.did, hangup_after=40)
    row = _row(w, ch.uuid)
    assert row["result"] == "answered"
    assert row["answered_by"] == b.id
    assert row["department_id"] == dept.id
    assert row["direction"] == "inbound"
    assert row["number_id"] == num.id
    assert 2.0 <= float(row["wait_s"]) < 15.0
    assert 20.0 <= float(row["talk_s"]) <= 40.0
    assert len(pa.calls) == 1 and len(pb.calls) == 1
    # both legs rang at once; the loser was stopped
    la = node.switch.channel(pa.calls[0])
    assert la.hungup.is_set()
    assert w.rows("SELECT count(*) AS n FROM calls")[0]["n"] == 1
    # reservations released after the call
    wait_for(lambda: not w.rows("SELECT * FROM reservations"), message="reservations released")


def test_busy_member_is_skipped(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    b = w.employee("Boris Petrov", "202")
    dept = w.department("Sales", [a, b], strategy="simultaneous", ring_timeout=60)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    phone(node, w, a, Busy())
    pb = phone(node, w, b, Answer(after=5))
    ch = call(node, num.did, hangup_after=20)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == b.id and len(pb.calls) == 1


def test_metrics_and_queue_gauges(pool, node):
    from prometheus_client import generate_latest

    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a], ring_timeout=300)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    p = phone(node, w, a, NoAnswer())
    ch = call(node, num.did, hangup_after=60)
    wait_for(lambda: p.calls, message="member rung")
    text = generate_latest(node.metrics.registry).decode()
    assert f'fsd_callers_waiting{{department="{dept.id}"}} 1.0' in text
    assert 'fsd_members{state="ringing"} 1.0' in text
    row = _row(w, ch.uuid)
    assert row["result"] == "abandoned"
    text = generate_latest(node.metrics.registry).decode()
    assert f'fsd_calls_abandoned_total{{department="{dept.id}",tenant="{w.tid}"}} 1.0' in text
    assert 'fsd_calls_total{direction="inbound",result="abandoned"} 1.0' in text
    assert f'fsd_callers_waiting{{department="{dept.id}"}} 0.0' in text
