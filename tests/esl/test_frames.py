"""The pure parser against every real capture, in every chunking, plus unit cases and encoders."""

from __future__ import annotations

import collections
import json
import random
from urllib.parse import unquote

import pytest

from fsd.errors import ProtocolError
from fsd.esl.frames import (
    Event,
    FrameError,
    FrameParser,
    FrameTooLarge,
    InvalidCommand,
    InvalidContentLength,
    MalformedEvent,
    MalformedHeader,
    encode_api,
    encode_bgapi,
    encode_command,
    encode_execute,
    encode_sendmsg,
)
from tests.esl import traces

FILES = traces.server_raw_files()
IDS = [traces.capture_name(p) for p in FILES]
EXPECTED_EVENTS = traces.expected_event_counts()
EXPECTED_REPLIES = traces.expected_replies()


def _summary(frames):
    out = []
    for f in frames:
        item = (f.offset, f.content_type, f.headers.items(), f.body)
        out.append(item)
    return out


def _feed_chunks(chunks):
    p = FrameParser()
    frames = []
    for c in chunks:
        frames.extend(p.feed(c))
    assert p.buffered == 0
    return frames


def _random_chunks(data: bytes, rng: random.Random, max_size: int):
    i = 0
    out = []
    while i < len(data):
        n = rng.randint(1, max_size)
        out.append(data[i : i + n])
        i += n
    return out


def test_all_captures_present():
    assert len(FILES) >= 19


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_capture_matches_indexes(path):
    """Whole-file parse: event counts match event-counts.tsv, other frames match replies-index.tsv."""
    name = traces.capture_name(path)
    data = traces.read(path)
    frames = FrameParser().feed(data)
    events = collections.Counter()
    others = []
    for f in frames:
        if f.is_event:
            ev = Event.from_frame(f)
            events[ev.full_name] += 1
            assert ev.name, f
            # every event has the FreeSWITCH identity headers, decoded
            assert ev.get("FreeSWITCH-IPv6") == "fd00::2"
        else:
            if f.headers.get("Event-Name") == "CHANNEL_DATA":
                events["CHANNEL_DATA (outbound connect reply, command/reply)"] += 1
            others.append(f)
    assert events == EXPECTED_EVENTS.get(name, collections.Counter())
    rows = EXPECTED_REPLIES[name + ".server.raw"]
    assert len(others) == len(rows)
    for f, row in zip(others, rows, strict=True):
        assert f.offset == int(row["byte_offset"])
        assert f.content_type == row["content_type"]
        assert (f.reply_text or "") == unquote(row["reply_text"])
        if row["content_length"]:
            assert len(f.body) == int(row["content_length"])
        escaped = f.body_text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
        assert escaped.startswith(row["body_start"].replace("\\\\", "\\\\")) or escaped.startswith(row["body_start"])


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_chunking_gives_identical_frames(path):
    data = traces.read(path)
    whole = _summary(FrameParser().feed(data))
    assert whole
    # byte by byte
    assert _summary(_feed_chunks([data[i : i + 1] for i in range(len(data))])) == whole
    # the proxy's real recv() segmentation
    real = traces.jsonl_chunks(traces.capture_name(path))
    assert b"".join(real) == data
    assert _summary(_feed_chunks(real)) == whole
    # seeded random splits, small and large
    rng = random.Random(f"fsd-{traces.capture_name(path)}")
    for max_size in (3, 64, 1000, 20000):
        for _ in range(2):
            assert _summary(_feed_chunks(_random_chunks(data, rng, max_size))) == whole


def test_api_response_bodies_are_exact_bytes():
    frames = FrameParser().feed(traces.read(f"{traces.ESL}/esl-inbound-commands.server.raw"))
    api = [f for f in frames if f.content_type == "api/response"]
    bodies = [f.body for f in api]
    assert b"-ERR no_such_command Command not found!\n" in bodies
    assert b"\n0 total.\n" in bodies
    assert b'{"row_count": 0}\n' in bodies
    assert bodies[-1] == b"vm"  # global_getvar hostname: no trailing newline


def test_background_job_body_is_not_merged_into_headers():
    frames = FrameParser().feed(traces.read(f"{traces.ESL}/esl-inbound-commands.server.raw"))
    jobs = [Event.from_frame(f) for f in frames if f.is_event]
    jobs = [e for e in jobs if e.name == "BACKGROUND_JOB"]
    plain = [e for e in jobs if e.content_type == "text/event-plain"]
    js = [e for e in jobs if e.content_type == "text/event-json"]
    assert len(plain) == 2 and len(js) == 3
    first = plain[0]
    assert first.job_uuid == "3ef482a2-11aa-481e-b6d0-7b106e406549"
    assert first.get("Job-Command") == "status"
    assert first.body.startswith("UP 0 years")
    assert len(first.body_bytes) == int(first.get("Content-Length"))
    # body lines such as "FreeSWITCH (Version ..." never show up as headers
    assert all(not k.startswith("FreeSWITCH (") and not k.startswith("UP ") for k in first.headers)
    assert js[0].job_uuid == "4e2aae62-58e2-4d86-a319-9b39b7beb31f"
    assert js[0].body.startswith("UP 0 years")
    assert "_body" not in js[0].headers
    failed = js[1]
    assert failed.get("Job-Command-Arg") == "arg1"
    assert failed.body == "-ERR no_such_command Command not found!\n"


def test_recv_info_nested_body():
    frames = FrameParser().feed(traces.read(f"{traces.ESL}/call-outbound.inbound.server.raw"))
    info = [e for e in (Event.from_frame(f) for f in frames if f.is_event) if e.name == "RECV_INFO"]
    assert len(info) == 1
    assert info[0].body == "Signal=1\r\nDuration=160\r\n"
    assert info[0].get("SIP-Content-Type") == "application/dtmf-relay"


def test_duplicate_headers_kept_plain_and_json():
    for name in ("call-outbound.inbound", "call-outbound-json.inbound"):
        frames = FrameParser().feed(traces.read(f"{traces.ESL}/{name}.server.raw"))
        events = [Event.from_frame(f) for f in frames if f.is_event]
        hc = [e for e in events if e.name == "CHANNEL_HANGUP_COMPLETE" and e.get_all("Hangup-Cause") == [
            "USER_BUSY", "USER_BUSY"]]
        assert hc, name
        codec = [e for e in events if e.name == "CODEC" and len(e.get_all("Channel-Write-Codec-Name")) == 2]
        assert codec, name
        # array variables have the same value in both formats
        dp = [e.get("variable_DP_MATCH") for e in events if e.get("variable_DP_MATCH")]
        assert "ARRAY::74950000001|:74950000001" in dp, name


def test_private_command_with_two_event_names():
    data = traces.read(f"{traces.ESL}/uuid-commands.server.raw")
    frames = FrameParser().feed(data[88277:])
    ev = Event.from_frame(frames[0])
    assert ev.name == "PRIVATE_COMMAND"
    assert ev.get_all("Event-Name") == ["COMMAND", "PRIVATE_COMMAND"]
    assert ev.get("Event-Name") == "COMMAND"
    assert ev.get("execute-app-arg") == "/srv/freeswitch-1/sounds/traces/tone-1s-8k.wav"


def test_outbound_connect_reply_is_channel_data():
    frames = FrameParser().feed(traces.read(f"{traces.ESL}/call-outbound.outbound.server.raw"))
    first = frames[0]
    assert first.content_type == "command/reply"
    assert first.reply_text == "+OK\n"
    data = Event.from_frame(first)
    assert data.name == "CHANNEL_DATA"
    assert data.get("Unique-ID") == "84066c95-6aa4-4f2b-9b78-ecf63963cdee"
    assert data.get("Socket-Mode") == "async"
    assert data.get("variable_current_application_data") == "127.0.0.1:8084 async full"
    assert len(first.headers) > 100
    linger = [f for f in frames if f.content_type == "text/disconnect-notice"]
    assert [f.disposition for f in linger] == ["linger", "disconnect"]
    assert linger[0].is_linger_notice and not linger[1].is_linger_notice
    assert linger[0].linger_time == -1
    assert linger[0].controlled_session_uuid == "84066c95-6aa4-4f2b-9b78-ecf63963cdee"
    assert linger[0].headers.get("Linger-Time") == "-1"
    assert linger[0].headers.get("Controlled-Session-UUID") == "84066c95-6aa4-4f2b-9b78-ecf63963cdee"
    assert linger[1].body_text.startswith("Disconnected, goodbye.")


def test_xml_event():
    frames = FrameParser().feed(traces.read(f"{traces.ESL}/esl-inbound-extra.server.raw"))
    xml = [Event.from_frame(f) for f in frames if f.content_type == "text/event-xml"]
    assert len(xml) == 1
    ev = xml[0]
    assert ev.name == "BACKGROUND_JOB"
    assert ev.get("Job-Command") == "version"
    assert ev.get("FreeSWITCH-IPv6") == "fd00::2"
    assert ev.body.startswith("FreeSWITCH Version 1.10.12")
    assert len(ev.body.encode()) == 114
    assert b"<event>" in ev.raw


# ---------------------------------------------------------------- unit cases


def _plain_frame(body: bytes) -> bytes:
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(body) + body


def test_url_decoding_happens_after_line_split():
    body = b"Event-Name: CUSTOM\nEvent-Subclass: x\nCaller-Caller-ID-Name: Bob%0AEvil-Header%3A%20yes\n\n"
    ev = Event.from_frame(FrameParser().feed(_plain_frame(body))[0])
    assert ev.get("Caller-Caller-ID-Name") == "Bob\nEvil-Header: yes"
    assert "Evil-Header" not in ev.headers
    assert ev.headers.get("Evil-Header") is None
    assert len(ev.headers) == 3


def test_outer_header_value_decoding_cannot_spoof():
    raw = b"Content-Type: command/reply\nReply-Text: %2BOK%0AContent-Length%3A%205\n\nnext"
    frames = FrameParser().feed(raw)
    assert len(frames) == 1
    assert frames[0].reply_text == "+OK\nContent-Length: 5"
    assert frames[0].body == b""


def test_content_length_counts_bytes_not_characters():
    body = "Привет, мир\n".encode()
    raw = b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body
    raw += b"Content-Type: command/reply\nReply-Text: +OK\n\n"
    frames = FrameParser().feed(raw)
    assert [f.content_type for f in frames] == ["api/response", "command/reply"]
    assert frames[0].body_text == "Привет, мир\n"


def test_invalid_utf8_never_raises_and_keeps_bytes():
    body = b"Event-Name: HEARTBEAT\nBad: caf\xe9 %FF%FE\nUnique-ID: u1\n\n"
    raw = _plain_frame(body) + b"Content-Type: api/response\nContent-Length: 3\n\n\xff\xfe\x00"
    frames = FrameParser().feed(raw)
    ev = Event.from_frame(frames[0])
    assert ev.name == "HEARTBEAT"
    bad = ev.get("Bad")
    assert bad.encode("utf-8", "surrogateescape") == b"caf\xe9 \xff\xfe"
    assert ev.uuid == "u1"
    assert frames[1].body == b"\xff\xfe\x00"
    assert frames[1].body_text.encode("utf-8", "surrogateescape") == b"\xff\xfe\x00"
    assert ev.raw == body


def test_disconnect_notice_and_rude_rejection():
    raw = (
        b"Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n"
        b"Content-Type: text/disconnect-notice\nContent-Length: 0\n\n"
    )
    frames = FrameParser().feed(raw)
    assert [f.content_type for f in frames] == ["text/rude-rejection", "text/disconnect-notice"]
    assert frames[0].body_text == "Access Denied, go away.\n"


def test_blank_lines_between_frames_are_skipped():
    raw = b"\n\nContent-Type: command/reply\nReply-Text: +OK\n\n\nContent-Type: command/reply\nReply-Text: -ERR x\n\n"
    p = FrameParser()
    frames = p.feed(raw)
    assert [f.reply_text for f in frames] == ["+OK", "-ERR x"]


@pytest.mark.parametrize(
    "raw, exc",
    [
        (b"Content-Type: api/response\nContent-Length: abc\n\n", InvalidContentLength),
        (b"Content-Type: api/response\nContent-Length: -5\n\n", InvalidContentLength),
        (b"Content-Type: api/response\nno colon here\n\n", MalformedHeader),
        (b": empty name\n\n", MalformedHeader),
    ],
)
def test_malformed_frames_raise_protocol_errors(raw, exc):
    p = FrameParser()
    with pytest.raises(exc) as info:
        p.feed(raw)
    assert isinstance(info.value, FrameError) and isinstance(info.value, ProtocolError)
    with pytest.raises(exc):  # stays broken
        p.feed(b"Content-Type: command/reply\n\n")


def test_limits():
    p = FrameParser(max_header_bytes=100, max_body_bytes=1000)
    with pytest.raises(FrameTooLarge):
        p.feed(b"X-A: " + b"a" * 200)
    p = FrameParser(max_header_bytes=100, max_body_bytes=1000)
    with pytest.raises(FrameTooLarge):
        p.feed(b"Content-Type: api/response\nContent-Length: 1001\n\n")


def test_malformed_event_bodies():
    with pytest.raises(MalformedEvent):
        Event.from_json(b"{not json")
    with pytest.raises(MalformedEvent):
        Event.from_json(b"[1, 2]")
    with pytest.raises(MalformedEvent):
        Event.from_plain(b"Event-Name: X\nContent-Length: 50\n\nshort")
    with pytest.raises(MalformedEvent):
        Event.from_plain(b"Event-Name: X\nContent-Length: x1\n\n")
    with pytest.raises(MalformedEvent):
        Event.from_xml(b"<event></event>")


def test_json_duplicate_keys_first_and_all():
    body = json.dumps({"Event-Name": "CHANNEL_HANGUP_COMPLETE"})[:-1] + ',"Hangup-Cause":"A","Hangup-Cause":"B"}'
    ev = Event.from_json(body.encode())
    assert ev.get("Hangup-Cause") == "A"
    assert ev.get_all("Hangup-Cause") == ["A", "B"]
    assert ev.headers.get_last("Hangup-Cause") == "B"


def test_lazy_get_matches_full_parse():
    data = traces.read(f"{traces.ESL}/call-outbound.inbound.server.raw")
    for f in FrameParser().feed(data):
        if not f.is_event:
            continue
        lazy = Event.from_frame(f)
        full = Event.from_frame(f)
        full_headers = full.headers
        for name in ("Unique-ID", "Event-Name", "Caller-Caller-ID-Name", "variable_sip_from_user", "Nope"):
            assert lazy.get(name) == full_headers.get(name)
        assert lazy.name == full.name
        assert lazy.get("unique-id") == full_headers.get("Unique-ID")  # case-insensitive fallback


# ---------------------------------------------------------------- encoders


def test_encode_command_and_api():
    assert encode_command("auth ClueCon") == b"auth ClueCon\n\n"
    assert encode_api("status") == b"api status\n\n"
    assert encode_bgapi("status", "3ef482a2-11aa-481e-b6d0-7b106e406549") == (
        b"bgapi status\nJob-UUID: 3ef482a2-11aa-481e-b6d0-7b106e406549\n\n"
    )
    # exactly the bytes the capture client sent
    client = traces.read(f"{traces.ESL}/esl-inbound-commands.client.raw")
    assert encode_bgapi("status", "3ef482a2-11aa-481e-b6d0-7b106e406549") in client
    with pytest.raises(InvalidCommand):
        encode_api("status\n\nexit")
    with pytest.raises(InvalidCommand):
        encode_command("x", {"a": "b\nc"})
    with pytest.raises(InvalidCommand):
        encode_command("x", {"Bad Name": "v"})
    with pytest.raises(InvalidCommand):  # a header name ending in a newline would start a line of its own
        encode_command("0", [("0\n", "")])


def test_encode_sendmsg_execute_matches_capture():
    client = traces.read(f"{traces.ESL}/call-outbound.outbound.client.raw")
    raw = encode_execute(
        "play_and_get_digits",
        r"1 1 1 5000 # tone_stream://%(200,0,800) silence_stream://250 traces_digit \d 3000",
        event_uuid="bf02917a-79d1-4624-a2c3-1e6570416762",
        lock=False,
    )
    assert raw in client
    locked = encode_execute("answer", event_uuid="u1")
    assert locked == b"sendmsg\ncall-command: execute\nexecute-app-name: answer\nevent-uuid: u1\nevent-lock: true\n\n"
    assert encode_sendmsg("abc", [("call-command", "hangup"), ("hangup-cause", "USER_BUSY")]) == (
        b"sendmsg abc\ncall-command: hangup\nhangup-cause: USER_BUSY\n\n"
    )


def test_encode_execute_odd_argument_goes_to_body():
    arg = "line1\nline2 " + "x" * 10
    raw = encode_execute("set", arg, event_uuid="u2")
    head, _, body = raw.partition(b"\n\n")
    assert body == arg.encode()
    assert b"content-type: text/plain" in head
    assert b"Content-Length: %d" % len(arg.encode()) in head
    assert b"execute-app-arg" not in head
    # our own parser reads what we wrote as one frame with that body
    frames = FrameParser().feed(b"X-Cmd: sendmsg\n" + raw.split(b"\n", 1)[1])
    assert len(frames) == 1 and frames[0].body == arg.encode()
    long_arg = "a" * 5000
    assert encode_execute("log", long_arg).endswith(long_arg.encode())
