"""Wire format of FreeSWITCH's event socket, as observed in the 1.10.12 captures.

Only formatting lives here: URL-encoding of header values, the three event serialisations
(plain, json, xml), command/reply and api/response frames, and the parser for client commands.
"""

from __future__ import annotations

import functools
import itertools
import json
import re

GOODBYE = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"

# Characters FreeSWITCH's URL-encoder escapes (captured: space : @ + " < > ; = & | { } # % \ CR LF).
_UNSAFE = set('\r\n "#%&+:;<=>?@[\\]^`{|}')


_TABLE = {ord(c): f"%{ord(c):02X}" for c in _UNSAFE}
_TABLE.update({i: f"%{i:02X}" for i in range(32)})
_TABLE[127] = "%7F"


# the ASCII characters _TABLE leaves as they are (most values have no other: they are returned as they are)
_SAFE_BYTES = bytes(c for c in range(128) if c not in _TABLE)


@functools.lru_cache(maxsize=65536)
def url_encode(value: str) -> str:
    if value.isascii():
        found = value.encode().translate(None, _SAFE_BYTES)  # the characters to escape (C speed)
        if not found:
            return value
        # value.translate(_TABLE), but str.translate looks every character up: replacing the few distinct
        # characters present is much faster ("%" first, so the escapes added later are kept as they are)
        chars = set(found.decode())
        if "%" in chars:
            chars.discard("%")
            value = value.replace("%", "%25")
        for ch in chars:
            value = value.replace(ch, _TABLE[ord(ch)])
        return value
    return "".join(
        ch.translate(_TABLE) if ord(ch) < 128 else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in value
    )


def url_decode(value: str) -> str:
    raw = bytearray()
    i = 0
    data = value.encode("utf-8")
    while i < len(data):
        c = data[i]
        if c == 0x25 and i + 2 < len(data):
            try:
                raw.append(int(data[i + 1 : i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        raw.append(c)
        i += 1
    return raw.decode("utf-8", "replace")


def _array_items(value: str) -> list[str] | None:
    if value.startswith("ARRAY::"):
        return value[len("ARRAY::") :].split("|:")
    return None


def command_reply(text: str, extra: list[tuple[str, str]] | None = None) -> bytes:
    lines = ["Content-Type: command/reply", f"Reply-Text: {text}"]
    for k, v in extra or []:
        lines.append(f"{k}: {v}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def api_response(body: str | bytes) -> bytes:
    if isinstance(body, str):
        body = body.encode("utf-8")
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body


def disconnect_notice(uuid: str | None = None) -> bytes:
    head = "Content-Type: text/disconnect-notice\n"
    if uuid:
        head += f"Controlled-Session-UUID: {uuid}\nContent-Disposition: disconnect\n"
    head += f"Content-Length: {len(GOODBYE)}\n\n"
    return head.encode() + GOODBYE


def linger_notice(uuid: str, channel_name: str, linger_time: int) -> bytes:
    return (
        "Content-Type: text/disconnect-notice\n"
        f"Controlled-Session-UUID: {uuid}\n"
        "Content-Disposition: linger\n"
        f"Channel-Name: {channel_name}\n"
        f"Linger-Time: {linger_time}\n"
        "Content-Length: 0\n\n"
    ).encode()


@functools.lru_cache(maxsize=65536)
def _plain_line(name: str, value: str) -> str:
    return f"{name}: {url_encode(value)}\n"


# any character url_encode changes (the complement of _SAFE_BYTES: also every non-ASCII character)
_needs_escape = re.compile("[^" + re.escape(_SAFE_BYTES.decode()) + "]").search


def plain_line(name: str, value: str) -> str:
    """_plain_line without its memo, for values seen once or twice (a uuid, a time stamp): a memo miss costs
    several times the line. Values with a character to escape still go through url_encode's memo."""
    if _needs_escape(value) is None:
        return f"{name}: {value}\n"
    return f"{name}: {url_encode(value)}\n"


_VAR_LAST: dict[str, tuple[str, str]] = {}  # variable name -> (its last value, its line)


def var_line(name: str, value: str) -> str:
    """The event-plain line of the channel variable `name` (header variable_NAME). The last line made for each
    name is kept: most variables take the same value on every call (hosts, codecs, zeros)."""
    last = _VAR_LAST.get(name)
    if last is not None and last[0] == value:
        return last[1]
    if _needs_escape(value) is None:
        line = f"variable_{name}: {value}\n"
    else:
        line = f"variable_{name}: {url_encode(value)}\n"
    if len(_VAR_LAST) > 20000:
        _VAR_LAST.clear()
    _VAR_LAST[name] = (value, line)
    return line


def serialize_plain(headers: list[tuple[str, str]], body: str | None) -> bytes:
    return plain_payload("".join(itertools.starmap(_plain_line, headers)), body)


def plain_payload(lines: str, body: str | None) -> bytes:
    """The event-plain serialisation from its header lines (`_plain_line`s, joined) and the body."""
    if body is not None:
        b = body.encode("utf-8")
        return f"{lines}Content-Length: {len(b)}\n\n".encode() + b
    return f"{lines}\n".encode()


def plain_frame(lines: str, body: str | None) -> bytes:
    """event_frame("plain", ...) from the header lines (see plain_payload)."""
    payload = plain_payload(lines, body)
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(payload) + payload


def plain_frame_parts(parts: list[str], body: str | None) -> bytes:
    """plain_frame("".join(parts), body), joined and encoded once when the lines are ASCII (they are unless
    a header name is not: values are URL-encoded). `parts` is used up."""
    if body is None:
        n = sum(map(len, parts)) + 1
        parts.append("\n")
        parts.insert(0, f"Content-Length: {n}\nContent-Type: text/event-plain\n\n")
        text = "".join(parts)
        if text.isascii():
            return text.encode()
        return plain_frame("".join(parts[1:-1]), None)
    return plain_frame("".join(parts), body)


def _json_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def serialize_json(headers: list[tuple[str, str]], body: str | None) -> bytes:
    items = []
    for k, v in headers:
        arr = _array_items(v) if k.startswith("variable_") else None
        if arr is not None:
            items.append(_json_str(k) + ":[" + ",".join(_json_str(x) for x in arr) + "]")
        else:
            items.append(_json_str(k) + ":" + _json_str(v))
    if body is not None:
        items.append('"Content-Length":' + _json_str(str(len(body.encode("utf-8")))))
        items.append('"_body":' + _json_str(body))
    return ("{" + ",".join(items) + "}").encode("utf-8")


def serialize_xml(headers: list[tuple[str, str]], body: str | None) -> bytes:
    out = ["<event>\n  <headers>\n"]
    for k, v in headers:
        out.append(f"    <{k}>{url_encode(v)}</{k}>\n")
    out.append("  </headers>\n")
    if body is not None:
        out.append(f"  <Content-Length>{len(body.encode('utf-8'))}</Content-Length>\n")
        out.append(f"  <body>{body}  </body>\n")
    out.append("</event>\n")
    return "".join(out).encode("utf-8")


CONTENT_TYPES = {"plain": "text/event-plain", "json": "text/event-json", "xml": "text/event-xml"}
_SERIALIZERS = {"plain": serialize_plain, "json": serialize_json, "xml": serialize_xml}


def event_frame(fmt: str, headers: list[tuple[str, str]], body: str | None) -> bytes:
    payload = _SERIALIZERS[fmt](headers, body)
    return b"Content-Length: %d\nContent-Type: %s\n\n" % (len(payload), CONTENT_TYPES[fmt].encode()) + payload


class CommandParser:
    """Splits the client byte stream into commands: a first line, header lines, optional body."""

    def __init__(self):
        self._buf = b""

    def feed(self, data: bytes) -> list[tuple[str, list[tuple[str, str]], bytes]]:
        buf = self._buf + data if self._buf else data
        out = []
        while True:
            # FreeSWITCH accepts "\n\n" (and tolerates "\r\n") as the end of a command block.
            norm_idx = buf.find(b"\n\n")
            crlf_idx = buf.find(b"\r\n\r\n") if b"\r" in buf else -1
            if norm_idx < 0 and crlf_idx < 0:
                break
            if norm_idx < 0 or (0 <= crlf_idx < norm_idx):
                idx, sep = crlf_idx, 4
            else:
                idx, sep = norm_idx, 2
            block = buf[:idx].decode("utf-8", "replace")
            if "\r" in block:
                block = block.replace("\r", "")
            rest = buf[idx + sep :]
            lines = block.split("\n")
            first = lines[0].strip()
            headers: list[tuple[str, str]] = []
            length = None
            for line in lines[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    k = k.strip()
                    v = v.strip()
                    headers.append((k, v))
                    if length is None and len(k) == 14 and k.lower() == "content-length":
                        length = v
            body = b""
            if length is not None:
                try:
                    n = int(length)
                except ValueError:
                    n = 0
                if len(rest) < n:
                    break
                body, rest = rest[:n], rest[n:]
            buf = rest
            if not first and not headers:
                continue
            out.append((first, headers, body))
        self._buf = buf
        return out
