"""A tiny fake FreeSWITCH mod_event_socket for client tests (real loopback sockets, gevent).

Replies use the exact wire shapes of the captures. Tests drive it: ``api_handler`` decides api bodies
(return None to never answer), ``emit()`` sends events, ``drop()`` closes connections, ``stall()`` stops
reading so the client's writes back up.
"""

from __future__ import annotations

import socket

import gevent
import gevent.event
import gevent.queue
from gevent.server import StreamServer

from tests.esl import traces

GOODBYE = b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\nDisconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def reply(text: str, extra: str = "") -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n{extra}\n".encode()


def api_response(body: bytes | str) -> bytes:
    if isinstance(body, str):
        body = body.encode()
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body


def plain_event(headers: list[tuple[str, str]], body: bytes | None = None) -> bytes:
    from urllib.parse import quote

    lines = "".join(f"{k}: {quote(v, safe=',.-_/~()*')}\n" for k, v in headers)
    inner = lines.encode()
    if body is not None:
        inner += b"Content-Length: %d\n\n" % len(body) + body
    else:
        inner += b"\n"
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(inner) + inner


def background_job(job_uuid: str, body: str, command: str = "status") -> bytes:
    return plain_event(
        [("Event-Name", "BACKGROUND_JOB"), ("Core-UUID", "c0"), ("Job-UUID", job_uuid), ("Job-Command", command)],
        body.encode(),
    )


class FakeConn:
    def __init__(self, server: FakeESLServer, sock: socket.socket):
        self.server = server
        self.sock = sock
        self.commands: list[str] = []
        self.bodies: list[bytes] = []
        self.closed = gevent.event.Event()
        self.authed = False

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed.set()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.closed.set()

    def serve(self) -> None:
        self.send(b"Content-Type: auth/request\n\n")
        buf = b""
        try:
            while not self.closed.is_set():
                if self.server.stalled.is_set():
                    self.server.unstall.wait()
                    continue
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n\n" in buf:
                    head, _, rest = buf.partition(b"\n\n")
                    lines = head.decode("utf-8", "surrogateescape").split("\n")
                    clen = 0
                    for line in lines[1:]:
                        if line.lower().startswith("content-length:"):
                            clen = int(line.split(":", 1)[1])
                    if len(rest) < clen:
                        break
                    body, buf = rest[:clen], rest[clen:]
                    self.commands.append(head.decode("utf-8", "surrogateescape"))
                    self.bodies.append(body)
                    self.server.command_seen.set()
                    self.handle(lines[0], lines[1:])
        except OSError:
            pass
        finally:
            self.closed.set()

    def handle(self, cmd: str, headers: list[str]) -> None:
        srv = self.server
        if cmd.startswith("auth "):
            if cmd[5:] == srv.password:
                self.authed = True
                self.send(reply("+OK accepted"))
            else:
                # the exact bytes FreeSWITCH sent (reply + goodbye), then close
                self.send(traces.read(f"{traces.ESL}/esl-auth-wrong.server.raw")[28:])
                self.close()
            return
        if not self.authed:
            self.send(reply("-ERR command not found"))
            return
        if cmd == "exit":
            self.send(reply("+OK bye") + GOODBYE)
            self.close()
            return
        if cmd.startswith("api "):
            body = srv.api_handler(cmd[4:], self)
            if body is not None:
                self.send(api_response(body))
            return
        if cmd.startswith("bgapi "):
            job = next((h.split(": ", 1)[1] for h in headers if h.startswith("Job-UUID: ")), "generated-uuid")
            srv.jobs.put((job, cmd[6:], self))
            data = reply(f"+OK Job-UUID: {job}", f"Job-UUID: {job}\n")
            if srv.hold_bgapi_replies:  # a loaded switch: the reply comes when the test releases it
                srv.held_replies.append((self, data))
            else:
                self.send(data)
            return
        if cmd.startswith("event "):
            fmt = cmd.split()[1]
            self.send(reply(f"+OK event listener enabled {fmt}"))
            return
        if cmd.startswith("filter "):
            parts = cmd.split(" ", 2)
            self.send(reply(f"+OK filter added. [{parts[1]}]=[{parts[2] if len(parts) > 2 else ''}]"))
            return
        self.send(reply("-ERR command not found"))


class FakeESLServer:
    def __init__(self, *, password: str = "ClueCon"):  # noqa: S107 - the FreeSWITCH default, test only
        self.password = password
        self.conns: list[FakeConn] = []
        self.jobs: gevent.queue.Queue = gevent.queue.Queue()
        self.hold_bgapi_replies = False
        self.held_replies: list = []
        self.connected = gevent.event.Event()
        self.command_seen = gevent.event.Event()
        self.stalled = gevent.event.Event()
        self.unstall = gevent.event.Event()
        self.api_handler = lambda cmd, conn: "+OK\n" if cmd != "status" else "UP 0 years\n"
        self.accepting = True
        self._server = StreamServer(("127.0.0.1", 0), self._handle)

    @property
    def port(self) -> int:
        return self._server.server_port

    def start(self) -> FakeESLServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(timeout=1)
        for c in self.conns:
            c.close()

    def _handle(self, sock, addr) -> None:
        if not self.accepting:
            sock.close()
            return
        conn = FakeConn(self, sock)
        self.conns.append(conn)
        self.connected.set()
        conn.serve()

    @property
    def last(self) -> FakeConn:
        return self.conns[-1]

    def emit(self, data: bytes, conn: FakeConn | None = None) -> None:
        (conn or self.last).send(data)

    def drop(self) -> None:
        for c in list(self.conns):
            if not c.closed.is_set():
                c.close()

    def stall(self) -> None:
        self.unstall.clear()
        self.stalled.set()


class ReplayFreeSWITCH:
    """Plays FreeSWITCH's side of a recorded outbound-socket call against our server.

    The recording is cut into segments at each command/reply: after the application's k-th command, the
    k-th segment (that reply and the events that followed it) is sent. The recorded ``event-uuid`` of a
    sendmsg is replaced, byte for byte (same length), by the one our application sent, so execute
    correlation is checked on real event bytes. The final goodbye notice is sent when our side closes.
    """

    def __init__(self, port: int, name: str = "call-outbound.outbound"):
        from fsd.esl.frames import FrameParser

        self.raw = traces.read(f"{traces.ESL}/{name}.server.raw")
        self.client_raw = traces.read(f"{traces.ESL}/{name}.client.raw")
        frames = FrameParser().feed(self.raw)
        cuts = [f.offset for f in frames if f.content_type == "command/reply"]
        goodbye = [f.offset for f in frames if f.disposition == "disconnect"]
        self.goodbye = self.raw[goodbye[0] :] if goodbye else b""
        end = goodbye[0] if goodbye else len(self.raw)
        self.segments = [self.raw[a:b] for a, b in zip(cuts, [*cuts[1:], end], strict=True)]
        self.recorded_uuids = [
            line.split(b": ", 1)[1].decode()
            for line in self.client_raw.split(b"\n")
            if line.startswith(b"event-uuid: ")
        ]
        self.commands: list[bytes] = []
        self.eof = gevent.event.Event()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(None)
        self.greenlet = gevent.spawn(self._run)

    def _read_command(self, buf: bytes) -> tuple[bytes | None, bytes]:
        while b"\n\n" not in buf:
            data = self.sock.recv(65536)
            if not data:
                return None, buf
            buf += data
        head, _, rest = buf.partition(b"\n\n")
        clen = 0
        for line in head.split(b"\n"):
            if line.lower().startswith(b"content-length:"):
                clen = int(line.split(b":", 1)[1])
        while len(rest) < clen:
            data = self.sock.recv(65536)
            if not data:
                return None, buf
            rest += data
        return head + b"\n\n" + rest[:clen], rest[clen:]

    def _run(self) -> None:
        buf = b""
        sendmsg_no = 0
        try:
            for segment in self.segments:
                cmd, buf = self._read_command(buf)
                if cmd is None:
                    break
                self.commands.append(cmd)
                if cmd.startswith(b"sendmsg") and b"event-uuid: " in cmd:
                    ours = cmd.split(b"event-uuid: ", 1)[1].split(b"\n", 1)[0]
                    recorded = self.recorded_uuids[sendmsg_no].encode()
                    assert len(ours) == len(recorded)
                    segment = segment.replace(recorded, ours)
                    sendmsg_no += 1
                self.sock.sendall(segment)
            # wait for our side to close, then say goodbye like FreeSWITCH does
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.commands.append(data)
            try:
                self.sock.sendall(self.goodbye)
            except OSError:
                pass
        except OSError:
            pass
        finally:
            self.eof.set()
            self.sock.close()
