"""A switch that stalls (stops reading and writing its Event Socket): command timeouts fire, no call's
greenlet hangs, the switch is marked down; after resume() fsd reconnects and routes again."""

from __future__ import annotations

import tempfile
import time

import pytest
from prometheus_client import CollectorRegistry

from fsd import config as config_mod
from fsd.app import App
from fsd.errors import ESLTimeout
from fsd.metrics import Metrics
from fsd.sim import Answer, CallerScript, NoAnswer, Switch
from tests.faults.support import Company, phone_for
from tests.helpers import free_port, wait_for

SCALE = 0.05
CMD_TIMEOUT = 1.0
LIVENESS_TIMEOUT = 2 * CMD_TIMEOUT  # silence allowed while a command awaits its reply (InboundClient's default)


@pytest.fixture
def rig(db_dsn, pool):
    switch = Switch(hostname="sim1", time_scale=SCALE, heartbeat_interval=0,
                    fallback=["set:fsd_fallback=taken", "hangup:NORMAL_CLEARING"]).start()
    cfg = config_mod.load(env={}, overrides={
        "database.dsn": db_dsn, "http.port": "0", "outbound.port": "0",
        "esl.switches": f"sim1=127.0.0.1:{switch.esl_port}", "esl.command_timeout_s": str(CMD_TIMEOUT),
        "esl.liveness_timeout_s": str(LIVENESS_TIMEOUT),
        "esl.connect_timeout_s": "1", "esl.reconnect_max_s": "1",
        "xmlcurl.password": "xc-secret", "calls.storage_dir": tempfile.mkdtemp(prefix="fsd-stall-"),
        "node.name": "stall", "http.secret_key": "k" * 32, "smtp.port": str(free_port())})
    app = App(config=cfg, metrics=Metrics(registry=CollectorRegistry()), clock=switch.clock)
    app.start()
    switch.outbound_target = ("127.0.0.1", app.outbound.port)
    co = Company(pool)
    ringer = co.employee("Never Answers", "201")
    talker = co.employee("Talks Long", "202")
    talk_dept = co.department("Sales", [talker], ring_timeout=600)
    ring_dept = co.department("Support", [ringer], ring_timeout=60)
    nums = {"talk": co.number(dest_kind="department", dest_department_id=talk_dept.id),
            "ring": co.number(dest_kind="department", dest_department_id=ring_dept.id)}
    phones = {"ringer": phone_for(switch, co, ringer, NoAnswer()),
              "talker": phone_for(switch, co, talker, Answer(after=1), hangup_after=2000)}
    wait_for(lambda: app.readiness()[0], timeout=10, message="app ready")
    yield app, switch, co, nums, phones
    switch.resume()
    app.stop(timeout=2)
    switch.stop()


def _call(switch, num, i, hangup_after=3000):
    return switch.incoming_call(did=num.did.lstrip("+"), caller=f"7916{i:07d}", context="fsd-public",
                                script=CallerScript(hangup_after=hangup_after))


def _setup_calls(app, switch, nums, phones):
    talking = _call(switch, nums["talk"], 1)  # answered by the talker, bridged, long conversation
    wait_for(lambda: any(switch.channel(u).get_var("bridge_uuid") == talking.uuid
                         for u in phones["talker"].calls), timeout=10, message="a member answered, bridged")
    queued = _call(switch, nums["ring"], 2)  # the ringer rings without answer: the caller waits
    wait_for(lambda: len(phones["ringer"].calls) >= 1, timeout=10, message="second call ringing")
    assert len(app.calls.active) == 2
    return talking, queued


def test_stalled_switch_commands_time_out_and_no_handler_hangs(rig):
    app, switch, co, nums, phones = rig
    client = app.switches["sim1"]
    talking, queued = _setup_calls(app, switch, nums, phones)
    timeouts = client.stats.command_timeouts

    switch.stall()
    t0 = time.monotonic()
    # a command on the inbound connection gets no reply: the timeout (esl.command_timeout_s) fires
    with pytest.raises(ESLTimeout):
        client.api("show channels as json")
    assert client.stats.command_timeouts > timeouts
    assert time.monotonic() - t0 < CMD_TIMEOUT + 1.0
    # a call arriving at the silent switch: its handler gives up after the command timeout
    late = _call(switch, nums["talk"], 3)
    # the waiting caller's ring timeout (60 simulated s = 3 s) ends its wait; the no-answer action's
    # commands time out; its handler returns (bounded), as does the late call's
    wait_for(lambda: queued.uuid not in app.calls.active and late.uuid not in app.calls.active, timeout=15,
             message="handlers of the waiting and the late call returned")
    # the bridged conversation is FreeSWITCH's: it is still there, its handler waits for its end
    assert talking.uuid in app.calls.active and not switch.channel(talking.uuid).hungup.is_set()

    switch.resume()
    wait_for(lambda: client.connected, timeout=5, message="connected after resume")
    switch.channel(talking.uuid).hangup("NORMAL_CLEARING")
    wait_for(lambda: not app.calls.active, timeout=10, message="the bridged call's handler returned")
    assert co.history(talking.uuid)["result"] == "answered"
    again = _call(switch, nums["talk"], 4, hangup_after=30)
    wait_for(lambda: co.history(again.uuid), timeout=20, message="a call after the stall")
    assert co.history(again.uuid)["result"] == "answered"


def test_stalled_switch_is_marked_down(rig):
    app, switch, co, nums, phones = rig
    client = app.switches["sim1"]
    _setup_calls(app, switch, nums, phones)
    switch.stall()
    with pytest.raises(ESLTimeout):
        client.api("show channels as json")
    wait_for(lambda: app.metrics.esl_up.labels("sim1")._value.get() == 0, timeout=4 * CMD_TIMEOUT + 2,
             message="switch marked down")
    ok, reason = app.readiness()
    assert not ok and "switches up: none" in reason
    assert client.stats.liveness_failures >= 1
    # the switch answers again: the reconnect loop brings it back up
    switch.resume()
    wait_for(lambda: app.metrics.esl_up.labels("sim1")._value.get() == 1 and app.readiness()[0], timeout=10,
             message="switch up again after resume")
    assert client.api("status").ok
