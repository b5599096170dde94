"""Forwarding (instant, delayed), internal calls and outbound calls through the trunk."""

from __future__ import annotations

import pytest

from fsd.sim import Answer, NoAnswer
from tests.calls.harness import Node, World, originated_at, phone, tmpdir
from tests.calls.harness import call as did_call
from tests.calls.harness import history_row as _row


@pytest.fixture
def node(pool):
    n = Node(pool=pool, storage_dir=tmpdir(), hostname="simA", node="n1", callbacks=False)
    yield n
    n.stop()


def _internal(node, world, from_ext, dest, **script):
    from fsd.sim import CallerScript

    return node.switch.incoming_call(did=dest, caller=from_ext, context="fsd-internal", script=CallerScript(**script),
                                     variables={"domain_name": world.domain, "user_name": from_ext})


def test_instant_forwarding_rings_only_the_mobile(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201", mobile="+79035550001", forward_mode="instant")
    dept = w.department("Sales", [a])
    num = w.number(dest_kind="department", dest_department_id=dept.id, is_main=True)
    desk = phone(node, w, a, Answer(after=1))
    mob = node.trunk.endpoint_for("79035550001")
    mob.behaviour = Answer(after=3)
    ch = did_call(node, num.did, hangup_after=20)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == a.id and row["route"].endswith(f"answered:{a.id}:mobile"), dict(row)
    assert len(mob.calls) == 1 and not desk.calls


def test_delayed_forwarding_adds_the_mobile_after_n_seconds(pool, slow_node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201", mobile="+79035550002", forward_mode="delayed", forward_delay=10)
    dept = w.department("Sales", [a])
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    desk = phone(slow_node, w, a, NoAnswer())
    mob = slow_node.trunk.endpoint_for("79035550002")
    mob.behaviour = Answer(after=3)
    ch = did_call(slow_node, num.did, hangup_after=30)
    row = _row(w, ch.uuid)
    assert row["route"].endswith(f"answered:{a.id}:mobile")
    d, m = slow_node.switch.channel(desk.calls[0]), slow_node.switch.channel(mob.calls[0])
    assert 8.5 <= originated_at(slow_node, m.uuid) - originated_at(slow_node, d.uuid) <= 14
    # the desk phone kept ringing until the mobile answered
    assert d.times["Channel-Hangup-Time"] >= m.times["Channel-Answered-Time"] - 500_000


def test_internal_call_to_extension_and_department(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    b = w.employee("Boris Petrov", "202")
    dept = w.department("Sales", [a, b], extension="500")
    pa = phone(node, w, a, Answer(after=1))
    pb = phone(node, w, b, Answer(after=2))
    ch = _internal(node, w, "201", "202", hangup_after=15)
    row = _row(w, ch.uuid)
    assert row["direction"] == "internal" and row["answered_by"] == b.id and row["employee_id"] == b.id
    assert row["caller"] == "201"
    # the department number: the caller (a member too) is not rung for their own call
    ch = _internal(node, w, "201", "500", hangup_after=15)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == b.id and row["department_id"] == dept.id
    assert not pa.calls and len(pb.calls) == 2


def test_outbound_call_through_trunk_with_company_number(pool, node):
    w = World(pool)
    w.employee("Anna Ivanova", "201")
    w.number(dest_kind="voicemail", did="+74951112233", is_main=True)
    ep = node.trunk.endpoint_for("84957654321")
    ep.behaviour, ep.hangup_after = Answer(after=4), 12
    ch = _internal(node, w, "201", "84957654321")
    row = _row(w, ch.uuid)
    assert row["direction"] == "outbound" and row["result"] == "answered"
    assert float(row["talk_s"]) == pytest.approx(12, abs=3)
    leg = node.switch.channel(ep.calls[0])
    assert leg.get_var("origination_caller_id_number") == "74951112233"
    assert leg.name.startswith("sofia/external/84957654321")
