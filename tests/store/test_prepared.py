"""fsd.store.prepared: the hot statements of a call as server-side prepared statements, prepared once per
pooled connection, through Pool.autocommit() only; plain SQL in transactions and with Pool(prepare=False)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from fsd.errors import StoreError
from fsd.store import calls_repo
from fsd.store.pool import Pool
from fsd.store.prepared import Statement, run
from tests.faults.support import Company


@pytest.fixture
def one(db_dsn):
    """A pool of one connection: every unit of work gets the same session (until it is discarded)."""
    p = Pool(dsn=db_dsn, maxconn=1)
    yield p
    p.close()


def _prepared(cur) -> set[str]:
    """The prepared statements of the session ``cur`` belongs to, as the server reports them."""
    cur.execute("SELECT name FROM pg_prepared_statements")
    return {r["name"] for r in cur.fetchall()}


def _members(pool, n: int) -> list[int]:
    co = Company(pool, max_users=n + 5)
    return [co.employee(f"Member {i}", str(2000 + i)).id for i in range(n)]


def _history_row(tenant_id: int, call_uuid: str, **kw) -> dict:
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    row = {"tenant_id": tenant_id, "call_uuid": call_uuid, "direction": "inbound", "caller": "+79161234567",
           "caller_name": "", "called": "+74950000001", "number_id": None, "route": "in_hours>department:1",
           "department_id": None, "employee_id": None, "answered_by": None, "started_at": t0,
           "answered_at": None, "ended_at": t0 + timedelta(seconds=7), "wait_s": 7.25, "talk_s": 0.0,
           "result": "abandoned", "hangup_cause": "NORMAL_CLEARING", "node": "fsd-1"}
    row.update(kw)
    return row


def test_hot_statements_are_prepared_once_per_connection_and_give_the_same_results(one):
    a, b = _members(one, 2)
    with one.autocommit() as cur:
        assert calls_repo.reserve(cur, [b, a], call_uuid="c1", node="n1", ttl_s=900) == {a, b}
        pid = cur.connection.get_backend_pid()
        assert _prepared(cur) == {"fsd_reserve"}
    with one.autocommit() as cur:
        assert calls_repo.reserve(cur, [a], call_uuid="c2", node="n2", ttl_s=900) == set()  # held by c1
        assert calls_repo.reserve(cur, [a], call_uuid="c1", node="n1", ttl_s=900) == {a}  # its own
        assert calls_repo.extend_reservation(cur, a, call_uuid="c1", ttl_s=3600)
        assert not calls_repo.extend_reservation(cur, a, call_uuid="c2", ttl_s=3600)
        calls_repo.employee_call_ended(cur, a, datetime(2026, 3, 2, 9, 5, tzinfo=UTC))
        assert calls_repo.release(cur, [a], call_uuid="c2") == 0  # one member: not c2's to release
        assert calls_repo.release(cur, [a, b], call_uuid="c2") == 0
        assert calls_repo.release(cur, [a, b], call_uuid="c1") == 2
        assert cur.connection.get_backend_pid() == pid  # the same session all along
        assert _prepared(cur) == {"fsd_reserve", "fsd_reserve_one", "fsd_extend_reservation",
                                  "fsd_employee_call_ended", "fsd_release_one", "fsd_release"}
        assert cur.connection.prepared == _prepared(cur)
    with one.transaction() as cur:
        assert calls_repo.reserved_members(cur) == {}
        assert calls_repo.last_call_times(cur, [a, b]) == {a: datetime(2026, 3, 2, 9, 5, tzinfo=UTC), b: None}


def test_history_insert_prepared_stores_the_row_once(one):
    co = Company(one)
    row = _history_row(co.tid, "h-1")
    with one.autocommit() as cur:
        assert calls_repo.history_insert(cur, row) is True
        assert calls_repo.history_insert(cur, dict(row, result="missed")) is False  # one row per call
        assert "fsd_history_insert" in _prepared(cur)
    with one.transaction() as cur:
        got = calls_repo.history_get(cur, "h-1")
    for k, v in row.items():
        assert (float(got[k]) if k in ("wait_s", "talk_s") else got[k]) == v, k


def test_a_bad_value_fails_the_prepared_statement_like_the_plain_one(one):
    co = Company(one)
    with pytest.raises(calls_repo.HistoryRowRejected) as refused, one.autocommit() as cur:
        calls_repo.history_insert(cur, _history_row(co.tid, "h-bad", result="no such result"))
    assert isinstance(refused.value.__cause__, psycopg2.errors.CheckViolation)
    with one.autocommit() as cur:  # a fresh connection (the failed one was discarded): prepares again
        assert _prepared(cur) == set()
        assert calls_repo.history_insert(cur, _history_row(co.tid, "h-ok")) is True


def test_transactions_run_the_plain_statements(one):
    (a,) = _members(one, 1)
    with one.transaction() as cur:
        assert calls_repo.reserve(cur, [a], call_uuid="c1", node="n1", ttl_s=900) == {a}
        assert calls_repo.release(cur, [a], call_uuid="c1") == 1
        assert _prepared(cur) == set()


def test_a_session_that_lost_its_statements_prepares_them_again(one):
    (a,) = _members(one, 1)
    with one.autocommit() as cur:
        assert calls_repo.reserve(cur, [a], call_uuid="c1", node="n1", ttl_s=900) == {a}
        pid = cur.connection.get_backend_pid()
        cur.execute("DEALLOCATE ALL")  # as a pooler's reset query (DISCARD ALL) would
    with one.autocommit() as cur:
        assert calls_repo.reserve(cur, [a], call_uuid="c1", node="n1", ttl_s=900) == {a}
        assert calls_repo.release(cur, [a], call_uuid="c1") == 1
        assert cur.connection.get_backend_pid() == pid  # recovered in the same session, not by reconnecting
        assert _prepared(cur) == {"fsd_reserve_one", "fsd_release_one"}


def test_one_statement_deallocated_is_prepared_again_and_the_others_still_run(one):
    (a,) = _members(one, 1)
    with one.autocommit() as cur:
        assert calls_repo.reserve(cur, [a], call_uuid="c1", node="n1", ttl_s=900) == {a}
        assert calls_repo.release(cur, [a], call_uuid="c1") == 1
        cur.execute("DEALLOCATE fsd_reserve_one")
    with one.autocommit() as cur:
        assert calls_repo.reserve(cur, [a], call_uuid="c2", node="n1", ttl_s=900) == {a}  # prepared again
        assert calls_repo.release(cur, [a], call_uuid="c2") == 1  # still prepared on the server
        assert _prepared(cur) == {"fsd_reserve_one", "fsd_release_one"}
        assert cur.connection.prepared == {"fsd_reserve_one", "fsd_release_one"}


def test_a_reconnected_pool_prepares_on_the_new_session(one, pool):
    (a,) = _members(one, 1)
    with one.autocommit() as cur:
        assert calls_repo.reserve(cur, [a], call_uuid="c1", node="n1", ttl_s=900) == {a}
        pid = cur.connection.get_backend_pid()
    with pool.transaction() as cur:  # the server ends the pooled idle session
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreError), one.autocommit() as cur:
        calls_repo.release(cur, [a], call_uuid="c1")
    with one.autocommit() as cur:
        assert cur.connection.get_backend_pid() != pid
        assert calls_repo.release(cur, [a], call_uuid="c1") == 1
        assert _prepared(cur) == {"fsd_release_one"}


def test_prepare_off_runs_plain_sql(db_dsn):
    p = Pool(dsn=db_dsn, maxconn=1, prepare=False)
    try:
        (a,) = _members(p, 1)
        with p.autocommit() as cur:
            assert calls_repo.reserve(cur, [a], call_uuid="c1", node="n1", ttl_s=900) == {a}
            assert calls_repo.release(cur, [a], call_uuid="c1") == 1
            assert _prepared(cur) == set()
    finally:
        p.close()


def test_a_connection_not_from_a_pool_runs_plain_sql(db_dsn):
    conn = psycopg2.connect(db_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            run(cur, Statement(name="fsd_t_plain", sql="SELECT %s::int + %s", types=("int", "int")), (2, 3))
            assert cur.fetchone() == (5,)
            cur.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cur.fetchone() == (0,)
    finally:
        conn.close()


def test_connections_keep_autocommit_between_uses_and_transactions_still_commit_as_a_whole(one):
    with one.autocommit() as cur:
        cur.execute("CREATE TABLE t_mode (id int PRIMARY KEY)")
        assert cur.connection.autocommit is True
    with one.connection() as conn:
        assert conn.autocommit is False
    with pytest.raises(RuntimeError), one.transaction() as cur:
        cur.execute("INSERT INTO t_mode VALUES (1)")
        raise RuntimeError("rolled back")
    with one.autocommit() as cur:
        cur.execute("INSERT INTO t_mode VALUES (2)")
    with one.transaction() as cur:
        cur.execute("SELECT array_agg(id) AS ids FROM t_mode")
        assert cur.fetchone()["ids"] == [2]


def test_statement_definitions_are_checked():
    s = Statement(name="fsd_t_ok", sql="SELECT %s::text, %s", types=("text", "bigint[]"))
    assert s.prepare_sql == "PREPARE fsd_t_ok (text, bigint[]) AS SELECT $1::text, $2"
    assert s.execute_sql == "EXECUTE fsd_t_ok (%s, %s)"
    assert Statement(name="fsd_t_none", sql="SELECT 1", types=()).execute_sql == "EXECUTE fsd_t_none"
    with pytest.raises(ValueError):
        Statement(name="fsd_t_bad", sql="SELECT %s", types=())
    with pytest.raises(ValueError):
        Statement(name="fsd bad name", sql="SELECT 1", types=())
    with pytest.raises(ValueError):
        Statement(name="fsd_t_pct", sql="SELECT 5 %% %s", types=("int",))
