"""Pure wire-format helpers of the emulator."""

from __future__ import annotations

import json

from fsd.sim import wire


def test_url_encoding_matches_freeswitch():
    # encoded: space : @ + " < > ; = & | { } # % \\ CR LF; literal: , . - _ / ~ ( ) *
    assert wire.url_encode(' :@+"<>;=&|{}#%\\\r\n') == "%20%3A%40%2B%22%3C%3E%3B%3D%26%7C%7B%7D%23%25%5C%0D%0A"
    assert wire.url_encode(",.-_/~()*") == ",.-_/~()*"
    assert wire.url_encode("Sat, 28 Nov 2026 07:59:33 GMT") == "Sat,%2028%20Nov%202026%2007%3A59%3A33%20GMT"
    assert wire.url_encode("Анна") == "%D0%90%D0%BD%D0%BD%D0%B0"
    assert wire.url_decode(wire.url_encode("Анна <a@b> 100%")) == "Анна <a@b> 100%"


def test_event_frames_count_bytes_and_put_content_length_first():
    headers = [("Event-Name", "BACKGROUND_JOB"), ("Job-Command", "status")]
    frame = wire.event_frame("plain", headers, "Привет\n")
    head, _, body = frame.partition(b"\n\n")
    assert head == b"Content-Length: %d\nContent-Type: text/event-plain" % len(body)
    assert body.endswith(b"Content-Length: 13\n\n" + "Привет\n".encode())
    js = wire.event_frame("json", headers + [("variable_DP_MATCH", "ARRAY::1|:2")], None)
    obj = json.loads(js.partition(b"\n\n")[2])
    assert obj["variable_DP_MATCH"] == ["1", "2"]


def test_command_parser_handles_chunks_crlf_and_bodies():
    p = wire.CommandParser()
    data = b"auth ClueCon\n\nsendmsg\r\ncall-command: execute\r\nContent-Length: 5\r\n\r\nhello" + b"api status\n\n"
    out = []
    for i in range(len(data)):
        out += p.feed(data[i : i + 1])
    assert [c[0] for c in out] == ["auth ClueCon", "sendmsg", "api status"]
    assert out[1][1][0] == ("call-command", "execute") and out[1][2] == b"hello"


def test_replies_and_notices():
    assert wire.command_reply("+OK accepted") == b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
    assert wire.api_response("vm") == b"Content-Type: api/response\nContent-Length: 2\n\nvm"
    assert wire.disconnect_notice().endswith(b"Content-Length: 67\n\n" + wire.GOODBYE)
    assert wire.linger_notice("u", "sofia/external/1@2:3", -1) == (
        b"Content-Type: text/disconnect-notice\nControlled-Session-UUID: u\nContent-Disposition: linger\n"
        b"Channel-Name: sofia/external/1@2:3\nLinger-Time: -1\nContent-Length: 0\n\n"
    )
