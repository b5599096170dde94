"""FreeSWITCH's Event Socket drops mid-traffic: fsd reconnects within 2 s and re-subscribes; calls that
arrive while fsd cannot command the switch take the dialplan fallback; nothing is misrouted."""

from __future__ import annotations

import tempfile
import time

import gevent
import pytest
from prometheus_client import CollectorRegistry

from fsd import config as config_mod
from fsd.app import App
from fsd.metrics import Metrics
from fsd.sim import Answer, CallerScript, NoAnswer, Switch
from tests.faults.support import Company, TcpProxy, phone_for
from tests.helpers import free_port, wait_for

SCALE = 0.05
FALLBACK = ["set:fsd_fallback=taken", "hangup:NORMAL_CLEARING"]


def _config(dsn: str, esl_port: int, **extra) -> config_mod.Config:
    overrides = {
        "database.dsn": dsn, "http.port": "0", "outbound.port": "0", "esl.switches": f"sim1=127.0.0.1:{esl_port}",
        "xmlcurl.password": "xc-secret", "calls.storage_dir": tempfile.mkdtemp(prefix="fsd-faults-"),
        "node.name": "faults", "http.secret_key": "k" * 32, "smtp.port": str(free_port()),
    }
    overrides.update(extra)
    return config_mod.load(env={}, overrides=overrides)


@pytest.fixture
def rig(db_dsn, pool):
    """A switch reached by fsd through a cuttable proxy (the ESL path), fsd in-process, a department."""
    switch = Switch(hostname="sim1", time_scale=SCALE, heartbeat_interval=0, fallback=FALLBACK).start()
    proxy = TcpProxy(switch.esl_port)
    app = App(config=_config(db_dsn, proxy.port), metrics=Metrics(registry=CollectorRegistry()), clock=switch.clock)
    app.start()
    switch.outbound_target = ("127.0.0.1", app.outbound.port)
    co = Company(pool)
    members = [co.employee(f"Member {i}", str(201 + i)) for i in range(6)]
    # ring timeout well above the test's own pace: the subject is reconnection, not queue time under load
    dept = co.department("Sales", members, strategy="evenly", ring_timeout=600)
    num = co.number(dest_kind="department", dest_department_id=dept.id)
    phones = {m.id: phone_for(switch, co, m, Answer(after=1), talk_after_bridge=3) for m in members}
    wait_for(lambda: app.readiness()[0], timeout=10, message="app ready")
    yield app, switch, proxy, co, dept, num, phones
    app.stop(timeout=2)
    proxy.stop()
    switch.stop()


def _call(switch, num, i):
    return switch.incoming_call(did=num.did.lstrip("+"), caller=f"7916{i:07d}", context="fsd-public",
                                script=CallerScript(hangup_after=200))


def _fate(switch, ch, phones, member_ids):
    """answered (bridged to a member's phone) | fallback (never answered, fallback ran) | other."""
    by_leg = {u: emp for emp, p in phones.items() for u in p.calls}
    bridged = [by_leg.get(c.uuid) for c in switch.all_channels
               if c.get_var("bridge_uuid") == ch.uuid or c.get_var("last_bridge_to") == ch.uuid]
    bridged = [b for b in bridged if b is not None]
    if bridged and all(b in member_ids for b in bridged):
        return "answered"
    if ch.get_var("fsd_fallback") == "taken" and not bridged:
        return "fallback_answered" if ch.times["Channel-Answered-Time"] else "fallback"
    return "other"


def _event_commands(switch, since: int) -> list[str]:
    return [e.text for e in switch.log[since:] if e.kind == "command" and e.text.startswith("event ")]


def test_socket_drop_mid_traffic_reconnects_and_resubscribes(rig):
    """crash() mid-traffic: reconnect < 2 s, subscriptions re-sent, routing resumes, no call left stuck.
    (What happens to calls caught in the reconnect gap is the next test's subject.)"""
    app, switch, proxy, co, dept, num, phones = rig
    client = app.switches["sim1"]
    member_ids = set(phones)
    first = [_call(switch, num, i) for i in range(6)]
    wait_for(lambda: all(co.history(c.uuid) for c in first[:2]), timeout=20, message="traffic flowing")
    in_flight = [_call(switch, num, 50 + i) for i in range(6)]
    mark = len(switch.log)
    connects = client.stats.connects
    t0 = time.monotonic()
    switch.crash()  # every ESL socket drops at once, inbound and outbound
    wait_for(lambda: client.connected and client.stats.connects > connects, timeout=5, message="reconnected")
    reconnect_s = time.monotonic() - t0
    assert reconnect_s < 2.0, reconnect_s
    # re-subscribed on the new connection: the leg and registration events fsd needs
    subs = wait_for(lambda: _event_commands(switch, mark), timeout=2, message="event subscription")
    assert any("CHANNEL_ANSWER" in s and "CHANNEL_HANGUP" in s and "sofia::register" in s for s in subs), subs
    assert app.metrics.esl_up.labels("sim1")._value.get() == 1
    after = []
    for i in range(12):
        after.append(_call(switch, num, 100 + i))
        gevent.sleep(0.05)
    wait_for(lambda: all(co.history(c.uuid) for c in after), timeout=40, message="history of calls after reconnect")
    fates = [_fate(switch, c, phones, member_ids) for c in after]
    rows = [co.history(c.uuid) for c in after]
    assert fates == ["answered"] * len(after), [  # what happened to those that were not (for a failure's report)
        (f, {k: r[k] for k in ("result", "route", "answered_by", "wait_s", "hangup_cause")})
        for f, r in zip(fates, rows, strict=True) if f != "answered"]
    assert all(r["result"] == "answered" and r["answered_by"] in member_ids for r in rows)
    # nothing stuck: every call the driver took has finished, every reservation was given back
    wait_for(lambda: all(c.hungup.is_set() for c in first + in_flight + after), timeout=30, message="calls over")
    wait_for(lambda: not app.calls.active, timeout=10, message="driver idle")
    wait_for(lambda: not co.rows("SELECT 1 FROM reservations"), timeout=10, message="reservations released")


def test_calls_during_an_esl_outage_take_the_dialplan_fallback(rig):
    app, switch, proxy, co, dept, num, phones = rig
    client = app.switches["sim1"]
    member_ids = set(phones)
    before = _call(switch, num, 1)
    wait_for(lambda: co.history(before.uuid), timeout=20, message="a call before the outage")
    proxy.cut()  # fsd can no longer command the switch; the switch still reaches fsd's outbound socket
    wait_for(lambda: not client.connected, timeout=5, message="fsd saw the drop")
    during = [_call(switch, num, 100 + i) for i in range(5)]
    wait_for(lambda: all(c.hungup.is_set() for c in during), timeout=20, message="outage calls over")
    fates_during = [_fate(switch, c, phones, member_ids) for c in during]
    routes_during = [co.history(c.uuid) and co.history(c.uuid)["route"] for c in during]
    assert app.metrics.esl_up.labels("sim1")._value.get() == 0
    ok, reason = app.readiness()
    assert not ok and "switches up: none" in reason
    t0 = time.monotonic()
    proxy.restore()
    wait_for(lambda: client.connected, timeout=5, message="reconnected after the outage")
    assert time.monotonic() - t0 < 2.0
    after = [_call(switch, num, 200 + i) for i in range(3)]
    wait_for(lambda: all(co.history(c.uuid) for c in after), timeout=30, message="calls after the outage")
    assert [_fate(switch, c, phones, member_ids) for c in [before, *after]] == ["answered"] * 4
    # during the outage: fsd did not answer them (it could not ring anybody); the fallback ran
    assert fates_during == ["fallback"] * 5, routes_during


def test_a_call_in_progress_rides_out_a_short_esl_drop(rig):
    """The turn of the member who answers falls into a short ESL outage: after the reconnect fsd rings
    them; the call is not pushed through its members into voicemail."""
    app, switch, proxy, co, dept, num, phones = rig
    client = app.switches["sim1"]
    first, second = co.employee("First Noanswer", "251"), co.employee("Second Answers", "252")
    duo = co.department("Duo", [first, second], strategy="in_order", step_delay=4, ring_timeout=120)
    duo_num = co.number(dest_kind="department", dest_department_id=duo.id)
    phone_for(switch, co, first, NoAnswer())
    p2 = phone_for(switch, co, second, Answer(after=1), talk_after_bridge=3)
    ch = _call(switch, duo_num, 7)
    wait_for(lambda: ch.times["Channel-Answered-Time"], timeout=10, message="first member ringing")
    proxy.cut()  # the step to the second member falls into the outage
    wait_for(lambda: not client.connected, timeout=5, message="drop seen")
    switch.clock.sleep(8)  # the second member's turn comes during the outage
    restored_at = switch.clock.now()
    proxy.restore()
    wait_for(lambda: client.connected, timeout=5, message="reconnected")
    row = wait_for(lambda: co.history(ch.uuid), timeout=30, message="history")
    assert row["result"] == "answered" and row["answered_by"] == second.id, row["route"]
    # the second member was rung only once the link was back (no originate could reach the switch before)
    assert p2.calls and switch.channel(p2.calls[0]).times["Channel-Created-Time"] / 1e6 >= restored_at
