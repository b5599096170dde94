"""Fidelity of the emulator's channel-event streams (inbound `event plain ALL`) against the captures.

Replies are compared exactly (after normalising UUIDs/dates); events by name, order and header names,
leaving out variable_* sets (which depend on the SIP stack) and the timer-driven HEARTBEAT/RE_SCHEDULE."""

from __future__ import annotations

import re

import gevent
import pytest

from fsd.sim import Gateway, NoAnswer, Phone, Reject, Switch
from tests.sim import fidelity
from tests.sim._client import OutboundServer

pytestmark = pytest.mark.skipif(not fidelity.available(), reason="FreeSWITCH traces not present")

TIMER_EVENTS = (
    b"Event-Name: HEARTBEAT\n",
    b"Event-Name: RE_SCHEDULE\n",
    b'"Event-Name":"HEARTBEAT"',
    b'"Event-Name":"RE_SCHEDULE"',
)


def _keep(frame):
    return not any(t in frame.body for t in TIMER_EVENTS)


def _structure(frames):
    return [fidelity.normalise(f, structure=True) for f in frames if not any(t in f.body for t in TIMER_EVENTS)]


def test_originate_failures_match_capture():
    sw = Switch(time_scale=0.02, heartbeat_interval=0, **fidelity.CAPTURE_IDENTITY)
    sw.add_phone(Phone("1019", register=False))
    sw.add_phone(Phone("1001", behaviour=NoAnswer()))
    gw = sw.add_gateway(Gateway("pstn_trunk", reachable=False))
    sw.start()
    try:

        def before(i, cmd):
            if cmd.startswith(b"api originate sofia/gateway") and i == 6:
                gw.reachable = True
                gw.behaviour = Reject(cause="NORMAL_TEMPORARY_FAILURE")
                gw.numbers.clear()

        got, _ = fidelity.replay("originate-failures", sw.esl_port, before_command=before, keep=_keep)
        g, w = _structure(got), _structure(fidelity.expected_frames("originate-failures"))
        assert g == w, fidelity.first_difference(g, w)
        assert_same_variable_names(got, fidelity.expected_frames("originate-failures"))
    finally:
        sw.stop()


CALLS = {
    2: ["d79a1bc3-2d34-4d7e-bbef-c594372f71ec"],  # call A, before uuid_broadcast
    9: ["5c45ce81-456b-4a2c-ae06-35e2db995412"],  # call B, before its uuid_kill
    10: ["1c1c9e37-bf9a-4adf-93ca-8c1bb451772a", "9b416b25-506e-47c2-9c90-2f4c17910797"],  # C, D, before hupall
}


def test_uuid_commands_match_capture():
    dialplan = {"default": {"9999": ["answer", "playback:tone_stream://%(1000,0,440)", "hangup:NORMAL_CLEARING"]}}
    sw = Switch(
        time_scale=0.3,
        heartbeat_interval=0,
        dialplan=dialplan,
        missing_file_duration=1.0,
        **fidelity.CAPTURE_IDENTITY,
    )
    sw.start()
    try:

        def before(i, cmd):
            for uuid in CALLS.get(i, []):
                ch = sw.incoming_call(
                    did="5900",
                    caller="79161234567",
                    caller_name="PSTN Caller",
                    context="default",
                    apps=["answer", "park"],
                    uuid=uuid,
                    profile="internal",
                )
                sw.wait_for_event("CHANNEL_PARK", Unique_ID=ch.uuid, timeout=5)
            if cmd.startswith(b"api uuid_break"):
                sw.wait_for_event("PLAYBACK_START", timeout=5)

        got, _ = fidelity.replay("uuid-commands", sw.esl_port, before_command=before, keep=_keep)
        g, w = _structure(got), _structure(fidelity.expected_frames("uuid-commands"))
        assert g == w, fidelity.first_difference(g, w)
        # when the phone's ACK arrives relative to the answer app differs between calls in the capture
        racy = ("variable_sip_to_tag", "variable_sip_cseq")
        assert_same_variable_names(got, fidelity.expected_frames("uuid-commands"), ignore=racy)
    finally:
        sw.stop()


FALLBACK = [
    "log:WARNING traces fallback: socket app returned for ${uuid}",
    "playback:tone_stream://%(500,0,300)",
    "hangup",
]


def _call_switch(outbound_port, **kw):
    return Switch(
        time_scale=0.15,  # margins for timers (agent hangs up 3 s after answer) under CPU load
        heartbeat_interval=0,
        outbound_target=("127.0.0.1", outbound_port),
        fallback=FALLBACK,
        missing_file_duration=1.0,
        **fidelity.CAPTURE_IDENTITY,
        **kw,
    ).start()


def _variable_names(frames):
    """Per channel (numbered by first appearance): the variable_* name sets of its events, in order."""
    out: dict = {}
    order: dict = {}
    for f in frames:
        if not (f.content_type or "").startswith("text/event"):
            continue
        ev = f.event()
        uid = ev.get("Unique-ID")
        if not uid:
            continue
        key = order.setdefault(uid, len(order))
        out.setdefault(key, []).append((ev.get("Event-Name"), sorted(k for k in ev if k.startswith("variable_"))))
    return out


def assert_same_variable_names(got, want, ignore=()):
    g, w = _variable_names(got), _variable_names(want)
    assert g.keys() == w.keys()
    for ch in w:
        for i, ((gn, gv), (wn, wv)) in enumerate(zip(g[ch], w[ch], strict=True)):
            assert gn == wn, f"channel {ch} event {i}: {gn} instead of {wn}"
            gs, ws = set(gv) - set(ignore), set(wv) - set(ignore)
            assert gs == ws, f"channel {ch} event {i} {wn}: {gs ^ ws}"


def _by_channel(frames, keep):
    """Normalised frames grouped per channel (channels numbered by first appearance)."""
    groups: dict = {}
    order: dict = {}
    for f in frames:
        if not keep(f):
            continue
        uid = f.event().get("Unique-ID") if f.content_type and f.content_type.startswith("text/event") else None
        key = order.setdefault(uid, len(order)) if uid else "-"
        groups.setdefault(key, []).append(fidelity.normalise(f, structure=True))
    return groups


def _inbound_call_capture(name, sw, *, uuid, outbound=None, script=None, keep=None, per_channel=False):
    """Replay the inbound side of a call capture: the call arrives after `event plain ALL`."""
    state = {}

    def before(i, cmd):
        if i == 2:
            state["ch"] = sw.incoming_call(
                did="74950000001", caller="79161234567", caller_name="PSTN Caller", uuid=uuid, script=script
            )
            if outbound is not None:
                state["out"] = gevent.spawn(outbound)
        if cmd.startswith(b"exit"):
            state["ch"].destroyed.wait(10)

    keep = keep or _keep
    got, _ = fidelity.replay(name, sw.esl_port, before_command=before, keep=keep)
    state["got"] = [f for f in got if keep(f)]
    state["want"] = [f for f in fidelity.expected_frames(name) if keep(f)]
    if per_channel:
        g, w = _by_channel(got, keep), _by_channel(fidelity.expected_frames(name), keep)
        assert g.keys() == w.keys()
        for k in w:
            assert g[k] == w[k], f"channel {k}: " + fidelity.first_difference(g[k], w[k])
        return state
    g = [fidelity.normalise(f, structure=True) for f in got if keep(f)]
    w = [fidelity.normalise(f, structure=True) for f in fidelity.expected_frames(name) if keep(f)]
    assert g == w, fidelity.first_difference(g, w)
    return state


def test_socket_refused_inbound_stream_matches_capture():
    from tests.helpers import free_port

    sw = _call_switch(free_port())
    try:
        st = _inbound_call_capture("call-socket-refused.inbound", sw, uuid="95e03d4e-0000-4000-8000-000000000001")
        assert_same_variable_names(st["got"], st["want"])
        assert st["ch"].hangup_cause == "NORMAL_CLEARING"
    finally:
        sw.stop()


def test_socket_close_inbound_stream_matches_capture():
    srv = OutboundServer()
    sw = _call_switch(srv.port)
    try:

        def outbound():
            conn = srv.accept()
            conn.cmd("connect")
            conn.close()

        st = _inbound_call_capture(
            "call-socket-close.inbound", sw, uuid="95e03d4e-0000-4000-8000-000000000002", outbound=outbound
        )
        assert_same_variable_names(st["got"], st["want"])
    finally:
        sw.stop()
        srv.stop()


CALLER_UUID = "84066c95-6aa4-4f2b-9b78-ecf63963cdee"


@pytest.mark.parametrize("name", ["call-outbound", "call-outbound-json"])
def test_outbound_call_inbound_stream_matches_capture(name):
    from fsd.sim import Answer, Busy, CallerScript

    srv = OutboundServer()
    sw = _call_switch(srv.port)
    sw.add_phone(Phone("1001", behaviour=Answer(after=2.0), hangup_after=3.0, variables=dict(REG_VARS)))
    sw.add_phone(Phone("1002", behaviour=Busy(), variables=dict(REG_VARS, accountcode="1002")))
    caller_uuid = _uuid_in(name)
    try:

        def outbound():
            return fidelity.replay(f"{name}.outbound", 0, sock_factory=lambda: srv.accept(timeout=10))

        script = CallerScript(prompt_digits=["1"], prompt_delay=1.5, dtmf_via="info")
        keep = _keep
        if name.endswith("json"):
            # This run recorded one extra CHANNEL_STATE on the agent leg (run-to-run variation noted in
            # the traces' README), so CHANNEL_STATE events are left out of this comparison only.
            def keep(f):
                return _keep(f) and b'"Event-Name":"CHANNEL_STATE"' not in f.body

        # The JSON run also shows a different (racy) interleaving of the two legs around the agent's
        # hangup, so it is compared per channel; the plain run is compared in global order.
        st = _inbound_call_capture(
            f"{name}.inbound",
            sw,
            uuid=caller_uuid,
            outbound=outbound,
            script=script,
            keep=keep,
            per_channel=name.endswith("json"),
        )
        st["out"].get(timeout=10)
        if not name.endswith("json"):
            # every event carries the same set of variable_* names as FreeSWITCH's
            for i, (g, w) in enumerate(zip(st["got"], st["want"], strict=True)):
                if not (w.content_type or "").startswith("text/event"):
                    continue
                gv = sorted(k for k in g.event() if k.startswith("variable_"))
                wv = sorted(k for k in w.event() if k.startswith("variable_"))
                assert gv == wv, f"frame {i} {w.event().get('Event-Name')}: {set(gv) ^ set(wv)}"
    finally:
        sw.stop()
        srv.stop()


def _uuid_in(name):
    """The caller's UUID as the capture's inbound client used it (uuid_bridge <caller> <agent>)."""
    for cmd, _ in fidelity.client_commands(f"{name}.inbound"):
        if cmd.startswith(b"api uuid_bridge"):
            return cmd.split()[2].decode()
    raise AssertionError("no uuid_bridge in capture")


REG_VARS = {
    "record_stereo": "true",
    "default_gateway": "pstn_trunk",
    "default_areacode": "918",
    "transfer_fallback_extension": "operator",
    "toll_allow": "domestic,international,local",
    "accountcode": "1001",
    "user_context": "default",
    "effective_caller_id_name": "Extension 1001",
    "effective_caller_id_number": "1001",
    "outbound_caller_id_name": "FreeSWITCH",
    "outbound_caller_id_number": "0000000000",
    "callgroup": "techsupport",
}


def test_registration_events_match_capture():

    sw = Switch(time_scale=0.05, heartbeat_interval=0, **fidelity.CAPTURE_IDENTITY).start()
    try:

        class Directory:  # a directory where 1003's password is "right" and the phone sends a wrong one
            def check_register(self, phone, password):
                return password == "1234"

            def lookup_user(self, *a, **kw):
                return None

            def flush(self, arg):
                return 0

        sw.xmlcurl = Directory()

        def before(i, cmd):
            if i == 2:
                for user, port, pw in (("1001", 5101, "1234"), ("1002", 5102, "1234"), ("1003", 5103, "bad")):
                    phone = Phone(
                        user,
                        port=port,
                        register=False,
                        user_agent="sipp-trace-agent",
                        variables=dict(REG_VARS, accountcode=user),
                    )
                    phone.call_id = f"1-{user}@127.0.0.1"
                    sw.add_phone(phone)
                    sw.register(phone, password=pw)

        got, _ = fidelity.replay("registration-events.inbound", sw.esl_port, before_command=before, keep=_keep)
        want = fidelity.expected_frames("registration-events.inbound")

        # api bodies: digits (ports, call ids, expiry times) are normalised, the layout is compared
        def norm(f):
            text = fidelity.normalise(f, structure=True)
            return re.sub(r"\d+", "N", text) if f.content_type == "api/response" else text

        g = [norm(f) for f in got if _keep(f)]
        w = [norm(f) for f in want if _keep(f)]
        assert g == w, fidelity.first_difference(g, w)
        # the registration table and list have FreeSWITCH's layout (values differ: ports, call ids, times)
        table = next(f for f in got if f.body.startswith(b"\nRegistrations:")).body.decode()
        assert table.count("Ping-Status:\tReachable") == 2 and "Total items returned: 2\n" in table
        listing = next(f for f in got if f.body.startswith(b"reg_user,")).body.decode()
        assert listing.endswith("\n\n2 total.\n")
    finally:
        sw.stop()


def test_bridge_app_call_inbound_stream_matches_capture():
    """The ring group done with the bridge app (1002 busy, 1001 answers after 2 s and hangs up 3 s later),
    compared per channel: the b-legs are set up concurrently, so their interleaving is racy."""
    from fsd.sim import Answer, Busy

    name = "call-outbound-bridge"
    srv = OutboundServer()
    sw = _call_switch(srv.port)
    sw.add_phone(Phone("1001", behaviour=Answer(after=2.0), hangup_after=3.0, variables=dict(REG_VARS)))
    sw.add_phone(Phone("1002", behaviour=Busy(), variables=dict(REG_VARS, accountcode="1002")))
    try:

        def outbound():
            return fidelity.replay(f"{name}.outbound", 0, sock_factory=lambda: srv.accept(timeout=10))

        st = _inbound_call_capture(
            f"{name}.inbound", sw, uuid="af7bf4e5-0000-4000-8000-000000000003", outbound=outbound, per_channel=True
        )
        st["out"].get(timeout=10)
        assert_same_variable_names(st["got"], st["want"])
    finally:
        sw.stop()
        srv.stop()
