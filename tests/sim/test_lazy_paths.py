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
