"""Contract suite targets: the emulator always; a real FreeSWITCH when FSD_TEST_FREESWITCH=host:port:password."""

from __future__ import annotations

import os

import pytest


class Target:
    def __init__(self, *, name, host, port, password, switch=None):
        self.name = name
        self.host = host
        self.port = port
        self.password = password
        self.switch = switch


def _real():
    spec = os.environ.get("FSD_TEST_FREESWITCH", "")
    if not spec:
        return None
    host, port, password = spec.split(":", 2)
    return Target(name="freeswitch", host=host, port=int(port), password=password)


@pytest.fixture(
    params=[
        pytest.param("sim", id="sim"),
        pytest.param(
            "freeswitch",
            id="freeswitch",
            marks=[
                pytest.mark.freeswitch,
                pytest.mark.skipif(not os.environ.get("FSD_TEST_FREESWITCH"), reason="FSD_TEST_FREESWITCH not set"),
            ],
        ),
    ]
)
def target(request):
    if request.param == "freeswitch":
        yield _real()
        return
    from fsd.sim import Switch

    sw = Switch(time_scale=0.01, heartbeat_interval=0, password="ClueCon").start()
    try:
        yield Target(name="sim", host="127.0.0.1", port=sw.esl_port, password="ClueCon", switch=sw)
    finally:
        sw.stop()
