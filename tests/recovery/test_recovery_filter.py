"""Recovery on a filtered inbound connection (the call driver asks only for its own channels' events):
recovery adds `filter Unique-ID <uuid>` for the caller and the leg of each conversation it adopted, still
ends the conversation on the caller's CHANNEL_HANGUP, and removes its filters when done."""

from __future__ import annotations

from fsd.calls.links import SwitchLink
from fsd.calls.recovery import ADOPTED_SUFFIX, recover
from fsd.sim import Answer
from fsd.store import calls_repo
from tests.faults.support import Company, phone_for
from tests.helpers import wait_for


def _reservations(pool):
    with pool.transaction() as cur:
        cur.execute("SELECT employee_id, call_uuid, node FROM reservations ORDER BY employee_id")
        return [(r["employee_id"], r["call_uuid"], r["node"]) for r in cur.fetchall()]


def _filter_commands(switch) -> list[str]:
    return [e.text for e in switch.log if e.kind == "command" and e.text.startswith("filter ")]


def test_adopted_conversation_ends_on_the_callers_hangup_through_the_filter(pool, sim):
    switch, client = sim
    co = Company(pool)
    anna = co.employee("Anna", "201")
    phone_for(switch, co, anna, Answer(after=0.1))
    caller = switch.incoming_call(did="74950000001", caller="79160000001", apps=["answer", "park"])
    wait_for(lambda: caller.answered.is_set(), message="caller answered")
    leg = "leg-anna-filter-1"
    r = client.api(f"originate {{origination_uuid={leg},fsd_queue_call={caller.uuid}}}user/201@{co.domain} &park()",
                   timeout=10)
    assert r.ok, r
    assert client.api(f"uuid_bridge {caller.uuid} {leg}").ok
    wait_for(lambda: switch.channel(leg).get_var("bridge_to") == caller.uuid, message="bridged")
    with pool.transaction() as cur:
        assert calls_repo.reserve(cur, [anna.id], call_uuid=caller.uuid, node="n1", ttl_s=3600) == {anna.id}
    # another caller, not ours: its hangup must not reach the filtered connection
    other = switch.incoming_call(did="74950000001", caller="79160000002", apps=["answer", "park"])
    wait_for(lambda: other.answered.is_set(), message="other caller answered")

    # as fsd starts: recovery first, then the call driver's link with its filters. No periodic check
    # (poll_s an hour): only the CHANNEL_HANGUP event can end the conversation.
    rec = recover(pool=pool, switches={"sim1": client}, node="n1", wait_s=2, poll_s=3600)
    link = SwitchLink(name="sim1", client=client)
    link.attach()
    got = []
    client.subscribe("*", got.append)  # one queue: events are handled in the order they arrived
    try:
        assert [(a.call_uuid, a.leg_uuid) for a in rec.report.adopted] == [(caller.uuid, leg)]
        cmds = _filter_commands(switch)
        assert f"filter Unique-ID {caller.uuid}" in cmds and f"filter Unique-ID {leg}" in cmds
        assert sorted(client.filters) == sorted([("Unique-ID", caller.uuid), ("Unique-ID", leg), *link.filters()])
        assert (anna.id, caller.uuid, "n1" + ADOPTED_SUFFIX) in _reservations(pool)

        other.hangup("NORMAL_CLEARING")
        caller.hangup("NORMAL_CLEARING")  # the caller hangs up
        wait_for(lambda: not _reservations(pool), timeout=10, message="released when the caller hung up")
        assert rec.kept == 0
        wait_for(lambda: caller.uuid in [e.uuid for e in got], message="the caller's hangup was received")
        assert other.uuid not in [e.uuid for e in got]
        # recovery's filters are gone again; the driver's stay
        wait_for(lambda: sorted(client.filters) == sorted(link.filters()), message="recovery filters removed")
        cmds = _filter_commands(switch)
        assert f"filter delete Unique-ID {caller.uuid}" in cmds and f"filter delete Unique-ID {leg}" in cmds
        # and the connection itself: a later channel with neither the marker nor a watched uuid stays away
        late = switch.incoming_call(did="74950000001", caller="79160000003", apps=["answer", "hangup"])
        wait_for(lambda: late.hungup.is_set(), message="late caller gone")
        job = client.bgapi("status").get(timeout=5)
        # the job's event came after the late hangup: once handled, whatever was sent before it was too
        wait_for(lambda: job.event in got, message="job event handled")
        assert late.uuid not in [e.uuid for e in got]
    finally:
        rec.stop()
