"""The caller's outbound socket gets only the events a call uses: a department call's CHANNEL_HANGUP (and
CHANNEL_BRIDGE), not the completions of applications nobody waits for (answer, set, ring-back, the socket
app), its own CHANNEL_ANSWER or CHANNEL_HANGUP_COMPLETE (5-9 KB each, every channel variable). A call that
waits for an application (IVR) gets its completions. Real sockets, the emulator, PostgreSQL."""

from __future__ import annotations

from fsd.sim import Answer
from tests.calls.harness import World, call, phone
from tests.calls.harness import history_row as _row
from tests.calls.test_routing import ivr_world
from tests.helpers import wait_for

UNUSED = ("CHANNEL_EXECUTE_COMPLETE", "CHANNEL_ANSWER", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_EXECUTE",
          "CHANNEL_STATE", "CHANNEL_UNBRIDGE")


def _fired(node, uuid):
    return [e.name for e in node.switch.events if e.uuid == uuid]


def test_department_call_gets_neither_completions_nor_its_answer(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a], strategy="simultaneous", ring_timeout=60)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    phone(node, w, a, Answer(after=3))
    received = node.server.stats.events_received  # every outbound session of this node, by event name
    ch = call(node, num.did, hangup_after=30)
    row = _row(w, ch.uuid)
    assert row["result"] == "answered" and row["answered_by"] == a.id  # the call still works
    wait_for(lambda: received["CHANNEL_HANGUP"] == 1, message="the caller's hangup reached fsd")
    for name in UNUSED:
        assert received[name] == 0, (name, dict(received))
    assert received["CHANNEL_BRIDGE"] == 1
    # the switch fired them: the listener's event list kept them off the socket
    fired = _fired(node, ch.uuid)
    assert fired.count("CHANNEL_EXECUTE_COMPLETE") >= 3 and "CHANNEL_ANSWER" in fired
    assert "CHANNEL_HANGUP_COMPLETE" in fired
    # and fsd never asked for the completions back: nothing in this call waited for an application
    cmds = [e.text for e in node.switch.log if e.kind == "command"]
    assert not any(c.startswith("event ") and "CHANNEL_EXECUTE_COMPLETE" in c for c in cmds)


def test_ivr_call_gets_the_completions_it_waits_for(pool, node):
    w, a, _b, dept, menu, num, _pa, _pb = ivr_world(pool, node)
    received = node.server.stats.events_received
    ch = call(node, num.did, prompt_digits=["1"], hangup_after=30)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == a.id and f"ivr:{menu.id}>ivr_input:1>department:{dept.id}" in row["route"]
    cmds = [e.text for e in node.switch.log if e.kind == "command"]
    assert cmds.count("event CHANNEL_EXECUTE_COMPLETE") == 1  # once, before the menu's prompt
    # the prompt's completion came (and whatever ended after it), the answer's did not
    assert received["CHANNEL_EXECUTE_COMPLETE"] >= 1 and received["CHANNEL_ANSWER"] == 0
    assert received["CHANNEL_HANGUP_COMPLETE"] == 0
