"""InboundClient liveness over real loopback sockets: a switch that keeps its socket open but stops
answering is closed (and reconnected); a slow switch that keeps streaming events is not; a quiet healthy
switch is probed and stays up; probe replies and late replies never reach a caller. Plus the [esl]
liveness settings."""

from __future__ import annotations

import dataclasses
import math
import time

import gevent
import gevent.event
import pytest

from fsd import config as config_mod
from fsd.errors import ConfigError, ESLDisconnected, ESLTimeout
from fsd.esl.inbound import ESLLivenessFailed, InboundClient
from tests.esl.conftest import make_client
from tests.esl.fakes import api_response, plain_event
from tests.helpers import wait_for


def heartbeat(seq: int) -> bytes:
    return plain_event([("Event-Name", "HEARTBEAT"), ("Event-Sequence", str(seq))])


def api_count(conn, cmd: str) -> int:
    return sum(c == f"api {cmd}" for c in conn.commands)


class InOrderHold:
    """api handler that holds the reply to one command - and, as FreeSWITCH answers strictly in order,
    every reply after it - until ``release(body)``."""

    def __init__(self, hold: str, reply=lambda cmd: f"reply-to-{cmd}\n"):
        self.hold = hold
        self.reply = reply
        self.conn = None
        self.queued: list[bytes] = []
        self.held = gevent.event.Event()

    def __call__(self, cmd, conn):
        if cmd == self.hold and not self.held.is_set():
            self.conn = conn
            self.held.set()
            return None
        if self.conn is not None:
            self.queued.append(api_response(self.reply(cmd)))
            return None
        return self.reply(cmd)

    def release(self, body: str) -> None:
        conn, self.conn = self.conn, None
        conn.send(api_response(body) + b"".join(self.queued))
        self.queued = []


class Recorder:
    """on_connect / on_disconnect callbacks."""

    def __init__(self):
        self.connects = 0
        self.disconnects: list[BaseException | None] = []

    def up(self, client):
        self.connects += 1

    def down(self, client, exc):
        self.disconnects.append(exc)


# ---------------------------------------------------------------------------------- a stalled switch


def test_silent_server_is_closed_within_the_liveness_bound_and_reconnected(fake):
    fake.api_handler = lambda cmd, conn: None if cmd == "hang" else "+OK\n"
    rec = Recorder()
    c = make_client(fake, command_timeout=0.3, liveness_timeout=0.6, probe_interval=30,
                    on_connect=rec.up, on_disconnect=rec.down)
    c.connect(timeout=5)
    try:
        first = fake.last
        with pytest.raises(ESLTimeout):
            c.api("hang")
        # still connected right after the reply timeout: its reply may yet come; then nothing arrives
        wait_for(lambda: rec.disconnects, timeout=0.6 + 2, message="stalled link closed")
        assert isinstance(rec.disconnects[0], ESLLivenessFailed)
        assert isinstance(rec.disconnects[0], ESLDisconnected)
        assert c.stats.liveness_failures == 1
        assert c.stats.snapshot()["liveness_failures"] == 1
        wait_for(lambda: first.closed.is_set(), timeout=5, message="the server saw the close")
        # the reconnect path runs: a new connection, re-authenticated, answering again
        wait_for(lambda: rec.connects == 2 and c.connected, timeout=5, message="reconnected")
        assert fake.last is not first and fake.last.commands[0] == "auth ClueCon"
        assert c.api("status").ok
    finally:
        c.stop()


def test_in_flight_callers_are_woken_when_the_link_is_declared_dead(fake):
    fake.api_handler = lambda cmd, conn: None  # never answers anything
    c = make_client(fake, command_timeout=30, liveness_timeout=0.5, probe_interval=30)
    c.connect(timeout=5)
    try:
        job = c.bgapi("originate user/1001 &park()")  # the bgapi reply comes; its job never finishes
        errors: list[BaseException] = []

        def call(cmd):
            try:
                c.api(cmd, timeout=60)
            except Exception as exc:  # noqa: BLE001 - collected and checked below
                errors.append(exc)

        callers = [gevent.spawn(call, f"hang{i}") for i in range(3)]
        wait_for(lambda: sum(x.startswith("api hang") for x in fake.last.commands) == 3, 5, message="api sent")
        gevent.joinall(callers, timeout=10)
        assert all(g.dead for g in callers), "a caller still hangs"
        assert len(errors) == 3 and all(isinstance(e, ESLLivenessFailed) for e in errors)
        with pytest.raises(ESLDisconnected):
            job.get(timeout=5)
        assert c.stats.liveness_failures == 1
    finally:
        c.stop()


def test_unanswered_idle_probe_closes_the_link(fake):
    fake.api_handler = lambda cmd, conn: None  # a quiet switch that stopped answering
    rec = Recorder()
    c = make_client(fake, command_timeout=0.3, liveness_timeout=5, probe_interval=0.2,
                    on_disconnect=rec.down)
    c.connect(timeout=5)
    try:
        first = fake.last
        wait_for(lambda: rec.disconnects, timeout=0.2 + 0.3 + 3, message="closed after an unanswered probe")
        assert isinstance(rec.disconnects[0], ESLLivenessFailed)
        assert "probe" in str(rec.disconnects[0])
        assert api_count(first, "status") == 1 and c.stats.probes_answered == 0
        assert c.stats.liveness_failures == 1
        fake.api_handler = lambda cmd, conn: "UP 0 years\n"
        wait_for(lambda: c.connected and fake.last is not first, timeout=5, message="reconnected")
        wait_for(lambda: c.stats.probes_answered >= 1, timeout=5, message="probe answered on the new link")
    finally:
        c.stop()


# ---------------------------------------------------------------------------------- healthy switches


def test_slow_reply_while_events_stream_is_not_a_failure(fake):
    """A slow api on a loaded switch: no reply for many liveness periods, but events keep arriving."""
    liveness = 0.5
    slow_for = 4 * liveness
    events_sent = []

    def slow_switch(conn):
        start = time.monotonic()
        seq = 0
        while time.monotonic() - start < slow_for:
            seq += 1
            conn.send(heartbeat(seq))
            events_sent.append(seq)
            gevent.sleep(liveness / 10)  # the emulated switch's pace, not a wait on the client
        conn.send(api_response("uuid,direction\n0 total.\n"))

    def handler(cmd, conn):
        if cmd == "show channels":
            gevent.spawn(slow_switch, conn)
            return None
        return "+OK\n"

    fake.api_handler = handler
    rec = Recorder()
    c = make_client(fake, events=["HEARTBEAT"], command_timeout=10, liveness_timeout=liveness,
                    probe_interval=30, on_disconnect=rec.down)
    c.connect(timeout=5)
    try:
        seen = []
        c.subscribe("HEARTBEAT", seen.append)
        res = c.api("show channels", timeout=10)
        assert res.body == "uuid,direction\n0 total.\n"
        assert len(events_sent) >= 4  # the reply came after several liveness periods
        wait_for(lambda: len(seen) == len(events_sent), 5, message="all events delivered")
        assert c.connected and rec.disconnects == []
        assert c.stats.liveness_failures == 0 and c.stats.connects == 1
    finally:
        c.stop()


def test_quiet_healthy_switch_is_probed_and_stays_up(fake):
    fake.api_handler = lambda cmd, conn: "UP 0 years\n" if cmd == "status" else f"reply-to-{cmd}\n"
    rec = Recorder()
    c = make_client(fake, command_timeout=1, liveness_timeout=2, probe_interval=0.1, on_disconnect=rec.down)
    latencies = []
    c.stats.latency_observers.append(lambda word, secs: latencies.append(word))
    c.connect(timeout=5)
    try:
        wait_for(lambda: c.stats.probes_answered >= 3, timeout=10, message="three probes answered")
        assert api_count(fake.last, "status") >= 3
        # callers still get their own replies, interleaved with probes
        for i in range(5):
            assert c.api(f"hostname{i}").body == f"reply-to-hostname{i}\n"
        wait_for(lambda: c.stats.probes_answered >= 5, timeout=10, message="probes go on")
        assert c.connected and rec.disconnects == []
        assert c.stats.liveness_failures == 0 and c.stats.connects == 1
        assert "probe" in latencies  # probes are reported under their own command word
    finally:
        c.stop()


def test_busy_switch_is_not_probed(fake):
    """Events keep the link provably alive: no probe is sent while they keep arriving."""
    interval = 1.0
    c = make_client(fake, events=["HEARTBEAT"], command_timeout=1, liveness_timeout=2, probe_interval=interval)
    c.connect(timeout=5)
    try:
        seen = []
        c.subscribe("HEARTBEAT", seen.append)
        start = time.monotonic()
        seq = 0
        while time.monotonic() - start < 2.5 * interval:
            seq += 1
            fake.emit(heartbeat(seq))
            wait_for(lambda n=seq: len(seen) == n, 5, message="event delivered")
            gevent.sleep(interval / 20)  # the emulated switch's pace: an event every 50 ms
        assert c.stats.probes_sent == 0 and api_count(fake.last, "status") == 0
        assert c.connected
    finally:
        c.stop()


# ---------------------------------------------------------------------------------- FIFO reply ownership


def test_probe_reply_is_never_delivered_to_a_caller(fake):
    fake.api_handler = hold = InOrderHold("status")  # hold the first probe's reply
    c = make_client(fake, command_timeout=5, liveness_timeout=10, probe_interval=0.1)
    c.connect(timeout=5)
    try:
        assert hold.held.wait(5), "a probe"
        got = gevent.spawn(c.api, "hostname")
        wait_for(lambda: api_count(fake.last, "hostname") == 1, 5, message="caller's api sent after the probe")
        assert not got.ready()
        # the probe's reply comes first (FIFO); it must go to the probe, the caller's to the caller
        hold.release("UP 0 years\n")
        assert got.get(timeout=5).body == "reply-to-hostname\n"
        wait_for(lambda: c.stats.probes_answered >= 1, 5, message="the probe answered")
        assert c.connected and c.stats.liveness_failures == 0
    finally:
        c.stop()


def test_late_reply_after_a_timeout_is_discarded_and_the_link_stays_up(fake):
    fake.api_handler = hold = InOrderHold("slow")
    rec = Recorder()
    c = make_client(fake, command_timeout=5, liveness_timeout=3, probe_interval=30, on_disconnect=rec.down)
    c.connect(timeout=5)
    try:
        with pytest.raises(ESLTimeout):
            c.api("slow", timeout=0.2)
        # the next command is queued behind the timed-out one: the late reply arrives first, then its own
        nxt = gevent.spawn(c.api, "fast")
        wait_for(lambda: api_count(fake.last, "fast") == 1, 5, message="second api sent")
        hold.release("slow-late\n")
        assert nxt.get(timeout=5).body == "reply-to-fast\n"
        assert c.api("again").body == "reply-to-again\n"
        assert c.connected and rec.disconnects == []
        assert c.stats.command_timeouts == 1 and c.stats.liveness_failures == 0
    finally:
        c.stop()


def test_stop_is_not_reported_as_a_liveness_failure(fake):
    c = make_client(fake, command_timeout=2, liveness_timeout=2, probe_interval=0.1)
    c.connect(timeout=5)
    wait_for(lambda: c.stats.probes_answered >= 1, 5, message="a probe")
    c.stop()
    assert not c.connected and c.stats.liveness_failures == 0


# ---------------------------------------------------------------------------------- settings


@pytest.mark.parametrize("kw", [
    {"liveness_timeout": 0}, {"liveness_timeout": -1}, {"liveness_timeout": math.nan},
    {"liveness_timeout": math.inf}, {"probe_interval": 0}, {"probe_interval": math.inf},
    {"probe_interval": "soon"}, {"command_timeout": 0},
])
def test_client_refuses_bad_liveness_settings(kw):
    with pytest.raises(ValueError):
        InboundClient(host="127.0.0.1", port=8021, password="x", **kw)


def test_client_liveness_defaults():
    c = InboundClient(host="127.0.0.1", port=8021, password="x", command_timeout=3)
    assert c.liveness_timeout == 6 and c.probe_interval == 5
    c = InboundClient(host="127.0.0.1", port=8021, password="x", liveness_timeout=12.5, probe_interval=2)
    assert c.liveness_timeout == 12.5 and c.probe_interval == 2


def test_config_liveness_defaults_and_overrides():
    cfg = config_mod.load(env={})
    assert cfg.esl.liveness_timeout_s == 10.0 and cfg.esl.probe_interval_s == 5.0
    assert cfg.esl.liveness_timeout_s >= 2 * cfg.esl.command_timeout_s
    cfg = config_mod.load(env={"FSD_ESL_LIVENESS_TIMEOUT_S": "30", "FSD_ESL_PROBE_INTERVAL_S": "2.5"})
    assert cfg.esl.liveness_timeout_s == 30.0 and cfg.esl.probe_interval_s == 2.5
    cfg = config_mod.load(env={}, overrides={"esl.command_timeout_s": "1", "esl.liveness_timeout_s": "1"})
    assert cfg.esl.liveness_timeout_s == 1.0


@pytest.mark.parametrize(("key", "value"), [
    ("liveness_timeout_s", "0"), ("liveness_timeout_s", "-5"), ("liveness_timeout_s", "inf"),
    ("liveness_timeout_s", "nan"), ("liveness_timeout_s", "soon"), ("probe_interval_s", "0"),
    ("probe_interval_s", "-1"), ("probe_interval_s", "1e309"),
    ("liveness_timeout_s", "4"),  # below the default command timeout (5 s)
])
def test_config_refuses_bad_liveness_settings(key, value):
    with pytest.raises(ConfigError, match=f"esl\\.{key}"):
        config_mod.load(env={}, overrides={f"esl.{key}": value})


def test_config_validate_refuses_non_finite_values_set_in_code():
    cfg = config_mod.load(env={})
    for key in ("liveness_timeout_s", "probe_interval_s"):
        bad = dataclasses.replace(cfg, esl=dataclasses.replace(cfg.esl, **{key: math.inf}))
        with pytest.raises(ConfigError, match=key):
            config_mod.validate(bad)
