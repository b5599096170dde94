"""Pure Event Socket wire format: incremental frame parser, events, command encoders.

No I/O and no gevent here: bytes in, objects out (and objects in, bytes out).

Framing (FreeSWITCH 1.10, see /work/shared/freeswitch-traces/README.md):

* A frame is a header block of ``Name: value\\n`` lines ended by an empty line, then exactly
  ``Content-Length`` body bytes when that header is present (a byte count, not characters).
* Header values are URL-decoded one by one *after* the block was split into lines, so a value such
  as ``a%0AEvil: 1`` stays one value (``"a\\nEvil: 1"``) and can never become a header of its own.
* Bytes that are not UTF-8 never raise: text is decoded with ``surrogateescape`` (so the original bytes
  can be recovered with ``s.encode("utf-8", "surrogateescape")``) and every frame keeps its raw bytes.

Errors: everything this module raises on bad input derives from :class:`fsd.errors.ProtocolError`:

* :class:`FrameError` - the byte stream cannot be framed (fatal: the connection must be closed):
  :class:`MalformedHeader`, :class:`InvalidContentLength`, :class:`FrameTooLarge`.
  After a FrameError the parser stays broken and raises it again on every ``feed``.
* :class:`MalformedEvent` - one frame was framed correctly but its event body is invalid (bad JSON,
  bad inner Content-Length). The stream is still in sync; only that event is lost.

Command encoders raise :class:`InvalidCommand` (an :class:`fsd.errors.ESLError` and ``ValueError``)
for text that cannot be put on the wire safely (e.g. a newline in a command line).
"""

from __future__ import annotations

import binascii
import json
import re
import uuid as _uuid
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from urllib.parse import unquote_to_bytes
from xml.sax.saxutils import unescape as _xml_unescape

from fsd.errors import ESLError, ProtocolError

__all__ = [
    "CT_API_RESPONSE",
    "CT_AUTH_REQUEST",
    "CT_COMMAND_REPLY",
    "CT_DISCONNECT_NOTICE",
    "CT_EVENT_JSON",
    "CT_EVENT_PLAIN",
    "CT_EVENT_XML",
    "CT_RUDE_REJECTION",
    "EVENT_CONTENT_TYPES",
    "Event",
    "Frame",
    "FrameError",
    "FrameParser",
    "FrameTooLarge",
    "Headers",
    "InvalidCommand",
    "InvalidContentLength",
    "MalformedEvent",
    "MalformedHeader",
    "encode_api",
    "encode_bgapi",
    "encode_command",
    "encode_execute",
    "encode_sendmsg",
    "new_uuid",
]

CT_AUTH_REQUEST = "auth/request"
CT_COMMAND_REPLY = "command/reply"
CT_API_RESPONSE = "api/response"
CT_EVENT_PLAIN = "text/event-plain"
CT_EVENT_JSON = "text/event-json"
CT_EVENT_XML = "text/event-xml"
CT_DISCONNECT_NOTICE = "text/disconnect-notice"
CT_RUDE_REJECTION = "text/rude-rejection"
EVENT_CONTENT_TYPES = frozenset({CT_EVENT_PLAIN, CT_EVENT_JSON, CT_EVENT_XML})

_ENC = "utf-8"
_ERR = "surrogateescape"


# --------------------------------------------------------------------------- errors


class FrameError(ProtocolError):
    """The byte stream cannot be split into frames; the connection must be dropped."""


class MalformedHeader(FrameError):
    """A header line has no ``:`` or an empty name."""


class InvalidContentLength(FrameError):
    """Content-Length is not a non-negative decimal integer."""


class FrameTooLarge(FrameError):
    """A header block or body is larger than the parser's limit."""


class MalformedEvent(ProtocolError):
    """An event frame's body is invalid (bad JSON, bad inner Content-Length...). The stream is in sync."""


class InvalidCommand(ESLError, ValueError):
    """A command cannot be encoded safely (newline in a command line or header, bad header name)."""


# --------------------------------------------------------------------------- headers


def _decode_value(value: str) -> str:
    """URL-decode one value (byte level: %XX are bytes, then UTF-8 with surrogateescape)."""
    if "%" in value:
        return unquote_to_bytes(value.encode(_ENC, _ERR)).decode(_ENC, _ERR)
    return value


def _decode_raw(value: bytes) -> str:
    if b"%" in value:
        value = unquote_to_bytes(value)
    return value.decode(_ENC, _ERR)


class Headers:
    """Ordered multi-valued header set. Names keep their case; lookups are case-insensitive.

    ``get`` returns the first value, ``get_all`` every value in wire order, ``items()`` all pairs
    (duplicates kept, e.g. the two ``Hangup-Cause`` lines of CHANNEL_HANGUP_COMPLETE).
    """

    __slots__ = ("_index", "_pairs")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()):
        self._pairs: list[tuple[str, str]] = list(pairs)
        self._index: dict[str, list[str]] | None = None

    def _idx(self) -> dict[str, list[str]]:
        idx = self._index
        if idx is None:
            idx = {}
            for k, v in self._pairs:
                lk = k.lower()
                lst = idx.get(lk)
                if lst is None:
                    idx[lk] = [v]
                else:
                    lst.append(v)
            self._index = idx
        return idx

    def get(self, name: str, default=None):
        lst = self._idx().get(name.lower())
        return lst[0] if lst else default

    def get_last(self, name: str, default=None):
        lst = self._idx().get(name.lower())
        return lst[-1] if lst else default

    def get_all(self, name: str) -> list[str]:
        return list(self._idx().get(name.lower(), ()))

    def __getitem__(self, name: str) -> str:
        lst = self._idx().get(name.lower())
        if not lst:
            raise KeyError(name)
        return lst[0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._idx()

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def items(self) -> list[tuple[str, str]]:
        return list(self._pairs)

    def keys(self) -> list[str]:
        return [k for k, _ in self._pairs]

    def to_dict(self) -> dict[str, str]:
        """First value per name (in first-seen order)."""
        out: dict[str, str] = {}
        for k, v in self._pairs:
            out.setdefault(k, v)
        return out

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._pairs == other._pairs
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._pairs!r})"


def parse_header_block_reference(block: bytes, *, strict: bool = False) -> list[tuple[str, str]]:
    """Split a header block (bytes, no trailing blank line) into pairs, then URL-decode each value.

    Lines are split first, values decoded afterwards, so an encoded ``%0A`` can never start a header.
    strict: a line without ``:`` (or with an empty name) raises MalformedHeader (outer frames); otherwise
    such lines are skipped (event bodies: the frame is already in sync, a junk line must not lose the
    event). Empty lines are skipped. A trailing CR on a line is dropped.
    """
    pairs = []
    append = pairs.append
    for line in block.split(b"\n"):
        name, sep, value = line.partition(b":")
        if not sep or not name:
            if not line or line == b"\r":
                continue
            if strict:
                raise MalformedHeader(f"header line without name/colon: {line[:80]!r}")
            continue
        if value[:1] == b" ":
            value = value[1:]
        if value[-1:] == b"\r":
            value = value[:-1]
        if b"%" in value:
            value = unquote_to_bytes(value)
        append((name.decode(_ENC, _ERR), value.decode(_ENC, _ERR)))
    return pairs


def _bulk_unquote(joined: bytes) -> tuple[bytes, bool] | None:
    """URL-decode many values at once (joined by b"\\n") with one C call: binascii.a2b_qp with '%' as
    the escape. Encoded CR/LF (``%0A %0a %0D %0d``) are first turned into NUL + letter so decoding cannot
    create lines (the caller restores them with :func:`_restore_line_escapes`). Returns
    ``(decoded, has_protected)``, or None unless the result is provably what unquote_to_bytes would
    give value by value (the caller then falls back): every '%' a valid escape, no soft line breaks,
    no literal '=' or NUL in the input and no NUL produced by decoding."""
    if b"=" in joined or b"\x00" in joined:
        return None
    protected = 0
    if b"%0" in joined:
        joined = joined.replace(b"%0A", b"\x00A").replace(b"%0a", b"\x00a")
        joined = joined.replace(b"%0D", b"\x00D").replace(b"%0d", b"\x00d")
        protected = joined.count(b"\x00")
    # the sentinel line means every soft line break ("=" + blanks + line end) removes a newline
    q = joined.replace(b"%", b"=") + b"\nZ"
    out = binascii.a2b_qp(q)
    # each '=' either decoded a %XX (-2 bytes) or survived/broke a line (then a count below differs)
    if (
        len(out) != len(q) - 2 * q.count(b"=")
        or out.count(b"\n") != q.count(b"\n")
        or out.count(b"\x00") != protected
        or not out.endswith(b"\nZ")
    ):
        return None
    return out[:-2], bool(protected)


_LINE_ESCAPES = {"\x00A": "\n", "\x00a": "\n", "\x00D": "\r", "\x00d": "\r"}
_LINE_ESCAPE_RE = re.compile("\x00[AaDd]")


def _restore_line_escapes(value: str) -> str:
    """Undo the NUL protection of encoded CR/LF (every NUL is one, see _bulk_unquote)."""
    return _LINE_ESCAPE_RE.sub(lambda m: _LINE_ESCAPES[m.group(0)], value)


def parse_header_block(block: bytes) -> list[tuple[str, str]]:
    """Lenient event-body header parsing, same result as ``parse_header_block_reference(strict=False)``:
    the lines are split in Python, the values URL-decoded together in one C call when that is safe."""
    lines = block.split(b"\n")
    names = values = None
    # FreeSWITCH form: every line is "Name: value" with exactly one ": " (values encode ':' and ' ').
    # Then one C-level split gives names and values; anything else goes through the line loop.
    if b"\r" not in block and list(map(bytes.count, lines, repeat(b": "))).count(1) == len(lines):
        parts = block.replace(b"\n", b": ").split(b": ")
        names = parts[0::2]
        if b"" not in names and b":" not in b"\n".join(names):
            values = parts[1::2]
        else:
            names = None
    if names is None:
        names = []
        values = []
        add_name = names.append
        add_value = values.append
        for line in lines:
            name, sep, value = line.partition(b":")
            if not sep or not name:
                continue
            if value[:1] == b" ":
                value = value[1:]
            if value[-1:] == b"\r":
                value = value[:-1]
            add_name(name)
            add_value(value)
        if not names:
            return []
    joined = b"\n".join(values)
    if b"%" in joined:
        bulk = _bulk_unquote(joined)
        if bulk is None:
            return [
                (n.decode(_ENC, _ERR), _decode_raw(v)) for n, v in zip(names, values, strict=True)
            ]
        decoded, protected = bulk
        vals = decoded.decode(_ENC, _ERR).split("\n")
        if protected:
            vals = [_restore_line_escapes(v) if "\x00" in v else v for v in vals]
    else:
        vals = joined.decode(_ENC, _ERR).split("\n")
    keys = b"\n".join(names).decode(_ENC, _ERR).split("\n")
    return list(zip(keys, vals, strict=True))


_KELVIN = "\u212a".encode(_ENC)  # the one non-ASCII character whose lower() is ASCII ("k")


def _block_find(block: bytes, name: str, end: int | None = None) -> int | None:
    """Where the value of header ``name`` starts in a raw header block (the first line whose name equals
    ``name`` case-insensitively, as :meth:`Headers.get` compares after decoding), -1 when no line has
    it, or None when only a full parse can tell (a name that is not plain ASCII)."""
    if not name or not name.isascii() or ":" in name or "\n" in name:
        return None
    if end is None:
        end = len(block)
    key = name.lower().encode()
    low = block[:end].lower()  # ASCII case folding, as bytes
    if "k" in name.lower() and _KELVIN in low:
        return None
    if low.startswith(key + b":"):
        return len(key) + 1
    i = low.find(b"\n" + key + b":")
    return -1 if i < 0 else i + len(key) + 2


def _block_get(block: bytes, name: str, default=None):
    """``Headers(parse_header_block(block)).get(name, default)`` without parsing the block (mostly)."""
    i = _block_find(block, name)
    if i is None:
        return Headers(parse_header_block(block)).get(name, default)
    return default if i < 0 else _block_value(block, i)


def _block_value(block: bytes, start: int, end: int | None = None) -> str:
    """The decoded value of the header line whose value starts at ``start`` (as parse_header_block)."""
    if end is None:
        end = len(block)
    j = block.find(b"\n", start, end)
    value = block[start : j if j >= 0 else end]
    if value[:1] == b" ":
        value = value[1:]
    if value[-1:] == b"\r":
        value = value[:-1]
    return _decode_raw(value)


def _plain_outer_block(block: bytes) -> bool:
    """True when every line of an outer header block has a colon after a non-empty name: then
    parse_header_block_reference(strict=True) accepts the block and parses it as parse_header_block does.
    False: the strict reference must decide (it raises MalformedHeader, or skips blank and CR lines).
    C-level byte operations only (no Python code per line)."""
    if block[:1] == b":" or b"\n:" in block:
        return False
    return 0 not in list(map(bytes.count, block.split(b"\n"), repeat(b":")))


# --------------------------------------------------------------------------- frames


class Frame:
    """One outer ESL frame: ordered headers (values URL-decoded) and the raw body bytes.

    ``offset`` is the stream position (bytes) of the frame's first byte; ``raw_headers`` the exact
    header block bytes (without the terminating blank line). Frames made by :class:`FrameParser` parse
    their header block only when ``headers`` is first read: ``get`` (and the properties below) look a
    header up in the raw block, with the same result as ``headers.get``.
    """

    __slots__ = ("_headers", "body", "content_type", "offset", "raw_headers")

    def __init__(self, headers: Headers | None, body: bytes = b"", *, offset: int = 0, raw_headers: bytes = b"",
                 content_type: str | None = None):
        self._headers = headers  # None: parsed from raw_headers on first use
        self.body = body
        self.offset = offset
        self.raw_headers = raw_headers
        self.content_type = self.get("Content-Type", "") if content_type is None else content_type

    @property
    def headers(self) -> Headers:
        h = self._headers
        if h is None:
            h = self._headers = Headers(parse_header_block(self.raw_headers))
        return h

    def get(self, name: str, default=None):
        """First value of header ``name`` (case-insensitive), as ``headers.get``."""
        h = self._headers
        if h is None:
            return _block_get(self.raw_headers, name, default)
        return h.get(name, default)

    @property
    def reply_text(self) -> str | None:
        return self.get("Reply-Text")

    @property
    def body_text(self) -> str:
        return self.body.decode(_ENC, _ERR)

    @property
    def is_event(self) -> bool:
        return self.content_type in EVENT_CONTENT_TYPES

    @property
    def disposition(self) -> str | None:
        """For text/disconnect-notice: ``linger`` or ``disconnect`` (Content-Disposition)."""
        return self.get("Content-Disposition")

    @property
    def is_linger_notice(self) -> bool:
        """The channel hung up but the socket lingers (outbound ``linger``): events may still follow."""
        return self.content_type == CT_DISCONNECT_NOTICE and self.disposition == "linger"

    @property
    def controlled_session_uuid(self) -> str | None:
        return self.get("Controlled-Session-UUID")

    @property
    def linger_time(self) -> int | None:
        """``Linger-Time`` of a linger notice (-1: linger until the application closes)."""
        value = self.get("Linger-Time")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def __repr__(self) -> str:
        return f"<Frame {self.content_type or '?'} @{self.offset} headers={len(self.headers)} body={len(self.body)}>"


# the outer block of every event frame FreeSWITCH sends (Content-Length first, see the README)
_OUTER_EVENT = re.compile(rb"Content-Length: ([0-9]{1,12})\nContent-Type: (text/event-(?:plain|json|xml))")
# the other frames of every call, in FreeSWITCH's exact shape: a command's reply (a bgapi's with its
# Job-UUID) and an api response. Matched, they are parsed whole at once (two or three headers); anything
# else (another order, a CR, a header more) takes the general path, with the same result.
_OUTER_REPLY = re.compile(rb"Content-Type: command/reply\nReply-Text: ([^\n\r]*)(?:\nJob-UUID: ([^\n\r]*))?")
_OUTER_API = re.compile(rb"Content-Type: api/response\nContent-Length: ([0-9]{1,12})")


class FrameParser:
    """Incremental ESL frame parser: ``feed(bytes) -> list[Frame]``; any chunking gives the same frames.

    Leading empty lines before a frame are skipped (as FreeSWITCH itself does). Limits guard memory:
    a header block longer than ``max_header_bytes`` or a Content-Length above ``max_body_bytes``
    raises :class:`FrameTooLarge`. Received chunks are only joined when a frame can be complete, and
    each body is copied once.
    """

    __slots__ = ("_base", "_buf", "_error", "_more", "_more_len", "_need", "_pending", "_scan",
                 "max_body_bytes", "max_header_bytes")

    def __init__(self, *, max_header_bytes: int = 4 << 20, max_body_bytes: int = 64 << 20):
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._buf = b""  # unconsumed bytes (joined)
        self._more: list[bytes] = []  # received after _buf, not joined yet
        self._more_len = 0
        self._need = 0  # joined length needed before parsing can progress (0: unknown)
        self._scan = 0  # offset in _buf where the search for b"\n\n" resumes
        self._base = 0  # stream offset of _buf[0]
        self._pending: tuple[Headers | None, bytes, int, int, str] | None = None  # header parsed, waiting for body
        self._error: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) + self._more_len

    def feed(self, data: bytes) -> list[Frame]:
        if self._error is not None:
            raise self._error
        if not data:
            return []
        if type(data) is not bytes:
            data = bytes(data)
        frames: list[Frame] = []
        try:
            if self._buf or self._more:
                start = self._absorb(data, frames)
                if start is None:
                    return frames
            else:
                start = 0
            pos = self._parse(data, start, frames)
        except FrameError as exc:
            self._error = exc
            raise
        self._buf = data[pos:] if pos < len(data) else b""
        return frames

    def _absorb(self, data: bytes, frames: list[Frame]) -> int | None:
        """Complete the frame begun in earlier chunks with just the needed prefix of ``data`` (the big
        chunk itself is never copied). Returns where parsing of ``data`` continues, or None when all
        of ``data`` was kept for later."""
        n = len(data)
        if self._pending is not None:
            if len(self._buf) + self._more_len + n < self._need:  # body still incomplete: keep the chunk
                self._more.append(data)
                self._more_len += n
                return None
        else:
            tail = self._more[-1] if self._more else self._buf
            if b"\n" not in data and not tail.endswith(b"\n"):  # no header block can have completed
                # the same bound as _parse: the block so far, without the blank lines before it
                lead = len(self._buf) - len(self._buf.lstrip(b"\n"))
                if len(self._buf) - lead + self._more_len + n > self.max_header_bytes:
                    raise FrameTooLarge(f"header block exceeds {self.max_header_bytes} bytes")
                self._more.append(data)
                self._more_len += n
                return None
        buf = self._buf
        if self._more:
            buf += b"".join(self._more)
            self._more = []
            self._more_len = 0
        start = 0
        while True:
            if self._pending is not None:
                k = max(0, self._need - len(buf))
                if k > n - start:
                    self._buf = buf
                    if start < n:
                        self._more = [data[start:]]
                        self._more_len = n - start
                    return None
                piece = buf + data[start : start + k]
                start += k
            else:
                if buf.endswith(b"\n") and data.startswith(b"\n", start):
                    end = start + 1
                else:
                    j = data.find(b"\n\n", start)
                    end = n if j < 0 else j + 2
                piece = buf + data[start:end]
                start = end
            pos = self._parse(piece, 0, frames)
            buf = piece[pos:]
            if not buf:
                self._buf = b""
                return start
            if start >= n:
                self._buf = buf
                return None

    def _parse(self, buf: bytes, start: int, frames: list[Frame]) -> int:
        """Parse ``buf`` from ``start`` (stream offset ``self._base``); return where unconsumed bytes begin."""
        pos = start
        n = len(buf)
        scan = start + self._scan
        base = self._base - start
        append = frames.append
        while True:
            pending = self._pending
            if pending is not None:
                headers, raw, offset, length, ctype = pending
                if n - pos < length:
                    self._need = length  # bytes needed from the leftover's start
                    break
                end = pos + length
                append(Frame(headers, buf[pos:end], offset=offset, raw_headers=raw, content_type=ctype))
                pos = scan = end
                self._pending = None
                self._need = 0
                continue
            while pos < n and buf[pos] == 0x0A:  # blank lines between frames
                pos += 1
            if pos >= n:
                scan = pos
                break
            end = buf.find(b"\n\n", scan - 1 if scan > pos else pos)
            if end < 0:
                if n - pos > self.max_header_bytes:
                    raise FrameTooLarge(f"header block exceeds {self.max_header_bytes} bytes")
                scan = n
                break
            if end - pos > self.max_header_bytes:
                raise FrameTooLarge(f"header block exceeds {self.max_header_bytes} bytes")
            raw = buf[pos:end]
            offset = base + pos
            pos = scan = end + 2
            m = _OUTER_EVENT.fullmatch(raw)
            headers = None  # parsed from raw when first read (Frame.headers)
            if m is not None:
                ctype = m.group(2).decode()
                length = int(m.group(1))
            elif (m := _OUTER_REPLY.fullmatch(raw)) is not None:
                ctype = CT_COMMAND_REPLY
                length = 0
                pairs = [("Content-Type", ctype), ("Reply-Text", _decode_raw(m.group(1)))]
                if m.group(2) is not None:
                    pairs.append(("Job-UUID", _decode_raw(m.group(2))))
                headers = Headers(pairs)
            elif (m := _OUTER_API.fullmatch(raw)) is not None:
                ctype = CT_API_RESPONSE
                length = int(m.group(1))
                headers = Headers([("Content-Type", ctype), ("Content-Length", m.group(1).decode())])
            else:
                if not _plain_outer_block(raw):
                    # MalformedHeader, or a block with blank/CR lines (parsed now, as the reference does)
                    headers = Headers(parse_header_block_reference(raw, strict=True))
                ctype = _block_get(raw, "Content-Type", "")
                length = 0
                value = _block_get(raw, "Content-Length")
                if value is not None:
                    value = value.strip()
                    if not (value.isascii() and value.isdigit()):
                        raise InvalidContentLength(f"invalid Content-Length {value[:40]!r}")
                    length = int(value)
            if length > self.max_body_bytes:
                raise FrameTooLarge(f"Content-Length {length} exceeds {self.max_body_bytes}")
            if length:
                self._pending = (headers, raw, offset, length, ctype)
            else:
                append(Frame(headers, b"", offset=offset, raw_headers=raw, content_type=ctype))
        self._base = base + pos
        self._scan = max(0, scan - pos)
        return pos


# --------------------------------------------------------------------------- events


class _Pairs(list):
    """JSON object as an ordered list of (key, value) pairs - duplicate keys are kept."""


def _pairs_hook(pairs):
    return _Pairs(pairs)


def _json_value(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        # FreeSWITCH array variables: plain form is ARRAY::v1|:v2 (see README "Array variables")
        return "ARRAY::" + "|:".join(_json_value(x) for x in v)
    if isinstance(v, _Pairs):
        return json.dumps(dict(v))
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


_XML_HEADERS_RE = re.compile(r"<headers>(.*?)</headers>", re.S)
_XML_HEADER_RE = re.compile(r"<([A-Za-z0-9_.:\-]+)>([^<]*)</\1>")
_XML_BODY_RE = re.compile(r"<body>(.*)</body>", re.S)


class Event:
    """One FreeSWITCH event (plain, JSON or XML body), or a header set such as outbound CHANNEL_DATA.

    * ``name``: ``Event-Name`` (the **last** one: PRIVATE_COMMAND after uuid_broadcast carries two,
      COMMAND then PRIVATE_COMMAND, and FreeSWITCH counts it as PRIVATE_COMMAND).
    * ``get(name)``: first value (case-insensitive); ``get_all(name)``: every value in order.
    * ``headers``: a :class:`Headers` (duplicates kept); ``body``: the event's own body text or None
      (BACKGROUND_JOB output, RECV_INFO payload) - never merged into the headers.
    * Plain events are parsed lazily: the reader only finds frame boundaries; a handler that reads a
      couple of headers never pays for URL-decoding two hundred ``variable_*`` lines. Until the full
      parse, ``get`` prefers the first exact-case match (FreeSWITCH never sends one name in two cases).
    """

    __slots__ = ("_data", "_fast", "_headers", "_hend", "_name", "_uuid", "body_bytes", "content_type", "raw")

    # byte searches before a full parse pays off (from_plain's ``lookups`` changes it): a search is one
    # C-level scan of a few KB, parsing a channel event's ~200 headers costs as much as dozens of them
    _FAST_LOOKUPS = 12

    def __init__(
        self,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes | str | None = None,
        *,
        content_type: str = CT_EVENT_PLAIN,
        raw: bytes = b"",
    ):
        if headers is not None and not isinstance(headers, Headers):
            headers = Headers(headers)
        self._headers: Headers | None = headers
        self._data: bytes = b""  # plain: undecoded header block is _data[:_hend]
        self._hend = 0
        self._fast = self._FAST_LOOKUPS  # lookups left before get() parses the whole block
        self._name: str | None = None
        self._uuid: str | None | bool = False  # False: not looked up yet
        if isinstance(body, str):
            body = body.encode(_ENC, _ERR)
        self.body_bytes: bytes | None = body
        self.content_type = content_type
        self.raw = raw

    # ---- construction from frames

    @classmethod
    def from_frame(cls, frame: Frame) -> Event:
        ct = frame.content_type
        if ct == CT_EVENT_PLAIN:
            return cls.from_plain(frame.body)
        if ct == CT_EVENT_JSON:
            return cls.from_json(frame.body)
        if ct == CT_EVENT_XML:
            return cls.from_xml(frame.body)
        # any other frame (e.g. outbound connect reply): its own headers are the event
        return cls(frame.headers, frame.body or None, content_type=ct, raw=frame.raw_headers)

    @classmethod
    def from_plain(cls, data: bytes, *, lookups: int | None = None) -> Event:
        """Header lines, then - if the last header is ``Content-Length: N`` - an empty line and N body
        bytes. Blank lines inside the header block are ignored (FreeSWITCH never sends them).

        ``lookups``: how many ``get`` calls search the raw block before the whole block is parsed (default
        4). An event kept for long and read now and then (the outbound channel data) stays smallest
        unparsed: give it a large number."""
        ev = cls(None, None, content_type=CT_EVENT_PLAIN, raw=data)
        ev._data = data
        if lookups is not None:
            ev._fast = lookups
        # fast path: an event with a body has Content-Length as its last header line
        if data.startswith(b"Content-Length:"):
            i = 0
        else:
            i = data.find(b"\nContent-Length:")
            if i >= 0:
                i += 1
        if i >= 0:
            j = data.find(b"\n", i)
            if j >= 0 and data[j + 1 : j + 2] == b"\n":
                ev._hend = j
                ev.body_bytes = cls._inner_body(data, data[i + 15 : j], j + 2)
                return ev
            # Content-Length is not the last header: use the first empty line
            end = data.find(b"\n\n")
            if end >= 0:
                ev._hend = end
                k = data.rfind(b"\nContent-Length:", 0, end)
                k = k + 1 if k >= 0 else (0 if data.startswith(b"Content-Length:") else -1)
                if k >= 0:
                    e = data.find(b"\n", k, end)
                    ev.body_bytes = cls._inner_body(data, data[k + 15 : e if e >= 0 else end], end + 2)
                return ev
        n = len(data)
        while n and data[n - 1] == 0x0A:
            n -= 1
        ev._hend = n
        return ev

    @staticmethod
    def _inner_body(data: bytes, value: bytes, start: int) -> bytes:
        value = value.strip()
        if not value.isdigit():
            raise MalformedEvent(f"invalid inner Content-Length {value[:40]!r}")
        length = int(value)
        if start + length > len(data):
            raise MalformedEvent(f"inner Content-Length {length} exceeds the {len(data) - start} bytes left")
        return data[start : start + length]

    @classmethod
    def from_json(cls, data: bytes) -> Event:
        try:
            obj = json.loads(data.decode(_ENC, _ERR), object_pairs_hook=_pairs_hook)
        except (ValueError, RecursionError) as exc:
            raise MalformedEvent(f"invalid JSON event body: {exc}") from None
        if not isinstance(obj, _Pairs):
            raise MalformedEvent("JSON event body is not an object")
        pairs = []
        body = None
        for k, v in obj:
            if k == "_body":
                body = _json_value(v)
            else:
                pairs.append((k, _json_value(v)))
        return cls(Headers(pairs), body, content_type=CT_EVENT_JSON, raw=data)

    @classmethod
    def from_xml(cls, data: bytes) -> Event:
        text = data.decode(_ENC, _ERR)
        m = _XML_HEADERS_RE.search(text)
        if m is None:
            raise MalformedEvent("XML event without <headers>")
        pairs = [
            (name, _decode_value(_xml_unescape(value)))
            for name, value in _XML_HEADER_RE.findall(m.group(1))
        ]
        body = None
        bm = _XML_BODY_RE.search(text, m.end())
        if bm is not None:
            body_text = _xml_unescape(bm.group(1))
            clen = _XML_HEADER_RE.search(text, m.end(), bm.start())
            if clen is not None and clen.group(1) == "Content-Length" and clen.group(2).strip().isdigit():
                raw_body = body_text.encode(_ENC, _ERR)[: int(clen.group(2).strip())]
                body_text = raw_body.decode(_ENC, _ERR)
            body = body_text
        return cls(Headers(pairs), body, content_type=CT_EVENT_XML, raw=data)

    # ---- header access

    @property
    def headers(self) -> Headers:
        h = self._headers
        if h is None:
            h = self._headers = Headers(parse_header_block(self._data[: self._hend]))
        return h

    def _fast_get(self, name: str, last: bool = False) -> str | None:
        """Exact-case lookup straight in the undecoded block (no full parse)."""
        data = self._data
        hend = self._hend
        key = name.encode(_ENC, _ERR) + b":"
        i = -1
        if last:
            i = data.rfind(b"\n" + key, 0, hend)
            if i >= 0:
                i += 1
            elif data.startswith(key, 0, hend):
                i = 0
        elif data.startswith(key, 0, hend):
            i = 0
        else:
            i = data.find(b"\n" + key, 0, hend)
            if i >= 0:
                i += 1
        if i < 0:
            return None
        j = data.find(b"\n", i, hend)
        value = data[i + len(key) : j if j >= 0 else hend]
        if value[:1] == b" ":
            value = value[1:]
        if value[-1:] == b"\r":
            value = value[:-1]
        return _decode_raw(value)

    def get(self, name: str, default=None):
        if self._headers is None and self._fast > 0 and name and ":" not in name and "\n" not in name:
            self._fast -= 1
            v = self._fast_get(name)
            if v is not None:
                return v
            # not there in this spelling: unless some line has it in another case, it is absent
            if _block_find(self._data, name, self._hend) == -1:
                return default
        return self.headers.get(name, default)

    def get_all(self, name: str) -> list[str]:
        return self.headers.get_all(name)

    def __getitem__(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    @property
    def name(self) -> str:
        n = self._name
        if n is None:
            if self._headers is None:
                n = self._fast_get("Event-Name", last=True)
                if n is None:
                    n = self.headers.get_last("Event-Name", "")
            else:
                n = self._headers.get_last("Event-Name", "")
            self._name = n
        return n

    @property
    def subclass(self) -> str | None:
        return self.get("Event-Subclass")

    @property
    def full_name(self) -> str:
        """``CUSTOM sofia::register`` for custom events, else the event name."""
        name = self.name
        if name == "CUSTOM":
            sub = self.subclass
            if sub:
                return f"CUSTOM {sub}"
        return name

    @property
    def uuid(self) -> str | None:
        """The channel's ``Unique-ID`` (None for non-channel events)."""
        u = self._uuid
        if u is False:
            u = self._uuid = self.get("Unique-ID")
        return u

    @property
    def job_uuid(self) -> str | None:
        return self.get("Job-UUID")

    @property
    def body(self) -> str | None:
        b = self.body_bytes
        return None if b is None else b.decode(_ENC, _ERR)

    def __repr__(self) -> str:
        return f"<Event {self.full_name or '?'} uuid={self.uuid}>"


# --------------------------------------------------------------------------- encoding


def new_uuid() -> str:
    return str(_uuid.uuid4())


def _check_line(text: str, what: str) -> None:
    if "\n" in text or "\r" in text:
        raise InvalidCommand(f"{what} must not contain a newline: {text[:60]!r}")


_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]+\Z")


def _header_items(headers) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def encode_command(command: str, headers=None, body: bytes | str | None = None) -> bytes:
    """``command\\nName: value\\n...\\n[Content-Length: N\\n]\\n[body]`` as bytes.

    ``headers`` is a mapping or a sequence of pairs. FreeSWITCH does not URL-decode command headers,
    so values are sent literally; they must not contain a newline (use ``body`` for such text).
    """
    _check_line(command, "command")
    if not command.strip():
        raise InvalidCommand("empty command")
    parts = [command, "\n"]
    for name, value in _header_items(headers):
        if not _NAME_RE.match(name):
            raise InvalidCommand(f"invalid header name {name!r}")
        if name.lower() == "content-length":
            raise InvalidCommand("Content-Length is computed from the body")
        _check_line(value, f"header {name}")
        parts += [name, ": ", value, "\n"]
    payload = b""
    if body is not None:
        payload = body.encode(_ENC, _ERR) if isinstance(body, str) else bytes(body)
        parts += ["Content-Length: ", str(len(payload)), "\n"]
    parts.append("\n")
    return "".join(parts).encode(_ENC, _ERR) + payload


def encode_api(command: str) -> bytes:
    return encode_command("api " + command)


def encode_bgapi(command: str, job_uuid: str) -> bytes:
    """bgapi with our own Job-UUID so the BACKGROUND_JOB can be matched to the request."""
    return encode_command("bgapi " + command, [("Job-UUID", job_uuid)])


def encode_sendmsg(uuid: str | None, headers, body: bytes | str | None = None) -> bytes:
    """``sendmsg [uuid]`` with the given headers (e.g. call-command: hangup) and optional body."""
    cmd = "sendmsg" if not uuid else f"sendmsg {uuid}"
    return encode_command(cmd, headers, body)


_ARG_HEADER_MAX = 1024


def encode_execute(
    app: str,
    arg: str | None = None,
    *,
    uuid: str | None = None,
    event_uuid: str | None = None,
    lock: bool = True,
    loops: int | None = None,
) -> bytes:
    """sendmsg ``call-command: execute``. Long or odd arguments (newline, CR, leading/trailing blanks,
    over 1 KiB) go in a ``text/plain`` body, which FreeSWITCH uses when execute-app-arg is absent."""
    _check_line(app, "application name")
    if not app or " " in app:
        raise InvalidCommand(f"invalid application name {app!r}")
    headers = [("call-command", "execute"), ("execute-app-name", app)]
    body = None
    if arg is not None and arg != "":
        odd = "\n" in arg or "\r" in arg or arg != arg.strip(" ") or len(arg) > _ARG_HEADER_MAX
        if odd:
            headers.append(("content-type", "text/plain"))
            body = arg
        else:
            headers.append(("execute-app-arg", arg))
    if event_uuid:
        headers.append(("event-uuid", event_uuid))
    if lock:
        headers.append(("event-lock", "true"))
    if loops is not None:
        headers.append(("loops", str(int(loops))))
    return encode_sendmsg(uuid, headers, body)
