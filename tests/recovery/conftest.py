"""The emulated switch recovery is run against, with an inbound client on it."""

from __future__ import annotations

import pytest

from fsd.esl.inbound import InboundClient
from fsd.sim import Switch

SCALE = 0.05


@pytest.fixture
def sim():
    switch = Switch(hostname="sim1", time_scale=SCALE, heartbeat_interval=0).start()
    client = InboundClient(host="127.0.0.1", port=switch.esl_port, password="ClueCon", name="sim1")
    client.connect(timeout=5)
    yield switch, client
    client.stop()
    switch.stop()
