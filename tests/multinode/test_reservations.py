"""Reservations across fsd processes: members rung for a call that another member answered must be free
again at once, for this process and for the others (they are shared through PostgreSQL)."""

from __future__ import annotations

import contextlib

import gevent.event

from fsd.sim import Answer, NoAnswer, Switch
from fsd.sim.clock import Clock as SimClock
from fsd.store.pool import Pool
from tests.calls.harness import SCALE, Node, World, call, phone, tmpdir
from tests.helpers import wait_for
from tests.multinode.support import HoldingProxy, SwitchNode, member_legs, overlapping_offers


def test_members_rung_but_not_chosen_are_free_during_the_conversation(pool, db_dsn):
    pool2 = Pool(dsn=db_dsn, maxconn=4)
    n1 = Node(pool=pool, storage_dir=tmpdir(), hostname="simA", node="fsd-1", callbacks=False)
    n2 = Node(pool=pool2, storage_dir=tmpdir(), hostname="simB", node="fsd-2", callbacks=False)
    try:
        w = World(pool)
        a = w.employee("Anna Ivanova", "201")
        b = w.employee("Boris Petrov", "202")
        sales = w.department("Sales", [a, b], strategy="simultaneous", ring_timeout=600)
        support = w.department("Support", [b], ring_timeout=600)
        n_sales = w.number(dest_kind="department", dest_department_id=sales.id)
        n_support = w.number(dest_kind="department", dest_department_id=support.id)
        phone(n1, w, a, Answer(after=1), hangup_after=100000)  # Anna answers and talks for long
        phone(n1, w, b, NoAnswer())
        pb2 = phone(n2, w, b, Answer(after=1), talk_after_bridge=3)
        first = call(n1, n_sales.did)  # rings Anna and Boris; Anna answers
        wait_for(lambda: w.rows("SELECT 1 FROM reservations WHERE expires_at > now() + interval '1 hour'"),
                 timeout=10, message="Anna talking")
        # Boris is no longer rung for the first call: a Support call on the other fsd must reach him
        second = call(n2, n_support.did, hangup_after=600)
        try:
            wait_for(lambda: pb2.calls, timeout=5, message="Boris offered the Support call during Anna's talk")
        except AssertionError:
            held = [(r["employee_id"], r["call_uuid"]) for r in w.rows("SELECT * FROM reservations")]
            raise AssertionError(f"Boris not offered; reservations: {held} (first call {first.uuid}, "
                                 f"Boris {b.id})") from None
        wait_for(lambda: w.history(second.uuid), timeout=10, message="Support call answered")
        assert w.history(second.uuid)["answered_by"] == b.id
        assert not first.hungup.is_set()
    finally:
        n1.stop()
        n2.stop()
        pool2.close()


def test_member_not_released_before_its_stopped_leg_is_gone(pool, db_dsn):
    clock = SimClock(time_scale=SCALE)
    sim_a = Switch(hostname="simA", clock=clock, heartbeat_interval=0).start()
    sim_b = Switch(hostname="simB", clock=clock, heartbeat_interval=0).start()
    proxy = HoldingProxy(sim_a.esl_port)
    pool2 = Pool(dsn=db_dsn, maxconn=4)
    n1 = SwitchNode(pool=pool, switch=sim_a, esl_port=proxy.port, node="fsd-1")
    n2 = SwitchNode(pool=pool2, switch=sim_b, esl_port=sim_b.esl_port, node="fsd-2")
    try:
        w = World(pool)
        m = w.employee("Maria Ivanova", "201")
        dept = w.department("Sales", [m], ring_timeout=600)
        num = w.number(dest_kind="department", dest_department_id=dept.id)
        pa = phone(n1, w, m, NoAnswer())
        pb = phone(n2, w, m, NoAnswer())
        first = call(n1, num.did)
        wait_for(lambda: pa.calls, timeout=5, message="Maria's phone rings (simA)")
        second = call(n2, num.did)  # waits: Maria is reserved by the first call
        wait_for(lambda: second.times["Channel-Answered-Time"], timeout=5, message="second caller queued")
        assert not pb.calls
        proxy.held.clear()  # fsd-1's commands to simA lag from now on
        sim_a.channel(first.uuid).hangup("NORMAL_CLEARING", remote=True)  # the first caller gives up
        leg_a = sim_a.channel(pa.calls[0])
        # while leg A still rings, Maria must not be offered the second call
        deadline = clock.now() + 40  # 40 simulated seconds
        while clock.now() < deadline and not pb.calls:
            clock.sleep(0.5)
        overlap = bool(pb.calls) and not leg_a.hungup.is_set()
        proxy.held.set()
        assert not overlap, "Maria was offered a second call while the first leg still rang"
    finally:
        proxy.held.set()
        n1.stop()
        n2.stop()
        proxy.stop()
        sim_a.stop()
        sim_b.stop()
        pool2.close()


def test_member_not_released_while_an_originate_without_reply_may_still_ring(pool, db_dsn):
    clock = SimClock(time_scale=SCALE)
    sim_a = Switch(hostname="simA", clock=clock, heartbeat_interval=0).start()
    sim_b = Switch(hostname="simB", clock=clock, heartbeat_interval=0).start()
    proxy = HoldingProxy(sim_a.esl_port)
    pool2 = Pool(dsn=db_dsn, maxconn=4)
    n1 = SwitchNode(pool=pool, switch=sim_a, esl_port=proxy.port, node="fsd-1")
    n2 = SwitchNode(pool=pool2, switch=sim_b, esl_port=sim_b.esl_port, node="fsd-2")
    try:
        w = World(pool)
        m = w.employee("Maria Ivanova", "201")
        dept = w.department("Sales", [m], ring_timeout=3000)
        num = w.number(dest_kind="department", dest_department_id=dept.id)
        pa = phone(n1, w, m, NoAnswer())
        pb = phone(n2, w, m, NoAnswer())
        proxy.held.clear()  # fsd-1's commands to simA lag (a loaded machine): the originate's reply comes late
        first = call(n1, num.did)
        wait_for(lambda: w.rows("SELECT 1 FROM reservations WHERE node = 'fsd-1'"), timeout=5,
                 message="fsd-1 reserves Maria for the first call")
        second = call(n2, num.did)  # waits: Maria is reserved by the first call
        wait_for(lambda: second.times["Channel-Answered-Time"], timeout=5, message="second caller queued")
        wait_for(lambda: n1.client.stats.command_timeouts >= 1, timeout=15,
                 message="fsd-1's originate unanswered within its command timeout")
        with contextlib.suppress(AssertionError):  # a window for fsd-2 to (wrongly) take Maria
            wait_for(lambda: pb.calls, timeout=2.0, interval=0.05, message="second call offered")
        proxy.held.set()  # the switch gets fsd-1's originate now and rings Maria on simA
        wait_for(lambda: pa.calls, timeout=10, message="the late originate rings Maria on simA")
        sim_a.channel(first.uuid).hangup("NORMAL_CLEARING", remote=True)  # the first caller gives up
        wait_for(lambda: pb.calls, timeout=20, message="Maria offered the second call")
        sim_b.channel(second.uuid).hangup("NORMAL_CLEARING", remote=True)
        wait_for(lambda: all(leg.end_us for leg in member_legs([sim_a, sim_b], "201", w.domain)), timeout=20,
                 message="every leg to Maria over")
        pairs = overlapping_offers([sim_a, sim_b], "201", w.domain)
        assert not pairs, [(a.brief(), b.brief()) for a, b in pairs]
    finally:
        proxy.held.set()
        n1.stop()
        n2.stop()
        proxy.stop()
        sim_a.stop()
        sim_b.stop()
        pool2.close()


def test_member_not_released_while_its_originate_is_still_starting(pool, db_dsn):
    clock = SimClock(time_scale=SCALE)
    sim_a = Switch(hostname="simA", clock=clock, heartbeat_interval=0).start()
    sim_b = Switch(hostname="simB", clock=clock, heartbeat_interval=0).start()
    started = gevent.event.Event()  # clear: simA's originate jobs wait before creating their channel
    execute = sim_a.api.execute

    def slow_start(cmd, arg, *, conn=None):
        if cmd == "originate" and conn is None:  # a bgapi job: its thread starts late on a loaded switch
            started.wait()
        return execute(cmd, arg, conn=conn)

    sim_a.api.execute = slow_start
    pool2 = Pool(dsn=db_dsn, maxconn=4)
    n1 = SwitchNode(pool=pool, switch=sim_a, esl_port=sim_a.esl_port, node="fsd-1")
    n2 = SwitchNode(pool=pool2, switch=sim_b, esl_port=sim_b.esl_port, node="fsd-2")
    try:
        w = World(pool)
        m = w.employee("Maria Ivanova", "201")
        dept = w.department("Sales", [m], ring_timeout=3000)
        num = w.number(dest_kind="department", dest_department_id=dept.id)
        pa = phone(n1, w, m, NoAnswer())
        pb = phone(n2, w, m, NoAnswer())
        first = call(n1, num.did)
        wait_for(lambda: w.rows("SELECT 1 FROM reservations WHERE node = 'fsd-1'"), timeout=5,
                 message="fsd-1 reserves Maria for the first call")
        second = call(n2, num.did)  # waits: Maria is reserved by the first call
        wait_for(lambda: second.times["Channel-Answered-Time"], timeout=5, message="second caller queued")
        first.hangup("NORMAL_CLEARING", remote=True)  # the first caller gives up while Maria's leg is starting
        with contextlib.suppress(AssertionError):  # a window for fsd-2 to (wrongly) take Maria
            wait_for(lambda: pb.calls, timeout=3.0, interval=0.05, message="second call offered")
        started.set()  # the originate thread runs now: Maria's phone on simA rings
        wait_for(lambda: pa.calls, timeout=10, message="the late originate rings Maria on simA")
        wait_for(lambda: pb.calls, timeout=20, message="Maria offered the second call")
        sim_b.channel(second.uuid).hangup("NORMAL_CLEARING", remote=True)
        wait_for(lambda: all(leg.end_us for leg in member_legs([sim_a, sim_b], "201", w.domain)), timeout=20,
                 message="every leg to Maria over")
        pairs = overlapping_offers([sim_a, sim_b], "201", w.domain)
        assert not pairs, [(a.brief(), b.brief()) for a, b in pairs]
    finally:
        started.set()
        n1.stop()
        n2.stop()
        sim_a.stop()
        sim_b.stop()
        pool2.close()
