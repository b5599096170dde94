"""The call driver's inbound connection is filtered: FreeSWITCH sends it the events of the channels fsd
originated (marked with SwitchLink.marker), the sofia registration events and BACKGROUND_JOB - not the
callers' CHANNEL_ANSWER / CHANNEL_HANGUP. Real sockets, the emulator, PostgreSQL."""

from __future__ import annotations

from fsd.calls.links import MARKER_VAR
from fsd.sim import Answer, NoAnswer
from tests.calls.harness import World, call, phone
from tests.calls.harness import history_row as _row
from tests.helpers import wait_for


def test_filters_are_set_before_the_first_call(pool, node):
    link = node.driver.links["simA"]
    cmds = [e.text for e in node.switch.log if e.kind == "command" and e.text.startswith("filter ")]
    assert f"filter variable_{MARKER_VAR} {link.tag}" in cmds
    for sub in ("sofia::register", "sofia::unregister", "sofia::expire"):
        assert f"filter Event-Subclass {sub}" in cmds
    assert "filter Event-Name BACKGROUND_JOB" in cmds
    assert sorted(node.client.filters) == sorted(link.filters())


def test_department_call_sends_member_leg_events_not_the_callers(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    b = w.employee("Boris Petrov", "202")
    dept = w.department("Sales", [a, b], strategy="simultaneous", ring_timeout=60)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    pa = phone(node, w, a, NoAnswer())
    pb = phone(node, w, b, Answer(after=3))
    got = []
    node.client.subscribe("*", got.append)  # what the inbound connection receives, from now on
    received = node.client.stats.events_received  # a Counter by event name
    before = sum(received.values())
    ch = call(node, num.did, hangup_after=30)
    row = _row(w, ch.uuid)
    assert row["result"] == "answered" and row["answered_by"] == b.id  # the call still works
    leg_a, leg_b = pa.calls[0], pb.calls[0]
    wait_for(lambda: node.switch.channel(leg_a).hungup.is_set() and node.switch.channel(leg_b).hungup.is_set(),
             message="legs gone")
    # the member legs carry the marker; the caller does not
    link = node.driver.links["simA"]
    assert node.switch.channel(leg_b).get_var(MARKER_VAR) == link.tag
    assert node.switch.channel(ch.uuid).get_var(MARKER_VAR) is None
    wait_for(lambda: [e.name for e in got if e.uuid == leg_b] == ["CHANNEL_ANSWER", "CHANNEL_HANGUP"],
             message="member leg events")
    wait_for(lambda: "CHANNEL_HANGUP" in [e.name for e in got if e.uuid == leg_a], message="loser's hangup")
    # the switch did fire the caller's answer and hangup: the filter kept them off the connection
    fired = [e.name for e in node.switch.events if e.uuid == ch.uuid]
    assert "CHANNEL_ANSWER" in fired and "CHANNEL_HANGUP" in fired
    assert [e.name for e in got if e.uuid == ch.uuid] == []
    names = {e.name for e in got}
    assert names <= {"CHANNEL_ANSWER", "CHANNEL_HANGUP", "BACKGROUND_JOB", "CUSTOM"}, names
    assert all(e.get(f"variable_{MARKER_VAR}") == link.tag for e in got if e.name.startswith("CHANNEL_"))
    # the originate results still come (BACKGROUND_JOB), and the client counted only what was sent
    assert sum(e.name == "BACKGROUND_JOB" for e in got) >= 2
    wait_for(lambda: sum(received.values()) - before == len(got), message="every event received was handled")
    assert received["CHANNEL_ANSWER"] >= 1


def test_registration_events_still_arrive(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a], strategy="simultaneous", ring_timeout=60)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    p = phone(node, w, a, Answer(after=1))
    ch = call(node, num.did, hangup_after=5)
    _row(w, ch.uuid)  # the tenant's snapshot is loaded: registration events find the employee
    board = node.driver.board
    node.switch.unregister(p)
    wait_for(lambda: board.registered.get(a.id) is False, message="sofia::unregister reached the driver")
    node.switch.register(p)
    wait_for(lambda: board.registered.get(a.id) is True, message="sofia::register reached the driver")
