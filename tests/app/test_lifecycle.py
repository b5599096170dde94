"""Readiness follows PostgreSQL; SIGHUP re-reads the config file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import psycopg2
import pytest
from prometheus_client import CollectorRegistry

from fsd import config as config_mod
from fsd.app import App
from fsd.metrics import Metrics
from fsd.sim import Switch
from fsd.store.cluster import PgCluster
from fsd.store.migrate import migrate
from tests.helpers import free_port, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def own_cluster():
    """A cluster of this test's own, so it can be stopped (the session's shared one never is)."""
    base = tempfile.mkdtemp(prefix="fsd-pg-ready-")
    cluster = PgCluster(datadir=os.path.join(base, "pg"), port=free_port())
    cluster.start()
    conn = psycopg2.connect(cluster.dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE fsd")
    conn.close()
    migrate(dsn=cluster.dsn("fsd"))
    yield cluster
    cluster.destroy()
    shutil.rmtree(base, ignore_errors=True)


def _readyz(app):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{app.http.port}/readyz", timeout=5) as r:  # noqa: S310
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_readiness_flips_when_postgresql_stops_and_returns(own_cluster):
    switch = Switch(hostname="sim1", heartbeat_interval=0).start()
    cfg = config_mod.load(env={}, overrides={
        "database.dsn": own_cluster.dsn("fsd"), "http.port": "0", "outbound.port": "0",
        "esl.switches": f"sim1=127.0.0.1:{switch.esl_port}", "xmlcurl.password": "x",
        "calls.storage_dir": tempfile.mkdtemp(), "http.secret_key": "k" * 32, "smtp.port": str(free_port())})
    app = App(config=cfg, metrics=Metrics(registry=CollectorRegistry()))
    app.start()
    try:
        wait_for(lambda: _readyz(app)[0] == 200, timeout=15, message="ready")
        own_cluster.stop(mode="immediate")
        status, body = wait_for(lambda: (r := _readyz(app))[0] == 503 and r, timeout=15, message="not ready")
        assert "database unreachable" in body and "directory cache cold" in body
        own_cluster.start()
        status, body = wait_for(lambda: (r := _readyz(app))[0] == 200 and r, timeout=20, message="ready again")
        assert "database reachable" in body
    finally:
        app.stop(timeout=2)
        switch.stop()


def test_sighup_reloads_the_config_file(db_dsn):
    switch = Switch(hostname="sim1", heartbeat_interval=0).start()
    http_port, out_port = free_port(), free_port()
    conf = os.path.join(tempfile.mkdtemp(prefix="fsd-hup-"), "fsd.conf")

    def write(level):
        with open(conf, "w") as f:
            f.write(f"[database]\ndsn = {db_dsn}\n[http]\nport = {http_port}\n[outbound]\nport = {out_port}\n"
                    f"[esl]\nswitches = sim1=127.0.0.1:{switch.esl_port}\n[xmlcurl]\npassword = x\n"
                    f"[calls]\nstorage_dir = {os.path.dirname(conf)}\n[log]\nlevel = {level}\n")

    write("INFO")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSD_")}
    proc = subprocess.Popen([sys.executable, "-m", "fsd", "--config", conf, "serve"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def up():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2):  # noqa: S310
                    return True
            except OSError:
                return False

        wait_for(up, timeout=30, message="fsd serve up")
        write("WARNING")
        proc.send_signal(signal.SIGHUP)
        wait_for(up, timeout=5, message="still serving after SIGHUP")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        out = proc.stdout.read().decode(errors="replace")
        assert "config_reloaded changed=log.level applied=log.level restart_needed=none" in out, out[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        switch.stop()
