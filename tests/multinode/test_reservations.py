"""Reservations across fsd processes: members rung for a call that another member answered must be free
again at once, for this process and for the others (they are shared through PostgreSQL)."""

from __future__ import annotations

import gevent
import gevent.event
from gevent.socket import create_connection
from prometheus_client import CollectorRegistry

from fsd.calls import CallDriver
from fsd.config import CallsConfig
from fsd.esl.inbound import InboundClient
from fsd.esl.outbound import OutboundServer
from fsd.metrics import Metrics
from fsd.sim import Answer, NoAnswer, Switch
from fsd.sim.clock import Clock as SimClock
from fsd.store.pool import Pool
from tests.calls.harness import SCALE, Node, World, call, phone, tmpdir
from tests.faults.support import TcpProxy
from tests.helpers import wait_for


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
        pb2 = phone(n2, w, b, Answer(after=1), hangup_after=3)
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


class _HoldingProxy(TcpProxy):
    """A TCP proxy whose client→server direction can be held (bytes queued, not forwarded): fsd's
    commands to the switch lag, as they do on a loaded machine, while events still flow back."""

    def __init__(self, port: int):
        self.held = gevent.event.Event()
        self.held.set()
        super().__init__(port)

    def _handle(self, sock, _addr):
        up = create_connection(self.target)

        def pipe(a, b, gate):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    if gate is not None:
                        gate.wait()
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.close()
                    except OSError:
                        pass

        g = gevent.spawn(pipe, up, sock, None)
        pipe(sock, up, self.held)
        g.join()


class _Node:
    """fsd's call driver and outbound server on one emulated switch, its inbound ESL through `esl_port`."""

    def __init__(self, *, pool, switch, esl_port: int, node: str):
        self.switch = switch
        self.server = OutboundServer(host="127.0.0.1", port=0, handler=lambda s: self.driver.handle(s))
        self.server.start()
        switch.outbound_target = ("127.0.0.1", self.server.port)
        self.client = InboundClient(host="127.0.0.1", port=esl_port, password="ClueCon", name=switch.hostname,
                                    command_timeout=30)
        self.client.connect(timeout=5)
        self.driver = CallDriver(pool=pool, switches={switch.hostname: self.client},
                                 config=CallsConfig(storage_dir=tmpdir()),
                                 metrics=Metrics(registry=CollectorRegistry()), clock=switch.clock, node=node,
                                 callbacks=False, history_flush_s=0.1)
        self.driver.start()

    def stop(self):
        self.server.stop(timeout=2)
        self.driver.drain(2)
        self.driver.stop()
        self.client.stop()


def test_member_not_released_before_its_stopped_leg_is_gone(pool, db_dsn):
    clock = SimClock(time_scale=SCALE)
    sim_a = Switch(hostname="simA", clock=clock, heartbeat_interval=0).start()
    sim_b = Switch(hostname="simB", clock=clock, heartbeat_interval=0).start()
    proxy = _HoldingProxy(sim_a.esl_port)
    pool2 = Pool(dsn=db_dsn, maxconn=4)
    n1 = _Node(pool=pool, switch=sim_a, esl_port=proxy.port, node="fsd-1")
    n2 = _Node(pool=pool2, switch=sim_b, esl_port=sim_b.esl_port, node="fsd-2")
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
