"""Fixtures shared by the emulator tests: a switch at 10 ms per simulated second, and an authenticated
inbound ESL client on it (a module may define its own ``sw``; ``esl`` then logs in to that one)."""

from __future__ import annotations

import pytest

from fsd.sim import Switch
from tests.sim._client import login

FAST = 0.01  # 1 simulated second = 10 ms


@pytest.fixture
def sw():
    s = Switch(time_scale=FAST, heartbeat_interval=0).start()
    yield s
    s.stop()


@pytest.fixture
def esl(sw):
    c = login("127.0.0.1", sw.esl_port)
    yield c
    c.close()
