"""The whole daemon, as the composition root builds it, against fsd/sim and a real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from fsd import config as config_mod
from fsd.app import App
from fsd.metrics import Metrics
from fsd.metrics.catalogue import suspicious_label_values
from fsd.services import Actor
from fsd.sim import Answer, CallerScript, Phone, Switch
from fsd.sim.xmlcurl import XmlCurlDirectory
from tests.helpers import free_port, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYS = Actor.system("test")
SCALE = 0.05


def make_config(dsn: str, esl_port: int, storage: str, **extra) -> config_mod.Config:
    overrides = {
        "database.dsn": dsn, "http.port": "0", "outbound.port": "0", "esl.switches": f"sim1=127.0.0.1:{esl_port}",
        "xmlcurl.password": "xc-secret", "calls.storage_dir": storage, "node.name": "test-node",
        "http.secret_key": "k" * 32, "smtp.port": str(free_port()),
    }
    overrides.update(extra)
    return config_mod.load(env={}, overrides=overrides)


@pytest.fixture
def world(db_dsn):
    switch = Switch(hostname="sim1", time_scale=SCALE, heartbeat_interval=0).start()
    storage = tempfile.mkdtemp(prefix="fsd-app-")
    app = App(config=make_config(db_dsn, switch.esl_port, storage), metrics=Metrics(registry=CollectorRegistry()),
              clock=switch.clock)
    app.start()
    switch.outbound_target = ("127.0.0.1", app.outbound.port)
    switch.xmlcurl = XmlCurlDirectory(switch=switch, url=f"http://127.0.0.1:{app.http.port}/freeswitch/directory",
                                      credentials=("freeswitch", "xc-secret"))
    wait_for(lambda: app.readiness()[0], timeout=10, message="app ready")
    yield app, switch
    app.stop(timeout=2)
    switch.stop()


def http_get(app, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{app.http.port}{path}", timeout=5) as r:  # noqa: S310
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_health_readiness_and_metrics(world):
    app, switch = world
    assert http_get(app, "/healthz") == (200, "ok\n")
    status, body = http_get(app, "/readyz")
    assert status == 200 and "switches up: sim1" in body
    status, body = http_get(app, "/metrics")
    assert status == 200
    assert 'fsd_esl_connection_up{switch="sim1"} 1.0' in body
    assert "fsd_ready 1.0" in body
    switch.stop()
    wait_for(lambda: not app.readiness()[0], timeout=10, message="not ready after the switch went away")
    status, body = http_get(app, "/readyz")
    assert status == 503 and "switches up: none" in body
    assert 'fsd_esl_connection_up{switch="sim1"} 0.0' in http_get(app, "/metrics")[1]


def test_register_call_and_history_through_the_whole_app(world):
    app, switch = world
    svc = app.services
    t = svc.tenants.create(SYS, name="Ромашка", domain="romashka.test", max_users=10)
    a = svc.employees.create(SYS, t.id, name="Анна Смирнова")
    b = svc.employees.create(SYS, t.id, name="Борис Петров")
    dept = svc.departments.create(SYS, t.id, name="Продажи", members=[a.employee.id, b.employee.id],
                                  strategy="simultaneous")
    num = svc.numbers.create(SYS, t.id, did="+74950001122", dest_kind="department", dest_department_id=dept.id)

    pa = switch.add_phone(Phone(a.employee.login, "romashka.test", password=a.password,
                                behaviour=Answer(after=2)))
    assert switch.register(pa, password=a.password)
    pb = Phone(b.employee.login, "romashka.test", password="wrong-password")
    assert not switch.register(pb, password="wrong-password")

    ch = switch.incoming_call(did=num.did.lstrip("+"), caller="79161234567", context="fsd-public",
                              script=CallerScript(hangup_after=20))

    def row():
        with app.pool.transaction() as cur:
            cur.execute("SELECT * FROM calls WHERE call_uuid = %s", (ch.uuid,))
            return cur.fetchone()

    r = wait_for(row, timeout=20, message="history row")
    assert r["result"] == "answered" and r["answered_by"] == a.employee.id and r["department_id"] == dept.id
    body = http_get(app, "/metrics")[1]
    assert f'fsd_calls_answered_total{{department="{dept.id}",tenant="{t.id}"}} 1.0' in body
    assert 'fsd_xmlcurl_requests_total{action="sip_auth",result="found"}' in body
    assert suspicious_label_values(app.metrics.registry) == []
    # the call rang its members once: one setup time observed (connect to the first member originate)
    reg = app.metrics.registry
    assert reg.get_sample_value("fsd_call_setup_seconds_count") == 1.0
    assert 0 < reg.get_sample_value("fsd_call_setup_seconds_sum") < 20
    # and the running app measures its event loop (a timer twice a second)
    wait_for(lambda: reg.get_sample_value("fsd_event_loop_lag_seconds_count") >= 1, timeout=5,
             message="loop lag observed")


def test_password_change_applies_on_next_register(world):
    app, switch = world
    svc = app.services
    t = svc.tenants.create(SYS, name="Co", domain="co.test", max_users=5)
    c = svc.employees.create(SYS, t.id, name="Анна")
    p = switch.add_phone(Phone(c.employee.login, "co.test", password=c.password))
    assert switch.register(p, password=c.password)
    new = svc.employees.reset_password(SYS, t.id, c.employee.id).password
    # NOTIFY → directory eviction + xml_flush_cache on the switch → the old password stops working
    wait_for(lambda: not switch.register(p, password=c.password), timeout=10, message="old password refused")
    assert switch.register(p, password=new)


def test_cabinet_is_served(world):
    app, _ = world
    status, body = http_get(app, "/login")
    assert status == 200 and "<form" in body


def test_serve_drains_on_sigterm(db_dsn):
    """`fsd serve` in its own process: SIGTERM with a call in flight → the call finishes, exit 0."""
    switch = Switch(hostname="sim1", heartbeat_interval=0).start()
    out_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSD_")}
    env.update({"FSD_DATABASE_URL": db_dsn, "FSD_HTTP_PORT": str(http_port), "FSD_OUTBOUND_PORT": str(out_port),
                "FSD_ESL_SWITCHES": f"sim1=127.0.0.1:{switch.esl_port}", "FSD_XMLCURL_PASSWORD": "x",
                "FSD_CALLS_STORAGE_DIR": tempfile.mkdtemp(), "FSD_OUTBOUND_DRAIN_TIMEOUT_S": "20"})
    proc = subprocess.Popen([sys.executable, "-m", "fsd", "serve"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        def ready():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=2) as r:  # noqa: S310
                    return r.status == 200
            except OSError:
                return False

        wait_for(ready, timeout=30, message="fsd serve ready")
        from fsd.services import Services
        from fsd.store.pool import Pool
        pool = Pool(dsn=db_dsn, maxconn=2)
        svc = Services(pool=pool)
        t = svc.tenants.create(SYS, name="Co", domain="drain.test", max_users=5)
        e = svc.employees.create(SYS, t.id, name="Анна")
        num = svc.numbers.create(SYS, t.id, did="+74950003344", dest_kind="employee", dest_employee_id=e.employee.id)
        # no xml_curl in this switch: the phone is known by the extension fsd dials
        ph = switch.add_phone(Phone(e.employee.extension, "drain.test", password=e.password,
                                    behaviour=Answer(after=0.5)))
        switch.outbound_target = ("127.0.0.1", out_port)
        ch = switch.incoming_call(did=num.did.lstrip("+"), caller="79161234567", context="fsd-public",
                                  script=CallerScript(hangup_after=4))

        def bridged():
            leg = switch.channel(ph.calls[0]) if ph.calls else None
            return leg is not None and leg.answered.is_set()

        wait_for(bridged, timeout=10, message="the employee answered")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        log = proc.stdout.read().decode(errors="replace")
        assert rc == 0, log
        assert "fsd_drained complete=True" in log
        with pool.transaction() as cur:
            cur.execute("SELECT result FROM calls WHERE call_uuid = %s", (ch.uuid,))
            assert cur.fetchone()["result"] == "answered"
        pool.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        switch.stop()


def test_prepared_statements_setting_reaches_the_pool(db_dsn):
    storage = tempfile.mkdtemp()
    on = App(config=make_config(db_dsn, free_port(), storage), metrics=Metrics(registry=CollectorRegistry()))
    off = App(config=make_config(db_dsn, free_port(), storage, **{"database.prepare_statements": "false"}),
              metrics=Metrics(registry=CollectorRegistry()))
    try:
        assert on.pool.prepare is True  # the default
        assert off.pool.prepare is False  # behind PgBouncer in transaction mode
        with off.pool.autocommit() as cur:
            assert cur.connection.prepared is None  # this pool's connections never PREPARE
    finally:
        on.pool.close()
        off.pool.close()
