"""Replay a capture's client bytes against the emulator and compare what it sends back with what the
real FreeSWITCH sent, after normalising only values that must differ (UUIDs, dates, sequence numbers,
uptime figures). Header names, header order, URL-encoding and framing are compared as they are."""

from __future__ import annotations

import codecs
import json
import os
import re
import socket
import time

import gevent

from tests.sim._client import parse_frames

TRACES = os.environ.get("FSD_TRACES", "/work/shared/freeswitch-traces")
ESL = os.path.join(TRACES, "esl")

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
VOLATILE = {
    "Core-UUID",
    "Event-Date-Local",
    "Event-Date-GMT",
    "Event-Date-Timestamp",
    "Event-Sequence",
    "Up-Time",
    "Uptime-msec",
    "Idle-CPU",
    "Job-UUID",
}
UP_RE = re.compile(r"UP \d+ years, \d+ days, \d+ hours, \d+ minutes, \d+ seconds, \d+ milliseconds, \d+ microseconds")

# The emulator is configured with the capture machine's identity, so these need no normalising.
CAPTURE_IDENTITY = {"hostname": "vm", "ipv4": "192.0.2.2", "ipv6": "fd00::2"}


def available() -> bool:
    return os.path.isdir(ESL)


def read(name: str, side: str) -> bytes:
    with open(os.path.join(ESL, f"{name}.{side}.raw"), "rb") as f:
        return f.read()


def client_commands(name: str, keep=None) -> list[tuple[bytes, int]]:
    """[(command bytes, number of server frames FreeSWITCH had sent before it)]."""
    client = read(name, "client")
    server = read(name, "server")
    fs_bytes = 0
    timeline = []  # (app_offset, fs_bytes_before)
    with open(os.path.join(ESL, f"{name}.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("dir") == "fs->app":
                fs_bytes = rec["off"] + rec["len"]
            elif rec.get("dir") == "app->fs":
                data = codecs.escape_decode(rec["data"])[0]
                timeline.append((rec["off"], rec["off"] + len(data), fs_bytes))
    out = []
    pos = 0
    while pos < len(client):
        end = client.find(b"\n\n", pos)
        if end < 0:
            break
        cmd = client[pos : end + 2]
        before = next((fb for a, b, fb in timeline if a <= pos < b), fs_bytes)
        frames, _ = parse_frames(server[:before])
        out.append((cmd, len([f for f in frames if keep is None or keep(f)])))
        pos = end + 2
    return out


def app_eof_frames(name: str, keep=None) -> int | None:
    """Frames FreeSWITCH had sent when the application half-closed (None: it never did first)."""
    fs_bytes = 0
    with open(os.path.join(ESL, f"{name}.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("dir") == "fs->app":
                fs_bytes = rec["off"] + rec["len"]
            elif rec.get("ev") == "eof":
                if rec.get("side") == "app":
                    frames = parse_frames(read(name, "server")[:fs_bytes])[0]
                    return len([f for f in frames if keep is None or keep(f)])
                return None
    return None


def _norm_value(name: str, value: str) -> str:
    if name in VOLATILE:
        return "<V>"
    value = UUID_RE.sub("<UUID>", value)
    value = UP_RE.sub("UP <UPTIME>", value)
    value = re.sub(r"min idle cpu [\d.]+/[\d.]+", "min idle cpu <CPU>", value)
    value = re.sub(r"UP%20\d+%20years.*?microseconds", "UP <UPTIME>", value)
    return value


def _norm_plain_body(body: str, *, structure: bool) -> str:
    head, sep, rest = body.partition("\n\n")
    lines = []
    for line in head.split("\n"):
        k, _, v = line.partition(": ")
        if structure and k.startswith("variable_"):
            continue
        if k == "Content-Length" and rest:
            lines.append("Content-Length: <N>")
            continue
        lines.append(f"{k}: {_norm_value(k, v) if not structure else _struct_value(k, v)}")
    return "\n".join(lines) + sep + _norm_value("", rest)


KEEP_IN_STRUCTURE = {
    "Event-Name",
    "Event-Subclass",
    "Channel-State",
    "Channel-Call-State",
    "Answer-State",
    "Call-Direction",
    "Application",
    "Application-Response",
    "Hangup-Cause",
    "DTMF-Digit",
    "Playback-Status",
    "Other-Type",
    "Content-Type",
    "Reply-Text",
    "Socket-Mode",
    "Control",
    "Content-Disposition",
    "Linger-Time",
}


def _struct_value(name: str, value: str) -> str:
    if name in KEEP_IN_STRUCTURE:
        return value
    return "<V>"


def _norm_json_body(body: str, *, structure: bool = False) -> str:
    pairs = json.loads(body, object_pairs_hook=lambda p: p)
    out = []
    for k, v in pairs:
        if structure:
            if k.startswith("variable_"):
                continue
            out.append((k, _struct_value(k, v) if k not in ("Content-Length", "_body") else "<V>"))
            continue
        if isinstance(v, str):
            if k == "Content-Length":
                v = "<N>"
            elif k == "_body":
                v = _norm_value("", v)
            else:
                v = _norm_value(k, v)
        out.append((k, v))
    return json.dumps(out)


def normalise(frame, *, structure: bool = False) -> str:
    """A canonical text for one frame. structure=True keeps header names/order but drops values and
    variable_* headers of channel events (whose contents depend on the SIP stack)."""
    ct = frame.get("Content-Type")
    outer = []
    for k, v in frame.headers:
        if k == "Content-Length":
            outer.append("Content-Length: <N>")
        elif structure:
            if k.startswith("variable_"):
                continue
            outer.append(f"{k}: {_struct_value(k, v)}")
        else:
            outer.append(f"{k}: {_norm_value(k, v)}")
    body = frame.body.decode("utf-8")
    if ct == "text/event-plain":
        body = _norm_plain_body(body, structure=structure)
    elif ct == "text/event-json":
        body = _norm_json_body(body, structure=structure)
    elif ct == "text/event-xml":
        body = re.sub(r"<Content-Length>\d+</Content-Length>", "<Content-Length>N</Content-Length>", body)
        body = re.sub(
            r"<(Core-UUID|Event-Date-Local|Event-Date-GMT|Event-Date-Timestamp|Event-Sequence|Job-UUID)>[^<]*<",
            r"<\1><V><",
            body,
        )
        body = _norm_value("", body)
    else:
        body = _norm_value("", body)
    return "\n".join(outer) + "\n\n" + body


def replay(
    name: str,
    port: int,
    *,
    timeout: float = 10.0,
    before_command=None,
    settle: float = 0.05,
    sock_factory=None,
    keep=None,
):
    """Send the capture's commands to 127.0.0.1:port, pacing them as in the capture (each command is sent
    once as many frames have arrived as FreeSWITCH had sent by then). Returns the received frames."""
    from tests.sim._client import RawEsl

    conn = sock_factory() if sock_factory else RawEsl.connect("127.0.0.1", port)
    expected_total = len([f for f in parse_frames(read(name, "server"))[0] if keep is None or keep(f)])
    got: list = []

    def _frames():
        frames, _ = parse_frames(conn.raw)
        return [f for f in frames if keep is None or keep(f)]

    for i, (cmd, before) in enumerate(client_commands(name, keep)):
        if before_command is not None:
            before_command(i, cmd)
        deadline = time.monotonic() + timeout
        while len(_frames()) < before and time.monotonic() < deadline and not conn.closed:
            gevent.sleep(0.005)
        if conn.closed:
            break
        conn.sock.sendall(cmd)
        gevent.sleep(settle)
    eof_at = app_eof_frames(name, keep)
    if eof_at is not None:
        deadline = time.monotonic() + timeout
        while len(_frames()) < eof_at and time.monotonic() < deadline and not conn.closed:
            gevent.sleep(0.005)
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while len(_frames()) < expected_total and time.monotonic() < deadline and not conn.closed:
        gevent.sleep(0.01)
    got = _frames()
    conn.close()
    return got, conn


def expected_frames(name: str):
    return parse_frames(read(name, "server"))[0]


def first_difference(got: list[str], want: list[str]) -> str:
    """A readable diff of the first differing normalised frame (for assertion messages)."""
    import difflib

    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            diff = difflib.unified_diff(w.split("\n"), g.split("\n"), "capture", "emulator", lineterm="", n=2)
            return f"frame {i}:\n" + "\n".join(diff)
    return f"frame counts differ: emulator {len(got)}, capture {len(want)}"
