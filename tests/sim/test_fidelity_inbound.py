"""Byte-level fidelity of the emulator's inbound event socket against the real FreeSWITCH captures."""

from __future__ import annotations

import pytest

from fsd.sim import Gateway, Switch
from tests.sim import fidelity

pytestmark = pytest.mark.skipif(not fidelity.available(), reason="FreeSWITCH traces not present")


@pytest.fixture
def switch():
    sw = Switch(time_scale=0.02, heartbeat_interval=20.0, domain="127.0.0.1", **fidelity.CAPTURE_IDENTITY)
    sw.add_gateway(Gateway("pstn_trunk", proxy="127.0.0.1:5090", username="trunkuser"))
    sw.start()
    yield sw
    sw.stop()


def _compare(name, got, *, skip=()):
    want = fidelity.expected_frames(name)
    assert len(got) == len(want), f"{name}: {len(got)} frames, capture has {len(want)}"
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        if i in skip:
            continue
        assert fidelity.normalise(g) == fidelity.normalise(w), f"{name} frame {i}"


def test_auth_wrong_is_byte_exact(switch):
    got, conn = fidelity.replay("esl-auth-wrong", switch.esl_port)
    raw = fidelity.read("esl-auth-wrong", "server")
    assert conn.raw == raw  # nothing volatile in these frames: exact bytes
    assert conn.closed


def test_commands_before_auth_are_byte_exact(switch):
    got, conn = fidelity.replay("esl-before-auth", switch.esl_port)
    assert conn.raw == fidelity.read("esl-before-auth", "server")


def test_inbound_commands_match_capture(switch):
    got, _ = fidelity.replay("esl-inbound-commands", switch.esl_port)
    _compare("esl-inbound-commands", got)


def test_inbound_extra_commands_match_capture(switch):
    # Frames for modules the emulator does not implement (callcenter, fifo, the registration table,
    # gateway details, expand) are skipped; everything else must match.
    cmds = [c for c, _ in fidelity.client_commands("esl-inbound-extra")]
    skip_cmds = (
        b"api sofia status profile",
        b"api sofia status gateway",
        b"api callcenter_config",
        b"api fifo list",
        b"api expand",
    )
    skip = {i + 1 for i, c in enumerate(cmds) if c.startswith(skip_cmds)}  # frame 0 is auth/request
    got, _ = fidelity.replay("esl-inbound-extra", switch.esl_port)
    _compare("esl-inbound-extra", got, skip=skip)
