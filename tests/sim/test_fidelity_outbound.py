"""Fidelity of an outbound-socket call against the real captures: the outbound connection's frames must
have the same sequence, framing and header names/order (variable_* sets and values aside)."""

from __future__ import annotations

import gevent
import pytest

from fsd.sim import Answer, Busy, CallerScript, Phone, Switch
from tests.sim import fidelity
from tests.sim._client import OutboundServer, login

pytestmark = pytest.mark.skipif(not fidelity.available(), reason="FreeSWITCH traces not present")

WAV = "/srv/freeswitch-1/sounds/traces/tone-1s-8k.wav"
FALLBACK = [
    "log:WARNING traces fallback: socket app returned for ${uuid}",
    "playback:tone_stream://%(500,0,300)",
    "hangup",
]


def _switch(outbound_port):
    sw = Switch(
        time_scale=0.15,
        outbound_target=("127.0.0.1", outbound_port),
        fallback=FALLBACK,
        missing_file_duration=1.0,  # the capture's 1 s WAV is not on this machine
        **fidelity.CAPTURE_IDENTITY,
    )
    sw.add_phone(Phone("1001", behaviour=Answer(after=2.0), hangup_after=3.0))
    sw.add_phone(Phone("1002", behaviour=Busy()))
    return sw.start()


def _structure(frames):
    return [fidelity.normalise(f, structure=True) for f in frames]


def _variable_names(frame):
    if (frame.content_type or "").startswith("text/event"):
        return sorted(k for k in frame.event() if k.startswith("variable_"))
    return sorted(k for k, _ in frame.headers if k.startswith("variable_"))


def assert_same_variable_names(got, want):
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        gv, wv = set(_variable_names(g)), set(_variable_names(w))
        assert gv == wv, f"frame {i}: {gv ^ wv}"


def _replay_outbound(name, srv, *, timeout=10.0):
    holder = {}

    def factory():
        holder["conn"] = srv.accept(timeout=timeout)
        return holder["conn"]

    return fidelity.replay(name, 0, sock_factory=factory, timeout=timeout)


def test_outbound_call_matches_capture():
    srv = OutboundServer()
    sw = _switch(srv.port)
    inbound = login("127.0.0.1", sw.esl_port)
    try:
        script = CallerScript(prompt_digits=["1"], prompt_delay=1.5)
        ch = sw.incoming_call(did="74950000001", caller="79161234567", caller_name="PSTN Caller", script=script)

        def agents():
            sw.wait_for_event("CHANNEL_EXECUTE_COMPLETE", Application="play_and_get_digits", timeout=10)
            inbound.send("bgapi originate {ignore_early_media=true,leg_timeout=10}user/1002@127.0.0.1 &park()")
            inbound.send("bgapi originate {leg_timeout=10}user/1001@127.0.0.1 &park()")
            ev = sw.wait_for_event("BACKGROUND_JOB", timeout=10)
            while not ev.body.startswith("+OK"):
                ev = sw.wait_for_event("BACKGROUND_JOB", since=sw.events.index(ev) + 1, timeout=10)
            inbound.send(f"api uuid_bridge {ch.uuid} {ev.body.split()[1]}")

        g = gevent.spawn(agents)
        got, _ = _replay_outbound("call-outbound.outbound", srv)
        g.get(timeout=10)
        want = fidelity.expected_frames("call-outbound.outbound")
        g_s, w_s = _structure(got), _structure(want)
        assert g_s == w_s, fidelity.first_difference(g_s, w_s)
        assert_same_variable_names(got, want)
        ch.destroyed.wait(5)
        assert ch.destroyed.is_set()
    finally:
        inbound.close()
        sw.stop()
        srv.stop()


def test_outbound_bridge_app_call_matches_capture():
    srv = OutboundServer()
    sw = _switch(srv.port)
    try:
        ch = sw.incoming_call(did="74950000001", caller="79161234567", caller_name="PSTN Caller")
        got, _ = _replay_outbound("call-outbound-bridge.outbound", srv)
        want = fidelity.expected_frames("call-outbound-bridge.outbound")
        g_s, w_s = _structure(got), _structure(want)
        assert g_s == w_s, fidelity.first_difference(g_s, w_s)
        assert_same_variable_names(got, want)
        ch.destroyed.wait(5)
    finally:
        sw.stop()
        srv.stop()


@pytest.mark.parametrize("name", ["call-socket-close", "call-socket-close-resume"])
def test_socket_close_matches_capture(name):
    srv = OutboundServer()
    sw = _switch(srv.port)
    try:
        ch = sw.incoming_call(did="74950000001", caller="79161234567", caller_name="PSTN Caller")
        got, _ = _replay_outbound(f"{name}.outbound", srv)
        want = fidelity.expected_frames(f"{name}.outbound")
        g_s, w_s = _structure(got), _structure(want)
        assert g_s == w_s, fidelity.first_difference(g_s, w_s)
        assert_same_variable_names(got, want)
        ch.destroyed.wait(5)
        assert ch.hangup_cause == "NORMAL_CLEARING"
        names = [e.get("Application") for e in sw.events if e.name == "CHANNEL_EXECUTE" and e.uuid == ch.uuid]
        assert names == ["socket", "log", "playback", "hangup"]
    finally:
        sw.stop()
        srv.stop()
