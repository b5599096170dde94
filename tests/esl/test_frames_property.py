"""Property: arbitrary bytes never make the parser raise anything but the ProtocolError family, or hang."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fsd.errors import ProtocolError
from fsd.esl.frames import Event, FrameParser
from tests.esl import traces

_SAMPLE = traces.read(f"{traces.ESL}/esl-inbound-commands.server.raw")[:6000]

# bytes biased towards ESL syntax so that deep paths (bodies, nested events, JSON) are reached
_tokens = st.sampled_from(
    [
        b"Content-Type: ", b"text/event-plain", b"text/event-json", b"text/event-xml", b"api/response",
        b"command/reply", b"Content-Length: ", b"\n", b"\n\n", b": ", b"%", b"%0A", b"%ZZ", b"0", b"5", b"17",
        b"-1", b"99999999999", b"Event-Name: X", b"{", b"}", b'"_body":', b"\xff", b"\xc3", b"<headers>",
        b"</headers>", b"<body>", b"\r",
    ]
)
_chunks = st.lists(st.one_of(st.binary(max_size=40), _tokens), max_size=40).map(b"".join)
_splice = st.tuples(st.integers(0, len(_SAMPLE)), st.integers(0, len(_SAMPLE)), st.binary(max_size=30)).map(
    lambda t: _SAMPLE[: min(t[0], t[1])] + t[2] + _SAMPLE[max(t[0], t[1]) :]
)


def _run(data: bytes, cut: int) -> None:
    parser = FrameParser(max_header_bytes=4096, max_body_bytes=1 << 20)
    try:
        frames = parser.feed(data[:cut]) + parser.feed(data[cut:])
    except ProtocolError:
        return
    for f in frames:
        _ = (f.content_type, f.reply_text, f.body_text, f.disposition)
        if f.is_event:
            try:
                ev = Event.from_frame(f)
            except ProtocolError:
                continue
            _ = (ev.name, ev.full_name, ev.uuid, ev.job_uuid, ev.body, ev.headers.items(), ev.get("Nope"))


@settings(max_examples=400, deadline=2000, suppress_health_check=list(HealthCheck))
@given(data=st.one_of(st.binary(max_size=300), _chunks, _splice), cut=st.integers(0, 400))
def test_arbitrary_bytes_only_raise_protocol_errors(data, cut):
    _run(data, cut)


_block_bytes = st.lists(
    st.one_of(
        st.sampled_from([b"%", b"%0", b"%09", b"%0F", b"%0f", b"%0A", b"%0a", b"%0D", b"%3A", b"%3a", b"%20",
                         b"%25", b"%00", b"%zz", b"%4", b"=",
                         b"\n", b"\r", b"\r\n", b": ", b":", b" ", b"\t", b"\x00", b"\xff", b"\xc3\xa9", b"A", b"Z"]),
        st.binary(max_size=6),
    ),
    max_size=60,
).map(b"".join)


@settings(max_examples=700, deadline=2000, suppress_health_check=list(HealthCheck))
@given(block=_block_bytes)
@example(block=b"%:%0%0")
@example(block=b"A: %0%41\nB: %0A%0d")
@example(block=b"A: %00A\nB: x%")
@example(block=b"A: %3D%0A=")
def test_bulk_header_decoding_equals_reference(block):
    from fsd.esl.frames import parse_header_block, parse_header_block_reference

    assert parse_header_block(block) == parse_header_block_reference(block, strict=False)


@settings(max_examples=300, deadline=2000, suppress_health_check=list(HealthCheck))
@given(block=_block_bytes, names=st.lists(st.sampled_from(["A", "Z", "Unique-ID", "a", "Event-Name", ""]),
                                          max_size=4))
def test_lazy_lookup_equals_full_parse(block, names):
    """Event.get/name on the undecoded block agree with the fully parsed headers (exact-case names)."""
    data = b"Event-Name: X\nUnique-ID: u\n" + block.replace(b"Content-Length", b"C-L") + b"\n\n"
    lazy = Event.from_plain(data)
    full = Event.from_plain(data)
    headers = full.headers
    assert lazy.name == headers.get_last("Event-Name", "")
    for n in names:
        value = lazy.get(n)
        if value is not None and n:
            exact = [v for k, v in headers.items() if k == n]
            assert value == (exact[0] if exact else headers.get(n))
        else:
            assert value == headers.get(n)


_STREAM = (
    traces.read(f"{traces.ESL}/call-outbound.outbound.server.raw")[:60000]
    + traces.read(f"{traces.ESL}/esl-inbound-commands.server.raw")
)
_WHOLE = [(f.offset, f.headers.items(), f.body) for f in FrameParser().feed(_STREAM)]


@settings(max_examples=150, deadline=5000, suppress_health_check=list(HealthCheck))
@given(cuts=st.lists(st.integers(0, len(_STREAM)), max_size=40))
def test_any_split_of_real_bytes_gives_the_same_frames(cuts):
    parser = FrameParser()
    frames = []
    prev = 0
    for cut in sorted(set(cuts)) + [len(_STREAM)]:
        frames.extend(parser.feed(_STREAM[prev:cut]))
        prev = cut
    assert [(f.offset, f.headers.items(), f.body) for f in frames] == _WHOLE


_value = st.one_of(st.binary(max_size=60), st.sampled_from([b"+OK", b"-ERR no such channel", b"+OK Job-UUID: x",
                                                           b"%2B%0AOK", b" two  spaces ", b"caf\xc3\xa9", b"\r"]))


@settings(max_examples=300, deadline=2000, suppress_health_check=list(HealthCheck))
@given(text=_value, job=st.none() | _value, length=st.integers(0, 10**12))
def test_reply_and_api_frames_parse_as_the_general_path(text, job, length):
    """The fast path for FreeSWITCH's command/reply (with a bgapi's Job-UUID) and api/response blocks gives the
    headers, content type and length the general parser gives (or the same error)."""
    from fsd.esl.frames import Frame, Headers, parse_header_block_reference

    text, job = text.replace(b"\n", b""), None if job is None else job.replace(b"\n", b"")
    blocks = [b"Content-Type: command/reply\nReply-Text: " + text + (b"" if job is None else b"\nJob-UUID: " + job),
              b"Content-Type: api/response\nContent-Length: %d" % length]
    for raw in blocks:
        body = b"x" * length if b"api/response" in raw and length <= 64 else b""
        try:
            frames = FrameParser(max_body_bytes=64).feed(raw + b"\n\n" + body)
        except ProtocolError as e:
            assert b"api/response" in raw and length > 64, e  # only a body over the limit is refused
            continue
        ref = Headers(parse_header_block_reference(raw, strict=True))
        (f,) = frames
        assert isinstance(f, Frame) and f.headers.items() == ref.items()
        assert f.content_type == ref.get("Content-Type") and f.reply_text == ref.get("Reply-Text")
        assert f.get("job-uuid") == ref.get("Job-UUID") and f.body == body
