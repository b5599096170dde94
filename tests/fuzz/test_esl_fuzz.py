"""Fuzz the ESL wire format (fsd/esl/frames.py) at the byte level.

* FrameParser.feed raises nothing but FrameError (the ProtocolError family), for any bytes, and every
  chunking of the same bytes gives the same frames and the same verdict as feeding them at once
  (every single cut point, one byte at a time, and an arbitrary multi-cut chunking).
* Event.from_frame / from_plain / from_json / from_xml raise nothing but MalformedEvent on any body,
  and every accessor of a parsed event works.
* The command encoders never put a line on the wire that the caller did not ask for: any text gives
  either InvalidCommand or a frame whose header block and Content-Length are exactly as built.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from fsd.errors import ProtocolError
from fsd.esl.frames import (
    Event,
    FrameError,
    FrameParser,
    FrameTooLarge,
    InvalidCommand,
    MalformedEvent,
    encode_api,
    encode_bgapi,
    encode_command,
    encode_execute,
    encode_sendmsg,
)
from tests.esl import traces
from tests.fuzz import fuzz_settings

MAX_HEADER = 96
MAX_BODY = 200

_SAMPLE = traces.read(f"{traces.ESL}/esl-inbound-commands.server.raw")[:4000]

_tokens = st.sampled_from(
    [
        b"Content-Type: ", b"text/event-plain", b"text/event-json", b"text/event-xml", b"api/response",
        b"command/reply", b"text/disconnect-notice", b"Content-Length: ", b"Content-Length: 0", b"\n", b"\n\n",
        b"\n\n\n", b": ", b":", b"%", b"%0A", b"%0a", b"%ZZ", b"%00", b"0", b"7", b"12", b" 3 ", b"-1", b"+4",
        b"\xd9\xa3",  # ARABIC-INDIC DIGIT THREE: isdigit() but not ASCII
        b"99999999999", b"Event-Name: X", b"Unique-ID: u", b"{", b"}", b'"_body":', b'"a":"b"', b"[", b"]",
        b"\xff", b"\xc3", b"\r", b"\r\n", b"<headers>", b"</headers>", b"<body>", b"</body>", b"<A>1</A>",
        b"Content-Disposition: linger", b"Reply-Text: +OK",
    ]
)
_structured = st.lists(st.one_of(st.binary(max_size=24), _tokens), max_size=50).map(b"".join)
_splice = st.tuples(st.integers(0, len(_SAMPLE)), st.integers(0, 300), st.binary(max_size=20)).map(
    lambda t: _SAMPLE[t[0] : t[0] + t[1]] + t[2] + _SAMPLE[t[0] + t[1] : t[0] + 2 * t[1]]
)
stream_bytes = st.one_of(st.binary(max_size=300), _structured, _splice)


def _key(frame) -> tuple:
    return (frame.offset, frame.headers.items(), frame.body, frame.content_type, frame.raw_headers)


def _feed_chunks(chunks) -> tuple[list, type | None, int]:
    """Feed the chunks in order: (frames, FrameError class or None, bytes still buffered)."""
    parser = FrameParser(max_header_bytes=MAX_HEADER, max_body_bytes=MAX_BODY)
    frames: list = []
    for chunk in chunks:
        try:
            frames.extend(parser.feed(chunk))
        except FrameError as exc:
            # the parser stays broken: the next feed raises the same error again
            try:
                parser.feed(b"x")
            except FrameError as again:
                assert again is exc
            else:
                raise AssertionError("feed after a FrameError did not raise") from None
            return frames, type(exc), -1
    return frames, None, parser.buffered


def _touch_event(ev: Event) -> None:
    _ = (ev.name, ev.full_name, ev.subclass, ev.uuid, ev.job_uuid, ev.body, ev.get("Nope"), ev.get("event-name"),
         ev.get_all("Event-Name"), "Unique-ID" in ev, ev.headers.items(), ev.headers.to_dict(), repr(ev))


def _check_stream(data: bytes, cuts: list[int]) -> None:
    whole_frames, whole_error, whole_left = _feed_chunks([data])
    whole = [_key(f) for f in whole_frames]

    def same(chunks, label):
        frames, error, left = _feed_chunks(chunks)
        keys = [_key(f) for f in frames]
        if whole_error is None:
            assert error is None, f"{label}: {error.__name__} but feeding at once parsed fine"
            assert keys == whole, label
            assert left == whole_left, label
        else:
            # feeding at once loses the frames of the failing call; a chunked feed returns the earlier ones
            assert error is not None, f"{label}: no error but feeding at once raised {whole_error.__name__}"
            assert issubclass(error, FrameError)

    # every single cut point
    for cut in range(len(data) + 1):
        same([data[:cut], data[cut:]], f"cut at {cut}")
    # one byte at a time
    same([data[i : i + 1] for i in range(len(data))], "byte by byte")
    # an arbitrary multi-cut chunking
    points = sorted({c % (len(data) + 1) for c in cuts})
    same([data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)], f"cuts {points}")

    for f in whole_frames:
        _ = (f.reply_text, f.body_text, f.disposition, f.is_linger_notice, f.linger_time,
             f.controlled_session_uuid, repr(f))
        if f.is_event:
            try:
                ev = Event.from_frame(f)
            except MalformedEvent:
                continue
            _touch_event(ev)


@fuzz_settings(300, deadline_ms=5000)
@given(data=stream_bytes, cuts=st.lists(st.integers(0, 10_000), max_size=12))
@example(data=b"Content-Length: 3\nContent-Type: text/event-plain\n\nabc", cuts=[])
@example(data=b"\n\n\nContent-Type: api/response\nContent-Length: 2\n\nok\n\nReply-Text: +OK\n\n", cuts=[5, 40])
@example(data=b"Content-Length: \xd9\xa3\n\nabc", cuts=[])
@example(data=b"A: " + b"x" * (MAX_HEADER + 5), cuts=[3])
@example(data=b"A: " + b"x" * (MAX_HEADER - 4) + b"\n\n", cuts=[1])
@example(data=b"Content-Length: 999\n\n", cuts=[])
def test_fuzz_frame_parser_any_bytes_every_chunking(data, cuts):
    _check_stream(data, cuts)


def test_header_limit_is_the_same_for_every_chunking():
    data = b"\x00" * (MAX_HEADER + 1)
    assert _feed_chunks([data])[1] is FrameTooLarge
    assert _feed_chunks([data[:1], data[1:]])[1] is FrameTooLarge


@fuzz_settings(200, deadline_ms=5000)
@given(data=stream_bytes)
def test_fuzz_frame_parser_default_limits(data):
    """The production limits (4 MiB headers, 64 MiB body): only FrameError, never more than was fed."""
    parser = FrameParser()
    try:
        frames = parser.feed(data)
    except FrameError:
        return
    assert sum(len(f.raw_headers) + len(f.body) for f in frames) + parser.buffered <= len(data)


_body_bytes = st.one_of(
    st.binary(max_size=300),
    _structured,
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    ).map(lambda v: __import__("json").dumps(v).encode()),
)


@fuzz_settings(500)
@given(body=_body_bytes, kind=st.sampled_from(["text/event-plain", "text/event-json", "text/event-xml"]))
@example(body=b"[" * 5000 + b"]" * 5000, kind="text/event-json")
@example(body=b"Event-Name: X\nContent-Length: 99\n\nshort", kind="text/event-plain")
@example(body=b"<event><headers><A>%zz</A></headers><Content-Length>-3</Content-Length><body>x</body>",
         kind="text/event-xml")
def test_fuzz_event_bodies_raise_only_malformed_event(body, kind):
    frame_bytes = b"Content-Length: %d\nContent-Type: %s\n\n%s" % (len(body), kind.encode(), body)
    (frame,) = FrameParser(max_body_bytes=1 << 20).feed(frame_bytes)
    for parse in (lambda: Event.from_frame(frame), lambda: Event.from_plain(body), lambda: Event.from_json(body),
                  lambda: Event.from_xml(body)):
        try:
            ev = parse()
        except MalformedEvent:
            continue
        _touch_event(ev)


_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30) | st.sampled_from(
    ["\n", "\r", "a\nEvil: 1", " lead", "trail ", "", "Content-Length", "x" * 1100])


def _check_wire(wire: bytes) -> bytes | None:
    """One header block (command line + Name: value lines), then exactly Content-Length body bytes.
    Returns the body (None when the frame has no Content-Length)."""
    head, sep, rest = wire.partition(b"\n\n")
    assert sep
    lines = head.split(b"\n")
    assert lines[0].strip() and b"\r" not in head
    names = []
    for line in lines[1:]:
        name, colon, _ = line.partition(b": ")
        assert colon and name, line
        names.append(name.lower())
    if b"content-length" not in names:
        assert rest == b""
        return None
    assert names.count(b"content-length") == 1
    assert int(lines[1 + names.index(b"content-length")].split(b": ", 1)[1]) == len(rest)
    return rest


@fuzz_settings(500)
@given(command=_text, headers=st.lists(st.tuples(_text, _text), max_size=4), body=st.none() | _text)
@example(command="0", headers=[("0\n", "")], body=None)  # found by this fuzzer: a name ending in a newline
def test_fuzz_encode_command_never_injects_lines(command, headers, body):
    try:
        wire = encode_command(command, headers, body)
    except InvalidCommand:
        return
    got = _check_wire(wire)
    assert got == (None if body is None else body.encode("utf-8", "surrogateescape"))
    assert wire.startswith(command.encode("utf-8", "surrogateescape") + b"\n")


@fuzz_settings(500)
@given(app=_text, arg=st.none() | _text, uuid=st.none() | _text, loops=st.none() | st.integers(-5, 5),
       job=_text, cmd=_text)
def test_fuzz_encode_execute_api_bgapi(app, arg, uuid, loops, job, cmd):
    try:
        wire = encode_execute(app, arg, uuid=uuid, event_uuid=None, loops=loops)
    except InvalidCommand:
        pass
    else:
        got = _check_wire(wire)
        if arg and b"content-type: text/plain" in wire.partition(b"\n\n")[0]:
            assert got == arg.encode("utf-8", "surrogateescape")
        else:
            assert got is None
    for build in (lambda: encode_api(cmd), lambda: encode_bgapi(cmd, job),
                  lambda: encode_sendmsg(uuid, [("call-command", cmd)], arg)):
        try:
            wire = build()
        except InvalidCommand:
            continue
        _check_wire(wire)


def test_fuzz_error_types_are_documented():
    """The types this file accepts are the documented ProtocolError/ESLError family."""
    assert issubclass(FrameError, ProtocolError) and issubclass(MalformedEvent, ProtocolError)
