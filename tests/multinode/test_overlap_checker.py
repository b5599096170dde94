"""The overlap checker of the multi-node tests, on legs the emulator really rang: a leg killed and the next
one originated to the same member back to back is no overlap (the first ended before the second started
on the switch); a second leg while the first still rings is one; a tie on the shared clock is decided by
the switch's event order, and counts as an overlap across switches."""

from __future__ import annotations

from types import SimpleNamespace

from fsd.esl.inbound import InboundClient
from fsd.sim import NoAnswer, Phone, Switch
from tests.helpers import wait_for
from tests.multinode.support import Leg, ended_before, member_legs, overlapping_offers

SCALE = 0.02
DOMAIN = "checker.example"


def _originate(client, leg_uuid: str, call: str):
    client.bgapi(f"originate {{origination_uuid={leg_uuid},fsd_queue_call={call}}}user/201@{DOMAIN} &park()")


def test_back_to_back_legs_are_not_an_overlap_a_leg_during_another_is():
    sw = Switch(hostname="simA", time_scale=SCALE, heartbeat_interval=0).start()
    client = InboundClient(host="127.0.0.1", port=sw.esl_port, password="ClueCon", name="simA")
    client.connect(timeout=5)
    try:
        phone = sw.add_phone(Phone("201", DOMAIN, password="x", behaviour=NoAnswer()))
        _originate(client, "leg-1", "call-1")
        wait_for(lambda: sw.channel("leg-1") is not None, message="leg 1 rings")
        assert client.api("uuid_kill leg-1 ORIGINATOR_CANCEL").ok
        _originate(client, "leg-2", "call-2")  # the next call, right after the kill was confirmed
        wait_for(lambda: len(phone.calls) == 2, message="leg 2 rings")
        assert overlapping_offers([sw], "201", DOMAIN) == []
        _originate(client, "leg-3", "call-3")  # while leg 2 still rings
        wait_for(lambda: len(phone.calls) == 3, message="leg 3 rings")
        pairs = overlapping_offers([sw], "201", DOMAIN)
        assert [(a.uuid, b.uuid) for a, b in pairs] == [("leg-2", "leg-3")]
        legs = member_legs([sw], "201", DOMAIN)
        assert [(leg.uuid, leg.call, leg.end_us is None) for leg in legs] == [
            ("leg-1", "call-1", False), ("leg-2", "call-2", True), ("leg-3", "call-3", True)]
    finally:
        client.stop()
        sw.stop()


def _leg(switch: str, uuid: str, start: int, end: int | None) -> Leg:
    return Leg(switch=switch, uuid=uuid, start_us=start, end_us=end, call="c-" + uuid, cause="", answered=False)


def _fake_switch(name: str, events: list[tuple[str, str]]):
    evs = [SimpleNamespace(name=n, uuid=u, seq=i) for i, (n, u) in enumerate(events, 1)]
    return SimpleNamespace(hostname=name, events=evs)


def test_a_tie_on_the_clock_is_decided_by_the_switch_event_order():
    a = _leg("simA", "a", 100, 200)
    b = _leg("simA", "b", 200, 300)
    hung_first = _fake_switch("simA", [("CHANNEL_HANGUP", "a"), ("CHANNEL_CREATE", "b")])
    created_first = _fake_switch("simA", [("CHANNEL_CREATE", "b"), ("CHANNEL_HANGUP", "a")])
    forgotten = _fake_switch("simA", [])
    assert ended_before(a, b, [hung_first])
    assert not ended_before(a, b, [created_first])
    assert not ended_before(a, b, [forgotten])  # events no longer kept: cannot tell, counted
    # the same instant on two switches cannot be ordered: counted
    assert not ended_before(a, _leg("simB", "b", 200, 300), [hung_first, _fake_switch("simB", [])])
    # strictly earlier or later needs no events
    assert ended_before(a, _leg("simB", "c", 201, 300), [])
    assert not ended_before(a, _leg("simB", "c", 199, 300), [])
    assert not ended_before(_leg("simA", "up", 100, None), _leg("simB", "c", 10**9, None), [])
