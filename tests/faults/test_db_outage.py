"""PostgreSQL stopped for 60 simulated seconds under traffic (its own private cluster, really stopped
and started): phones keep registering from the directory cache, calls keep routing on the last good
configuration, history rows are spooled and all written after recovery (count = calls placed)."""

from __future__ import annotations

import os
import shutil
import tempfile

import gevent
import psycopg2
import pytest
from prometheus_client import CollectorRegistry

from fsd import config as config_mod
from fsd.app import App
from fsd.errors import StoreError
from fsd.metrics import Metrics
from fsd.sim import Answer, CallerScript, Phone, Switch
from fsd.sim.xmlcurl import XmlCurlDirectory
from fsd.store.cluster import PgCluster
from fsd.store.migrate import migrate
from fsd.store.pool import Pool
from tests.faults.support import Company
from tests.helpers import free_port, wait_for

SCALE = 0.05
OUTAGE_S = 60.0  # simulated seconds


@pytest.fixture
def own_pg():
    """A private cluster this test may stop and start (never the shared session cluster)."""
    base = tempfile.mkdtemp(prefix="fsd-pg-outage-")
    cluster = PgCluster(datadir=os.path.join(base, "pg"), port=free_port())
    cluster.start()
    conn = psycopg2.connect(cluster.dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE fsd_outage")
    conn.close()
    migrate(dsn=cluster.dsn("fsd_outage"))
    try:
        yield cluster, cluster.dsn("fsd_outage")
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_down_for_a_minute_under_traffic(own_pg):
    cluster, dsn = own_pg
    switch = Switch(hostname="sim1", time_scale=SCALE, heartbeat_interval=0).start()
    cfg = config_mod.load(env={}, overrides={
        "database.dsn": dsn, "http.port": "0", "outbound.port": "0",
        "esl.switches": f"sim1=127.0.0.1:{switch.esl_port}", "xmlcurl.password": "xc-secret",
        "calls.storage_dir": tempfile.mkdtemp(prefix="fsd-outage-"), "node.name": "outage",
        "http.secret_key": "k" * 32, "smtp.port": str(free_port())})
    app = App(config=cfg, metrics=Metrics(registry=CollectorRegistry()), clock=switch.clock)
    pool = Pool(dsn=dsn, maxconn=4)
    try:
        app.start()
        switch.outbound_target = ("127.0.0.1", app.outbound.port)
        switch.xmlcurl = XmlCurlDirectory(switch=switch, url=f"http://127.0.0.1:{app.http.port}/freeswitch/directory",
                                          credentials=("freeswitch", "xc-secret"))
        wait_for(lambda: app.readiness()[0], timeout=10, message="app ready")
        co = Company(pool)
        members = [co.employee(f"Member {i}", str(301 + i)) for i in range(4)]
        dept = co.department("Sales", members, strategy="evenly", ring_timeout=60)
        num = co.number(dest_kind="department", dest_department_id=dept.id)
        phones = []
        for m in members:
            p = switch.add_phone(Phone(m.login, co.domain, password=co.passwords[m.id], behaviour=Answer(after=1),
                                       talk_after_bridge=4, register=False))
            assert switch.register(p, password=co.passwords[m.id])
            phones.append(p)
        placed = []

        def call(i):
            ch = switch.incoming_call(did=num.did.lstrip("+"), caller=f"7916{i:07d}", context="fsd-public",
                                      script=CallerScript(hangup_after=120))
            placed.append(ch)
            return ch

        first = call(0)
        wait_for(lambda: co.history(first.uuid), timeout=20, message="a call before the outage")

        cluster.stop()
        down_at = switch.clock.now()
        assert not app.pool.ping()
        during = []
        i = 1
        while switch.clock.now() - down_at < OUTAGE_S:
            during.append(call(i))
            i += 1
            # every phone re-registers; FreeSWITCH's own cache is empty, so fsd's directory answers
            switch.xmlcurl.cache.clear()
            p = phones[i % len(phones)]
            assert switch.register(p, password=co.passwords[members[i % len(phones)].id]), "REGISTER refused"
            switch.clock.sleep(OUTAGE_S / 12)
        assert len(during) >= 10
        # the calls of the outage were routed on the last good configuration: answered by members
        wait_for(lambda: all(c.hungup.is_set() for c in during), timeout=30, message="outage calls over")
        leg_owner = {u: p.user for p in phones for u in p.calls}
        for c in during:
            bridged = [leg_owner.get(ch.uuid) for ch in switch.all_channels if ch.get_var("last_bridge_to") == c.uuid]
            assert any(bridged), f"call {c.uuid} was not bridged to a member"
        wait_for(lambda: not app.calls.active, timeout=10, message="handlers done")
        assert app.calls.history.pending() == len(during)  # spooled, not lost
        assert app.metrics.esl_up.labels("sim1")._value.get() == 1

        cluster.start()
        after = [call(1000 + k) for k in range(2)]

        def flushed():
            try:  # the test's own pool meets the restart too: its first query may fail once
                return app.calls.history.pending() == 0 and all(co.history(c.uuid) for c in placed)
            except StoreError:
                return False

        wait_for(flushed, timeout=30, message="spool flushed, every call in history")
        n = co.rows("SELECT count(*) AS n FROM calls")[0]["n"]
        assert n == len(placed) == 1 + len(during) + len(after)
        rows = [co.history(c.uuid) for c in during]
        assert {r["result"] for r in rows} == {"answered"}
        assert {r["answered_by"] for r in rows} <= {m.id for m in members}
        gevent.sleep(0)
    finally:
        app.stop(timeout=2)
        switch.stop()
        pool.close()
