"""A call's history row when what it references was deleted during the call: the reference is recorded
as NULL (the keys are ON DELETE SET NULL, so the row reads as if the delete came just after it), the row
is never lost; a deleted tenant's call is dropped like the tenant's other calls."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fsd.store import calls_repo
from tests.faults.support import Company


def _row(co, **refs) -> dict:
    now = datetime.now(UTC)
    return {"tenant_id": co.tid, "call_uuid": str(uuid.uuid4()), "direction": "inbound", "caller": "79161234567",
            "caller_name": "", "called": "74950000001", "route": "in_hours>department", "started_at": now,
            "ended_at": now, "wait_s": 1.5, "talk_s": 0.0, "result": "missed", "hangup_cause": "", "node": "n1",
            **refs}


def _stored(co, call_uuid: str):
    rows = co.rows("SELECT number_id, department_id, employee_id, answered_by FROM calls WHERE call_uuid = %s",
                   (call_uuid,))
    return dict(rows[0]) if rows else None


def _world(pool):
    co = Company(pool)
    gone, kept = co.employee("Anna", "201"), co.employee("Boris", "202")
    sales, support = co.department("Sales", [gone]), co.department("Support", [kept])
    num = co.number(dest_kind="department", dest_department_id=support.id)
    return co, gone, kept, sales, support, num


def test_references_deleted_during_the_call_are_recorded_as_null(pool):
    co, gone, kept, sales, support, num = _world(pool)
    row = _row(co, number_id=num.id, department_id=sales.id, employee_id=gone.id, answered_by=kept.id)
    co.rows("DELETE FROM departments WHERE id = %s RETURNING id", (sales.id,))
    co.rows("DELETE FROM employees WHERE id = %s RETURNING id", (gone.id,))
    with pool.autocommit() as cur:
        assert calls_repo.history_insert(cur, row) is True
    assert _stored(co, row["call_uuid"]) == {"number_id": num.id, "department_id": None, "employee_id": None,
                                             "answered_by": kept.id}
    with pool.autocommit() as cur:  # the spool's idempotent replay of the same call adds nothing
        assert calls_repo.history_insert(cur, row) is False


def test_a_spool_replay_keeps_every_row_when_one_references_a_deleted_number(pool):
    co, gone, kept, sales, support, num = _world(pool)
    doomed = co.number(dest_kind="department", dest_department_id=support.id)
    first, second = _row(co, number_id=doomed.id), _row(co, number_id=num.id, answered_by=kept.id)
    co.rows("DELETE FROM numbers WHERE id = %s RETURNING id", (doomed.id,))
    with pool.transaction() as cur:  # as HistoryWriter.flush replays its spool
        assert calls_repo.history_insert(cur, first) is True
        assert calls_repo.history_insert(cur, second) is True
    assert _stored(co, first["call_uuid"])["number_id"] is None
    assert _stored(co, second["call_uuid"]) == {"number_id": num.id, "department_id": None, "employee_id": None,
                                                "answered_by": kept.id}


def test_a_call_of_a_deleted_tenant_is_dropped(pool):
    co, gone, kept, sales, support, num = _world(pool)
    row = _row(co, department_id=support.id)
    co.rows("DELETE FROM tenants WHERE id = %s RETURNING id", (co.tid,))
    with pool.autocommit() as cur:
        assert calls_repo.history_insert(cur, row) is False
    assert _stored(co, row["call_uuid"]) is None
