"""`fsd sim --scenario FILE` (fsd.sim.cli.main)."""

from __future__ import annotations

import json

import gevent

from fsd.sim.cli import main
from tests.sim._client import OutboundServer


def test_scenario_runs_traffic_to_the_outbound_target(tmp_path):
    srv = OutboundServer()
    try:
        scenario = {
            "switch": {
                "hostname": "cli",
                "time_scale": 0.01,
                "heartbeat_interval": 0,
                "outbound_target": f"127.0.0.1:{srv.port}",
            },
            "phones": [{"user": "1001", "behaviour": {"answer": {"after": 1}}}, {"user": "1002", "behaviour": "busy"}],
            "gateways": [{"name": "pstn", "numbers": {"200": "busy"}}],
            "traffic": [
                {
                    "did": "74950000001",
                    "calls_per_second": 5,
                    "count": 2,
                    "caller": "7916{seq:07d}",
                    "script": {"hangup_after": 100},
                }
            ],
            "run_for": 300,  # 3 s real: a loaded host must still find both channels up when it asks
        }
        path = tmp_path / "s.json"
        path.write_text(json.dumps(scenario))
        g = gevent.spawn(main, ["--scenario", str(path), "--log-level", "WARNING"])
        callers = set()
        for _ in range(2):
            conn = srv.accept(timeout=5)
            r = conn.cmd("connect")
            callers.add(r.get("Caller-Caller-ID-Number"))
            conn.close()
        assert callers == {"79160000001", "79160000002"}
        assert g.get(timeout=20) == 0
    finally:
        srv.stop()


def test_invalid_scenario_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("switch: {no_such_setting: 1}\n")
    assert main(["--scenario", str(path)]) == 2
    assert main(["--scenario", str(tmp_path / "missing.yaml")]) == 2
