"""FastLaneServer: fsd's HTTP server with mod_xml_curl's lookups answered in the accept loop.

A drop-in for gevent's pywsgi WSGIServer: every connection that is not a mod_xml_curl POST to `path`
goes, untouched, to pywsgi and the WSGI `application`; mod_xml_curl's requests are answered by the
`xmlcurl` app's `respond` (the same checks, metrics and answers as on the WSGI path: address,
credentials, Content-Length, size limit, form, deadline).

Where the time goes with one short-lived TCP connection per lookup is mostly around the request, not
in it, so the common case takes no greenlet at all: when the listening socket is readable the accept
callback (in gevent's hub) takes each new connection and peeks at what it already received. If that
is a whole request (head and body, as mod_xml_curl sends it in one write) with ordinary headers, and
the directory can answer it without waiting for PostgreSQL (`Directory.answers_now`: a cached document
or a cached "not found"; or it is refused before any lookup), the request is read, answered with one
non-blocking send and the connection closed, right there. Anything else - data not there yet, a split
or unusual head (Expect, Transfer-Encoding, malformed), a body still on its way, a lookup that needs the
database, an answer that does not fit in the socket buffer - is handed to a greenlet of its own, which
reads and answers with a minimal HTTP/1.1 reader (with the request's deadline).

Nothing on the inline path may wait: it runs in the hub. Should it try to anyway (a cache entry that
expired in the microseconds between the check and the lookup), gevent refuses the switch before
anything is counted, read or sent, and the request is handed to a greenlet (the bytes were only peeked).

The listening socket has a larger backlog (1024) and TCP_DEFER_ACCEPT, so that a connection is accepted
when its request has arrived: without it, under load about a quarter of the connections were accepted
before their data and took the greenlet path.
"""

from __future__ import annotations

import _socket  # the C socket type: gevent's monkey-patching replaces socket.socket, never this one
import contextlib
import logging
import re
import socket
from socket import MSG_DONTWAIT, MSG_PEEK, SOCK_STREAM

import gevent
from gevent.exceptions import BlockingSwitchOutError
from gevent.pywsgi import WSGIServer
from gevent.socket import socket as GeventSocket

from fsd.directory.request import BadRequest, parse

log = logging.getLogger(__name__)

_RECV = 65536
_PEEK = int(MSG_PEEK | MSG_DONTWAIT)
# the header lines after the request line: "\r\n" name ":" value, the name an RFC 9110 token
_PLAIN_HEADERS = re.compile(rb"(?:\r\n[-!#$%&'*+.^_`|~0-9A-Za-z]+:[^\r\n]*)*")
_SPECIAL = re.compile(rb"\r\n(?:transfer-encoding|expect):", re.IGNORECASE)
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:([^\r\n]*)", re.IGNORECASE)
_AUTHORIZATION = re.compile(rb"\r\nauthorization:([^\r\n]*)", re.IGNORECASE)


class FastLaneServer(WSGIServer):
    """gevent's pywsgi WSGIServer answering mod_xml_curl's directory POSTs in its accept loop.

    `xmlcurl`: the fsd.web.xmlcurl.XmlCurlApp (anything with `respond(...)`, `reject(status, text)`,
    `deadline_s`, `max_body_bytes` and `directory`, a fsd.directory.Directory). `inline=False` turns the
    accept-loop answers off (every lookup then gets a greenlet).
    Counters: `fast_requests` (every request answered on the fast lane), `inline_requests` (those of
    them answered without a greenlet)."""

    backlog = 1024  # a burst of REGISTERs must not overflow the accept queue
    max_head_bytes = 8192
    # TCP_DEFER_ACCEPT (Linux): a connection is accepted once its first data arrived (every HTTP client
    # speaks first), so the request is usually whole when it is accepted; one without data is accepted
    # after about this many seconds anyway. 0: off.
    defer_accept_s = 1

    def __init__(self, listener, application=None, *, xmlcurl, path: str = "/freeswitch/directory",
                 inline: bool = True, **kwargs):
        super().__init__(listener, application, **kwargs)
        self.xmlcurl = xmlcurl
        self.directory = xmlcurl.directory
        # a directory that cannot say whether it would wait (not a fsd.directory.Directory) is never asked inline
        self.inline = inline and callable(getattr(self.directory, "answers_now", None))
        self._marker = b"POST " + path.encode("ascii") + b" HTTP/1."
        self.fast_requests = 0
        self.inline_requests = 0

    def init_socket(self):
        super().init_socket()
        if self.defer_accept_s and hasattr(socket, "TCP_DEFER_ACCEPT"):
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, int(self.defer_accept_s))

    # ------------------------------------------------------------------ accept loop (in the hub)
    def do_read(self):
        try:
            fd, address = self.socket._accept()
        except BlockingIOError:
            return None
        return fd, address

    def do_handle(self, fd, address):
        raw = _socket.socket(self.family, SOCK_STREAM, 0, fd)
        try:
            data = raw.recv(_RECV, _PEEK)
        except BlockingIOError:
            data = b""
        except OSError:
            raw.close()
            return
        if self.inline and data.startswith(self._marker):
            try:
                if self._inline(raw, data, address):
                    return
            except Exception:  # a bug here must not stop the accept loop: logged, that connection closed
                log.exception("xmlcurl_fast_lane_failed")
                raw.close()
                return
        sock = GeventSocket(self.family, SOCK_STREAM, 0, raw.detach())
        super().do_handle(sock, address)

    def _inline(self, raw, data: bytes, address) -> bool:
        """Answer a request whose bytes are all in `data` (peeked, not yet read). False: not here."""
        end = data.find(b"\r\n\r\n")
        if end < 0 or end > self.max_head_bytes:
            return False
        head = data[:end]
        # only plain header lines (a token, ':', a value) and none the greenlet path treats specially
        if not _PLAIN_HEADERS.fullmatch(head, max(0, head.find(b"\r\n"))) or _SPECIAL.search(head):
            return False
        # the last of each, its value stripped as the greenlet path strips it (as latin-1 text)
        lengths = _CONTENT_LENGTH.findall(head)
        length = lengths[-1].decode("latin-1").strip() if lengths else ""
        auths = _AUTHORIZATION.findall(head)
        auth = auths[-1].decode("latin-1").strip() if auths else ""
        app = self.xmlcurl
        body = data[end + 4:]
        if length.isascii() and length.isdigit():
            n = int(length)
            if n <= app.max_body_bytes:
                if len(body) < n:
                    return False  # the rest is still on its way
                if len(body) > n:
                    body = body[:n]
                try:
                    req = parse(body)
                except BadRequest:
                    pass  # answered 400 by respond, without a lookup
                else:
                    if not self.directory.answers_now(req):
                        return False
        try:
            status, headers, doc = app.respond(
                remote_addr=address[0] if address else "", method="POST", authorization=auth, content_length=length,
                read_body=lambda k: body if len(body) == k else body[:k])
        except BlockingSwitchOutError:
            # it had to wait after all (nothing was counted or sent): a greenlet does it again
            log.debug("xmlcurl_inline_handoff")
            return False
        try:  # read what was peeked (and anything after it), so that closing sends FIN, not RST
            raw.recv(_RECV, MSG_DONTWAIT)
        except OSError:
            pass
        out = _answer(status, headers, doc)
        self.fast_requests += 1
        self.inline_requests += 1
        try:
            sent = raw.send(out, MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError:
            raw.close()
            return True
        if sent < len(out):
            sock = GeventSocket(self.family, SOCK_STREAM, 0, raw.detach())
            self._spawn(self._send_rest, sock, out[sent:])
        else:
            raw.close()
        return True

    def _send_rest(self, sock, rest: bytes) -> None:
        try:
            with gevent.Timeout(self.xmlcurl.deadline_s + 0.5, False):
                sock.sendall(rest)
        except OSError:
            pass
        finally:
            sock.close()

    # ------------------------------------------------------------------ a greenlet per connection
    def handle(self, sock, address):
        if self._is_xmlcurl(sock):
            self.fast_requests += 1
            self._fast(sock, address)
        else:
            super().handle(sock, address)

    def _is_xmlcurl(self, sock) -> bool:
        marker = self._marker
        try:
            with gevent.Timeout(self.xmlcurl.deadline_s, False):
                while True:
                    head = sock.recv(len(marker), MSG_PEEK)
                    if not head or not marker.startswith(head[: len(marker)]):
                        return False
                    if len(head) >= len(marker):
                        return True
                    gevent.sleep(0.001)  # a split request line: wait for the rest
        except OSError:
            return False
        return False

    def _fast(self, sock, address) -> None:
        app = self.xmlcurl
        try:
            # a little longer than the request's own deadline, which answers a slow body with 408
            with gevent.Timeout(app.deadline_s + 0.5, False):
                status, headers, body = self._fast_request(sock, address)
                sock.sendall(_answer(status, headers, body))
        except OSError:
            pass
        finally:
            sock.close()

    def _fast_request(self, sock, address) -> tuple[str, list, bytes]:
        """Read one request from `sock` and answer it with the app: (status, headers, body)."""
        buf = b""
        while True:
            chunk = sock.recv(_RECV)
            if not chunk:
                return self.xmlcurl.reject("400 Bad Request", "incomplete request")
            buf += chunk
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > self.max_head_bytes:
                return self.xmlcurl.reject("431 Request Header Fields Too Large", "request head too large")
        head = buf[:end].decode("latin-1")
        rest = buf[end + 4:]
        auth = length = ""
        for line in head.split("\r\n")[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                return self.xmlcurl.reject("400 Bad Request", "malformed header")
            name = name.strip().lower()
            if name == "content-length":
                length = value.strip()
            elif name == "authorization":
                auth = value.strip()
            elif name == "transfer-encoding":
                return self.xmlcurl.reject("400 Bad Request", "Content-Length required")
            elif name == "expect" and value.strip().lower() == "100-continue":
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        def read_body(n: int) -> bytes:
            data = rest
            while len(data) < n:
                chunk = sock.recv(min(_RECV, n - len(data)))
                if not chunk:
                    break
                data += chunk
            return data[:n] if len(data) > n else data

        return self.xmlcurl.respond(remote_addr=address[0] if address else "", method="POST", authorization=auth,
                                    content_length=length, read_body=read_body)


def _answer(status: str, headers, body: bytes) -> bytes:
    head = "".join([f"{k}: {v}\r\n" for k, v in headers])
    return f"HTTP/1.1 {status}\r\n{head}\r\n".encode("latin-1") + body
