"""Lazy header access gives what a full parse gives: Frame.get vs Frame.headers.get, the parser's strict
check of outer header blocks vs parse_header_block_reference(strict=True), Event.get on an unparsed plain
event vs after its full parse."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsd.esl.frames import (
    Event,
    Frame,
    FrameParser,
    Headers,
    MalformedHeader,
    parse_header_block_reference,
)
from tests.esl import traces

_NAMES = ["Content-Type", "content-type", "CONTENT-LENGTH", "Content-Length", "Reply-Text", "Linger-Time",
          "Kind", "kind", "K\u212aind", "Job-UUID", "X", "\u00c9t\u00e9", "\u00e9t\u00e9", "A:B", ""]

_line = st.one_of(
    st.tuples(st.sampled_from(_NAMES), st.sampled_from([": ", ":", ":  "]),
              st.sampled_from(["1", "+OK", "%2BOK%0A", "command/reply", " 12 ", "\u00e9", "a\r", "%ZZ", ""]))
    .map(lambda t: "".join(t).encode("utf-8")),
    st.sampled_from([b"", b"\r", b"no colon", b":empty name", b"\xff\xfe: x", b"Content-Length: 4\r"]),
)
_blocks = st.lists(_line, min_size=1, max_size=8).map(b"\n".join)


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(block=_blocks, name=st.sampled_from([*_NAMES, "kind", "KIND", "Nope"]))
def test_frame_get_equals_full_parse(block, name):
    lazy = Frame(None, raw_headers=block, content_type="")
    full = Headers(parse_header_block_reference(block))
    assert lazy.get(name) == full.get(name)
    assert lazy.get(name, "dflt") == full.get(name, "dflt")
    assert lazy.headers.items() == full.items()


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(block=_blocks)
def test_parser_strictness_equals_reference(block):
    raw = block.strip(b"\n")
    while b"\n\n" in raw:  # one header block, as the parser cuts it
        raw = raw.replace(b"\n\n", b"\n")
    if not raw:
        return
    try:
        want = parse_header_block_reference(raw, strict=True)
    except MalformedHeader:
        want = None
    parser = FrameParser()
    try:
        frames = parser.feed(raw + b"\n\n")
    except MalformedHeader:
        assert want is None
        return
    except Exception as exc:  # InvalidContentLength: then the reference must find that value invalid too
        value = Headers(want).get("Content-Length") if want is not None else None
        assert value is not None and not value.strip().isdigit(), exc
        return
    assert want is not None
    if frames:
        assert frames[0].headers.items() == want
        assert frames[0].content_type == Headers(want).get("Content-Type", "")


def test_connect_reply_frame_is_not_parsed_for_reply_text():
    data = traces.read(f"{traces.ESL}/call-outbound.outbound.server.raw")
    frames = FrameParser().feed(data)
    connect = next(f for f in frames if len(f.raw_headers) > 1000)
    assert connect.reply_text == "+OK\n"
    assert connect._headers is None  # the 140 channel headers were not parsed for it
    assert connect.get("Socket-Mode") == "async"
    assert connect.headers.get("Reply-Text") == "+OK\n"


def _plain(headers: list[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\n" for k, v in headers).encode() + b"\n"


@pytest.mark.parametrize("name", ["Unique-ID", "unique-id", "variable_absent", "Caller-Context", "K\u212a", "A:B"])
def test_event_get_miss_does_not_parse_and_matches_full_parse(name):
    data = _plain([("Event-Name", "CHANNEL_DATA"), ("Unique-ID", "u-1"), ("Caller-Context", "public"),
                   ("caller-context", "second")])
    lazy = Event.from_plain(data, lookups=100)
    full = Event.from_plain(data)
    full.headers  # noqa: B018 - force the full parse
    assert lazy.get(name) == full.get(name)
    assert lazy.get(name, "d") == full.get(name, "d")


def test_event_absent_header_lookup_keeps_it_unparsed():
    lazy = Event.from_plain(_plain([("Event-Name", "CHANNEL_DATA"), ("Unique-ID", "u-1")]), lookups=100)
    for _ in range(50):
        assert lazy.get("variable_sofia_profile_name") is None
        assert lazy.get("Unique-ID") == "u-1"
    assert lazy._headers is None
    assert Event.from_plain(_plain([("Event-Name", "X"), ("Unique-ID", "u-1")]), lookups=0).get("unique-id") == "u-1"


def test_event_case_variant_falls_back_to_full_parse():
    lazy = Event.from_plain(_plain([("Event-Name", "X"), ("UNIQUE-ID", "u-2")]), lookups=10)
    assert lazy.get("Unique-ID") == "u-2"
    assert lazy._headers is not None
