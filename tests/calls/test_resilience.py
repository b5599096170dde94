"""Database outages (history spool, last good configuration) and two fsd processes sharing members."""

from __future__ import annotations

import contextlib
import re

import gevent

from fsd.sim import Answer, NoAnswer
from fsd.store.pool import Pool
from tests.calls.harness import Node, call, tmpdir
from tests.faults.support import Company, TcpProxy, phone_for
from tests.helpers import wait_for


def _via(dsn: str, port: int) -> str:
    return re.sub(r"host=\S+ port=\d+", f"host=127.0.0.1 port={port}", dsn)


@contextlib.contextmanager
def _node(pool, *, hostname: str = "simA", node: str = "n1"):
    n = Node(pool=pool, storage_dir=tmpdir(), hostname=hostname, node=node, callbacks=False)
    try:
        yield n
    finally:
        n.stop()


def _company(pool) -> Company:
    return Company(pool, timezone="UTC", language="en")  # the calls tests' company: English prompts, UTC


def _sales(pool, *names: str, **dept_kw):
    """A company whose number rings one department of `names` (extensions 201, 202, ...)."""
    co = _company(pool)
    staff = [co.employee(name, str(201 + i)) for i, name in enumerate(names)]
    dept = co.department("Sales", staff, **dept_kw)
    return co, staff, co.number(dest_kind="department", dest_department_id=dept.id)


def _talk_and_hang_up(node, member_phone, caller) -> None:
    """Once the caller is bridged to the member, the member hangs up (the caller follows: hangup_after_bridge).

    The member's phone does not hang up by a timer of its own: one counted from its answer would race fsd's
    bridge (on a loaded host the leg could be gone before uuid_bridge reached the switch)."""

    def bridged():
        for u in member_phone.calls:
            leg = node.switch.channel(u)
            if leg is not None and leg.bridged_to is not None and leg.bridged_to.uuid == caller.uuid:
                return leg
        return None

    leg = wait_for(bridged, timeout=15, message="caller bridged to the member")
    leg.hangup("NORMAL_CLEARING", remote=True)
    wait_for(lambda: caller.hungup.is_set(), timeout=15, message="call done")


def test_db_down_calls_route_on_last_config_and_history_is_spooled(pool, db_dsn):
    port = re.search(r"host=\S+ port=(\d+)", db_dsn).group(1)
    proxy = TcpProxy(int(port))  # to PostgreSQL: cut = the database is unreachable
    dpool = Pool(dsn=_via(db_dsn, proxy.port), maxconn=8, connect_timeout_s=1, checkout_timeout_s=2)
    try:
        with _node(dpool) as node:
            co, (a,), num = _sales(pool, "Anna Ivanova")
            p = phone_for(node.switch, co, a, Answer(after=2))
            first = call(node, num.did, hangup_after=200)
            _talk_and_hang_up(node, p, first)
            wait_for(lambda: co.history(first.uuid), message="first row")

            proxy.cut()
            calls = []
            for i in range(3):  # one after another: the one member answers each
                calls.append(call(node, num.did, caller=f"7916000000{i}", hangup_after=200))
                _talk_and_hang_up(node, p, calls[-1])
            # answered on the last good configuration while the database is unreachable
            wait_for(lambda: node.driver.history.pending() == 3, timeout=15, message="spooled")
            assert node.metrics.history_spooled._value.get() == 3
            assert all(co.history(c.uuid) is None for c in calls)
            assert all(node.switch.channel(c.uuid).times["Channel-Answered-Time"] for c in calls)

            proxy.restore()
            rows = wait_for(lambda: [co.history(c.uuid) for c in calls] if all(co.history(c.uuid) for c in calls)
                            else None, timeout=15, message="spool flushed")
            assert {r["result"] for r in rows} == {"answered"}, [(r["route"], r["wait_s"], r["started_at"])
                                                                 for r in rows]
            assert {r["answered_by"] for r in rows} == {a.id}
            assert node.driver.history.pending() == 0
            assert co.rows("SELECT count(*) AS n FROM calls")[0]["n"] == 4
    finally:
        dpool.close()
        proxy.stop()


def test_unknown_number_takes_the_dialplan_fallback(pool):
    with _node(pool) as node:
        _company(pool)
        ch = call(node, "+74990000000")
        wait_for(lambda: ch.hungup.is_set(), message="fallback ran")
        # fsd closed the socket without answering: the switch's fallback (hangup) ran
        assert not ch.times["Channel-Answered-Time"]
        assert node.driver.calls_fallback == 1


def test_two_fsd_processes_never_offer_a_member_two_calls(pool, db_dsn):
    pool2 = Pool(dsn=db_dsn, maxconn=8)
    try:
        with _node(pool, node="fsd-1") as n1, _node(pool2, hostname="simB", node="fsd-2") as n2:
            co, staff, num = _sales(pool, "Anna Ivanova", "Boris Petrov", ring_timeout=300)
            # the same two members' phones are reachable through both switches
            phones = {n: [phone_for(n.switch, co, emp, NoAnswer()) for emp in staff] for n in (n1, n2)}
            overlaps = []

            def ringing(emp_index):
                return sum(1 for n in (n1, n2) for u in phones[n][emp_index].calls
                           if not n.switch.channel(u).hungup.is_set())

            def watch():
                while True:
                    for i in (0, 1):
                        if ringing(i) > 1:
                            overlaps.append(i)
                    gevent.sleep(0.001)

            g = gevent.spawn(watch)
            try:
                c1 = [call(n1, num.did, caller=f"791600001{i}") for i in range(3)]
                c2 = [call(n2, num.did, caller=f"791600002{i}") for i in range(3)]
                # both members are busy with some caller; the others wait
                wait_for(lambda: ringing(0) == 1 and ringing(1) == 1, message="both members ringing")
                # members answer one call each, talk, and are then offered the next waiting callers
                for n in (n1, n2):
                    for p in phones[n]:
                        p.behaviour = Answer(after=2)
                        p.hangup_after = 5
                for n in (n1, n2):
                    for p in phones[n]:
                        for u in p.calls:
                            ch = n.switch.channel(u)
                            if not ch.hungup.is_set():
                                n.client.api(f"uuid_kill {u}")  # a rejected leg is re-rung with the new behaviour
                wait_for(lambda: all(co.history(c.uuid) for c in c1 + c2), timeout=40, message="all calls answered")
            finally:
                g.kill()
            rows = [co.history(c.uuid) for c in c1 + c2]
            assert all(r["result"] == "answered" for r in rows), [r["route"] for r in rows]
            assert {r["node"] for r in rows} == {"fsd-1", "fsd-2"}
            assert not overlaps
    finally:
        pool2.close()


def test_draining_or_without_inbound_connection_calls_take_the_fallback(pool):
    with _node(pool) as node:
        co, (a,), num = _sales(pool, "Anna Ivanova")
        p = phone_for(node.switch, co, a, Answer(after=1))
        node.client.stop()  # the inbound socket to this switch is down
        ch = call(node, num.did)
        wait_for(lambda: ch.hungup.is_set(), message="fallback ran")
        assert not ch.times["Channel-Answered-Time"] and not p.calls
        assert node.driver.drain(1)  # nothing in flight
        ch2 = call(node, num.did)
        wait_for(lambda: ch2.hungup.is_set(), message="fallback ran")
        assert node.driver.calls_fallback == 2 and co.history(ch.uuid) is None
