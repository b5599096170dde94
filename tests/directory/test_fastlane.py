"""FastLaneServer: cached lookups answered in the accept loop, everything else by a greenlet, same answers."""

from __future__ import annotations

import _socket  # a blocking socket gevent's monkey-patching leaves alone
import base64
import socket

import gevent
import pytest
from gevent.socket import wait_read
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from fsd.services import Actor
from fsd.web.fastlane import FastLaneServer
from fsd.web.xmlcurl import XmlCurlApp
from tests.directory import captures
from tests.directory.conftest import DOMAIN, PASSWORD, PATH, USER, Stack, counter, form
from tests.helpers import wait_for

AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
PW = "Secret-pass-11"


def _request(body: bytes, *, extra: str = "") -> bytes:
    return (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: freeswitch-xml/1.0\r\nAccept: */*\r\n"
            f"Authorization: {AUTH}\r\n{extra}Content-Length: {len(body)}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n").encode() + body


def _exchange(port: int, *parts: bytes, pause: float = 0.0, rcvbuf: int | None = None) -> bytes:
    """Connect and send the first part with a plain blocking socket (gevent's loop does not run meanwhile, so
    the whole first part is there when fsd accepts the connection, as with FreeSWITCH in another process),
    then wait for the answer cooperatively."""
    sock = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(parts[0])
        for p in parts[1:]:
            gevent.sleep(pause)
            sock.sendall(p)
        sock.setblocking(False)
        chunks = []
        while True:
            wait_read(sock.fileno(), timeout=10)
            b = sock.recv(65536)
            if not b:
                return b"".join(chunks)
            chunks.append(b)
    finally:
        sock.close()


def _doc(answer: bytes) -> bytes:
    head, _, doc = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) == len(doc)
    return doc


def _lookup(port: int, user: str) -> bytes:
    return _doc(_exchange(port, _request(form(action="sip_auth", key="id", user=user, domain=DOMAIN))))


@pytest.fixture
def lane(pool, db_dsn, services, tenant):
    ivan = services.employees.create(Actor.system(), tenant.id, name="Ivan", login="ivan", extension="201",
                                     password=PW).employee
    s = Stack(pool=pool, dsn=db_dsn, server="lane")
    s.ivan = ivan
    yield s
    s.stop()


def test_cached_users_are_answered_inline(lane):
    server = lane.http.server
    first = _lookup(lane.port, "ivan")  # read from PostgreSQL: not inline
    assert captures.xml(first).find(".//user").get("id") == "ivan"
    assert server.inline_requests == 0
    assert _lookup(lane.port, "ivan") == first
    assert _lookup(lane.port, "201") == first  # the extension shares the entry
    assert server.inline_requests == 2 and server.fast_requests == 3
    assert counter(lane.metrics, "sip_auth", "found") == 3


def test_unknown_users_are_answered_inline_while_their_not_found_is_cached(lane):
    assert _lookup(lane.port, "nobody") == lane.directory.not_found
    assert _lookup(lane.port, "nobody") == lane.directory.not_found
    assert lane.http.server.inline_requests == 1
    assert counter(lane.metrics, "sip_auth", "not_found") == 2


def test_an_evicted_user_is_read_again_not_answered_inline(lane, services, tenant):
    old = _lookup(lane.port, "ivan")
    assert lane.directory.cached(DOMAIN, "ivan")
    services.employees.reset_password(Actor.system(), tenant.id, lane.ivan.id, password="Other-pass-22")
    wait_for(lambda: not lane.directory.cached(DOMAIN, "ivan"), 10, message="NOTIFY evicted ivan")
    new = _lookup(lane.port, "ivan")
    assert new != old and lane.http.server.inline_requests == 0
    assert _lookup(lane.port, "ivan") == new and lane.http.server.inline_requests == 1


def test_a_lookup_that_must_wait_after_all_is_handed_to_a_greenlet(lane, monkeypatch):
    # answers_now says yes, yet the entry is not there (as when it expires between the check and the
    # lookup): the lookup tries to wait in the hub, gevent refuses, a greenlet answers it once.
    monkeypatch.setattr(lane.directory, "answers_now", lambda req: True)
    doc = _lookup(lane.port, "ivan")
    assert captures.xml(doc).find(".//user").get("id") == "ivan"
    assert lane.http.server.inline_requests == 0 and lane.http.server.fast_requests == 1
    assert counter(lane.metrics, "sip_auth", "found") == 1


def test_a_body_still_on_its_way_is_read_by_a_greenlet(lane):
    _lookup(lane.port, "ivan")
    req = _request(form(action="sip_auth", key="id", user="ivan", domain=DOMAIN))
    doc = _doc(_exchange(lane.port, req[:-30], req[-30:], pause=0.05))
    assert captures.xml(doc).find(".//user").get("id") == "ivan"
    assert lane.http.server.inline_requests == 0 and lane.http.server.fast_requests == 2


def test_a_client_that_waits_before_sending_is_answered(lane):
    _lookup(lane.port, "ivan")
    sock = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(10)
        sock.connect(("127.0.0.1", lane.port))
        gevent.sleep(0.2)  # fsd may not even have accepted the connection (TCP_DEFER_ACCEPT): nothing to read yet
        sock.sendall(_request(form(action="sip_auth", key="id", user="ivan", domain=DOMAIN)))
        sock.setblocking(False)
        out = b""
        while True:
            wait_read(sock.fileno(), timeout=10)
            b = sock.recv(65536)
            if not b:
                break
            out += b
    finally:
        sock.close()
    assert captures.xml(_doc(out)).find(".//user").get("id") == "ivan"
    if hasattr(socket, "TCP_DEFER_ACCEPT"):  # accepted once the request was there: answered inline
        assert lane.http.server.inline_requests == 1


def test_guards_answer_inline(lane):
    _lookup(lane.port, "ivan")
    no_auth = _request(form(action="sip_auth", key="id", user="ivan", domain=DOMAIN)).replace(
        AUTH.encode(), b"Basic eDp5")
    assert _exchange(lane.port, no_auth).startswith(b"HTTP/1.1 401")
    assert _exchange(lane.port, _request(b"garbage")).startswith(b"HTTP/1.1 400")
    assert lane.http.server.inline_requests == 2
    assert counter(lane.metrics, "other", "denied") == 1 and counter(lane.metrics, "other", "bad_request") == 1
    assert counter(lane.metrics, "sip_auth", "found") == 1


# ---------------------------------------------------------------------------------------------- without PostgreSQL
class _Directory:
    """Always answers at once, with a document of the given size."""

    not_found = b'<document type="freeswitch/xml"><section name="result"/></document>'

    def __init__(self, size: int = 100):
        self.doc = b"<document>" + b"x" * max(0, size - 21) + b"</document>"

    def answers_now(self, req) -> bool:
        return True

    def lookup(self, req, *, deadline=None):
        return self.doc, "found"


def _app(directory) -> XmlCurlApp:
    return XmlCurlApp(directory=directory, user=USER, password=PASSWORD, max_body_bytes=4096, deadline_ms=1000)


def test_an_answer_larger_than_the_socket_buffer_is_sent_whole():
    directory = _Directory(size=8 * 1024 * 1024)
    server = FastLaneServer(("127.0.0.1", 0), lambda env, sr: [], xmlcurl=_app(directory), log=None)
    server.start()
    try:
        out = _exchange(server.server_port, _request(form(action="sip_auth", key="id", user="x", domain=DOMAIN)),
                        rcvbuf=4096)
        assert _doc(out) == directory.doc
        assert server.inline_requests == 1
    finally:
        server.stop(timeout=1)


class _Raw:
    """What the inline path sees of an accepted socket: peeked bytes, one send."""

    def __init__(self, data: bytes):
        self.data = data
        self.sent = b""
        self.closed = False

    def recv(self, n, flags=0):
        return self.data[:n]

    def send(self, data, flags=0):
        self.sent += data
        return len(data)

    def close(self):
        self.closed = True


class _Sock:
    """What the greenlet path sees: the same bytes, read in one go."""

    def __init__(self, data: bytes):
        self.chunks = [data] if data else []
        self.sent = []

    def recv(self, n, flags=0):
        if not self.chunks:
            return b""
        chunk, rest = self.chunks[0][:n], self.chunks[0][n:]
        self.chunks[0:1] = [rest] if rest else []
        return chunk

    def sendall(self, data):
        self.sent.append(data)


_lines = st.lists(st.one_of(
    st.sampled_from([f"Authorization: {AUTH}", "authorization:Basic eDp5", f"AUTHORIZATION:{AUTH}\xa0",
                     f" Authorization: {AUTH}", "Content-Type: text/plain", "Host: x", "Expect: 100-continue",
                     "expect: x", " Transfer-Encoding: chunked", "Transfer-Encoding: chunked", "no colon", ":",
                     "X: a:b", "X\x85: y", "", "\n", "X: \r"]),
    st.tuples(st.sampled_from(["Content-Length", "content-length", "CONTENT-LENGTH ", " Content-Length", "X",
                               "Content-Length\xa0"]),
              st.sampled_from(["", "0", "3", "12", "40", " 40", "-1", "4097", "99999999", "1e3", "٣", "12\xa0",
                               "\x1c3", "3\x85", "\t3"])).map(lambda t: f"{t[0]}:{t[1]}"),
    st.binary(max_size=12).map(lambda b: b.decode("latin-1")),
), max_size=7)
_lines = st.one_of(_lines, _lines.map(lambda ls: [f"Authorization: {AUTH}", *ls]))
_bodies = st.one_of(st.sampled_from([form(action="sip_auth", key="id", user="ivan", domain=DOMAIN), b"garbage",
                                     b"section=directory&user=%zz"]), st.binary(max_size=60))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_lines, body=_bodies)
@example(lines=[f"Authorization: {AUTH}", "Content-Length: 7"], body=b"garbage")
@example(lines=[f"Authorization: {AUTH}", "Content-Length: 3"], body=b"a=b")
def test_inline_answers_are_the_greenlet_paths_answers(lines, body):
    """Whatever the inline path answers, the greenlet path (inline=False) answers alike."""
    head = "\r\n".join([f"POST {PATH} HTTP/1.1", *lines]).encode("latin-1", "replace")
    data = head + b"\r\n\r\n" + body
    server = FastLaneServer(("127.0.0.1", 0), lambda env, sr: [], xmlcurl=_app(_Directory()))
    raw = _Raw(data)
    if not server._inline(raw, data, ("127.0.0.1", 5555)):
        event("left to the greenlet path")
        assert raw.sent == b"" and not raw.closed
        return
    event("answered inline")
    status, headers, doc = server._fast_request(_Sock(data), ("127.0.0.1", 5555))
    expected = (f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode(
        "latin-1") + doc
    assert raw.sent == expected and raw.closed
