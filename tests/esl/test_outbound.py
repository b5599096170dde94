"""OutboundServer/OutboundSession against a fake FreeSWITCH that replays the recorded call bytes."""

from __future__ import annotations

import socket

import gevent
import gevent.event
import gevent.server
import pytest

from fsd.errors import ESLDisconnected, ESLTimeout
from fsd.esl import OutboundServer, SessionHangup
from fsd.esl.frames import FrameParser
from tests.esl import traces
from tests.esl.fakes import ReplayFreeSWITCH, reply
from tests.helpers import wait_for

RAW = traces.read(f"{traces.ESL}/call-outbound.outbound.server.raw")
FRAMES = FrameParser().feed(RAW)
CONNECT_REPLY = RAW[: FRAMES[1].offset]


def _frame_bytes(index: int) -> bytes:
    end = FRAMES[index + 1].offset if index + 1 < len(FRAMES) else len(RAW)
    return RAW[FRAMES[index].offset : end]


def _event_bytes(name: str) -> bytes:
    from fsd.esl.frames import Event

    for i, f in enumerate(FRAMES):
        if f.is_event and Event.from_frame(f).name == name:
            return _frame_bytes(i)
    raise LookupError(name)


@pytest.fixture
def server_factory():
    servers = []

    def make(handler, **kw):
        srv = OutboundServer(host="127.0.0.1", port=0, handler=handler, **kw).start()
        servers.append(srv)
        return srv

    yield make
    for s in servers:
        s.stop(timeout=1)


def test_full_recorded_call(server_factory):
    out = {}
    done = gevent.event.Event()

    def handler(session):
        try:
            data = session.connect()
            out["uuid"] = session.uuid
            out["caller"] = data.get("Caller-Caller-ID-Name")
            out["data_name"] = data.name
            session.myevents()
            session.linger()
            seen = []
            session.subscribe("*", lambda ev: seen.append(ev.name))
            answer = session.execute("answer")
            ev = answer.get(timeout=5)
            out["answer"] = (ev.get("Application"), ev.get("Application-UUID") == answer.event_uuid)
            play = session.execute("playback", "/srv/freeswitch-1/sounds/traces/tone-1s-8k.wav", lock=False)
            out["playback"] = play.get(timeout=5).get("Application-Response")
            pagd = session.execute(
                "play_and_get_digits",
                r"1 1 1 5000 # tone_stream://%(200,0,800) silence_stream://250 traces_digit \d 3000",
                lock=False,
            )
            out["digit"] = pagd.get(timeout=5).get("variable_traces_digit")
            assert session.hung_up.wait(5)
            out["cause"] = session.hangup_cause
            wait_for(lambda: session.lingering, 5)
            out["linger"] = session.linger_notice.headers.get("Linger-Time")
            with pytest.raises(SessionHangup):
                session.execute("playback", "x")
            wait_for(lambda: "CHANNEL_HANGUP_COMPLETE" in seen, 5)
            out["seen"] = len(seen)
        finally:
            done.set()

    srv = server_factory(handler)
    fs = ReplayFreeSWITCH(srv.port)
    assert done.wait(10)
    assert fs.eof.wait(5)
    assert out["uuid"] == "84066c95-6aa4-4f2b-9b78-ecf63963cdee"
    assert out["caller"] == "PSTN Caller" and out["data_name"] == "CHANNEL_DATA"
    assert out["answer"] == ("answer", True)
    assert out["playback"] == "FILE PLAYED"
    assert out["digit"] == "1"
    assert out["cause"] == "NORMAL_CLEARING"
    assert out["linger"] == "-1"
    assert out["seen"] == 28
    # what we sent is what the recorded application sent (apart from the event-uuids and event-lock)
    assert fs.commands[:3] == [b"connect\n\n", b"myevents\n\n", b"linger\n\n"]
    assert fs.commands[3].startswith(b"sendmsg\ncall-command: execute\nexecute-app-name: answer\nevent-uuid: ")
    assert b"event-lock: true" in fs.commands[3]
    assert b"execute-app-arg: 1 1 1 5000 # tone_stream://%(200,0,800)" in fs.commands[5]


class ScriptedFS:
    """Minimal FreeSWITCH side: connect reply from the recording, +OK to everything else."""

    def __init__(self, port, *, answer_api=True):
        self.answer_api = answer_api
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(None)
        self.commands = []
        self.parser_buf = b""
        self.closed = gevent.event.Event()
        self.g = gevent.spawn(self._run)

    def _run(self):
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.parser_buf += data
                while b"\n\n" in self.parser_buf:
                    head, _, self.parser_buf = self.parser_buf.partition(b"\n\n")
                    self.commands.append(head)
                    if head == b"connect":
                        self.sock.sendall(CONNECT_REPLY)
                    elif head.startswith(b"api "):
                        if self.answer_api:
                            self.sock.sendall(b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n")
                    elif head.startswith(b"bgapi "):
                        job = head.split(b"Job-UUID: ")[1].decode()
                        self.sock.sendall(reply(f"+OK Job-UUID: {job}", f"Job-UUID: {job}\n"))
                    else:
                        self.sock.sendall(reply("+OK"))
        except OSError:
            pass
        finally:
            self.closed.set()

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()


def test_hangup_wakes_pending_executions(server_factory):
    results = {}
    started = gevent.event.Event()

    def handler(session):
        session.connect()
        session.myevents()
        a = session.execute("playback", "/a.wav")
        b = session.execute("park")
        started.set()
        for key, res in (("a", a), ("b", b)):
            try:
                res.get(timeout=5)
            except Exception as exc:
                results[key] = exc

    srv = server_factory(handler)
    fs = ScriptedFS(srv.port)
    assert started.wait(5)
    fs.send(_event_bytes("CHANNEL_HANGUP"))
    wait_for(lambda: len(results) == 2, 5)
    assert all(isinstance(e, SessionHangup) for e in results.values())
    fs.close()


def test_disconnect_notice_and_socket_loss_wake_waiters(server_factory):
    results = {}
    started = gevent.event.Event()

    def handler(session):
        session.connect()
        res = session.execute("park")
        started.set()
        try:
            res.get(timeout=5)
        except Exception as exc:
            results["park"] = exc
        try:
            session.api("status", timeout=30)
        except Exception as exc:
            results["api"] = exc

    srv = server_factory(handler)
    fs = ScriptedFS(srv.port, answer_api=False)
    assert started.wait(5)
    fs.send(_frame_bytes(len(FRAMES) - 2))  # the recorded linger disconnect-notice
    wait_for(lambda: "park" in results, 5)
    assert isinstance(results["park"], SessionHangup)
    wait_for(lambda: any(c.startswith(b"api status") for c in fs.commands), 5)
    fs.close()  # the api reply never comes: the socket loss must wake the waiter at once
    wait_for(lambda: "api" in results, 5)
    assert isinstance(results["api"], ESLDisconnected)


def test_execute_timeout_and_api_bgapi_over_socket(server_factory):
    out = {}
    done = gevent.event.Event()

    def handler(session):
        try:
            session.connect()
            res = session.execute("park", timeout=0.1)
            with pytest.raises(ESLTimeout):
                res.get(timeout=5)
            out["api"] = session.api("uuid_getvar x y").body
            job = session.bgapi("status")
            out["job"] = job.job_uuid
            job_event = (
                b"Event-Name: BACKGROUND_JOB\nJob-UUID: " + job.job_uuid.encode() + b"\nContent-Length: 3\n\nok\n"
            )
            fs.send(b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(job_event) + job_event)
            out["job_body"] = job.get(timeout=5).body
        finally:
            done.set()

    srv = server_factory(handler)
    fs = ScriptedFS(srv.port)
    assert done.wait(10)
    assert out["api"] == "+OK\n"
    assert out["job_body"] == "ok\n"
    assert b"event plain BACKGROUND_JOB" in fs.commands
    assert any(c.startswith(b"bgapi status\nJob-UUID: " + out["job"].encode()) for c in fs.commands)
    fs.close()


def test_hangup_command_and_handler_return_closes_socket(server_factory):
    def handler(session):
        session.connect()
        session.hangup("USER_BUSY")

    srv = server_factory(handler)
    fs = ScriptedFS(srv.port)
    assert fs.closed.wait(5)
    assert fs.commands[1] == b"sendmsg\ncall-command: hangup\nhangup-cause: USER_BUSY"
    wait_for(lambda: not srv.sessions, 5)
    assert srv.accepted == 1


def test_accept_is_event_driven_streamserver(server_factory):
    """No polling: the listener is a gevent StreamServer (accept wakes on readiness), port 0 works."""
    entered = []
    srv = server_factory(lambda s: entered.append(s))
    assert isinstance(srv._server, gevent.server.StreamServer)
    assert srv.port and srv.port > 0
    # each connection reaches its handler in its own greenlet
    clients = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(20)]
    wait_for(lambda: len(entered) == 20, 5)
    assert len({id(s) for s in entered}) == 20
    for c in clients:
        c.close()


def test_drain_stops_accepting_and_waits(server_factory):
    gate = gevent.event.Event()
    running = []

    def handler(session):
        running.append(session)
        gate.wait()

    srv = server_factory(handler)
    c1 = socket.create_connection(("127.0.0.1", srv.port))
    wait_for(lambda: running, 5)
    assert srv.drain(timeout=0.1) is False  # still running
    assert not srv.accepting
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=1)
    gate.set()
    assert srv.drain(timeout=5) is True
    c1.close()


def test_stop_closes_sessions_after_deadline(server_factory):
    ended = []

    def handler(session):
        try:
            session.connect(timeout=30)  # the peer never answers
        except ESLDisconnected as exc:
            ended.append(exc)
            raise

    srv = server_factory(handler)
    c = socket.create_connection(("127.0.0.1", srv.port))
    wait_for(lambda: srv.sessions, 5)
    srv.stop(timeout=0.2)
    wait_for(lambda: ended, 5)
    assert not srv.sessions
    c.close()


def test_max_sessions_rejects(server_factory):
    gate = gevent.event.Event()
    srv = server_factory(lambda s: gate.wait(), max_sessions=1)
    c1 = socket.create_connection(("127.0.0.1", srv.port))
    wait_for(lambda: len(srv.sessions) == 1, 5)
    c2 = socket.create_connection(("127.0.0.1", srv.port))
    c2.settimeout(5)
    assert c2.recv(10) == b""  # closed at once: FreeSWITCH then runs the dialplan fallback
    assert srv.rejected == 1
    gate.set()
    c1.close()
    c2.close()
