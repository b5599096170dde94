"""Events rendered through the emulator's caches (variables copied once per change and shared by the events
fired in between, memoised state/profile/variable lines, the event-plain frame joined from them) are byte
for byte what an uncached rendering of the channel's state at the moment the event fired gives.

The oracle below renders from the live channel, at fire time, with its own code (switch_channel_event_set_data
as the emulator shows it); every fired event is then compared in all three formats, in both orders (the
event-plain frame made first from the memoised lines, or from the rendered header list)."""

from __future__ import annotations

import random

import pytest

from fsd.sim import Answer, CallerScript, NoAnswer, Phone, Switch, originate, wire
from fsd.sim.channel import STATE_NUMBERS, TIME_FIELDS, VAR_EVENTS, Channel
from tests.helpers import wait_for
from tests.sim._client import OutboundServer, login

FAST = 0.01
FORMATS = ("plain", "json", "xml")


def _oracle_profile(prefix, profile: dict, times: dict, other=False):
    out = []
    for k, v in profile.items():
        if other and k in ("Profile-Index", "Transfer-Source"):
            continue
        if other and k == "Logical-Direction":
            v = "inbound"
        if v:
            out.append((f"{prefix}-{k}", v))
    out += [(f"{prefix}-{k}", str(times[k])) for k in TIME_FIELDS]
    out += [(f"{prefix}-Screen-Bit", "true"), (f"{prefix}-Privacy-Hide-Name", "false"),
            (f"{prefix}-Privacy-Hide-Number", "false")]
    return out


def _oracle_channel(ch: Channel, name: str, with_profile: bool):
    h = [
        ("Channel-State", ch.state),
        ("Channel-Call-State", ch.call_state),
        ("Channel-State-Number", str(STATE_NUMBERS.get(ch._desired_state or ch.state, 0))),
        ("Channel-Name", ch.name),
        ("Unique-ID", ch.uuid),
        ("Call-Direction", ch.direction),
        ("Presence-Call-Direction", ch.direction),
        ("Channel-HIT-Dialplan", "true" if ch.hit_dialplan else "false"),
    ]
    if ch.presence_id:
        h.append(("Channel-Presence-ID", ch.presence_id))
    h += [("Channel-Call-UUID", ch.uuid), ("Answer-State", ch.answer_state)]
    if ch.hangup_cause:
        h.append(("Hangup-Cause", ch.hangup_cause))
    if ch.has_media:
        for d in ("Read", "Write"):
            h += [(f"Channel-{d}-Codec-Name", "PCMU"), (f"Channel-{d}-Codec-Rate", "8000"),
                  (f"Channel-{d}-Codec-Bit-Rate", "64000")]
    if with_profile:
        h += _oracle_profile("Caller", ch.profile, ch.times)
        if ch.other is not None:
            op, ot = ch.other_profile or (ch.other.profile, ch.other.times)
            h.append(("Other-Type", ch.other_type))
            h += _oracle_profile("Other-Leg", op, ot, True)
    if name in VAR_EVENTS:
        h += [(f"variable_{k}", v) for k, v in list(ch.variables.items())]
    return h


class Recorder:
    """Wraps Switch.fire: the oracle's headers of every channel event, taken when it fires."""

    def __init__(self, sw: Switch):
        self.sw = sw
        self.expected: list[tuple] = []
        self._fire = sw.fire
        sw.fire = self.fire

    def fire(self, ev):
        if ev._snap is not None:
            ch = ev._owner
            base = self.sw._base_headers(ev, ev._calling)
            chan = _oracle_channel(ch, ev.name, ev._snap[11] is not None)
            self.expected.append((ev, list(ev._pre or ()) + base + list(ev._before) + chan + list(ev._after)))
        elif ev._headers is None:  # other lazy events (API)
            tail = ev._tail() if callable(ev._tail) else list(ev._tail)
            self.expected.append((ev, self.sw._base_headers(ev, ev._calling) + list(tail)))
        self._fire(ev)

    def check(self, *, plain_first: bool) -> int:
        n = 0
        for ev, want in self.expected:
            order = FORMATS if plain_first else ("json", "xml", "plain")
            got = {fmt: ev.frame(fmt) for fmt in order}
            for fmt in FORMATS:
                assert got[fmt] == wire.event_frame(fmt, want, ev.body), (ev, fmt)
            assert ev.headers == want, ev
            n += 1
        return n


def test_channel_events_with_changes_in_between_render_as_uncached():
    sw = Switch(time_scale=FAST, heartbeat_interval=0).start()
    try:
        esl = login("127.0.0.1", sw.esl_port)
        esl.cmd("event plain ALL")  # renders the event-plain frames as the events fire
        rec = Recorder(sw)
        rnd = random.Random(5)
        a = Channel(switch=sw, direction="inbound", name="sofia/external/100@127.0.0.1", caller_id_number="100",
                    destination_number="200", variables=[("x", "1"), ("y", "a b")])
        b = Channel(switch=sw, direction="outbound", name="sofia/internal/200@127.0.0.1", caller_id_number="100",
                    destination_number="200")
        sw._register_channel(a)
        sw._register_channel(b)
        names = ["CHANNEL_EXECUTE", "CHANNEL_STATE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_CALLSTATE", "DTMF",
                 "CHANNEL_ANSWER", "CHANNEL_HANGUP", "PLAYBACK_START"]
        for i in range(300):
            ch = rnd.choice([a, b])
            step = rnd.randrange(10)
            if step < 3:
                ch.set_var(rnd.choice(["x", "y", "z", f"v{i % 7}"]), rnd.choice([None, "", "q", f"w {i}", "ü:%"]))
            elif step == 3:
                ch.profile["Caller-ID-Name"] = f"name {i}"
            elif step == 4:
                ch.times["Channel-Progress-Time"] = 1_700_000_000_000_000 + i
            elif step == 5:
                ch.state = rnd.choice(["CS_EXECUTE", "CS_ROUTING", "CS_NEW"])
                ch.has_media = rnd.random() < 0.5
            elif step == 6 and ch.other is None:
                other = b if ch is a else a
                ch.other, ch.other_type = other, "originatee"
            before = [("Before", str(i))] if rnd.random() < 0.3 else []
            after = [("After", "x y")] if rnd.random() < 0.3 else []
            ch.fire(rnd.choice(names), before=before, after=after, body="body\n" if rnd.random() < 0.1 else None)
            if rnd.random() < 0.1:
                sw.fire_api_event("status", rnd.choice(["", "x y"]))
        wait_for(lambda: len(esl.events) >= len(rec.expected), 10)
        assert rec.check(plain_first=True) == len(rec.expected) > 300
        # what the connection received is the same frames
        assert [f.raw for f in esl.events] == [ev.frame("plain") for ev, _ in rec.expected]
        esl.close()
    finally:
        sw.stop()


@pytest.mark.parametrize("plain_first", [True, False])
def test_a_call_through_the_outbound_socket_renders_as_uncached(plain_first):
    """A routed call as fsd drives it (myevents, answer, ring-back, originate of a member leg, uuid_kill),
    a bridged one and DTMF, with plain, json and xml listeners: every event as the uncached oracle."""
    srv = OutboundServer()
    sw = Switch(time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", srv.port))
    sw.add_phone(Phone("1001", behaviour=NoAnswer()))
    sw.add_phone(Phone("1002", behaviour=Answer(after=0.5), hangup_after=2.0))
    sw.start()
    rec = Recorder(sw)
    listeners = []
    try:
        if plain_first:
            for fmt in FORMATS:
                c = login("127.0.0.1", sw.esl_port)
                c.cmd(f"event {fmt} ALL")
                listeners.append(c)
        inbound = login("127.0.0.1", sw.esl_port)
        inbound.cmd("event plain CHANNEL_ANSWER CHANNEL_HANGUP BACKGROUND_JOB")
        ch = sw.incoming_call(did="74950000001", caller="79161234567", context="fsd-public", script=CallerScript())
        conn = srv.accept()
        conn.cmd("connect")
        conn.cmd("myevents")
        conn.cmd("linger")
        for app, arg in (("answer", ""), ("set", "hangup_after_bridge=true"),
                         ("endless_playback", "tone_stream://%(1000,4000,425);loops=-1")):
            conn.cmd(f"sendmsg\ncall-command: execute\nexecute-app-name: {app}\nexecute-app-arg: {arg}")
        inbound.cmd("bgapi originate {origination_uuid=leg-1,originate_timeout=120,fsd_queue_call="
                    f"{ch.uuid}}}user/1001@127.0.0.1 &park()")
        leg = sw.wait_for_channel(uuid="leg-1", state="RINGING")
        ch.send_dtmf("12")
        conn.api(f"uuid_setvar {ch.uuid} foo bar baz")
        ch.hangup("NORMAL_CLEARING", remote=True)
        inbound.api("uuid_kill leg-1 ORIGINATOR_CANCEL")
        sw.wait_for_channel(uuid=ch.uuid, state="CS_REPORTING")
        conn.close()
        assert ch.destroyed.wait(10) and leg.destroyed.wait(10)

        ch = sw.incoming_call(did="74950000002", caller="79160000002", caller_name='Ünï "x"', context="public",
                              variables={"weird": "a b:c%d\r\ne|f"})
        conn = srv.accept()
        conn.cmd("connect")
        conn.cmd("myevents json")
        for app, arg in (("answer", ""), ("set", "hangup_after_bridge=true"), ("bridge", "user/1002@127.0.0.1")):
            conn.cmd(f"sendmsg\ncall-command: execute\nexecute-app-name: {app}\nexecute-app-arg: {arg}")
        assert ch.destroyed.wait(10)
        conn.close()
        n = rec.check(plain_first=plain_first)
        names = {ev.name for ev, _ in rec.expected}
        assert n > 100 and {"PRIVATE_COMMAND", "CHANNEL_BRIDGE", "DTMF", "API"} <= names
    finally:
        for c in listeners:
            c.close()
        sw.stop()
        srv.stop()


def test_url_encode_fast_path_is_the_table_translation():
    """url_encode (strings without a character to escape as they are, the others by replacing the characters
    present) is the translation through its table."""
    rnd = random.Random(3)
    samples = [chr(c) for c in range(128)] + [f"ab{chr(c)}cd" for c in range(128)]
    samples += ["".join(chr(rnd.randrange(128)) for _ in range(rnd.randrange(12))) for _ in range(20000)]
    samples += ["".join(rnd.choice("%%%25ab:=\r\n ") for _ in range(rnd.randrange(40))) for _ in range(5000)]
    samples += ["".join(chr(rnd.randrange(128)) for _ in range(rnd.randrange(400))) for _ in range(500)]
    for v in samples:
        assert wire.url_encode.__wrapped__(v) == v.translate(wire._TABLE), repr(v)


def test_dial_string_splitting_shortcuts_match_the_character_scan():
    rnd = random.Random(9)
    for _ in range(30000):
        s = "".join(rnd.choice("ab=,|{}[]<>()'\" /@x") for _ in range(rnd.randrange(25)))
        for sep in ",|":
            assert originate._split_top(s, sep) == originate._split_top_scan(s, sep), (s, sep)
        for o, c in ("[]", "{}"):
            assert originate._take_prefix(s, o, c) == originate._take_prefix(s, o, c, shortcut=False), s
