"""FastLaneServer (inline answers off and on): mod_xml_curl's requests take the fast lane, everything else
reaches pywsgi untouched."""

from __future__ import annotations

import base64
import socket

import gevent
import pytest

from fsd.services import Actor
from tests.directory import captures
from tests.directory.conftest import DOMAIN, PASSWORD, PATH, USER, Stack, counter, form, post

AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@pytest.fixture(params=["front", "lane"])
def front(request, pool, db_dsn, services, tenant):
    """FastLaneServer with a greenlet per lookup, and answering cached lookups in its accept loop."""
    services.employees.create(Actor.system(), tenant.id, name="Ivan", login="ivan", extension="201",
                              password="Secret-pass-11")
    s = Stack(pool=pool, dsn=db_dsn, server=request.param, listen=False)

    def hello(environ, start_response):
        body = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {environ.get('CONTENT_LENGTH', '')}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    s.http.server.application.mount("/hello", hello)
    yield s
    s.stop()


def _exchange(port: int, *parts: bytes, pause: float = 0.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for i, p in enumerate(parts):
            if i and pause:
                gevent.sleep(pause)
            sock.sendall(p)
        out = b""
        while True:
            b = sock.recv(65536)
            if not b:
                return out
            out += b


def _request(body: bytes, *, path: str = PATH, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: freeswitch-xml/1.0\r\nAccept: */*\r\n"
            f"Authorization: {AUTH}\r\n{extra}Content-Length: {len(body)}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n").encode() + body


def test_captured_requests_take_the_fast_lane(front):
    for name, _, body in captures.requests():
        out = _exchange(front.port, _request(body))
        assert out.startswith(b"HTTP/1.1 200 OK\r\n"), name
        head, _, doc = out.partition(b"\r\n\r\n")
        assert b"Content-Type: text/xml" in head and b"Connection: close" in head
        assert int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]) == len(doc)
        captures.xml(doc)
    assert front.http.server.fast_requests == len(captures.requests())


def test_fast_lane_answers_users(front):
    out = _exchange(front.port, _request(form(action="sip_auth", key="id", user="ivan", domain=DOMAIN)))
    doc = out.partition(b"\r\n\r\n")[2]
    assert captures.xml(doc).find(".//user").get("id") == "ivan"
    assert counter(front.metrics, "sip_auth", "found") == 1


def test_split_request_line_and_body(front):
    req = _request(form(action="user_call", key="id", user="201", domain=DOMAIN))
    out = _exchange(front.port, req[:7], req[7:60], req[60:-10], req[-10:], pause=0.02)
    assert out.startswith(b"HTTP/1.1 200 OK") and b'number-alias="201"' in out
    assert front.http.server.fast_requests == 1


def test_expect_100_continue(front):
    out = _exchange(front.port, _request(form(action="sip_auth", key="id", user="ivan", domain=DOMAIN),
                                         extra="Expect: 100-continue\r\n"))
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")


def test_everything_else_goes_to_pywsgi(front):
    out = _exchange(front.port, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"GET /hello ")
    out = _exchange(front.port, b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
    assert out.endswith(b"POST /hello 3")
    # the directory path with another method or a query string: pywsgi and the same app's checks
    assert post(front.port, None, method="GET")[0] == 405
    status, _, body = post(front.port, form(action="sip_auth", key="id", user="ivan", domain=DOMAIN),
                           path=PATH + "?x=1")
    assert status == 200 and b'id="ivan"' in body
    assert front.http.server.fast_requests == 0


def test_fast_lane_guards(front):
    assert _exchange(front.port, b"POST /freeswitch/directory HTTP/1.1\r\nbroken header\r\n\r\n").startswith(
        b"HTTP/1.1 400")
    big_head = b"POST /freeswitch/directory HTTP/1.1\r\nX: " + b"a" * 8300  # read whole: no RST
    assert _exchange(front.port, big_head).startswith(b"HTTP/1.1 431")
    assert _exchange(front.port, _request(b"garbage")).startswith(b"HTTP/1.1 400")
    no_auth = _request(b"section=directory").replace(AUTH.encode(), b"Basic eDp5")
    assert _exchange(front.port, no_auth).startswith(b"HTTP/1.1 401")
    assert counter(front.metrics, "other", "bad_request") == 3
    assert counter(front.metrics, "other", "denied") == 1


def test_phones_register_through_the_fast_lane(front):
    from fsd.sim.endpoints import Phone

    sw = front.new_switch()
    assert sw.register(Phone("ivan", DOMAIN, "Secret-pass-11", register=False)) is True
    assert sw.register(Phone("ivan", DOMAIN, "Wrong-pass-11", register=False)) is False
    assert sw.register(Phone("nobody", DOMAIN, "Secret-pass-11", register=False)) is False
    assert front.http.server.fast_requests == 2  # the wrong password was checked against the cached document
