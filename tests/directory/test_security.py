"""The endpoint's guards: source address, credentials, method, Content-Length, size, malformed forms, slow clients."""

from __future__ import annotations

import socket

import pytest

from fsd.services import Actor
from tests.directory.conftest import DOMAIN, PASSWORD, USER, Stack, counter, form, post

GOOD = form(action="sip_auth", key="id", user="ivan", domain=DOMAIN)


@pytest.fixture
def ivan(services, tenant):
    return services.employees.create(Actor.system(), tenant.id, name="Ivan", login="ivan", extension="201",
                                     password="Secret-pass-11").employee


def _raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks)


def test_credentials_required(server_kind, stack, ivan):
    assert post(stack.port, GOOD)[0] == 200
    status, headers, _ = post(stack.port, GOOD, creds=None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    assert post(stack.port, GOOD, creds=(USER, "wrong"))[0] == 401
    assert post(stack.port, GOOD, creds=("other", PASSWORD))[0] == 401
    assert post(stack.port, GOOD, creds=None, headers={"Authorization": "Basic \u00e9\u00e9"})[0] == 401
    assert post(stack.port, GOOD, creds=None, headers={"Authorization": "Bearer x"})[0] == 401
    assert counter(stack.metrics, "other", "denied") == 5
    assert counter(stack.metrics, "sip_auth", "found") == 1


def test_no_password_configured_refuses_everyone(pool, db_dsn, ivan, server_kind):
    s = Stack(pool=pool, dsn=db_dsn, server=server_kind, listen=False, app_kwargs={"password": ""})
    try:
        assert post(s.port, GOOD)[0] == 401
        assert post(s.port, GOOD, creds=(USER, ""))[0] == 401
    finally:
        s.stop()


def test_source_address_must_be_allowed(pool, db_dsn, ivan, server_kind):
    s = Stack(pool=pool, dsn=db_dsn, server=server_kind, listen=False,
              app_kwargs={"allow_from": "10.0.0.0/8, fd00::/8"})
    try:
        status, _, body = post(s.port, GOOD)
        assert status == 403 and b"a1-hash" not in body
        assert counter(s.metrics, "other", "denied") == 1
    finally:
        s.stop()


def test_post_only(server_kind, stack, ivan):
    assert post(stack.port, None, method="GET")[0] == 405


@pytest.mark.parametrize("body", [
    b"",
    b"garbage",
    b"\xff\xfe\xfd",
    b"section=directory&user=%zz&domain=acme.example.com",
    b"section=directory&user=a%00&domain=acme.example.com",
    b"user=ivan&domain=acme.example.com",
    b"section=directory&&",
])
def test_malformed_forms_are_400(server_kind, stack, ivan, body):
    status, _, text = post(stack.port, body)
    assert status == 400, text
    assert counter(stack.metrics, "other", "bad_request") == 1


def test_content_length_required_and_limited(server_kind, stack, ivan):
    head = f"POST /freeswitch/directory HTTP/1.1\r\nHost: x\r\nAuthorization: {_auth()}\r\n"
    # no Content-Length (chunked)
    out = _raw(stack.port, (head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                            "5\r\nsecti\r\n0\r\n\r\n").encode())
    assert out.startswith(b"HTTP/1.1 400")
    # over the limit: refused before the body is read
    out = _raw(stack.port, (head + "Content-Length: 1000000000\r\n\r\n").encode())
    assert out.startswith(b"HTTP/1.1 413")
    big = b"section=directory&x=" + b"a" * 70000
    assert post(stack.port, big)[0] == 413
    assert counter(stack.metrics, "other", "bad_request") == 3


def test_slow_client_gets_an_answer_within_the_deadline(pool, db_dsn, ivan, server_kind):
    s = Stack(pool=pool, dsn=db_dsn, server=server_kind, listen=False, app_kwargs={"deadline_ms": 300})
    try:
        head = (f"POST /freeswitch/directory HTTP/1.1\r\nHost: x\r\nAuthorization: {_auth()}\r\n"
                f"Content-Length: {len(GOOD)}\r\n\r\n").encode()
        # half the body, then nothing: the server answers (408) instead of waiting forever
        out = _raw(s.port, head + GOOD[:20], timeout=5)
        assert out.startswith(b"HTTP/1.1 408")
    finally:
        s.stop()


def _auth() -> str:
    import base64

    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
