"""Test harness: fsd/sim switch(es) + OutboundServer + CallDriver + a real PostgreSQL, time-scaled."""

from __future__ import annotations

import itertools
import tempfile

from prometheus_client import CollectorRegistry

from fsd.calls import CallDriver
from fsd.config import CallsConfig
from fsd.esl.inbound import InboundClient
from fsd.esl.outbound import OutboundServer
from fsd.metrics import Metrics
from fsd.services import Actor, Services
from fsd.sim import CallerScript, Gateway, Phone, Switch
from fsd.store import calls_repo
from fsd.store.listen import ConfigListener
from tests.helpers import wait_for

SCALE = 0.02  # 1 simulated second = 20 ms
ADMIN = Actor.system("test")
_dom = itertools.count(1)


class Node:
    """One fsd process (driver + outbound server) attached to one emulated FreeSWITCH."""

    def __init__(self, *, pool, storage_dir: str, hostname: str, node: str, scale: float = SCALE,
                 calls_cfg: CallsConfig | None = None, callbacks: bool = True):
        self.metrics = Metrics(registry=CollectorRegistry())
        self.server = OutboundServer(host="127.0.0.1", port=0, handler=self._handle)
        self.server.start()
        self.switch = Switch(hostname=hostname, time_scale=scale, outbound_target=("127.0.0.1", self.server.port),
                             heartbeat_interval=0)
        self.switch.start()
        self.client = InboundClient(host="127.0.0.1", port=self.switch.esl_port, password="ClueCon", name=hostname)
        self.client.connect(timeout=5)
        cfg = calls_cfg or CallsConfig(storage_dir=storage_dir, callback_interval_s=10)
        self.driver = CallDriver(pool=pool, switches={hostname: self.client}, config=cfg, metrics=self.metrics,
                                 clock=self.switch.clock, node=node, storage_dir=storage_dir, callbacks=callbacks,
                                 callback_poll_s=0.05, history_flush_s=0.1)
        self.driver.register_metrics()
        self.driver.start()
        self.listener = ConfigListener(dsn=pool.dsn, on_change=self.driver.on_change,
                                       on_reconnect=self.driver.invalidate)
        self.listener.start()
        self.trunk = self.switch.add_gateway(Gateway("trunk"))

    def _handle(self, session):
        self.driver.handle(session)

    def stop(self):
        self.listener.stop()
        self.server.stop(timeout=2)
        self.driver.drain(2)
        self.driver.stop()
        self.client.stop()
        self.switch.stop()


class World:
    """A company with employees, departments and numbers, plus helpers to read results."""

    def __init__(self, pool, *, domain: str | None = None, timezone: str = "UTC", language: str = "en"):
        self.pool = pool
        self.svc = Services(pool=pool)
        self.domain = domain or f"co{next(_dom)}.example"
        self.tenant = self.svc.tenants.create(ADMIN, name="Acme", domain=self.domain, max_users=100,
                                              timezone=timezone, language=language)
        self.tid = self.tenant.id
        self.did_seq = itertools.count(1)

    def employee(self, name: str, ext: str, **kw):
        return self.svc.employees.create(ADMIN, self.tid, name=name, extension=ext, **kw).employee

    def department(self, name: str, members, **kw):
        return self.svc.departments.create(ADMIN, self.tid, name=name, members=[m.id for m in members], **kw)

    def number(self, **kw):
        did = kw.pop("did", None) or f"+7495{self.tid:03d}{next(self.did_seq):04d}"
        return self.svc.numbers.create(ADMIN, self.tid, did=did, **kw)

    def history(self, call_uuid: str):
        with self.pool.transaction() as cur:
            return calls_repo.history_get(cur, call_uuid)

    def rows(self, sql: str, params=()):
        with self.pool.transaction() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())


def phone(node: Node, world: World, emp, behaviour=None, **kw) -> Phone:
    return node.switch.add_phone(Phone(emp.extension, world.domain, behaviour=behaviour, **kw))


def call(node: Node, did: str, *, caller: str = "79161234567", **script):
    return node.switch.incoming_call(did=did.lstrip("+"), caller=caller, context="fsd-public",
                                     script=CallerScript(**script))


def tmpdir() -> str:
    return tempfile.mkdtemp(prefix="fsd-calls-")


def history_row(world: World, uuid: str, timeout: float = 15):
    """The call's history row, once the history writer has written it."""
    return wait_for(lambda: world.history(uuid), timeout=timeout, message="history row")


def originated_at(node: Node, leg_uuid: str) -> float:
    """Simulated time at which the switch ran fsd's originate of this leg (the originate api entry).
    Slot timing is asserted between originates, which fsd schedules; a channel's creation can trail its
    originate by a few simulated seconds on a loaded host (1 simulated second = 20 ms here)."""
    mark = f"origination_uuid={leg_uuid}"
    for e in node.switch.log:
        if e.kind == "api" and e.text.startswith("originate") and mark in e.text:
            return e.t
    raise AssertionError(f"no originate of leg {leg_uuid}")
