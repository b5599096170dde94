"""A tiny raw ESL speaker for the emulator's tests (deliberately independent of fsd.esl)."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse

import gevent
import gevent.server
from gevent.queue import Queue


class Frame:
    def __init__(self, headers, body: bytes, raw: bytes):
        self.headers = headers
        self.body = body
        self.raw = raw

    def get(self, name, default=None):
        for k, v in self.headers:
            if k == name:
                return v
        return default

    @property
    def content_type(self):
        return self.get("Content-Type")

    @property
    def reply(self):
        return self.get("Reply-Text")

    def event(self) -> dict:
        """Decoded event headers (first value wins) with '_body'."""
        ct = self.content_type
        if ct == "text/event-json":
            return json.loads(self.body)
        text = self.body.decode("utf-8")
        head, _, rest = text.partition("\n\n")
        d = {}
        for line in head.split("\n"):
            if ": " in line:
                k, v = line.split(": ", 1)
                d.setdefault(k, urllib.parse.unquote(v))
        if rest:
            d["_body"] = rest
        return d

    def __repr__(self):
        return f"<Frame {self.headers[:3]} body={self.body[:60]!r}>"


def parse_frames(data: bytes):
    """Split a byte string into frames; returns (frames, leftover)."""
    out = []
    i = 0
    while True:
        j = data.find(b"\n\n", i)
        if j < 0:
            break
        head = data[i:j].decode("utf-8")
        headers = []
        for line in head.split("\n"):
            k, _, v = line.partition(": ")
            headers.append((k, v))
        length = next((int(v) for k, v in headers if k == "Content-Length"), 0)
        if len(data) < j + 2 + length:
            break
        body = data[j + 2 : j + 2 + length]
        out.append(Frame(headers, body, data[i : j + 2 + length]))
        i = j + 2 + length
    return out, data[i:]


class RawEsl:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.raw = b""
        self.frames: Queue = Queue()
        self.events: list[Frame] = []
        self.closed = False
        self._reader = gevent.spawn(self._read)

    @classmethod
    def connect(cls, host, port, timeout=5.0):
        return cls(socket.create_connection((host, port), timeout=timeout))

    def _read(self):
        try:
            while True:
                self.sock.settimeout(None)
                data = self.sock.recv(65536)
                if not data:
                    break
                self.raw += data
                self.buf += data
                frames, self.buf = parse_frames(self.buf)
                for f in frames:
                    if f.content_type and f.content_type.startswith("text/event"):
                        self.events.append(f)
                    self.frames.put(f)
        except OSError:
            pass
        self.closed = True
        self.frames.put(None)

    def send(self, text: str):
        if not text.endswith("\n\n"):
            text += "\n\n"
        self.sock.sendall(text.encode())

    def next(self, timeout=5.0, *, skip_events=True):
        deadline = time.monotonic() + timeout
        while True:
            f = self.frames.get(timeout=max(0.01, deadline - time.monotonic()))
            if f is None:
                self.frames.put(None)
                return None
            if (
                skip_events
                and f.content_type
                and (f.content_type.startswith("text/event") or f.content_type == "log/data")
            ):
                continue
            return f

    def cmd(self, text: str, timeout=5.0):
        self.send(text)
        return self.next(timeout)

    def api(self, text: str, timeout=10.0) -> str:
        f = self.cmd("api " + text, timeout)
        return f.body.decode()

    def wait_event(self, name, timeout=5.0, **match):
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for f in self.events[seen:]:
                ev = f.event()
                if ev.get("Event-Name") == name and all(ev.get(k.replace("_", "-")) == v for k, v in match.items()):
                    return ev
            seen = 0
            gevent.sleep(0.005)
        got = [f.event().get("Event-Name") for f in self.events]
        raise AssertionError(f"no {name} {match} within {timeout}s; got {got}")

    def event_names(self, uuid=None):
        out = []
        for f in self.events:
            ev = f.event()
            if uuid is None or ev.get("Unique-ID") == uuid:
                out.append(ev.get("Event-Name"))
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def login(host, port, password="ClueCon"):  # noqa: S107
    return _login(host, port, password)


def _login(host, port, password) -> RawEsl:
    c = RawEsl.connect(host, port)
    f = c.next()
    assert f.content_type == "auth/request"
    r = c.cmd(f"auth {password}")
    assert r.reply == "+OK accepted", r
    return c


class OutboundServer:
    """Accepts the switch's outbound-socket connections; each arrives as a RawEsl in `.conns`."""

    def __init__(self):
        self.conns: Queue = Queue()
        self.server = gevent.server.StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.server_port

    def _handle(self, sock, addr):
        conn = RawEsl(sock)
        self.conns.put(conn)
        while not conn.closed:
            gevent.sleep(0.05)

    def accept(self, timeout=5.0) -> RawEsl:
        return self.conns.get(timeout=timeout)

    def stop(self):
        self.server.stop(timeout=0)
