"""A call to one employee rings calls.employee_ring_timeout_s (simulated seconds) before voicemail."""

from __future__ import annotations

import pytest

from fsd.config import CallsConfig
from fsd.sim import NoAnswer
from tests.calls.harness import Node, World, call, originated_at, phone, tmpdir
from tests.calls.harness import history_row as _row


@pytest.fixture
def short_node(pool):
    d = tmpdir()
    n = Node(pool=pool, storage_dir=d, hostname="simA", node="n1",
             calls_cfg=CallsConfig(storage_dir=d, callback_interval_s=10, employee_ring_timeout_s=4))
    yield n
    n.stop()


def _leg_stopped_at(node, leg_uuid: str) -> float:
    """Simulated time of fsd's command that ended the employee's ringing leg."""
    for e in node.switch.log:
        if e.kind in ("api", "bgapi") and e.text.startswith("uuid_kill") and leg_uuid in e.text:
            return e.t
    raise AssertionError(f"leg {leg_uuid} never stopped by fsd")


def test_employee_call_goes_to_voicemail_after_the_configured_ring_time(pool, short_node):
    node = short_node
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    num = w.number(dest_kind="employee", dest_employee_id=a.id)
    pa = phone(node, w, a, NoAnswer())
    ch = call(node, num.did, record_seconds=1)
    row = _row(w, ch.uuid)
    assert row["result"] == "voicemail" and row["employee_id"] == a.id, row["route"]
    assert "no_answer:voicemail" in row["route"].split(">"), row["route"]
    assert len(pa.calls) == 1
    leg = pa.calls[0]
    rang = _leg_stopped_at(node, leg) - originated_at(node, leg)
    # 4 simulated seconds from the start of ringing (just before this originate), not the default 30;
    # a loaded host may add a little simulated time
    assert 3.5 <= rang < 8.0, rang


def test_employee_ring_timeout_must_be_positive():
    from fsd import config as config_mod
    from fsd.errors import ConfigError

    with pytest.raises(ConfigError, match="employee_ring_timeout_s"):
        config_mod.load(env={}, overrides={"calls.employee_ring_timeout_s": "0"})
    with pytest.raises(ConfigError, match="employee_ring_timeout_s"):
        config_mod.load(env={}, overrides={"calls.employee_ring_timeout_s": "-3"})
    cfg = config_mod.load(env={}, overrides={"calls.employee_ring_timeout_s": "12.5"})
    assert cfg.calls.employee_ring_timeout_s == 12.5
    assert config_mod.load(env={}).calls.employee_ring_timeout_s == 30.0
