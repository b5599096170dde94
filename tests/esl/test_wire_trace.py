"""--trace-esl: every chunk read and every frame written reaches the trace hook, secrets redacted in logs."""

import logging
import socket

import gevent

from fsd.esl.connection import set_wire_trace
from fsd.esl.inbound import InboundClient
from fsd.logs import esl_wire_logger


def _fake_switch(password: str):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        conn.sendall(b"Content-Type: auth/request\n\n")
        buf = b""
        while b"\n\n" not in buf:
            buf += conn.recv(4096)
        ok = buf.startswith(f"auth {password}".encode())
        reply = b"+OK accepted" if ok else b"-ERR invalid"
        conn.sendall(b"Content-Type: command/reply\nReply-Text: " + reply + b"\n\n")
        buf = buf.split(b"\n\n", 1)[1]
        while True:  # every further command: +OK
            while b"\n\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    conn.close()
                    return
                buf += chunk
            _, buf = buf.split(b"\n\n", 1)
            conn.sendall(b"Content-Type: command/reply\nReply-Text: +OK\n\n")

    return srv, gevent.spawn(serve)


def test_trace_hook_sees_both_directions_and_logs_redact_the_password(caplog):
    seen = []

    def trace(conn, direction, data):
        seen.append((conn, direction, data))
        esl_wire_logger(direction, data, conn=conn)

    srv, g = _fake_switch("S3cret-pass")
    logging.getLogger("fsd.esl.wire").setLevel(logging.DEBUG)
    set_wire_trace(trace)
    try:
        with caplog.at_level(logging.DEBUG, logger="fsd.esl.wire"):
            c = InboundClient(host="127.0.0.1", port=srv.getsockname()[1], password="S3cret-pass", name="fsX",
                              reconnect=False)
            c.connect(timeout=5)
            c.stop()
    finally:
        set_wire_trace(None)
        logging.getLogger("fsd.esl.wire").setLevel(logging.NOTSET)
        g.kill()
        srv.close()
    assert any(d == "in" and b"auth/request" in data for _, d, data in seen)
    assert any(d == "out" and data.startswith(b"auth ") for _, d, data in seen)
    assert all(conn == "fsX" for conn, _, _ in seen)
    text = caplog.text
    assert "esl_wire" in text and "S3cret-pass" not in text
