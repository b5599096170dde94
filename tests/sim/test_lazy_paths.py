"""The emulator's cheaper paths give the bytes of the plain ones: uncached header lines, variable lines made
when the variables are rendered (not when set), frames joined from parts. Each is checked against an
independent rendering over random inputs."""

from __future__ import annotations

import random

from fsd.sim import Switch, wire
from fsd.sim.channel import Channel

ALPHABET = "ab%:= \r\n\"#&+;<>?@[\\]^`{|}~'/.-_\x00\x1f\x7fü€😀"


def _random_text(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice(ALPHABET) for _ in range(rnd.randrange(n)))


def test_uncached_lines_are_the_memoised_ones():
    rnd = random.Random(11)
    samples = [chr(c) for c in range(0x800)] + [chr(c) for c in range(0xD800 - 64, 0xD800)]
    samples += [chr(c) for c in range(0xE000, 0x10000, 97)] + [chr(c) for c in range(0x10000, 0x110000, 4099)]
    samples += [_random_text(rnd, 30) for _ in range(20000)]
    samples += ["", "plain", "1700000000123456", "2026-11-28 18:59:36"]
    for v in samples:
        want = wire._plain_line.__wrapped__("Some-Header", v)
        assert want == f"Some-Header: {v.translate(wire._TABLE) if v.isascii() else wire.url_encode(v)}\n"
        assert wire.plain_line("Some-Header", v) == want, repr(v)
        assert wire.var_line("some_var", v) == wire._plain_line.__wrapped__("variable_some_var", v), repr(v)


def test_frames_joined_from_parts_are_the_plain_frame():
    rnd = random.Random(12)
    for _ in range(3000):
        headers = [(rnd.choice(["A", "Event-Name", "variable_x", "Naïve-Name"]), _random_text(rnd, 12))
                   for _ in range(rnd.randrange(6))]
        body = rnd.choice([None, None, "", "body ü\n", _random_text(rnd, 20)])
        parts = [wire._plain_line(k, v) for k, v in headers]
        split = rnd.randrange(len(parts) + 1)
        parts = ["".join(parts[:split]), *parts[split:]]
        assert wire.plain_frame_parts(parts, body) == wire.event_frame("plain", headers, body)


def test_variable_lines_made_at_rendering_follow_every_change():
    """set_var / set_vars (new names, names set again, unset, None values, repeated names in one batch) between
    renderings: the rendered variables are always those of an uncached rendering of the channel's variables."""
    sw = Switch(heartbeat_interval=0)
    rnd = random.Random(13)
    for _ in range(20):
        ch = Channel(switch=sw, direction="inbound", name="sofia/external/100@127.0.0.1",
                     variables=[("a", "1"), ("b", "x y")])
        names = [f"v{i}" for i in range(12)] + ["a", "b"]
        for _ in range(300):
            step = rnd.randrange(6)
            if step < 2:
                ch.set_var(rnd.choice(names), rnd.choice([None, "", "q", _random_text(rnd, 10), 17]))
            elif step < 4:
                ch.set_vars([(rnd.choice(names), rnd.choice([None, "", "w", _random_text(rnd, 10), 3.5]))
                             for _ in range(rnd.randrange(6))])
            else:
                want = "".join(wire._plain_line("variable_" + k, v) for k, v in ch.variables.items())
                assert ch._var_plain() == want
                ev = ch.fire("CHANNEL_EXECUTE")
                assert ev.frame("plain") == wire.event_frame("plain", ev.headers, None)


def _billing_oracle(ch, now_us: int, q850: int) -> list[tuple[str, str]]:
    """The CDR variables as written out one by one (time.localtime per stamp)."""
    import time

    def stamp(us):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(us / 1e6))

    t = ch.times
    created, profile = t["Channel-Created-Time"], t["Profile-Created-Time"]
    answered, bridged = t["Channel-Answered-Time"], t["Channel-Bridged-Time"]
    progress, pmedia = t["Channel-Progress-Time"], t["Channel-Progress-Media-Time"]
    end = t["Channel-Hangup-Time"] or now_us
    out = [("hangup_cause", ch.hangup_cause or "NORMAL_CLEARING"), ("hangup_cause_q850", str(q850)),
           ("digits_dialed", "none"), ("start_stamp", stamp(created)), ("profile_start_stamp", stamp(profile))]
    for name, us in (("answer", answered), ("bridge", bridged), ("progress", progress), ("progress_media", pmedia)):
        if us:
            out.append((f"{name}_stamp", stamp(us)))
    out.append(("end_stamp", stamp(end)))
    for name, us in (("start", created), ("profile_start", profile), ("answer", answered), ("bridge", bridged),
                     ("last_hold", 0)):
        out += [(f"{name}_epoch", str(us // 1_000_000)), (f"{name}_uepoch", str(us))]
    out += [("hold_accum_seconds", "0"), ("hold_accum_usec", "0"), ("hold_accum_ms", "0"), ("resurrect_epoch", "0"),
            ("resurrect_uepoch", "0")]
    for name, us in (("progress", progress), ("progress_media", pmedia), ("end", end)):
        out += [(f"{name}_epoch", str(us // 1_000_000)), (f"{name}_uepoch", str(us))]
    if ch.last_app:
        out.append(("last_app", ch.last_app))
        if ch.last_arg:
            out.append(("last_arg", ch.last_arg))
    out.append(("caller_id", f'"{ch.profile["Caller-ID-Name"]}" <{ch.profile["Caller-ID-Number"]}>'))
    dur, flow = end - created, end - profile
    bill = (end - answered) if answered else 0
    prog = (progress - created) if progress else 0
    wait = (answered - created) if answered else 0
    pm = (pmedia - created) if pmedia else 0
    for unit, div, prefix in (("sec", 1_000_000, ""), ("msec", 1000, "m"), ("usec", 1, "u")):
        out += [(f"{prefix}duration", str(dur // div)), (f"bill{unit}", str(bill // div)),
                (f"progress{unit}", str(prog // div)), (f"answer{unit}", str(wait // div)),
                (f"wait{unit}", str(wait // div)), (f"progress_media{unit}", str(pm // div)),
                (f"flow_bill{unit}", str(flow // div))]
    return out


def test_billing_variables_are_the_cdr_written_out():
    from fsd.sim import variables as varsets

    sw = Switch(heartbeat_interval=0)
    rnd = random.Random(14)
    base = 1_700_000_000_000_000
    for i in range(400):
        ch = Channel(switch=sw, direction=rnd.choice(["inbound", "outbound"]), name="sofia/internal/1@127.0.0.1",
                     caller_id_name=rnd.choice(["", "A b"]), caller_id_number="100")
        created = base + rnd.randrange(10**12)
        for k in ("Channel-Created-Time", "Profile-Created-Time"):
            ch.times[k] = created + (rnd.randrange(3 * 10**6) if k == "Profile-Created-Time" else 0)
        for k in ("Channel-Answered-Time", "Channel-Bridged-Time", "Channel-Progress-Time",
                  "Channel-Progress-Media-Time", "Channel-Hangup-Time"):
            # whole seconds, the last microsecond of a second, or anything
            ch.times[k] = rnd.choice([0, created + rnd.randrange(10**8), (created // 10**6 + 5) * 10**6 - 1,
                                      (created // 10**6 + 7) * 10**6])
        ch.hangup_cause = rnd.choice([None, "USER_BUSY"])
        ch.last_app, ch.last_arg = rnd.choice([("", ""), ("park", ""), ("playback", "x.wav")])
        now = created + rnd.randrange(10**9)
        if i % 2:
            ch._var_plain()  # rendered before: the lines are made at the next rendering
        before = dict(ch.variables)
        varsets.billing(ch, now, 17)
        want = dict(before)
        for k, v in _billing_oracle(ch, now, 17):
            want.pop(k, None)
            want[k] = v
        assert list(ch.variables.items()) == list(want.items())
        assert ch._var_plain() == "".join(wire._plain_line("variable_" + k, v) for k, v in want.items())


def test_state_and_times_lines_are_the_header_lines():
    from fsd.sim import channel as chm

    rnd = random.Random(15)
    for _ in range(3000):
        key = (rnd.choice(["CS_NEW", "CS_EXECUTE", _random_text(rnd, 6)]), rnd.choice(["DOWN", "ACTIVE"]),
               rnd.randrange(14), rnd.choice(["sofia/internal/1001@127.0.0.1:5060", _random_text(rnd, 20)]),
               rnd.choice(["u-1", _random_text(rnd, 8)]), rnd.choice(["inbound", "outbound", "a b"]),
               rnd.random() < 0.5, rnd.choice(["", "1001@127.0.0.1", _random_text(rnd, 5)]),
               rnd.choice(["ringing", "answered", "x:y"]), rnd.choice([None, "", "NORMAL_CLEARING", "a%b"]),
               rnd.random() < 0.5)
        assert chm._state_plain(*key) == "".join(wire._plain_line(k, v) for k, v in chm._state_block(*key))
        times = tuple(rnd.choice([0, rnd.randrange(10**16), -3, "1 2", 1.5]) for _ in chm.TIME_FIELDS)
        for prefix in ("Caller", "Other-Leg"):
            names = chm._profile_names(prefix)[0]
            assert chm._times_plain(prefix, times) == "".join(
                wire._plain_line(n, str(t)) for n, t in zip(names, times, strict=True))


class _ParserOracle:
    """The command parser written plainly (every find, a generator for Content-Length)."""

    def __init__(self):
        self._buf = b""

    def feed(self, data):
        self._buf += data
        out = []
        while True:
            norm_idx = self._buf.find(b"\n\n")
            crlf_idx = self._buf.find(b"\r\n\r\n")
            if norm_idx < 0 and crlf_idx < 0:
                break
            if norm_idx < 0 or (0 <= crlf_idx < norm_idx):
                idx, sep = crlf_idx, 4
            else:
                idx, sep = norm_idx, 2
            block = self._buf[:idx].decode("utf-8", "replace").replace("\r", "")
            rest = self._buf[idx + sep :]
            lines = block.split("\n")
            first = lines[0].strip()
            headers = []
            for line in lines[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    headers.append((k.strip(), v.strip()))
            body = b""
            length = next((v for k, v in headers if k.lower() == "content-length"), None)
            if length is not None:
                try:
                    n = int(length)
                except ValueError:
                    n = 0
                if len(rest) < n:
                    break
                body, rest = rest[:n], rest[n:]
            self._buf = rest
            if not first and not headers:
                continue
            out.append((first, headers, body))
        return out


def test_command_parser_over_random_streams_and_splits():
    rnd = random.Random(16)
    pieces = [b"api status", b"sendmsg", b"\n", b"\r\n", b"\n\n", b"\r\n\r\n", b"call-command: execute",
              b"Content-Length: 5", b"content-length: 0", b"CONTENT-LENGTH: x", b"Content-Length:3", b"abc",
              b"hello", b" : ", b"\xc3\xbc", b"\xff", b"key: v: w", b"  ", b"exit"]
    for _ in range(2000):
        stream = b"".join(rnd.choice(pieces) for _ in range(rnd.randrange(30)))
        new, old = wire.CommandParser(), _ParserOracle()
        got, want = [], []
        pos = 0
        while pos < len(stream):
            n = rnd.randrange(1, 12)
            got += new.feed(stream[pos : pos + n])
            want += old.feed(stream[pos : pos + n])
            pos += n
        assert got == want and new._buf == old._buf, stream
