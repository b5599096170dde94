"""HistoryWriter with a row PostgreSQL refuses for its content: kept for the operator, never retried,
and it neither marks the database down nor holds back the spool's other rows."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

from fsd.calls.history import HistoryWriter
from tests.calls.harness import tmpdir
from tests.faults.support import Company


def _row(co, **kw) -> dict:
    now = datetime.now(UTC)
    return {"tenant_id": co.tid, "call_uuid": str(uuid.uuid4()), "direction": "inbound", "caller": "79161234567",
            "caller_name": "", "called": "74950000001", "route": "in_hours", "started_at": now, "ended_at": now,
            "wait_s": 1.0, "talk_s": 0.0, "result": "missed", "hangup_cause": "", "node": "n1", **kw}


def _stored(co, call_uuid: str) -> bool:
    return bool(co.rows("SELECT 1 FROM calls WHERE call_uuid = %s", (call_uuid,)))


def _kept(w: HistoryWriter) -> list[str]:
    with open(w.rejected_path, encoding="utf-8") as f:
        return [json.loads(line)["call_uuid"] for line in f]


def test_a_refused_row_is_kept_aside_not_spooled_and_the_database_stays_up(pool):
    co = Company(pool)
    w = HistoryWriter(pool=pool, storage_dir=tmpdir())
    bad = _row(co, result="no such result")  # the calls.result CHECK refuses it
    w.write(bad)
    assert w.rejected == 1 and w.spooled == 0 and w.pending() == 0
    assert w.gate.ok()  # the database is not marked down for a refused row
    assert _kept(w) == [bad["call_uuid"]] and not _stored(co, bad["call_uuid"])
    good = _row(co)
    w.write(good)
    assert _stored(co, good["call_uuid"]) and w.written == 1


def test_a_refused_row_in_the_spool_does_not_hold_back_the_others(pool):
    co = Company(pool)
    w = HistoryWriter(pool=pool, storage_dir=tmpdir())
    bad, good = _row(co, wait_s=-5.0), _row(co)  # wait_s >= 0 is a CHECK
    w._spool(bad, "test: written while the database was down")
    w._spool(good, "test: written while the database was down")
    assert w.pending() == 2
    assert w.flush() == 1
    assert _stored(co, good["call_uuid"]) and not _stored(co, bad["call_uuid"])
    assert _kept(w) == [bad["call_uuid"]]
    assert not os.path.exists(w.spool_path) and w.flush() == 0
