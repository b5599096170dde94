"""The database breaker on the reservation path (fsd.calls.members.MemberBoard with fsd.calls.dbgate.DbGate):
a reservation is granted only by PostgreSQL. A slow database (a reservation query slower than the statement
timeout, no pooled connection free in time) is not an outage: the member is refused for now and offered as
soon as the database says it is free. Only an unreachable database lets a process reserve on its own, and
those reservations are written to the database once it answers again."""

from __future__ import annotations

import re
from types import SimpleNamespace

import gevent
import psycopg2
import psycopg2.extras

from fsd.calls.dbgate import DbGate
from fsd.calls.members import OTHER, MemberBoard
from fsd.store import calls_repo
from fsd.store.pool import Pool
from tests.faults.support import Company, TcpProxy
from tests.helpers import wait_for


def _board(pool, node: str = "fsd-2") -> MemberBoard:
    return MemberBoard(pool=pool, node=node, clock=SimpleNamespace(), poll_interval_s=0.05,
                       gate=DbGate(hold_s=0.5))


def _rows(pool):
    with pool.transaction() as cur:
        return calls_repo.reserved_members(cur)


def test_a_reservation_query_slower_than_the_timeout_is_refused_not_reserved_locally(pool, db_dsn):
    (m,) = [Company(pool).employee("Maria Ivanova", "201").id]
    other = psycopg2.connect(db_dsn, cursor_factory=psycopg2.extras.RealDictCursor)
    slow_pool = Pool(dsn=db_dsn, maxconn=2, statement_timeout_ms=200)
    board = _board(slow_pool)
    try:
        # another fsd is reserving Maria: its transaction holds her row, ours waits past the statement timeout
        with other.cursor() as cur:
            assert calls_repo.reserve(cur, [m], call_uuid="their-call", node="fsd-1", ttl_s=900) == {m}
        assert board.reserve("my-call", [m]) == set()
        assert m not in board.local and board.reserved[m] == OTHER  # held by a call we do not know
        assert not board.gate.unreachable() and not board.gate.ok()
        assert board.refused_slow == 1 and board.local_only == 0
        assert board.reserve("my-call", [m]) == set()  # asked again at once: still refused, still not local
        other.commit()  # their reservation stands
        assert _rows(pool) == {m: "their-call"}

        freed = []
        board.watch([m], freed.append)
        board.start()
        gevent.sleep(0)
        assert board.busy(m, "my-call")
        with other.cursor() as cur:
            calls_repo.release(cur, [m], call_uuid="their-call")
        other.commit()
        wait_for(lambda: freed, timeout=10, message="the poller frees Maria once the database says so")
        assert board.reserve("my-call", [m]) == {m}
        assert _rows(pool) == {m: "my-call"}
    finally:
        board.stop()
        other.close()
        slow_pool.close()


def test_no_database_connection_free_in_time_is_refused_not_reserved_locally(pool, db_dsn):
    (m,) = [Company(pool).employee("Maria Ivanova", "201").id]
    tiny = Pool(dsn=db_dsn, maxconn=1, checkout_timeout_s=0.1)
    board = _board(tiny)
    try:
        with tiny.connection():  # every connection busy (a loaded process)
            assert board.reserve("my-call", [m]) == set()
        assert m not in board.local and not board.gate.unreachable()
        assert _rows(pool) == {}
        board.start()
        wait_for(lambda: board.gate.ok() and not board.busy(m, "my-call"), timeout=10,
                 message="the poller reopens the gate and frees Maria")
        assert board.reserve("my-call", [m]) == {m}
        assert _rows(pool) == {m: "my-call"}
    finally:
        board.stop()
        tiny.close()


def test_an_unreachable_database_reserves_locally_and_writes_it_back(pool, db_dsn):
    anna, boris = (Company(pool).employee(n, e).id for n, e in (("Anna Ivanova", "201"), ("Boris Petrov", "202")))
    port = int(re.search(r"port=(\d+)", db_dsn).group(1))
    proxy = TcpProxy(port)
    via = Pool(dsn=re.sub(r"host=\S+ port=\d+", f"host=127.0.0.1 port={proxy.port}", db_dsn), maxconn=4,
               connect_timeout_s=1, checkout_timeout_s=1)
    board = _board(via)
    try:
        board.start()
        assert board.reserve("call-a", [anna]) == {anna}  # through the database
        proxy.cut()
        assert board.reserve("call-b", [boris]) == {boris}  # PostgreSQL unreachable: this process alone
        assert board.gate.unreachable() and board.local_only == 1
        assert _rows(pool) == {anna: "call-a"}
        board.talk("call-b", boris)  # Boris answers during the outage: the conversation TTL follows
        proxy.restore()
        wait_for(lambda: _rows(pool).get(boris) == "call-b", timeout=10,
                 message="the local reservation written to the database")
        with pool.transaction() as cur:
            cur.execute("SELECT expires_at > now() + interval '1 hour' AS long FROM reservations "
                        "WHERE employee_id = %s", (boris,))
            assert cur.fetchone()["long"]
        board.release("call-b", [boris])
        board.release("call-a", [anna])
        wait_for(lambda: _rows(pool) == {}, timeout=10, message="both released in the database")
    finally:
        board.stop()
        proxy.stop()
        via.close()


def test_a_member_refused_for_slowness_is_reserved_locally_once_the_database_is_unreachable(pool, db_dsn):
    (m,) = [Company(pool).employee("Maria Ivanova", "201").id]
    port = int(re.search(r"port=(\d+)", db_dsn).group(1))
    proxy = TcpProxy(port)
    via = Pool(dsn=re.sub(r"host=\S+ port=\d+", f"host=127.0.0.1 port={proxy.port}", db_dsn), maxconn=1,
               connect_timeout_s=1, checkout_timeout_s=0.1)
    board = _board(via)
    try:
        with via.connection():  # slow first: no connection free
            assert board.reserve("my-call", [m]) == set()
        freed = []
        board.watch([m], freed.append)
        proxy.cut()  # then gone
        board.start()
        wait_for(lambda: freed, timeout=10, message="Maria free to this process once the database is unreachable")
        assert board.gate.unreachable()
        assert board.reserve("my-call", [m]) == {m}
        assert board.local_only == 1
    finally:
        board.stop()
        proxy.stop()
        via.close()


def test_a_queued_release_never_deletes_the_row_its_call_reserved_again_during_the_poll(pool, monkeypatch):
    """The poller writes queued releases in its own transaction and yields between statements: a call that
    reserves the member again in that window holds it, so the queued DELETE must not take its row away
    (seen at 80 callers in flight: UPDATE by the call, then the old release's DELETE, then its legs rang
    a member another fsd had reserved meanwhile)."""
    (m,) = [Company(pool).employee("Maria Ivanova", "201").id]
    board = _board(pool)
    assert board.reserve("call-1", [m]) == {m}
    board._pending_release.append((m, "call-1"))  # a release the database could not take at once
    board.local.pop(m)
    board.reserved.pop(m)
    real = calls_repo.reserved_members
    again = []

    def reserved_then_reserve_again(cur):
        out = real(cur)
        g = gevent.spawn(board.reserve, "call-1", [m])  # the same call reserves her again meanwhile
        again.append(g)
        g.join(timeout=0.3)  # (with the member locked by the poll it gets in only after the poll's DELETE)
        return out

    monkeypatch.setattr(calls_repo, "reserved_members", reserved_then_reserve_again)
    board.poll_once()
    again[0].join(timeout=5)
    assert again[0].value == {m}
    assert board.local.get(m) == "call-1"
    assert _rows(pool) == {m: "call-1"}, "the row of the new reservation must stay"


def test_a_release_never_deletes_the_row_its_call_renewed_while_the_release_waited(pool, monkeypatch):
    """A leg's end releases the member from one greenlet while the call's own greenlet reserves her again
    (seen at 120 callers in flight: the release waited for a pooled connection, the reserve renewed the row,
    then the release's DELETE removed it and the call rang her without a reservation)."""
    (m,) = [Company(pool).employee("Maria Ivanova", "201").id]
    board = _board(pool)
    assert board.reserve("call-1", [m]) == {m}
    real = calls_repo.release
    again = []

    def reserve_first_then_release(cur, ids, *, call_uuid):
        g = gevent.spawn(board.reserve, "call-1", [m])  # the call reserves her again meanwhile
        again.append(g)
        g.join(timeout=0.3)  # with the member locked it cannot get in before the DELETE
        return real(cur, ids, call_uuid=call_uuid)

    monkeypatch.setattr(calls_repo, "release", reserve_first_then_release)
    board.release("call-1", [m])
    assert board.wait_releases(timeout=5)  # the DELETE runs in its own greenlet
    again[0].join(timeout=5)
    assert again[0].value == {m}
    assert board.local.get(m) == "call-1"
    assert _rows(pool) == {m: "call-1"}, "the renewed reservation must stay"
