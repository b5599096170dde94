"""The reservation SQL (fsd.store.calls_repo.reserve) under concurrent transactions from two pools, as two
fsd processes run it: a member is held by one call at a time, overlapping sets never deadlock, an expired
reservation is taken over by exactly one call."""

from __future__ import annotations

import random
import uuid

import gevent
import gevent.event
import psycopg2
import psycopg2.extras
import pytest

from fsd.errors import StoreError
from fsd.store import calls_repo
from fsd.store.pool import Pool, PoolTimeout
from tests.faults.support import Company
from tests.helpers import free_port, wait_for


def _members(pool, n: int) -> list[int]:
    co = Company(pool, max_users=n + 5)
    return [co.employee(f"Member {i}", str(2000 + i)).id for i in range(n)]


def _conn(dsn):
    c = psycopg2.connect(dsn, cursor_factory=psycopg2.extras.RealDictCursor)
    return c


def _waiting_on_lock(pool, app_pid: int) -> bool:
    with pool.transaction() as cur:
        cur.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (app_pid,))
        r = cur.fetchone()
        return bool(r) and r["wait_event_type"] == "Lock"


@pytest.mark.parametrize("unit", ["transaction", "autocommit"])
def test_two_pools_never_hold_a_member_for_two_calls_at_once(pool, db_dsn, unit):
    """Both units of work: the call driver runs reserve/release through Pool.autocommit(), where they
    are server-side prepared statements (fsd.store.prepared); the poller runs them in transactions."""
    members = _members(pool, 12)
    pools = [Pool(dsn=db_dsn, maxconn=6), Pool(dsn=db_dsn, maxconn=6)]
    holder: dict[int, str] = {}
    violations: list[tuple[int, str, str]] = []
    grants = [0]

    def worker(p: Pool, seed: int):
        rnd = random.Random(seed)  # noqa: S311 - test data
        for _ in range(25):
            call = str(uuid.uuid4())
            want = rnd.sample(members, rnd.randint(1, 6))  # overlapping sets, each in its own order
            with getattr(p, unit)() as cur:
                got = calls_repo.reserve(cur, want, call_uuid=call, node=f"n{seed % 2}", ttl_s=900)
            assert got <= set(want)
            for e in got:
                if e in holder:
                    violations.append((e, holder[e], call))
                holder[e] = call
                grants[0] += 1
            gevent.sleep(rnd.random() * 0.005)
            for e in got:
                if holder.get(e) == call:
                    del holder[e]
            with getattr(p, unit)() as cur:
                assert calls_repo.release(cur, sorted(got), call_uuid=call) == len(got)

    try:
        jobs = [gevent.spawn(worker, pools[i % 2], i) for i in range(10)]
        gevent.joinall(jobs, timeout=60, raise_error=True)
        assert all(j.dead for j in jobs)
    finally:
        for p in pools:
            p.close()
    assert not violations, violations[:5]
    assert grants[0] >= 50  # the workers did get members, not only refusals
    with pool.transaction() as cur:
        assert calls_repo.reserved_members(cur) == {}


def test_overlapping_sets_in_opposite_orders_do_not_deadlock(pool, db_dsn):
    a, b = _members(pool, 2)
    c1, c2 = _conn(db_dsn), _conn(db_dsn)
    try:
        with c1.cursor() as cur1:
            assert calls_repo.reserve(cur1, [a], call_uuid="call-1", node="n1", ttl_s=900) == {a}
            # call-2 asks for b then a while call-1's transaction holds a: it must wait on a before it takes b
            result = gevent.event.AsyncResult()

            def second():
                try:
                    with c2.cursor() as cur2:
                        got = calls_repo.reserve(cur2, [b, a], call_uuid="call-2", node="n2", ttl_s=900)
                    c2.commit()
                    result.set(got)
                except Exception as e:
                    result.set_exception(e)

            g = gevent.spawn(second)
            wait_for(lambda: _waiting_on_lock(pool, c2.get_backend_pid()), timeout=10,
                     message="call-2 waiting for call-1's row")
            # call-1 now wants b too (as a ring policy adds a member): no deadlock, call-1 gets it
            assert calls_repo.reserve(cur1, [b], call_uuid="call-1", node="n1", ttl_s=900) == {b}
        c1.commit()
        assert result.get(timeout=10) == set()
        g.join(timeout=5)
    finally:
        c1.close()
        c2.close()
    with pool.transaction() as cur:
        assert calls_repo.reserved_members(cur) == {a: "call-1", b: "call-1"}


def test_an_expired_reservation_is_taken_over_by_exactly_one_call(pool, db_dsn):
    (m,) = _members(pool, 1)
    with pool.transaction() as cur:
        assert calls_repo.reserve(cur, [m], call_uuid="dead", node="gone", ttl_s=900) == {m}
        cur.execute("UPDATE reservations SET expires_at = now() - interval '1 second'")
    c1, c2 = _conn(db_dsn), _conn(db_dsn)
    try:
        with c1.cursor() as cur1:
            assert calls_repo.reserve(cur1, [m], call_uuid="call-1", node="n1", ttl_s=900) == {m}
            result = gevent.event.AsyncResult()

            def second():
                with c2.cursor() as cur2:
                    got = calls_repo.reserve(cur2, [m], call_uuid="call-2", node="n2", ttl_s=900)
                c2.commit()
                result.set(got)

            gevent.spawn(second)
            wait_for(lambda: _waiting_on_lock(pool, c2.get_backend_pid()), timeout=10,
                     message="call-2 waiting for call-1's takeover")
        c1.commit()
        assert result.get(timeout=10) == set()  # re-checked against call-1's committed, live row
    finally:
        c1.close()
        c2.close()
    with pool.transaction() as cur:
        assert calls_repo.reserved_members(cur) == {m: "call-1"}


def test_duplicate_ids_in_one_request_are_reserved_once(pool):
    a, b = _members(pool, 2)
    with pool.transaction() as cur:
        assert calls_repo.reserve(cur, [b, a, b, a], call_uuid="c", node="n", ttl_s=900) == {a, b}
        assert calls_repo.reserve(cur, [a, a], call_uuid="c", node="n", ttl_s=900) == {a}  # already held


# -- which failures are an outage ----------------------------------------------------------------------
def test_a_refused_connection_is_unreachable(db_dsn):
    dead = Pool(dsn=f"host=127.0.0.1 port={free_port()} dbname=x user=postgres", maxconn=1, connect_timeout_s=1)
    with pytest.raises(StoreError) as ei:
        with dead.transaction() as cur:
            cur.execute("SELECT 1")
    assert calls_repo.db_unreachable(ei.value)


def test_a_statement_timeout_is_slow_not_unreachable(db_dsn):
    slow = Pool(dsn=db_dsn, maxconn=1, statement_timeout_ms=50)
    try:
        with pytest.raises(StoreError) as ei:
            with slow.transaction() as cur:
                cur.execute("SELECT pg_sleep(2)")
        assert not calls_repo.db_unreachable(ei.value)
    finally:
        slow.close()


def test_no_free_connection_is_slow_not_unreachable(db_dsn):
    small = Pool(dsn=db_dsn, maxconn=1, checkout_timeout_s=0.05)
    try:
        with small.connection():
            with pytest.raises(PoolTimeout) as ei:
                with small.transaction():
                    pass
        assert not calls_repo.db_unreachable(ei.value)
    finally:
        small.close()


def test_a_lost_connection_is_unreachable(pool, db_dsn):
    p = Pool(dsn=db_dsn, maxconn=1)
    try:
        with p.transaction() as cur:
            cur.execute("SELECT pg_backend_pid() AS pid")
            pid = cur.fetchone()["pid"]
        with pool.transaction() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreError) as ei:
            with p.transaction() as cur:
                cur.execute("SELECT 1")
        assert calls_repo.db_unreachable(ei.value)
    finally:
        p.close()
