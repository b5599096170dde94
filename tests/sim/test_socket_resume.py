"""What the emulator does when the outbound socket controlling a call dies, as mod_event_socket 1.10 does.

The end of listener_run: unless the channel is in CS_HIBERNATE (or a transfer/redirect is under way), the
channel is set to CS_RESET when the listener got `resume` or socket_resume is true; CS_RESET makes
switch_channel_ready() false, so park, an app fsd started with sendmsg, a bridge app or a uuid_bridge
stop, and the dialplan continues after `socket` (the fallback). Without resume/socket_resume only
CF_CONTROLLED is cleared: the socket app's park ends (the captured call-socket-close), but an app running
inside it keeps running until it ends by itself, and a bridge stays up."""

from __future__ import annotations

import pytest

from fsd.sim import Answer, Phone, Switch
from tests.helpers import wait_for
from tests.sim._client import OutboundServer

FAST = 0.01
FALLBACK = ["set:fsd_fallback=taken", "hangup:NORMAL_TEMPORARY_FAILURE"]
RINGBACK = "tone_stream://%(2000,4000,440,480);loops=-1"


@pytest.fixture
def outbound():
    srv = OutboundServer()
    yield srv
    srv.stop()


@pytest.fixture
def sw(outbound):
    s = Switch(time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", outbound.port),
               fallback=FALLBACK).start()
    s.add_phone(Phone("1001", behaviour=Answer(after=0.5)))
    yield s
    s.stop()


def _call(sw, outbound, *, context):
    """A DID call handed to the outbound server; returns (channel, its connected outbound socket)."""
    ch = sw.incoming_call(did="74950000001", caller="79161234567", context=context)
    conn = outbound.accept()
    r = conn.cmd("connect")
    assert r.get("Reply-Text") == "%2BOK%0A"
    assert conn.cmd("myevents").reply == "+OK Events Enabled"
    return ch, conn


def _execute(conn, app, arg=""):
    text = f"sendmsg\ncall-command: execute\nexecute-app-name: {app}"
    if arg:
        text += f"\nexecute-app-arg: {arg}"
    assert conn.cmd(text).reply == "+OK"


def _trail(sw, ch, since=0):
    """The channel's events from `since`: (name, Application or state) pairs, without the noise."""
    out = []
    for e in sw.events[since:]:
        if e.uuid != ch.uuid:
            continue
        if e.name in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"):
            out.append((e.name, e.get("Application")))
        elif e.name in ("CHANNEL_STATE",):
            out.append((e.name, e.get("Channel-State")))
        elif e.name in ("CHANNEL_PARK", "CHANNEL_UNPARK", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "PLAYBACK_START",
                        "PLAYBACK_STOP", "CHANNEL_HANGUP"):
            out.append((e.name, None))
    return out


def _event(sw, ch, name, since=0, **headers):
    want = {k.replace("_", "-"): v for k, v in headers.items()}
    return next(e for e in sw.events[since:] if e.uuid == ch.uuid and e.name == name
                and all(e.get(k) == v for k, v in want.items()))


def _fallback_ran(ch):
    return ch.hungup.is_set() and ch.get_var("fsd_fallback") == "taken"


# ------------------------------------------------------------------------------------------- parked


@pytest.mark.parametrize("how", ["none", "dialplan", "uuid_setvar", "resume"])
def test_parked_call_takes_the_fallback_with_or_without_socket_resume(sw, outbound, esl, how):
    """The captured call-socket-close and call-socket-close-resume: the same events either way, since the
    socket app's park ends when the listener clears CF_CONTROLLED."""
    ch, conn = _call(sw, outbound, context="fsd-public" if how == "dialplan" else "public")
    if how == "uuid_setvar":
        assert esl.api(f"uuid_setvar {ch.uuid} socket_resume true") == "+OK\n"
    elif how == "resume":
        assert conn.cmd("resume").reply == "+OK"
    mark = len(sw.events)
    conn.close()
    wait_for(lambda: ch.destroyed.is_set(), timeout=10, message="call over")
    assert _fallback_ran(ch) and ch.hangup_cause == "NORMAL_TEMPORARY_FAILURE"
    assert _trail(sw, ch, mark)[:6] == [
        ("CHANNEL_UNPARK", None),
        ("CHANNEL_EXECUTE_COMPLETE", "socket"),
        ("CHANNEL_EXECUTE", "set"),
        ("CHANNEL_EXECUTE_COMPLETE", "set"),
        ("CHANNEL_EXECUTE", "hangup"),
        ("CHANNEL_HANGUP", None),
    ]
    # CS_RESET is never a running state here: socket_function sets CS_EXECUTE before the state machine runs
    assert "CS_RESET" not in ch.state_history
    unpark = _event(sw, ch, "CHANNEL_UNPARK", mark)
    assert unpark.get("Channel-State") == "CS_EXECUTE"
    # the state number shows channel->state: CS_RESET (9) with resume/socket_resume, else CS_EXECUTE (4)
    assert unpark.get("Channel-State-Number") == ("4" if how == "none" else "9")
    assert _event(sw, ch, "CHANNEL_EXECUTE_COMPLETE", mark, Application="socket").get("Channel-State-Number") == "4"


def test_the_fsd_contexts_set_socket_resume_before_socket(sw, outbound):
    ch, conn = _call(sw, outbound, context="fsd-internal")
    assert _trail(sw, ch)[-4:] == [
        ("CHANNEL_EXECUTE", "set"),
        ("CHANNEL_EXECUTE_COMPLETE", "set"),
        ("CHANNEL_EXECUTE", "socket"),
        ("CHANNEL_PARK", None),
    ]
    assert _event(sw, ch, "CHANNEL_EXECUTE", Application="set").get("Application-Data") == "socket_resume=true"
    assert ch.get_var("socket_resume") == "true"
    other, conn2 = _call(sw, outbound, context="public")
    assert other.get_var("socket_resume") is None
    assert [a for n, a in _trail(sw, other) if n == "CHANNEL_EXECUTE"] == ["socket"]
    conn.close()
    conn2.close()


# ------------------------------------------------------------------------------- app started by fsd


@pytest.mark.parametrize("app,arg", [
    ("endless_playback", RINGBACK),
    ("playback", "silence_stream://0"),  # endless silence
    ("play_and_get_digits", "1 1 3 5000 # silence_stream://0 silence_stream://0 choice \\d 5000"),
])
def test_app_running_on_socket_loss_stops_with_socket_resume(sw, outbound, app, arg):
    ch, conn = _call(sw, outbound, context="fsd-public")
    _execute(conn, "answer")
    _execute(conn, app, arg)
    sw.wait_for_event("PLAYBACK_START", Unique_ID=ch.uuid)
    mark = len(sw.events)
    conn.close()
    wait_for(lambda: ch.destroyed.is_set(), timeout=10, message="fallback ran")
    assert _fallback_ran(ch)
    assert _trail(sw, ch, mark)[:7] == [
        ("PLAYBACK_STOP", None),
        ("CHANNEL_EXECUTE_COMPLETE", app),
        ("CHANNEL_UNPARK", None),
        ("CHANNEL_EXECUTE_COMPLETE", "socket"),
        ("CHANNEL_EXECUTE", "set"),
        ("CHANNEL_EXECUTE_COMPLETE", "set"),
        ("CHANNEL_EXECUTE", "hangup"),
    ]
    stop = _event(sw, ch, "PLAYBACK_STOP", mark)
    # switch_ivr_play_file ends with SWITCH_STATUS_FALSE when the channel is not ready: "done", not "break"
    assert stop.get("Playback-Status") == "done" and stop.get("Channel-State-Number") == "9"
    done = _event(sw, ch, "CHANNEL_EXECUTE_COMPLETE", mark, Application=app)
    if app != "play_and_get_digits":
        assert done.get("Application-Response") == "PLAYBACK ERROR"
    else:  # no further tries, no invalid prompt
        assert [n for n, _ in _trail(sw, ch) if n == "PLAYBACK_START"] == ["PLAYBACK_START"]
        assert done.get("variable_choice") is None


def test_endless_playback_keeps_playing_without_socket_resume(sw, outbound, esl):
    ch, conn = _call(sw, outbound, context="public")
    _execute(conn, "answer")
    _execute(conn, "endless_playback", RINGBACK)
    sw.wait_for_event("PLAYBACK_START", Unique_ID=ch.uuid)
    mark = len(sw.events)
    conn.close()
    wait_for(lambda: not any(c.outbound for c in sw.connections), timeout=5, message="outbound socket gone")
    sw.clock.sleep(10)  # ten simulated seconds: the caller still hears the ring-back
    assert not ch.hungup.is_set() and ch.last_app == "endless_playback"
    assert _trail(sw, ch, mark) == []
    assert esl.api(f"uuid_getvar {ch.uuid} fsd_fallback") == "_undef_"
    ch.hangup("NORMAL_CLEARING", remote=True)
    wait_for(lambda: ch.destroyed.is_set(), timeout=10, message="caller gone")
    assert ch.get_var("fsd_fallback") is None


def test_finite_app_without_socket_resume_ends_then_the_park_ends(sw, outbound):
    """CF_CONTROLLED is gone: once the app fsd started ends by itself, the socket app's park ends too."""
    ch, conn = _call(sw, outbound, context="public")
    _execute(conn, "answer")
    _execute(conn, "playback", "silence_stream://3000")
    sw.wait_for_event("PLAYBACK_START", Unique_ID=ch.uuid)
    mark = len(sw.events)
    conn.close()
    wait_for(lambda: ch.destroyed.is_set(), timeout=10, message="fallback ran")
    assert _fallback_ran(ch)
    assert _trail(sw, ch, mark)[:4] == [
        ("PLAYBACK_STOP", None),
        ("CHANNEL_EXECUTE_COMPLETE", "playback"),
        ("CHANNEL_UNPARK", None),
        ("CHANNEL_EXECUTE_COMPLETE", "socket"),
    ]
    done = _event(sw, ch, "CHANNEL_EXECUTE_COMPLETE", mark, Application="playback")
    assert done.get("Application-Response") == "FILE PLAYED"
    stop = _event(sw, ch, "PLAYBACK_STOP", mark)
    assert stop.get("Playback-Status") == "done" and stop.get("variable_playback_seconds") == "3"


def test_resume_command_wins_over_socket_resume_false(sw, outbound, esl):
    """LFLAG_RESUME || socket_resume: `resume` resets the channel even if the variable is false later."""
    ch, conn = _call(sw, outbound, context="public")
    _execute(conn, "endless_playback", RINGBACK)
    sw.wait_for_event("PLAYBACK_START", Unique_ID=ch.uuid)
    assert conn.cmd("resume").reply == "+OK"
    assert esl.api(f"uuid_setvar {ch.uuid} socket_resume false") == "+OK\n"
    conn.close()
    wait_for(lambda: ch.destroyed.is_set(), timeout=10, message="fallback ran")
    assert _fallback_ran(ch)


# ---------------------------------------------------------------------------------------- bridged


def _uuid_bridge_to_phone(sw, esl, ch):
    reply = esl.api("originate {origination_caller_id_number=74950000001}user/1001@127.0.0.1 &park()")
    assert reply.startswith("+OK "), reply
    leg = sw.channel(reply.split()[1])
    assert esl.api(f"uuid_bridge {ch.uuid} {leg.uuid}").startswith("+OK")
    wait_for(lambda: ch.bridged_to is leg and leg.bridged_to is ch, timeout=5, message="bridged")
    return leg


@pytest.mark.parametrize("resume", [True, False])
def test_uuid_bridge_on_socket_loss(sw, outbound, esl, resume):
    ch, conn = _call(sw, outbound, context="fsd-public")
    _execute(conn, "answer")
    sw.wait_for_event("CHANNEL_ANSWER", Unique_ID=ch.uuid)
    if not resume:  # what fsd does before it bridges (a conversation outlives fsd)
        assert esl.api(f"uuid_setvar {ch.uuid} socket_resume false") == "+OK\n"
    leg = _uuid_bridge_to_phone(sw, esl, ch)
    mark = len(sw.events)
    conn.close()
    if resume:
        # the bridge breaks (a clean exit for the caller), the caller goes on with the fallback and the
        # member's leg, left without its partner, is hung up
        wait_for(lambda: ch.destroyed.is_set() and leg.destroyed.is_set(), timeout=10, message="both gone")
        assert _fallback_ran(ch) and leg.hangup_cause == "NORMAL_CLEARING"
        assert _trail(sw, ch, mark)[:4] == [
            ("CHANNEL_UNBRIDGE", None),
            ("CHANNEL_STATE", "CS_EXECUTE"),
            ("CHANNEL_EXECUTE", "set"),
            ("CHANNEL_EXECUTE_COMPLETE", "set"),
        ]
    else:
        wait_for(lambda: not any(c.outbound for c in sw.connections), timeout=5, message="outbound socket gone")
        sw.clock.sleep(10)  # the conversation goes on
        assert ch.bridged_to is leg and not ch.hungup.is_set() and not leg.hungup.is_set()
        assert _trail(sw, ch, mark) == []
        leg.hangup("NORMAL_CLEARING", remote=True)  # the member hangs up: the caller's dialplan goes on
        wait_for(lambda: ch.destroyed.is_set(), timeout=10, message="caller done")
        assert _fallback_ran(ch)


def test_bridge_app_on_socket_loss_with_socket_resume(sw, outbound):
    ch, conn = _call(sw, outbound, context="fsd-public")
    _execute(conn, "bridge", "user/1001@127.0.0.1")
    wait_for(lambda: ch.bridged_to is not None, timeout=5, message="bridged")
    leg = ch.bridged_to
    mark = len(sw.events)
    conn.close()
    wait_for(lambda: ch.destroyed.is_set() and leg.destroyed.is_set(), timeout=10, message="both gone")
    assert _fallback_ran(ch) and leg.hangup_cause == "NORMAL_CLEARING"
    assert _trail(sw, ch, mark)[:5] == [
        ("CHANNEL_UNBRIDGE", None),
        ("CHANNEL_EXECUTE_COMPLETE", "bridge"),
        ("CHANNEL_UNPARK", None),
        ("CHANNEL_EXECUTE_COMPLETE", "socket"),
        ("CHANNEL_EXECUTE", "set"),
    ]


def test_ringing_bridge_app_is_cancelled_on_socket_loss_with_socket_resume(sw, outbound):
    sw.add_phone(Phone("1002", behaviour=Answer(after=1000)))
    ch, conn = _call(sw, outbound, context="fsd-public")
    _execute(conn, "bridge", "user/1002@127.0.0.1")
    phone = sw.phones["1002@127.0.0.1"]
    wait_for(lambda: phone.calls, timeout=5, message="phone rings")
    leg = sw.channel(phone.calls[0])
    conn.close()
    wait_for(lambda: ch.destroyed.is_set() and leg.hungup.is_set(), timeout=10, message="both gone")
    assert _fallback_ran(ch) and leg.hangup_cause == "ORIGINATOR_CANCEL"


# ------------------------------------------------------------------------------------ exclusions


def test_no_reset_in_hibernate_or_while_a_redirect_is_pending(sw):
    ch = sw.incoming_call(did="1", caller="2", apps=["answer", "park"], variables={"socket_resume": "true"})
    sw.wait_for_event("CHANNEL_PARK", Unique_ID=ch.uuid)
    ch.state = "CS_HIBERNATE"  # as between uuid_bridge's state changes
    ch.outbound_socket_ended(resume=True)
    assert ch.ready() and not ch.hungup.is_set()
    ch.state = "CS_EXECUTE"
    ch._private.put(("transfer", "5000", "XML", "default"))  # a uuid_transfer on its way (CF_TRANSFER)
    ch.outbound_socket_ended(resume=True)
    assert ch.ready()
    ch.hangup("NORMAL_CLEARING")


def test_uuid_bridge_racing_the_socket_loss_is_not_reset(sw, outbound, esl):
    """uuid_bridge sets CF_REDIRECT at once; the listener dying before the legs moved leaves them alone."""
    ch, conn = _call(sw, outbound, context="fsd-public")
    _execute(conn, "answer")
    sw.wait_for_event("CHANNEL_ANSWER", Unique_ID=ch.uuid)
    reply = esl.api("originate user/1001@127.0.0.1 &park()")
    leg = sw.channel(reply.split()[1])
    assert sw.api.execute("uuid_bridge", f"{ch.uuid} {leg.uuid}").startswith("+OK")
    sw.crash()  # in the same greenlet turn: the bridge request is still queued
    wait_for(lambda: ch.bridged_to is leg, timeout=5, message="bridged anyway")
    sw.clock.sleep(5)
    assert ch.bridged_to is leg and not ch.hungup.is_set() and ch.get_var("fsd_fallback") is None
