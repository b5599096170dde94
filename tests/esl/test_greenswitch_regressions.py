"""Each defect of greenswitch 0.0.19: shown to exist in greenswitch itself, and shown absent in fsd.esl.

Both libraries talk to the same fake mod_event_socket over loopback sockets, fed with real capture bytes.
"""

from __future__ import annotations

import importlib.metadata
import inspect

import gevent
import gevent.event
import gevent.server
import greenswitch
import pytest
from greenswitch import esl as gs

from fsd.errors import ESLDisconnected
from fsd.esl import InboundClient, OutboundServer
from fsd.esl.frames import Event, FrameParser
from tests.esl import traces
from tests.esl.fakes import plain_event
from tests.helpers import free_port, wait_for


def test_greenswitch_version_under_test():
    assert importlib.metadata.version("greenswitch") == "0.0.19"
    assert greenswitch.esl is gs


@pytest.fixture
def gs_client(fake):
    client = gs.InboundESL(host="127.0.0.1", port=fake.port, password="ClueCon")
    with gevent.Timeout(5):
        client.connect()
    yield client
    client._run = False
    for g in (client._receive_events_greenlet, client._process_events_greenlet):
        if g is not None:
            g.kill(block=False)
    client.sock.close()


@pytest.fixture
def fsd_client(fake):
    c = InboundClient(host="127.0.0.1", port=fake.port, password="ClueCon", events=["ALL"], command_timeout=5,
                      reconnect_backoff=(0.01, 0.05))
    c.connect(timeout=5)
    yield c
    c.stop()


def _capture_event(capture: str, name: str, content_type: str = "text/event-plain") -> bytes:
    """The exact bytes of the first `name` event FreeSWITCH sent in `capture`."""
    data = traces.read(f"{traces.ESL}/{capture}.server.raw")
    frames = FrameParser().feed(data)
    for i, f in enumerate(frames):
        if f.content_type == content_type and Event.from_frame(f).name == name:
            end = frames[i + 1].offset if i + 1 < len(frames) else len(data)
            return data[f.offset : end]
    raise LookupError(name)


SPOOF = plain_event([("Event-Name", "CHANNEL_CREATE"), ("Unique-ID", "u1"),
                     ("Caller-Caller-ID-Name", "Mallory\nUnique-ID: spoofed\nEvent-Name: HANGUP")])


# 1 ------------------------------------------------------------------ %0A decoded into a new header


def test_1_urlencoded_newline_cannot_spoof_headers_greenswitch_is_affected():
    body = FrameParser().feed(SPOOF)[0].body.decode()
    assert "%0A" in body  # on the wire the newline is encoded
    ev = gs.ESLEvent(body)
    assert ev.headers["Unique-ID"] == "spoofed"  # greenswitch: decoded before splitting -> spoofed header
    assert ev.headers["Event-Name"] == "HANGUP"


def test_1_urlencoded_newline_cannot_spoof_headers_fsd(fake, fsd_client):
    got = []
    fsd_client.subscribe("*", got.append)
    fake.emit(SPOOF)
    wait_for(lambda: got, 5)
    ev = got[0]
    assert ev.name == "CHANNEL_CREATE"
    assert ev.uuid == "u1"
    assert ev.get_all("Unique-ID") == ["u1"]
    assert ev.get("Caller-Caller-ID-Name") == "Mallory\nUnique-ID: spoofed\nEvent-Name: HANGUP"


# 2 ------------------------------------------------------------------ event body merged into headers


def test_2_event_body_kept_apart_greenswitch_is_affected(fake, gs_client):
    got = []
    gs_client.register_handle("BACKGROUND_JOB", got.append)
    fake.emit(_capture_event("esl-inbound-commands", "BACKGROUND_JOB"))
    wait_for(lambda: got, 5)
    headers = got[0].headers
    # the status text was parsed as header lines: Content-Length swallowed the body
    assert headers["Content-Length"] != "369"
    assert "UP 0 years" in headers["Content-Length"]


def test_2_event_body_kept_apart_fsd(fake, fsd_client):
    got = []
    fsd_client.subscribe("BACKGROUND_JOB", got.append)
    fake.emit(_capture_event("esl-inbound-commands", "BACKGROUND_JOB"))
    wait_for(lambda: got, 5)
    ev = got[0]
    assert ev.get("Content-Length") == "369"
    assert ev.body.startswith("UP 0 years") and len(ev.body_bytes) == 369
    assert all("UP 0 years" not in v for _, v in ev.headers.items())


# 3 ------------------------------------------------------------------ text/event-json kills the reader


def test_3_json_event_greenswitch_goes_silent(fake, gs_client):
    fake.emit(_capture_event("call-outbound-json.inbound", "CHANNEL_CREATE", "text/event-json"))
    wait_for(lambda: gs_client._receive_events_greenlet.dead, 5, message="greenswitch reader dies")
    assert not gs_client._receive_events_greenlet.successful()
    # the connection is now silent: a command never gets its reply
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.5):
        gs_client.send("api status")


def test_3_json_event_fsd(fake):
    c = InboundClient(host="127.0.0.1", port=fake.port, password="ClueCon", events=["ALL"], event_format="json")
    c.connect(timeout=5)
    try:
        got = []
        c.subscribe("*", got.append)
        fake.emit(_capture_event("call-outbound-json.inbound", "CHANNEL_CREATE", "text/event-json"))
        wait_for(lambda: got, 5)
        assert got[0].name == "CHANNEL_CREATE"
        assert got[0].get("Caller-Caller-ID-Name") == "PSTN Caller"
        assert c.api("status", timeout=5).ok
    finally:
        c.stop()


# 4 ------------------------------------------------------------------ a non-UTF-8 byte


_BAD_BODY = b"Event-Name: CUSTOM\nEvent-Subclass: x\nCaller-Name: Jos\xe9 \xff\xfe\n\n"
BAD_UTF8 = b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(_BAD_BODY) + _BAD_BODY


def test_4_invalid_utf8_greenswitch_loses_connection(fake, gs_client):
    fake.emit(BAD_UTF8)
    reader = gs_client._receive_events_greenlet
    wait_for(lambda: reader.dead, 5, message="greenswitch reader dies")
    assert isinstance(reader.exception, UnicodeDecodeError)
    # nothing reads the socket any more: the connection is dead for every later command
    with pytest.raises(gevent.Timeout), gevent.Timeout(0.5):
        gs_client.send("api status")


def test_4_invalid_utf8_fsd(fake, fsd_client):
    got = []
    fsd_client.subscribe("*", got.append)
    fake.emit(BAD_UTF8)
    wait_for(lambda: got, 5)
    assert got[0].get("Caller-Name").encode("utf-8", "surrogateescape") == b"Jos\xe9 \xff\xfe"
    assert fsd_client.connected and fsd_client.api("status").ok


# 5 ------------------------------------------------------------------ send(), timeouts, waiters after disconnect


def test_5_greenswitch_send_is_not_sendall_and_waiters_hang(fake, gs_client):
    src = inspect.getsource(gs.ESLProtocol.send)
    assert "self.sock.send(" in src and "sendall" not in src and "timeout" not in src
    fake.api_handler = lambda cmd, conn: None  # never answer
    waiter = gevent.spawn(gs_client.send, "api status")
    wait_for(lambda: any(c.startswith("api status") for c in fake.last.commands), 5)
    fake.drop()
    wait_for(lambda: not gs_client.connected, 5)
    # the connection is gone, yet the waiter is still blocked
    assert not waiter.join(timeout=0.5) and not waiter.dead
    waiter.kill()


def test_5_fsd_waiters_woken_and_writes_time_out(fake):
    c = InboundClient(host="127.0.0.1", port=fake.port, password="ClueCon", write_timeout=0.5)
    c.connect(timeout=5)
    try:
        fake.api_handler = lambda cmd, conn: None
        waiter = gevent.spawn(c.api, "status", timeout=60)
        wait_for(lambda: any(x.startswith("api status") for x in fake.last.commands), 5)
        fake.drop()
        waiter.join(timeout=5)
        assert isinstance(waiter.exception, ESLDisconnected)
        assert c.wait_connected(5)
        # stalled peer: the write is bounded by write_timeout and the connection is dropped
        from fsd.errors import ESLTimeout

        fake.stall()
        with pytest.raises(ESLTimeout):
            c.command("noop", body=b"y" * (64 << 20), timeout=5)
        fake.unstall.set()
    finally:
        c.stop()


# 6 ------------------------------------------------------------------ outbound accept loop polling


def test_6_greenswitch_accept_loop_polls(monkeypatch):
    sleeps = []
    real_sleep = gevent.sleep

    def spy(seconds=0, *a, **kw):
        sleeps.append(seconds)
        return real_sleep(seconds, *a, **kw)

    monkeypatch.setattr(gs.gevent, "sleep", spy)
    server = gs.OutboundESLServer(bind_address="127.0.0.1", bind_port=free_port(), application=object)
    g = gevent.spawn(server.listen)
    wait_for(lambda: len(sleeps) >= 2, 5)
    server.stop()
    g.join(timeout=2)
    g.kill()
    assert 0.1 in sleeps  # accept() is polled every 100 ms


def test_6_fsd_outbound_accept_is_event_driven(monkeypatch):
    import sys

    sleeps = []
    real_sleep = gevent.sleep

    def spy(s=0, *a, **k):
        # only the server's own code counts (greenlets other tests left behind in this process may sleep)
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith(("fsd.esl.outbound", "fsd.esl.connection", "gevent.server", "gevent.baseserver")):
            sleeps.append(s)
        return real_sleep(s, *a, **k)

    monkeypatch.setattr(gevent, "sleep", spy)
    entered = gevent.event.Event()
    srv = OutboundServer(host="127.0.0.1", port=0, handler=lambda s: entered.set()).start()
    try:
        assert isinstance(srv._server, gevent.server.StreamServer)
        gevent.wait([gevent.event.Event()], timeout=0.3)  # idle: nothing must poll
        assert [s for s in sleeps if s and s > 0] == []
        import socket

        s = socket.create_connection(("127.0.0.1", srv.port))
        assert entered.wait(5)
        s.close()
    finally:
        srv.stop(timeout=1)


# 7 ------------------------------------------------------------------ reconnection


def test_7_greenswitch_never_reconnects(fake, gs_client):
    fake.drop()
    wait_for(lambda: not gs_client.connected, 5)
    gevent.wait([gevent.event.Event()], timeout=0.3)
    assert len(fake.conns) == 1 and not gs_client.connected


def test_7_fsd_reconnects(fake, fsd_client):
    fake.drop()
    wait_for(lambda: len(fake.conns) == 2 and fsd_client.connected, 5)
    assert fake.last.commands[:2] == ["auth ClueCon", "event plain ALL"]
    assert fsd_client.api("status").ok


# 8 ------------------------------------------------------------------ one dispatcher, "*" disabled


def _create(seq: int) -> bytes:
    return plain_event([("Event-Name", "CHANNEL_CREATE"), ("Unique-ID", f"u{seq}")])


def test_8_greenswitch_specific_handler_disables_star_and_blocks(fake, gs_client):
    star, specific, other = [], [], []
    gate = gevent.event.Event()
    gs_client.register_handle("*", star.append)
    gs_client.register_handle("CHANNEL_CREATE", specific.append)
    fake.emit(_create(1))
    wait_for(lambda: specific, 5)
    gevent.wait([gevent.event.Event()], timeout=0.2)
    assert star == []  # "*" never sees CHANNEL_CREATE once a specific handler exists

    gs_client.register_handle("HEARTBEAT", lambda ev: gate.wait())
    gs_client.register_handle("CHANNEL_ANSWER", other.append)
    fake.emit(plain_event([("Event-Name", "HEARTBEAT")]))
    fake.emit(plain_event([("Event-Name", "CHANNEL_ANSWER"), ("Unique-ID", "u1")]))
    gevent.wait([gevent.event.Event()], timeout=0.3)
    assert other == []  # one slow handler blocks every other handler
    gate.set()
    wait_for(lambda: other, 5)


def test_8_fsd_star_and_independent_handlers(fake, fsd_client):
    star, specific, other = [], [], []
    gate = gevent.event.Event()
    fsd_client.subscribe("*", star.append)
    fsd_client.subscribe("CHANNEL_CREATE", specific.append)
    fsd_client.subscribe("HEARTBEAT", lambda ev: gate.wait())
    fsd_client.subscribe("CHANNEL_ANSWER", other.append)
    fake.emit(_create(1))
    fake.emit(plain_event([("Event-Name", "HEARTBEAT")]))
    fake.emit(plain_event([("Event-Name", "CHANNEL_ANSWER"), ("Unique-ID", "u1")]))
    wait_for(lambda: len(star) == 3 and specific and other, 5)
    assert [e.name for e in star] == ["CHANNEL_CREATE", "HEARTBEAT", "CHANNEL_ANSWER"]
    gate.set()
