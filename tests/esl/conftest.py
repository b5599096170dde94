"""Fixtures shared by the ESL tests: a fake FreeSWITCH Event Socket server and fsd's inbound client on it."""

from __future__ import annotations

import pytest

from fsd.esl.inbound import InboundClient
from tests.esl.fakes import FakeESLServer


@pytest.fixture
def fake():
    srv = FakeESLServer().start()
    yield srv
    srv.stop()


def make_client(fake, **kw) -> InboundClient:
    kw.setdefault("command_timeout", 5)
    kw.setdefault("connect_timeout", 5)
    kw.setdefault("reconnect_backoff", (0.01, 0.05))
    return InboundClient(host="127.0.0.1", port=fake.port, password="ClueCon", **kw)


@pytest.fixture
def client(fake):
    """fsd's inbound client connected to the fake server, subscribed to two channel events."""
    c = make_client(fake, events=["CHANNEL_CREATE", "CHANNEL_ANSWER"])
    c.connect(timeout=5)
    yield c
    c.stop()
