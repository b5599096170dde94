"""fsd learns who is registered from the switch's registration table (`show registrations as json`) when
its inbound connection is established, and again after every reconnect; registration events keep it up to
date, and an event handled after the table was asked for wins over it. Real sockets, emulator, PostgreSQL."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from fsd.calls import CallDriver
from fsd.config import CallsConfig
from fsd.esl.inbound import InboundClient
from fsd.esl.outbound import OutboundServer
from fsd.metrics import Metrics
from fsd.sim import Answer, Phone, Switch
from tests.calls.harness import SCALE, World, call, tmpdir
from tests.calls.harness import history_row as _row
from tests.faults.support import TcpProxy
from tests.helpers import wait_for


class Rig:
    """A switch whose phones may register before fsd starts; fsd reaches its Event Socket through a proxy
    that can be cut (the inbound connection drops and comes back)."""

    def __init__(self, pool):
        self.pool = pool
        self.server = OutboundServer(host="127.0.0.1", port=0, handler=lambda s: self.driver.handle(s))
        self.server.start()
        self.switch = Switch(hostname="simR", time_scale=SCALE, heartbeat_interval=0,
                             outbound_target=("127.0.0.1", self.server.port)).start()
        self.proxy = TcpProxy(self.switch.esl_port)
        self.client = None
        self.driver = None

    def start_fsd(self):
        d = tmpdir()
        self.client = InboundClient(host="127.0.0.1", port=self.proxy.port, password="ClueCon", name="simR",
                                    reconnect_backoff=(0.05, 0.2))
        self.client.connect(timeout=5)
        self.driver = CallDriver(pool=self.pool, switches={"simR": self.client},
                                 config=CallsConfig(storage_dir=d, callback_interval_s=10),
                                 metrics=Metrics(registry=CollectorRegistry()), clock=self.switch.clock,
                                 node="n1", storage_dir=d, callbacks=False, history_flush_s=0.1)
        self.driver.start()
        return self.driver

    def originates(self, user: str) -> list[str]:
        return [e.text for e in self.switch.log
                if e.kind == "api" and e.text.startswith("originate") and f"user/{user}@" in e.text]

    def stop(self):
        self.server.stop(timeout=2)
        if self.driver is not None:
            self.driver.drain(2)
            self.driver.stop()
        if self.client is not None:
            self.client.stop()
        self.proxy.stop()
        self.switch.stop()


@pytest.fixture
def rig(pool):
    r = Rig(pool)
    yield r
    r.stop()


def _company(pool, order=("a", "b")):
    w = World(pool)
    emps = {"a": w.employee("Anna Ivanova", "201"), "b": w.employee("Boris Petrov", "202")}
    dept = w.department("Sales", [emps[k] for k in order], strategy="in_order", step_delay=10, ring_timeout=60)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    return w, emps, num


def test_registration_state_read_at_start_skips_the_unregistered_member(pool, rig):
    w, emps, num = _company(pool, order=("b", "a"))  # b first: without the table fsd would try b first
    pa = rig.switch.add_phone(Phone("201", w.domain, behaviour=Answer(after=1)))
    pb = rig.switch.add_phone(Phone("202", w.domain, behaviour=Answer(after=1), register=False))
    driver = rig.start_fsd()
    wait_for(lambda: driver.registration_tables_read >= 1, message="registration table read")
    ch = call(rig, num.did, hangup_after=5)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == emps["a"].id, row["route"]
    assert rig.originates("202") == []  # no failed originate for the unregistered member
    assert len(rig.originates("201")) == 1 and len(pa.calls) == 1 and pb.calls == []
    assert driver.board.is_registered(emps["a"].id) is True
    assert driver.board.state(emps["b"].id) == "unregistered"


def test_registration_state_is_read_again_after_the_inbound_connection_comes_back(pool, rig):
    w, emps, num = _company(pool)
    pa = rig.switch.add_phone(Phone("201", w.domain, behaviour=Answer(after=1)))
    pb = rig.switch.add_phone(Phone("202", w.domain, behaviour=Answer(after=1), register=False))
    driver = rig.start_fsd()
    wait_for(lambda: driver.registration_tables_read >= 1, message="registration table read")
    driver.cache.by_did(num.did)  # the company is loaded: its employees' state is set, not only asked
    assert driver.board.is_registered(emps["b"].id) is False
    rig.proxy.cut()
    wait_for(lambda: not rig.client.connected, message="inbound connection lost")
    # while fsd cannot see the switch's events: a's phone goes away, b's registers
    rig.switch.unregister(pa)
    rig.switch.register(pb)
    assert driver.board.is_registered(emps["a"].id) and not driver.board.is_registered(emps["b"].id)
    rig.proxy.restore()
    wait_for(lambda: driver.registration_tables_read >= 2, message="registration table read again")
    assert driver.board.is_registered(emps["a"].id) is False
    assert driver.board.is_registered(emps["b"].id) is True
    ch = call(rig, num.did, hangup_after=5)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == emps["b"].id, row["route"]
    assert rig.originates("201") == []
    assert rig.client.stats.reconnects >= 1


def test_an_event_handled_after_the_table_was_asked_for_wins(pool, rig):
    w, emps, num = _company(pool)
    rig.switch.add_phone(Phone("201", w.domain, behaviour=Answer(after=1)))
    pb = rig.switch.add_phone(Phone("202", w.domain, behaviour=Answer(after=1), register=False))
    driver = rig.start_fsd()
    wait_for(lambda: driver.registration_tables_read >= 1, message="registration table read")
    driver.cache.by_did(num.did)
    link = driver.links["simR"]
    real_api = link.api

    def api_with_a_register_in_flight(cmd, timeout=5.0):
        res = real_api(cmd, timeout=timeout)
        if cmd.startswith("show registrations"):
            # b registers after the switch produced the table (without b) and before fsd applies it; fsd
            # handles b's sofia::register first
            rig.switch.register(pb)
            wait_for(lambda: driver.board.registered.get(emps["b"].id) is True, message="b's event handled")
        return res

    link.api = api_with_a_register_in_flight
    assert driver.refresh_registrations("simR")
    link.api = real_api
    assert driver.board.is_registered(emps["b"].id) is True  # the stale table did not undo the event
    assert driver.board.is_registered(emps["a"].id) is True
    # and an event after the table is applied wins too
    rig.switch.unregister(rig.switch.phones[f"201@{w.domain}"])
    wait_for(lambda: driver.board.is_registered(emps["a"].id) is False, message="a unregistered by its event")
    ch = call(rig, num.did, hangup_after=5)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == emps["b"].id, row["route"]
    assert rig.originates("201") == []


def test_with_two_switches_a_member_is_registered_if_registered_on_either(pool):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    b = w.employee("Boris Petrov", "202")
    sw1 = Switch(hostname="simS1", time_scale=SCALE, heartbeat_interval=0).start()
    sw2 = Switch(hostname="simS2", time_scale=SCALE, heartbeat_interval=0).start()
    proxy2 = TcpProxy(sw2.esl_port)
    clients = {"s1": InboundClient(host="127.0.0.1", port=sw1.esl_port, password="ClueCon", name="s1"),
               "s2": InboundClient(host="127.0.0.1", port=proxy2.port, password="ClueCon", name="s2",
                                   reconnect_backoff=(0.05, 0.2))}
    d = tmpdir()
    driver = None
    try:
        pb2 = sw2.add_phone(Phone("202", w.domain))  # b registered on the second switch only
        sw1.add_phone(Phone("202", w.domain, register=False))
        for c in clients.values():
            c.connect(timeout=5)
        driver = CallDriver(pool=pool, switches=clients, config=CallsConfig(storage_dir=d),
                            metrics=Metrics(registry=CollectorRegistry()), clock=sw1.clock, node="n1",
                            storage_dir=d, callbacks=False, history_flush_s=0.1).start()
        wait_for(lambda: driver.registrations.known("s1") and driver.registrations.known("s2"),
                 message="both tables read")
        driver.cache.get(w.tid)
        board = driver.board
        assert board.is_registered(b.id) is True and board.is_registered(a.id) is False
        pa1 = sw1.add_phone(Phone(a.login, w.domain))  # a registers on the first switch, under her login
        wait_for(lambda: board.is_registered(a.id), message="a registered by her login")
        sw2.unregister(pb2)
        wait_for(lambda: board.is_registered(b.id) is False, message="b unregistered on both")
        sw2.register(pb2)
        wait_for(lambda: board.is_registered(b.id), message="b registered again")
        # the second switch is lost: what it said no longer counts, the first still answers for a
        proxy2.cut()
        wait_for(lambda: board.is_registered(b.id) is False, message="b's only registration lost with s2")
        assert board.is_registered(a.id) is True
        proxy2.restore()
        wait_for(lambda: board.is_registered(b.id), message="b back with s2's table")
        sw1.unregister(pa1)
        wait_for(lambda: board.is_registered(a.id) is False, message="a unregistered")
    finally:
        if driver is not None:
            driver.stop()
        for c in clients.values():
            c.stop()
        proxy2.stop()
        sw1.stop()
        sw2.stop()
