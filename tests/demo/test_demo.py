"""`make demo` for a short bounded time in a temporary directory: calls are routed, answered,
offered callbacks and written to history, and everything stops."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import psycopg2
import pytest

from fsd.store.cluster import PgCluster
from tests.helpers import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_demo(var: str, seconds: int, http_port: int) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSD_")}
    return subprocess.run([sys.executable, "-m", "fsd.demo", "--var", var, "--duration", str(seconds),
                           "--time-scale", "0.1", "--http-port", str(http_port)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_demo_runs_routes_calls_and_stops():
    base = tempfile.mkdtemp(prefix="fsd-demo-")  # not pytest's tmp_path: PostgreSQL's user must reach it
    var = os.path.join(base, "var")
    r = run_demo(var, 35, free_port())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Cabinet:  http://127.0.0.1:" in r.stdout and "sign in as" in r.stdout
    assert "Metrics:  http://127.0.0.1:" in r.stdout
    assert "Demo stopped" in r.stdout
    with open(os.path.join(var, "demo.json")) as f:
        state = json.load(f)
    cluster = PgCluster(datadir=os.path.join(var, "pg"), port=state["pg_port"])
    assert not cluster.running(), "the demo left PostgreSQL running"
    for name in ("fsd", "sim", "mail"):
        with open(os.path.join(var, f"{name}.log"), "rb") as f:
            assert b"Traceback" not in f.read(), f"{name} crashed"
    cluster.start()
    try:
        conn = psycopg2.connect(cluster.dsn("fsd"))
        with conn.cursor() as cur:
            cur.execute("SELECT result, count(*) FROM calls GROUP BY result")
            results = dict(cur.fetchall())
            cur.execute("SELECT count(*) FROM callbacks")
            callbacks = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM voicemails")
            voicemails = cur.fetchone()[0]
        conn.close()
    finally:
        cluster.stop()
    assert results.get("answered", 0) > 0, results
    assert results.get("callback_requested", 0) > 0 and callbacks > 0, results
    assert voicemails > 0 and results.get("voicemail", 0) > 0, results
    assert sum(results.values()) >= 20, results
    # a second run reuses the data and starts quickly
    r2 = run_demo(var, 3, free_port())
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "Demo company «Ромашка» created." not in r2.stdout
    shutil.rmtree(base, ignore_errors=True)
