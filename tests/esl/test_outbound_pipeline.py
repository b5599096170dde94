"""Outbound sessions: pipelined commands (one write, replies in order), the hub reader (no reader greenlet
per session), and the one write path of Connection."""

from __future__ import annotations

import gc

import gevent
import gevent.event
import greenlet
import pytest

from fsd.errors import ESLDisconnected
from fsd.esl import OutboundServer
from fsd.esl.connection import CommandFailed
from tests.esl.fakes import reply
from tests.esl.test_outbound import CONNECT_REPLY, ScriptedFS, _event_bytes
from tests.helpers import wait_for


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


def _handled(body):
    """An outbound handler running ``body(session, out)``; returns (handler, out, done)."""
    out = {}
    done = gevent.event.Event()

    def handler(session):
        try:
            body(session, out)
        finally:
            done.set()

    return handler, out, done


@pytest.fixture
def run_session(server_factory):
    """``run(body, **fs_kw)``: ``body(session, out)`` as the outbound handler of a call from a ChunkRecordingFS
    (kwargs: ChunkRecordingFS's); returns ``(out, fs)`` once the handler has returned."""
    sides = []

    def run(body, **fs_kw):
        handler, out, done = _handled(body)
        fs = ChunkRecordingFS(server_factory(handler).port, **fs_kw)
        sides.append(fs)
        assert done.wait(10)
        return out, fs

    yield run
    for fs in sides:
        fs.close()


@pytest.fixture
def run_emulated(server_factory):
    """``run(body)``: ``body(session, out)`` as the outbound handler of one call placed by fsd.sim (FreeSWITCH
    1.10 as the emulator has it); returns ``(out, switch)`` once the handler has returned."""
    from fsd.sim import CallerScript, Switch

    switches = []

    def run(body):
        handler, out, done = _handled(body)
        sw = Switch(time_scale=0.05, heartbeat_interval=0,
                    outbound_target=("127.0.0.1", server_factory(handler).port)).start()
        switches.append(sw)
        sw.incoming_call(did="100", caller="200", script=CallerScript())
        assert done.wait(15)
        return out, sw

    yield run
    for sw in switches:
        sw.stop()


class ChunkRecordingFS(ScriptedFS):
    """ScriptedFS that also records how the commands arrived (recv chunks) and can refuse one command."""

    def __init__(self, port, *, refuse: tuple[bytes, ...] = ()):
        self.refuse = refuse
        self.chunks: list[bytes] = []
        super().__init__(port)

    def _run(self):
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.chunks.append(data)
                self.parser_buf += data
                while b"\n\n" in self.parser_buf:
                    head, _, self.parser_buf = self.parser_buf.partition(b"\n\n")
                    self.commands.append(head)
                    if head == b"connect":
                        self.sock.sendall(CONNECT_REPLY)
                    elif any(token in head for token in self.refuse):
                        self.sock.sendall(reply("-ERR refused"))
                    else:
                        self.sock.sendall(reply("+OK"))
        except OSError:
            pass
        finally:
            self.closed.set()


def test_commands_are_pipelined_in_one_write_and_replies_stay_in_order(run_session):
    def body(session, out):
        session.connect()
        replies = session.commands("myevents", "linger")
        out["replies"] = [r.reply_text for r in replies]
        res = session.execute_many([("answer", None), ("set", "hangup_after_bridge=true"),
                                    ("endless_playback", "tone_stream://%(2000,4000,440,480);loops=-1")])
        out["keys"] = [r.event_uuid for r in res]
        out["after"] = session.command("noevents").reply_text

    out, fs = run_session(body)
    assert out["replies"] == ["+OK", "+OK"]
    assert out["after"] == "+OK"
    assert fs.commands[1:3] == [b"myevents", b"linger"]
    assert b"myevents\n\nlinger\n\n" in fs.chunks  # one write for both
    apps = fs.commands[3:6]
    assert [c.split(b"execute-app-name: ")[1].split(b"\n")[0] for c in apps] == [b"answer", b"set",
                                                                                 b"endless_playback"]
    for key, cmd in zip(out["keys"], apps, strict=True):
        assert b"event-uuid: " + key.encode() in cmd
    assert fs.commands[6] == b"noevents"


def test_pipelined_error_raises_and_later_replies_do_not_shift(run_session):
    def body(session, out):
        session.connect()
        with pytest.raises(CommandFailed) as ei:
            session.commands("myevents", "linger", "event plain ALL")
        out["err"] = ei.value.reply
        with pytest.raises(CommandFailed):
            session.execute_many([("answer", None), ("bogus_refused_app", "x")])
        out["executions"] = len(session._executions)
        out["next"] = session.command("noevents").reply_text

    out, _ = run_session(body, refuse=(b"linger", b"bogus_refused_app"))
    assert out["err"] == "-ERR refused"
    assert out["next"] == "+OK"  # the replies after the error were consumed in order
    assert out["executions"] == 0  # a refused pipeline leaves no execution tracked


def test_execute_many_completion_and_hangup(server_factory):
    out = {}
    started = gevent.event.Event()

    def handler(session):
        session.connect()
        session.myevents()
        res = session.execute_many([("playback", "/a.wav"), ("park", None)])
        started.set()
        for i, r in enumerate(res):
            try:
                r.get(timeout=5)
            except Exception as exc:
                out[i] = type(exc).__name__

    srv = server_factory(handler)
    fs = ScriptedFS(srv.port)
    assert started.wait(5)
    fs.send(_event_bytes("CHANNEL_HANGUP"))
    wait_for(lambda: len(out) == 2, 5)
    assert out == {0: "SessionHangup", 1: "SessionHangup"}
    fs.close()


def test_session_reader_runs_in_the_event_loop_without_a_greenlet(server_factory):
    seen = {}
    release = gevent.event.Event()

    def handler(session):
        session.connect()
        seen["hub_reader"] = session.conn.hub_reader
        seen["reader"] = session.conn._reader
        release.wait(10)
        try:
            session.api("status", timeout=5)
        except ESLDisconnected as exc:
            seen["api"] = exc

    srv = server_factory(handler)
    fss = [ScriptedFS(srv.port, answer_api=False) for _ in range(20)]
    wait_for(lambda: len(srv.sessions) == 20 and all(s.uuid for s in srv.sessions), 10)
    gc.collect()
    readers = [g for g in gc.get_objects()
               if isinstance(g, greenlet.greenlet) and str(getattr(g, "name", "")).startswith("esl-reader:outbound")]
    assert readers == []
    assert seen["hub_reader"] is True and seen["reader"] is None
    release.set()
    wait_for(lambda: sum(1 for f in fss for c in f.commands if c.startswith(b"api status")) == 20, 10)
    for f in fss:
        f.close()  # socket loss seen by the hub reader wakes the api waiter at once
    wait_for(lambda: "api" in seen and not srv.sessions, 10)
    assert isinstance(seen["api"], ESLDisconnected)


def test_connect_pipelines_the_setup_commands_in_its_write(run_session):
    def body(session, out):
        data = session.connect(then=("myevents", "nixevent CHANNEL_EXECUTE", "linger"))
        out["uuid"], out["name"] = session.uuid, data.name
        out["next"] = session.command("noevents").reply_text

    out, fs = run_session(body)
    assert out["uuid"] and out["name"] == "CHANNEL_DATA"
    assert fs.commands[:4] == [b"connect", b"myevents", b"nixevent CHANNEL_EXECUTE", b"linger"]
    assert b"connect\n\nmyevents\n\nnixevent CHANNEL_EXECUTE\n\nlinger\n\n" in fs.chunks  # one write
    assert out["next"] == "+OK"


def test_connect_keeps_the_channel_data_when_a_pipelined_command_is_refused(run_session):
    def body(session, out):
        with pytest.raises(CommandFailed) as ei:
            session.connect(then=("myevents", "linger"))
        out["err"], out["uuid"] = ei.value.reply, session.uuid
        out["next"] = session.command("noevents").reply_text  # the replies did not shift

    out, _ = run_session(body, refuse=(b"linger",))
    assert out["err"] == "-ERR refused" and out["uuid"] and out["next"] == "+OK"


def test_nixed_events_of_myevents_are_not_sent_by_the_emulator(run_emulated):
    """Against fsd.sim (FreeSWITCH's nixevent clears entries of the listener's event list, myevents'
    included): the application still completes, its CHANNEL_EXECUTE and the state events never arrive."""
    seen = []

    def body(session, out):
        session.connect(then=("myevents", "nixevent CHANNEL_EXECUTE CHANNEL_STATE", "linger"))
        session.subscribe("*", lambda ev: seen.append(ev.name))
        out["answer"] = session.execute("answer").get(timeout=10).get("Application")
        session.hangup()
        out["hung_up"] = session.hung_up.wait(10)
        wait_for(lambda: "CHANNEL_HANGUP" in seen, 10, message="the hangup event dispatched")

    out, sw = run_emulated(body)
    assert out == {"answer": "answer", "hung_up": True}
    assert "CHANNEL_EXECUTE_COMPLETE" in seen and "CHANNEL_ANSWER" in seen and "CHANNEL_HANGUP" in seen
    assert "CHANNEL_EXECUTE" not in seen and "CHANNEL_STATE" not in seen
    # the emulator did fire them (the switch saw the application run and the states change)
    assert any(e.name == "CHANNEL_EXECUTE" for e in sw.events)
    assert any(e.name == "CHANNEL_STATE" for e in sw.events)


def test_completions_nixed_come_back_in_the_write_of_the_first_tracked_execute(run_session):
    """myevents then nixevent CHANNEL_EXECUTE_COMPLETE: untracked executes send no ``event`` command and
    track nothing; the first tracked one is preceded by ``event CHANNEL_EXECUTE_COMPLETE`` in the same
    write, the later ones are not."""
    def body(session, out):
        out["before"] = session.completions
        session.connect(then=("myevents", "nixevent CHANNEL_ANSWER CHANNEL_EXECUTE_COMPLETE", "linger"))
        out["nixed"] = session.completions
        out["untracked"] = session.execute("set", "a=b", track=False)
        out["many"] = session.execute_many([("answer", None), ("set", "c=d")], track=False)
        out["tracked_pending"] = len(session._executions)
        out["key"] = session.execute("playback", "/a.wav").key
        out["after"] = session.completions
        out["keys2"] = [r.key for r in session.execute_many([("playback", "/b.wav")])]

    out, fs = run_session(body)
    assert out["before"] is None and out["nixed"] is False and out["after"] is True
    assert out["untracked"] is None and out["many"] == [None, None] and out["tracked_pending"] == 0
    heads = [c.split(b"\n")[0] for c in fs.commands]
    assert heads.count(b"event CHANNEL_EXECUTE_COMPLETE") == 1
    i = heads.index(b"event CHANNEL_EXECUTE_COMPLETE")
    assert b"execute-app-name: playback" in fs.commands[i + 1]
    assert b"event-uuid: " + out["key"].encode() in fs.commands[i + 1]
    # one write: the event command and its application arrived in the same chunk
    assert any(b"event CHANNEL_EXECUTE_COMPLETE\n\nsendmsg\n" in ch for ch in fs.chunks)
    # everything before it was untracked, everything after it needs no second event command
    assert all(b"execute-app-name: playback" not in c for c in fs.commands[:i])
    assert b"event-uuid: " + out["keys2"][0].encode() in fs.commands[i + 2]


def test_a_refused_event_command_fails_the_execute_and_tracks_nothing(run_session):
    def body(session, out):
        # (lower case, as FreeSWITCH accepts it: the refusal below matches only the event command)
        session.connect(then=("myevents", "nixevent channel_execute_complete"))
        try:
            session.execute("playback", "/a.wav")
        except CommandFailed as e:
            out["err"] = e.reply
        out["pending"] = len(session._executions)
        out["completions"] = session.completions

    out, _ = run_session(body, refuse=(b"event CHANNEL_EXECUTE_COMPLETE",))
    assert out == {"err": "-ERR refused", "pending": 0, "completions": False}


@pytest.mark.parametrize(("cmds", "completions", "jobs"), [
    (("myevents",), True, False),
    (("myevents", "nixevent CHANNEL_EXECUTE_COMPLETE"), False, False),
    (("myevents", "nixevent all"), False, False),
    (("myevents", "noevents"), False, False),
    (("myevents", "noevents", "event plain CHANNEL_EXECUTE_COMPLETE"), True, False),
    (("myevents", "nixevent CHANNEL_EXECUTE_COMPLETE", "event ALL"), True, True),
    (("event plain BACKGROUND_JOB",), None, True),
    (("event plain BACKGROUND_JOB", "nixevent BACKGROUND_JOB"), None, False),
    (("myevents", "nixevent DTMF"), True, False),
])
def test_the_session_follows_its_event_list_from_the_commands(run_session, cmds, completions, jobs):
    def body(session, out):
        session.connect()
        session.commands(*cmds)
        out["state"] = (session.completions, session._bgjob_subscribed)

    out, _ = run_session(body)
    assert out["state"] == (completions, jobs)


def test_a_refused_nixevent_changes_nothing(run_session):
    def body(session, out):
        session.connect(then=("myevents",))
        with pytest.raises(CommandFailed):
            session.command("nixevent CHANNEL_EXECUTE_COMPLETE")
        out["completions"] = session.completions

    out, _ = run_session(body, refuse=(b"nixevent",))
    assert out["completions"] is True


def test_nixed_completions_against_the_emulator(run_emulated):
    """fsd.sim as FreeSWITCH 1.10 (``event`` after ``myevents`` and ``nixevent`` sets one entry of the
    list and keeps the restriction to this channel): untracked applications' completions and CHANNEL_ANSWER
    never arrive, a tracked one's does, and no other channel's completion does."""
    seen = []

    def body(session, out):
        session.connect(then=("myevents", "nixevent CHANNEL_ANSWER CHANNEL_EXECUTE_COMPLETE", "linger"))
        session.subscribe("*", lambda ev: seen.append((ev.name, ev.get("Application"), ev.uuid)))
        session.execute_many([("answer", None), ("set", "x=1")], track=False)
        ev = session.execute("playback", "silence_stream://200").get(timeout=10)
        out["completed"] = (ev.get("Application"), ev.uuid)
        out["uuid"] = session.uuid
        session.hangup()
        out["hung_up"] = session.hung_up.wait(10)
        wait_for(lambda: any(n == "CHANNEL_HANGUP" for n, _, _ in seen), 10, message="hangup dispatched")

    out, sw = run_emulated(body)
    assert out["completed"] == ("playback", out["uuid"]) and out["hung_up"] is True
    completes = [app for name, app, _ in seen if name == "CHANNEL_EXECUTE_COMPLETE"]
    assert "answer" not in completes and "set" not in completes and "playback" in completes
    assert "CHANNEL_ANSWER" not in [n for n, _, _ in seen]
    assert all(u == out["uuid"] for _, _, u in seen)
    # the emulator did fire them: the listener's event list kept them off the socket
    fired = [(e.name, e.get("Application")) for e in sw.events if e.uuid == out["uuid"]]
    assert ("CHANNEL_EXECUTE_COMPLETE", "answer") in fired and ("CHANNEL_ANSWER", None) in fired
