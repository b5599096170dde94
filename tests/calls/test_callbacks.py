"""The callback worker: member first, then the customer through the trunk, bridged; retries."""

from __future__ import annotations

import pytest

from fsd.sim import Answer, Busy, NoAnswer
from fsd.store import calls_repo
from tests.calls.harness import World, call, phone
from tests.helpers import wait_for


def _request(w, dept, caller, *, attempts=3):
    with w.pool.transaction() as cur:
        return calls_repo.callback_insert(cur, tenant_id=w.tid, department_id=dept.id, number_id=None, caller=caller,
                                          position=1, origin_call_uuid="origin-" + caller, max_attempts=attempts,
                                          interval_s=10, next_attempt_at=_now(w))


def _now(w):
    return w.rows("SELECT now() AS t")[0]["t"]


def _cb(w, cid):
    with w.pool.transaction() as cur:
        return calls_repo.callback_get(cur, cid)


def test_callback_rings_member_first_then_customer_and_bridges(pool, node):
    w = World(pool)
    w.number(dest_kind="voicemail", did="+74951110000", is_main=True)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a])
    pa = phone(node, w, a, Answer(after=2))
    cust = node.trunk.endpoint_for("79161230001")
    cust.behaviour, cust.hangup_after = Answer(after=3), 10
    cid = _request(w, dept, "79161230001")
    wait_for(lambda: _cb(w, cid)["status"] == "completed", timeout=15, message="callback completed")
    cb = _cb(w, cid)
    assert cb["attempts"] == 1 and cb["employee_id"] == a.id and cb["finished_at"] is not None
    m, c = node.switch.channel(pa.calls[0]), node.switch.channel(cust.calls[0])
    assert m.created_us < c.created_us and m.times["Channel-Answered-Time"] < c.created_us  # member first
    assert m.get_var("origination_caller_id_number") == "79161230001"  # the member sees whom they call
    assert c.get_var("origination_caller_id_number") == "74951110000"  # the customer sees the company number
    assert any(e.kind == "api" and e.text.startswith(f"uuid_broadcast {m.uuid}")
               and "callback_member_announce" in e.text for e in node.switch.log)
    rows = wait_for(lambda: w.rows("SELECT * FROM calls WHERE direction = 'callback'"), message="history")
    assert rows[0]["result"] == "callback_completed" and rows[0]["answered_by"] == a.id
    assert float(rows[0]["talk_s"]) == pytest.approx(10, abs=3)
    assert node.metrics.callbacks.labels("completed")._value.get() == 1
    wait_for(lambda: not w.rows("SELECT * FROM reservations"), message="member released")


def test_callback_retries_then_fails(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a])
    pa = phone(node, w, a, Answer(after=1))
    cust = node.trunk.endpoint_for("79161230002")
    cust.behaviour = Busy()
    cid = _request(w, dept, "79161230002", attempts=3)
    wait_for(lambda: _cb(w, cid)["status"] == "failed", timeout=20, message="callback failed")
    cb = _cb(w, cid)
    assert cb["attempts"] == 3 and "USER_BUSY" in cb["last_error"]
    assert len(cust.calls) == 3 and len(pa.calls) == 3
    starts = [node.switch.channel(u).created_us / 1e6 for u in cust.calls]
    assert all(b - a_ >= 9.5 for a_, b in zip(starts, starts[1:], strict=False))  # 10 s apart
    assert node.metrics.callbacks.labels("retry")._value.get() == 2
    assert node.metrics.callbacks.labels("failed")._value.get() == 1
    # history rows go through the history writer (flushed in the background): wait for the third attempt's
    wait_for(lambda: len(w.rows("SELECT 1 FROM calls WHERE direction = 'callback'")) >= 3, timeout=10,
             message="three callback history rows")
    assert [r["result"] for r in w.rows("SELECT result FROM calls WHERE direction = 'callback'")] == \
        ["callback_failed"] * 3


def test_offer_callback_end_to_end(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a], ring_timeout=120, impatient_enabled=True, impatient_threshold=20)
    num = w.number(dest_kind="department", dest_department_id=dept.id, is_main=True)
    pa = phone(node, w, a, NoAnswer())
    cust = node.trunk.endpoint_for("79161230003")
    cust.behaviour, cust.hangup_after = Answer(after=2), 5
    ch = call(node, num.did, caller="79161230003", prompt_digits=["1"])
    cbs = wait_for(lambda: w.rows("SELECT * FROM callbacks WHERE origin_call_uuid = %s", (ch.uuid,)),
                   message="callback request")
    pa.behaviour = Answer(after=2)
    wait_for(lambda: _cb(w, cbs[0]["id"])["status"] == "completed", timeout=20, message="callback completed")
    assert w.history(ch.uuid)["result"] == "callback_requested"


def test_pending_callback_cancelled_when_the_customer_gets_through(pool, node):
    from datetime import timedelta

    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a])
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    phone(node, w, a, Answer(after=2))
    with w.pool.transaction() as cur:
        cid = calls_repo.callback_insert(cur, tenant_id=w.tid, department_id=dept.id, number_id=None,
                                         caller="79161230009", position=1, origin_call_uuid="o", max_attempts=3,
                                         interval_s=10, next_attempt_at=_now(w) + timedelta(days=1))
    ch = call(node, num.did, caller="79161230009", hangup_after=10)
    wait_for(lambda: w.history(ch.uuid), message="history row")
    cb = _cb(w, cid)
    assert cb["status"] == "cancelled" and cb["finished_at"] is not None
    assert node.metrics.callbacks.labels("cancelled")._value.get() == 1
