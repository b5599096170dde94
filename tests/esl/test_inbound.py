"""InboundClient against a fake mod_event_socket over real loopback sockets."""

from __future__ import annotations

import collections

import gevent
import gevent.event
import pytest

from fsd.errors import ESLDisconnected, ESLTimeout
from fsd.esl import AuthenticationFailed, CommandFailed, InboundClient
from fsd.esl.frames import FrameParser
from tests.esl import traces
from tests.esl.conftest import make_client
from tests.esl.fakes import background_job, plain_event
from tests.helpers import free_port, wait_for


def heartbeat(seq: int = 1) -> bytes:
    return plain_event([("Event-Name", "HEARTBEAT"), ("Event-Sequence", str(seq))])


def channel_event(name: str, uuid: str = "u1") -> bytes:
    return plain_event([("Event-Name", name), ("Unique-ID", uuid), ("Caller-Caller-ID-Name", "PSTN Caller")])


def test_auth_ok_subscribes_and_api(fake, client):
    assert client.connected
    cmds = fake.last.commands
    assert cmds[0] == "auth ClueCon"
    assert cmds[1] == "event plain CHANNEL_CREATE CHANNEL_ANSWER BACKGROUND_JOB"
    res = client.api("status")
    assert res.ok and res.body == "UP 0 years\n"
    fake.api_handler = lambda cmd, conn: "-ERR no_such_command Command not found!\n"
    res = client.api("no_such_command")
    assert not res.ok and res.error == "no_such_command Command not found!"
    with pytest.raises(CommandFailed):
        client.api("no_such_command", check=True)
    assert client.stats.commands >= 4
    assert client.stats.command_latency_count >= 4


def test_auth_failure_raises(fake):
    c = make_client(fake)
    c._password = "wrongpw"
    with pytest.raises(AuthenticationFailed):
        c.connect(timeout=5)
    assert fake.last.commands == ["auth wrongpw"]
    assert not c.connected


def test_connect_refused_raises_disconnected():
    c = InboundClient(host="127.0.0.1", port=free_port(), password="x", connect_timeout=1)
    with pytest.raises(ESLDisconnected):
        c.connect(timeout=5)


def test_api_timeout_does_not_desync_replies(fake, client):
    release = gevent.event.Event()
    late = []

    def handler(cmd, conn):
        if cmd == "slow":
            late.append(conn)
            return None
        return f"reply-to-{cmd}\n"

    fake.api_handler = handler
    with pytest.raises(ESLTimeout):
        client.api("slow", timeout=0.2)
    assert client.stats.command_timeouts == 1
    # the late reply to "slow" arrives now; the next api must still get its own reply
    late[0].send(b"Content-Type: api/response\nContent-Length: 10\n\nslow-late\n")
    release.set()
    assert client.api("fast").body == "reply-to-fast\n"
    assert client.connected


def test_bgapi_correlates_out_of_order_jobs(fake, client):
    j1 = client.bgapi("status")
    j2 = client.bgapi("originate user/1001 &park()")
    jobs = [fake.jobs.get(timeout=5), fake.jobs.get(timeout=5)]
    assert {j[1] for j in jobs} == {"status", "originate user/1001 &park()"}
    assert jobs[0][0] == j1.job_uuid and jobs[1][0] == j2.job_uuid
    assert f"Job-UUID: {j1.job_uuid}" in fake.last.commands[-2]
    # second job finishes first, and an unrelated job too
    fake.emit(background_job("someone-else", "+OK other\n"))
    fake.emit(background_job(j2.job_uuid, "+OK 5f2c\n", "originate"))
    r2 = j2.get(timeout=5)
    assert not j1.ready()
    fake.emit(background_job(j1.job_uuid, "UP 0 years\nline2\n"))
    r1 = j1.get(timeout=5)
    assert r2.ok and r2.body == "+OK 5f2c\n"
    assert r1.body == "UP 0 years\nline2\n"
    assert r1.event.get("Job-Command") == "status"
    assert client.pending_jobs() == 0


def test_disconnect_wakes_all_waiters(fake, client):
    fake.api_handler = lambda cmd, conn: None  # never answers
    job = client.bgapi("status")
    errors = []

    def call():
        try:
            client.api("hang", timeout=60)
        except Exception as exc:
            errors.append(exc)

    greenlets = [gevent.spawn(call) for _ in range(3)]
    wait_for(lambda: sum(c.startswith("api hang") for c in fake.last.commands) == 3, 5, message="api sent")
    fake.drop()
    gevent.joinall(greenlets, timeout=5)
    assert len(errors) == 3 and all(isinstance(e, ESLDisconnected) for e in errors)
    with pytest.raises(ESLDisconnected):
        job.get(timeout=5)


def test_reconnect_reauthenticates_and_resubscribes(fake):
    connects, disconnects = [], []
    c = make_client(
        fake,
        events=["CHANNEL_CREATE", "CUSTOM sofia::register"],
        filters=[("Unique-ID", "u1")],
        on_connect=lambda cl: connects.append(cl),
        on_disconnect=lambda cl, exc: disconnects.append(exc),
    )
    got = []
    c.subscribe("CHANNEL_CREATE", got.append)
    c.connect(timeout=5)
    try:
        first = fake.last
        expected = [
            "auth ClueCon",
            "event plain CHANNEL_CREATE BACKGROUND_JOB CUSTOM sofia::register",
            "filter Unique-ID u1",
            "filter Event-Name BACKGROUND_JOB",
        ]
        assert first.commands == expected
        fake.drop()
        wait_for(lambda: len(connects) == 2, 5, message="reconnect")
        assert fake.last is not first
        assert fake.last.commands == expected
        assert len(disconnects) == 1 and isinstance(disconnects[0], ESLDisconnected)
        assert c.stats.reconnects >= 1 and c.stats.connects == 2
        fake.emit(channel_event("CHANNEL_CREATE"))
        wait_for(lambda: got, 5, message="event after reconnect")
        assert c.api("status").ok
    finally:
        c.stop()


def test_reconnect_backoff_while_server_down(fake):
    c = make_client(fake, reconnect_backoff=(0.01, 0.05))
    c.connect(timeout=5)
    try:
        fake.accepting = False
        fake.drop()
        wait_for(lambda: not c.connected, 5)
        with pytest.raises(ESLDisconnected):
            c.api("status")
        wait_for(lambda: c.stats.reconnects >= 3, 5, message="retries")
        assert not c.connected
        fake.accepting = True
        assert c.wait_connected(5)
    finally:
        c.stop()


def test_slow_handler_does_not_block_others(fake, client):
    gate = gevent.event.Event()
    slow_seen, fast_seen = [], []

    def slow(ev):
        slow_seen.append(ev)
        gate.wait()

    client.subscribe("CHANNEL_CREATE", slow)
    client.subscribe("CHANNEL_CREATE", lambda ev: fast_seen.append(ev.get("Event-Sequence")))
    data = b"".join(
        plain_event([("Event-Name", "CHANNEL_CREATE"), ("Unique-ID", "u"), ("Event-Sequence", str(i))])
        for i in range(200)
    )
    fake.emit(data)
    wait_for(lambda: len(fast_seen) == 200, 5, message="fast handler got all")
    assert fast_seen == [str(i) for i in range(200)]
    assert len(slow_seen) == 1
    assert client.queue_depth() == 199
    assert client.api("status").ok  # the reader is not blocked either
    gate.set()
    wait_for(lambda: len(slow_seen) == 200, 5)
    assert client.queue_depth() == 0


def test_star_still_works_with_specific_handlers(fake, client):
    star, specific, custom = [], [], []
    client.subscribe("*", lambda ev: star.append(ev.full_name))
    client.subscribe("CHANNEL_ANSWER", lambda ev: specific.append(ev.name))
    client.subscribe("sofia::register", lambda ev: custom.append(ev.full_name))
    fake.emit(channel_event("CHANNEL_ANSWER"))
    fake.emit(channel_event("CHANNEL_CREATE"))
    fake.emit(plain_event([("Event-Subclass", "sofia::register"), ("Event-Name", "CUSTOM")]))
    wait_for(lambda: len(star) == 3, 5)
    assert star == ["CHANNEL_ANSWER", "CHANNEL_CREATE", "CUSTOM sofia::register"]
    wait_for(lambda: specific and custom, 5)
    assert specific == ["CHANNEL_ANSWER"]
    assert custom == ["CUSTOM sofia::register"]


def test_handler_crash_is_logged_and_handler_keeps_running(fake, client, caplog):
    seen = []

    def flaky(ev):
        seen.append(ev)
        if len(seen) == 1:
            raise RuntimeError("boom")

    client.subscribe("CHANNEL_CREATE", flaky)
    fake.emit(channel_event("CHANNEL_CREATE") + channel_event("CHANNEL_CREATE"))
    wait_for(lambda: len(seen) == 2, 5)
    assert client.stats.handler_errors == 1
    assert any("esl_handler_failed" in r.getMessage() for r in caplog.records)


def test_full_queue_drops_for_that_handler_only(fake):
    c = make_client(fake, queue_size=5)
    c.connect(timeout=5)
    try:
        gate = gevent.event.Event()
        fast = []
        c.subscribe("HEARTBEAT", lambda ev: gate.wait())
        c.subscribe("*", fast.append)
        fake.emit(b"".join(heartbeat(i) for i in range(3)))
        wait_for(lambda: len(fast) == 3, 5)
        fake.emit(b"".join(heartbeat(i) for i in range(20)))
        wait_for(lambda: len(fast) == 23, 5)
        # the blocked handler holds 1 event and 5 queued; the rest was dropped for it alone
        wait_for(lambda: c.stats.events_dropped == 23 - 6, 5)
        assert c.queue_depth() == 5
        gate.set()
    finally:
        c.stop()


def test_stalled_server_write_times_out(fake):
    c = make_client(fake, write_timeout=0.5)
    c.connect(timeout=5)
    try:
        fake.stall()
        with pytest.raises(ESLTimeout):
            c.command("sendmsg", headers={"call-command": "execute"}, body=b"x" * (64 << 20), timeout=5)
        wait_for(lambda: not c.connected, 5)
    finally:
        fake.unstall.set()
        c.stop()


def test_real_capture_event_stream_is_delivered(fake):
    """Replay every byte FreeSWITCH sent after auth on the call-outbound inbound connection."""
    c = make_client(fake, events=["ALL"])
    c.connect(timeout=5)
    try:
        data = traces.read(f"{traces.ESL}/call-outbound.inbound.server.raw")
        frames = FrameParser().feed(data)
        # everything between the `event plain ALL` reply and the exit reply, byte-exact
        start = frames[2].offset
        bgapi_replies = [f for f in frames if (f.reply_text or "").startswith("+OK Job-UUID")]
        got = collections.Counter()
        c.subscribe("*", lambda ev: got.update([ev.name]))
        # drop the two bgapi/api replies from the stream: they answer commands this client never sent
        skip = {f.offset for f in bgapi_replies} | {f.offset for f in frames if f.content_type == "api/response"}
        chunks = []
        for f, nxt in zip(frames, [*frames[1:], None], strict=True):
            if f.offset < start or f.offset in skip or f.reply_text == "+OK bye":
                continue
            end = nxt.offset if nxt is not None else len(data)
            if f.content_type == "text/disconnect-notice":
                continue
            chunks.append(data[f.offset : end])
        fake.emit(b"".join(chunks))
        wait_for(lambda: sum(got.values()) == 112, 10, message="112 events")
        assert got["CHANNEL_STATE"] == 28 and got["BACKGROUND_JOB"] == 2
        assert c.stats.events_received["CHANNEL_EXECUTE"] == 10
        assert c.stats.malformed_events == 0
    finally:
        c.stop()


def test_stop_sends_exit(fake):
    c = make_client(fake)
    c.connect(timeout=5)
    conn = fake.last
    c.stop()
    assert conn.commands[-1] == "exit"
    assert not c.connected
    with pytest.raises(ESLDisconnected):
        c.api("status")


def test_rude_rejection_is_an_auth_failure():
    """mod_event_socket's ACL answer: text/rude-rejection, then close."""
    from gevent.server import StreamServer

    def handle(sock, addr):
        sock.sendall(b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n")
        sock.close()

    srv = StreamServer(("127.0.0.1", 0), handle)
    srv.start()
    try:
        c = InboundClient(host="127.0.0.1", port=srv.server_port, password="x", connect_timeout=5)
        with pytest.raises(AuthenticationFailed, match="Access Denied"):
            c.connect(timeout=5)
        assert c.auth_failures == 1
    finally:
        srv.stop()


def test_supervised_greenlet_crash_is_logged_and_restarted(caplog):
    from fsd.esl.connection import ESLStats, supervise

    stats = ESLStats()
    runs = []

    def body():
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("bug")

    g = supervise(body, name="t", stopped=lambda: False, stats=stats, backoff=0.001)
    g.join(timeout=5)
    assert len(runs) == 3 and g.dead
    assert stats.greenlet_restarts == 2
    assert sum("esl_greenlet_crashed" in r.getMessage() for r in caplog.records) == 2


def test_queue_depth_and_stats_are_plain_values(fake, client):
    seen = []
    client.subscribe("CHANNEL_CREATE", seen.append)
    fake.emit(channel_event("CHANNEL_CREATE"))
    wait_for(lambda: seen, 5)
    snap = client.stats.snapshot()
    assert snap["events_received"]["CHANNEL_CREATE"] == 1
    assert snap["connects"] == 1 and isinstance(client.queue_depth(), int)
    latencies = []
    client.stats.latency_observers.append(lambda word, secs: latencies.append((word, secs)))
    client.api("status")
    assert latencies and latencies[0][0] == "status" and latencies[0][1] >= 0


def test_bgapi_reply_timeout_keeps_the_job_whose_fate_is_unknown(fake, client):
    """A late bgapi reply is not a failed job: FreeSWITCH may run it (an originate then rings a phone)."""
    from fsd.esl import BgapiReplyTimeout

    fake.hold_bgapi_replies = True
    with pytest.raises(BgapiReplyTimeout) as ei:
        client.bgapi("originate {origination_uuid=leg-1}user/201 &park()", timeout=0.2, job_timeout=30)
    job = ei.value.job
    assert isinstance(ei.value, ESLTimeout) and not job.ready() and client.pending_jobs() == 1
    job_uuid, cmd, conn = fake.jobs.get(timeout=5)
    assert job.job_uuid == job_uuid and cmd.startswith("originate")
    # the late reply arrives and is consumed (not handed to the next command), then the job's end
    fake.hold_bgapi_replies = False
    for c, data in fake.held_replies:
        c.send(data)
    fake.emit(background_job(job_uuid, "+OK leg-1\n", "originate"))
    assert job.get(timeout=5).body == "+OK leg-1\n"
    assert client.pending_jobs() == 0
    assert client.api("status").body  # the reply stream is still in step


def test_bgapi_reply_timeout_job_expires_or_fails_on_disconnect(fake, client):
    from fsd.esl import BgapiReplyTimeout

    fake.hold_bgapi_replies = True
    with pytest.raises(BgapiReplyTimeout) as expiring:
        client.bgapi("originate user/201 &park()", timeout=0.1, job_timeout=0.3)
    with pytest.raises(ESLTimeout):
        expiring.value.job.get(timeout=5)
    with pytest.raises(BgapiReplyTimeout) as dropped:
        client.bgapi("originate user/202 &park()", timeout=0.1, job_timeout=30)
    fake.drop()
    with pytest.raises(ESLDisconnected):
        dropped.value.job.get(timeout=5)
    wait_for(lambda: client.pending_jobs() == 0, 5, message="jobs forgotten")


def test_a_command_while_disconnected_raises_not_connected(fake, client):
    """Nothing was sent: callers may take the command for failed (unlike a link lost after sending)."""
    from fsd.esl import ESLNotConnected

    fake.stop()
    wait_for(lambda: not client.connected, 5, message="disconnected")
    with pytest.raises(ESLNotConnected):
        client.bgapi("originate user/201 &park()")
    with pytest.raises(ESLDisconnected):
        client.api("status")


def test_api_many_pipelines_and_keeps_each_answer_in_order(fake, client):
    answers = {"uuid_break u1 all": "-ERR no such channel\n", "uuid_setvar u1 a b": "+OK\n",
               "uuid_bridge u1 u2": "+OK u1\n"}
    fake.api_handler = lambda cmd, conn: answers.get(cmd, "UP 0 years\n")
    seen = len(fake.last.commands)
    res = client.api_many(["uuid_break u1 all", "uuid_setvar u1 a b", "uuid_bridge u1 u2"], timeout=5)
    assert [(r.ok, r.text) for r in res] == [(False, "-ERR no such channel"), (True, "+OK"), (True, "+OK u1")]
    assert fake.last.commands[seen:] == ["api uuid_break u1 all", "api uuid_setvar u1 a b", "api uuid_bridge u1 u2"]
    assert client.api("status").body == "UP 0 years\n"  # later replies did not shift
