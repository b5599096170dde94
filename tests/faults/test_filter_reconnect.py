"""The inbound connection's ESL filters survive a dropped socket: after the reconnect the switch is sent the
filters wanted then (the call driver's, plus those added since, minus those removed), calls work and the
callers' events stay off the connection. Also the client's filter bookkeeping against the emulator."""

from __future__ import annotations

import pytest

from fsd.esl.inbound import InboundClient
from fsd.sim import Answer, NoAnswer, Switch
from tests.calls.harness import Node, World, call, phone, tmpdir
from tests.calls.harness import history_row as _row
from tests.helpers import wait_for

BGJ = ("Event-Name", "BACKGROUND_JOB")


def _inbound(switch):
    conns = [c for c in switch.connections if not c.outbound and not c.closed.is_set()]
    assert len(conns) == 1, conns
    return conns[0]


def _server_filters(switch) -> list[tuple[str, str]]:
    return [(f.header, f.value) for f in _inbound(switch).filters]


@pytest.fixture
def node(pool):
    n = Node(pool=pool, storage_dir=tmpdir(), hostname="simF", node="nf")
    yield n
    n.stop()


def test_filters_are_reapplied_after_the_inbound_socket_drops(pool, node):
    switch, client = node.switch, node.client
    link = node.driver.links["simF"]
    assert sorted(_server_filters(switch)) == sorted([*link.filters(), BGJ])
    client.add_filter("Unique-ID", "gone-1")
    client.add_filter("Unique-ID", "kept-1")
    assert client.remove_filter("Unique-ID", "gone-1")
    assert sorted(_server_filters(switch)) == sorted([*link.filters(), ("Unique-ID", "kept-1"), BGJ])

    connects = client.stats.connects
    old = _inbound(switch)
    mark = len(switch.log)
    old.close(abrupt=True)
    wait_for(lambda: client.connected and client.stats.connects > connects, timeout=10, message="reconnected")
    assert _inbound(switch) is not old
    # the new connection: subscribed again and filtered as wanted now (gone-1 is not sent again)
    assert sorted(_server_filters(switch)) == sorted([*link.filters(), ("Unique-ID", "kept-1"), BGJ])
    cmds = [e.text for e in switch.log[mark:] if e.kind == "command"]
    assert "filter Unique-ID gone-1" not in cmds
    first_filter = next(i for i, c in enumerate(cmds) if c.startswith("filter "))
    assert any(c.startswith("event plain ") for c in cmds[:first_filter])

    # a call after the reconnect: it works, and the caller's events are not sent
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    b = w.employee("Boris Petrov", "202")
    dept = w.department("Sales", [a, b], strategy="simultaneous", ring_timeout=60)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    phone(node, w, a, NoAnswer())
    pb = phone(node, w, b, Answer(after=2))
    got = []
    client.subscribe("*", got.append)
    ch = call(node, num.did, hangup_after=20)
    row = _row(w, ch.uuid)
    assert row["result"] == "answered" and row["answered_by"] == b.id
    leg = pb.calls[0]
    wait_for(lambda: [e.name for e in got if e.uuid == leg] == ["CHANNEL_ANSWER", "CHANNEL_HANGUP"],
             message="member leg events after the reconnect")
    assert [e.name for e in got if e.uuid == ch.uuid] == []


@pytest.fixture
def bare():
    switch = Switch(hostname="simG", time_scale=0.05, heartbeat_interval=0).start()
    client = InboundClient(host="127.0.0.1", port=switch.esl_port, password="ClueCon", name="simG",
                           events=["CHANNEL_ANSWER"])
    client.connect(timeout=5)
    yield switch, client
    client.stop()
    switch.stop()


def test_filter_added_twice_goes_with_the_second_removal(bare):
    switch, client = bare
    assert _server_filters(switch) == []
    client.add_filter("Unique-ID", "u1")
    # filtering starts on a live connection: BACKGROUND_JOB first, so no bgapi result falls in between
    assert _server_filters(switch) == [BGJ, ("Unique-ID", "u1")]
    client.add_filter("Unique-ID", "u1")
    client.add_filter("Unique-ID", "u2")
    assert _server_filters(switch) == [BGJ, ("Unique-ID", "u1"), ("Unique-ID", "u2")]
    assert client.remove_filter("Unique-ID", "u1")
    assert ("Unique-ID", "u1") in _server_filters(switch)  # one add still holds it
    assert client.remove_filter("Unique-ID", "u1")
    assert _server_filters(switch) == [BGJ, ("Unique-ID", "u2")]
    assert not client.remove_filter("Unique-ID", "u1")
    # the last one goes: the list is cleared in one command, and every event flows again
    mark = len(switch.log)
    assert client.remove_filter("Unique-ID", "u2")
    assert _server_filters(switch) == []
    assert [e.text for e in switch.log[mark:] if e.kind == "command"] == ["filter delete all"]
    assert client.filters == []
    assert client.bgapi("status").get(timeout=5).ok


def test_filters_changed_while_disconnected_are_sent_on_connect(bare):
    switch, client = bare
    client.add_filter("Unique-ID", "u1")
    changed = []

    def while_down(cl, _exc):  # the link is down (before the reconnect): nothing can be sent
        assert not cl.connected
        cl.remove_filter("Unique-ID", "u1")
        cl.add_filter("Unique-ID", "u3")
        changed.append(True)

    client.on_disconnect = while_down
    connects = client.stats.connects
    switch.crash()
    wait_for(lambda: changed and client.connected and client.stats.connects > connects, timeout=10,
             message="reconnected")
    # at connect: the wanted filters, then BACKGROUND_JOB (nothing can be waiting for a job yet)
    assert _server_filters(switch) == [("Unique-ID", "u3"), BGJ]


@pytest.mark.parametrize(("header", "value"), [
    ("", "x"), ("Two words", "x"), ("add", "x"), ("DELETE", "x"), ("Unique-ID", ""), ("Unique-ID", " - "),
    ("Unique-ID", "a\nb"),
])
def test_filters_freeswitch_would_misread_are_refused(bare, header, value):
    from fsd.esl.frames import InvalidCommand

    _switch, client = bare
    with pytest.raises(InvalidCommand):
        client.add_filter(header, value)
    assert client.filters == []
