"""Logging: one line per event, `key=value` (default) or JSON; secrets never reach the output.

Messages are written as ``event_name key=value key=value`` (``log.info("esl_connected host=%s", h)``);
`kv()` quotes values that contain spaces. `log_context(uuid=..., tenant=...)` adds fields to every
line logged by the current greenlet (gevent gives each greenlet its own contextvars context; a new
greenlet starts with an empty one, so set the context inside the greenlet that handles the call).
`redact()` masks passwords, ESL `auth` commands, a1-hashes, Authorization headers, cookies and DSN
passwords in everything formatted, including tracebacks. `esl_wire_logger` logs Event Socket frames
for ``--trace-esl`` on the ``fsd.esl.wire`` logger.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterator

MASK = "********"

# a key starts at a token boundary and is at most 64 characters (keeps redact() linear on long words)
_KEY = (r"(?<![\w.-])[\w.-]{0,64}?"
        r"(?:password|passwd|pwd|secret|token|a1[-_]hash|api[-_]?key|credentials|private[-_]key)"
        r"(?:[-_](?:key|hash|b64))?")
_SECRETS: list[tuple[re.Pattern[str], str]] = [
    # ESL `auth <password>` and `userauth <user>@<domain>:<password>` commands, at a line start or quoted
    (re.compile(r"(?im)(^|[\"'=\\]|\\n)(\s*auth\s+)([^\s\"'\\]+)"), rf"\g<1>\g<2>{MASK}"),
    (re.compile(r"(?im)(^|[\"'=\\]|\\n)(\s*userauth\s+[^:\s\"']+:)([^\s\"'\\]+)"), rf"\g<1>\g<2>{MASK}"),
    # Authorization / Proxy-Authorization headers: keep the scheme, drop the credential
    (re.compile(r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)(basic|bearer|token|negotiate)(\s+)"
                r"([^\s\"',]+)"), rf"\g<1>\g<2>\g<3>{MASK}"),
    (re.compile(r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?digest\s+)([^\n\"]*(?:\"[^\"\n]*\"[^\n\"]*)*)"),
     rf"\g<1>{MASK}"),
    # cookies carry session ids
    (re.compile(r"(?i)\b((?:set-)?cookie[\"']?\s*[:=]\s*)([^\n]+)"), rf"\g<1>{MASK}"),
    # XML params: <param name="password" value="..."/>, <param name="a1-hash" value="..."/>
    (re.compile(rf"(?i)(name\s*=\s*[\"']{_KEY}[\"']\s+value\s*=\s*[\"'])([^\"']*)"), rf"\g<1>{MASK}"),
    # URLs with credentials: postgresql://user:secret@host/db
    (re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]{0,30}://[^:/@\s\"']{1,256}:)([^@\s\"']{1,256})(@)"),
     rf"\g<1>{MASK}\g<3>"),
    # key=value, key: value, "key": "value" (also DSN password=..., ESL headers variable_..._password: ...)
    (re.compile(rf"(?i)({_KEY}[\"']?)(\s*[=:]\s*)(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s,;&\"'}}]+)"),
     rf"\g<1>\g<2>{MASK}"),
]


def redact(text: str) -> str:
    """Mask every secret fsd knows the shape of; the rest of the text is left as it was."""
    for pattern, repl in _SECRETS:
        text = pattern.sub(repl, text)
    return text


# -- key=value helpers --------------------------------------------------------------------------------
_PLAIN = re.compile(r"^[^\s\"=\\]+\Z")


def kv_value(v: object) -> str:
    """A value as it appears after `key=`: bare when safe, else a JSON string (quotes, escapes, no newline)."""
    if v is None:
        return "-"
    s = v if isinstance(v, str) else str(v)
    if s and _PLAIN.match(s):
        return s
    return json.dumps(s, ensure_ascii=False)


def kv(**fields: object) -> str:
    """``kv(uuid=u, name="A B")`` → ``uuid=... name="A B"`` for the tail of a log message."""
    return " ".join(f"{k}={kv_value(v)}" for k, v in fields.items())


# -- per-greenlet context --------------------------------------------------------------------------------
_context: contextvars.ContextVar[dict[str, object]] = contextvars.ContextVar("fsd_log_context", default={})  # noqa: B039


@contextlib.contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Add fields (e.g. uuid=, tenant=) to every line logged inside the block by this greenlet."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, object]:
    return dict(_context.get())


# -- formatters ----------------------------------------------------------------------------------------
def _ts(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


_PAIR = re.compile(r'([\w.-]+)=("(?:[^"\\]|\\.)*"|\S*)')


class KvFormatter(logging.Formatter):
    """``ts=... level=info logger=fsd.x event_name k=v ... [context k=v] [exc="..."]`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        msg = _one_line(redact(record.getMessage()))
        line = f"ts={_ts(record)} level={record.levelname.lower()} logger={record.name} {msg}"
        ctx = _context.get()
        if ctx:
            present = {m.group(1) for m in _PAIR.finditer(msg)}
            extra = {k: v for k, v in ctx.items() if k not in present}
            if extra:
                line += " " + redact(kv(**extra))
        if record.exc_info:
            line += " exc=" + json.dumps(redact(self.formatException(record.exc_info)), ensure_ascii=False)
        return line


_RESERVED = {"ts", "level", "logger", "event", "msg", "exc"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event (the first word), every key=value, msg, exc."""

    def format(self, record: logging.LogRecord) -> str:
        d: dict[str, object] = {"ts": _ts(record), "level": record.levelname.lower(), "logger": record.name}
        msg = redact(record.getMessage())
        event, _, rest = msg.partition(" ")
        d["event"] = event
        for k, v in _context.get().items():
            d[k if k not in _RESERVED else k + "_"] = v if isinstance(v, str | int | float | bool) or v is None \
                else redact(str(v))
        for m in _PAIR.finditer(rest):
            key, v = m.group(1), m.group(2)
            if v.startswith('"'):
                try:
                    v = json.loads(v)
                except ValueError:
                    v = v[1:-1]
            d[key if key not in _RESERVED else key + "_"] = v
        d["msg"] = msg
        if record.exc_info:
            d["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(d, ensure_ascii=False, default=str)


# -- --trace-esl ----------------------------------------------------------------------------------------
wire_log = logging.getLogger("fsd.esl.wire")
TRACE_MAX_BYTES = 16384


def esl_wire_logger(direction: str, data: bytes | str, *, conn: str = "esl") -> None:
    """Log one chunk of Event Socket traffic (`direction` "in" or "out") at DEBUG, secrets masked.

    Cheap when tracing is off: `setup(trace_esl=False)` leaves fsd.esl.wire at INFO, so this returns early.
    """
    if not wire_log.isEnabledFor(logging.DEBUG):
        return
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "replace")
    text = raw[:TRACE_MAX_BYTES].decode("utf-8", "replace")
    more = len(raw) - TRACE_MAX_BYTES
    wire_log.debug("esl_wire conn=%s dir=%s bytes=%d%s frame=%s", conn, direction, len(raw),
                   f" truncated={more}" if more > 0 else "", json.dumps(redact(text), ensure_ascii=False))


def make_esl_tracer(conn: str):
    """A `trace(direction, data)` callback bound to one connection name, for an ESL client's trace hook."""

    def trace(direction: str, data: bytes | str) -> None:
        esl_wire_logger(direction, data, conn=conn)

    return trace


# -- setup ----------------------------------------------------------------------------------------------
def setup(*, level: str = "INFO", fmt: str = "kv", stream=None, trace_esl: bool = False) -> None:
    """Configure the root logger: one handler, the chosen format; fsd.esl.wire at DEBUG only with trace_esl."""
    if fmt not in ("kv", "json"):
        raise ValueError(f"log format must be kv or json, not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KvFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # the wire logger's own level decides (records then reach the root handler whatever the root level)
    wire_log.setLevel(logging.DEBUG if trace_esl else logging.INFO)
