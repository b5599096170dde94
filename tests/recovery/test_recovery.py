"""fsd.calls.recovery.recover() against the emulator and a real PostgreSQL, state built by hand:
the reservations a dead process left behind and the channels FreeSWITCH still has."""

from __future__ import annotations

from fsd.calls.recovery import ADOPTED_SUFFIX, recover
from fsd.esl.inbound import InboundClient
from fsd.sim import Answer, NoAnswer
from fsd.store import calls_repo
from tests.faults.support import Company, phone_for
from tests.helpers import free_port, wait_for


def _reserve(pool, emp_id, call_uuid, node, ttl=900.0):
    with pool.transaction() as cur:
        assert calls_repo.reserve(cur, [emp_id], call_uuid=call_uuid, node=node, ttl_s=ttl) == {emp_id}


def _reservations(pool):
    with pool.transaction() as cur:
        cur.execute("SELECT employee_id, call_uuid, node FROM reservations ORDER BY employee_id")
        return [(r["employee_id"], r["call_uuid"], r["node"]) for r in cur.fetchall()]


def _member_leg(switch, client, caller_uuid, ext, domain, leg_uuid):
    r = client.api(f"originate {{origination_uuid={leg_uuid},fsd_queue_call={caller_uuid}}}user/{ext}@{domain} "
                   "&park()", timeout=10)
    return r


def test_bridged_member_kept_until_the_call_ends_orphans_killed_rest_released(pool, sim):
    switch, client = sim
    co = Company(pool)
    anna, boris, vera = (co.employee(n, e) for n, e in (("Anna", "201"), ("Boris", "202"), ("Vera", "203")))
    phone_for(switch, co, anna, Answer(after=0.1))
    pb = phone_for(switch, co, boris, NoAnswer())
    # Anna's call: a caller bridged to her leg (what fsd had set up before it died)
    caller = switch.incoming_call(did="74950000001", caller="79160000001", apps=["answer", "park"])
    wait_for(lambda: caller.answered.is_set(), message="caller answered")
    assert _member_leg(switch, client, caller.uuid, "201", co.domain, "leg-anna-0001").ok
    assert client.api(f"uuid_bridge {caller.uuid} leg-anna-0001").ok
    wait_for(lambda: switch.channel("leg-anna-0001").get_var("bridge_to") == caller.uuid, message="bridged")
    # Boris: rung for a caller that is already gone (an orphan leg)
    gone = switch.incoming_call(did="74950000001", caller="79160000002", apps=["hangup"])
    wait_for(lambda: gone.hungup.is_set(), message="caller gone")
    client.bgapi(f"originate {{origination_uuid=leg-boris-0001,fsd_queue_call={gone.uuid}}}"
                 f"user/202@{co.domain} &park()")
    wait_for(lambda: pb.calls and not switch.channel(pb.calls[0]).hungup.is_set(), message="Boris ringing")
    _reserve(pool, anna.id, caller.uuid, "n1", ttl=12 * 3600)
    _reserve(pool, boris.id, gone.uuid, "n1")
    _reserve(pool, vera.id, "old-call-from-an-earlier-crash", "n1" + ADOPTED_SUFFIX)
    _reserve(pool, co.employee("Other", "204").id, "call-of-another-node", "n2")

    rec = recover(pool=pool, switches={"sim1": client}, node="n1", wait_s=2, poll_s=0.1)
    try:
        rep = rec.report
        assert rep.legs_killed == ["leg-boris-0001"]
        assert [(a.employee_id, a.call_uuid, a.leg_uuid) for a in rep.adopted] == [
            (anna.id, caller.uuid, "leg-anna-0001")]
        assert rep.released == 2  # Boris' and Vera's
        wait_for(lambda: switch.channel("leg-boris-0001").hungup.is_set(), message="orphan leg killed")
        rows = _reservations(pool)
        assert (anna.id, caller.uuid, "n1" + ADOPTED_SUFFIX) in rows
        assert [r for r in rows if r[2].startswith("n1") and r[0] != anna.id] == []
        assert any(r[2] == "n2" for r in rows)  # another node's reservations are none of our business
        # the conversation ends: Anna's reservation goes
        switch.channel("leg-anna-0001").hangup("NORMAL_CLEARING")
        wait_for(lambda: not any(r[0] == anna.id for r in _reservations(pool)), timeout=5,
                 message="Anna released when her call ended")
        assert rec.kept == 0
    finally:
        rec.stop()


def test_unreachable_switch_keeps_unverifiable_reservations(pool):
    co = Company(pool)
    anna = co.employee("Anna", "201")
    client = InboundClient(host="127.0.0.1", port=free_port(), password="ClueCon", name="down",
                           reconnect_backoff=(0.05, 0.2))
    client.start()
    try:
        _reserve(pool, anna.id, "call-maybe-alive", "n1", ttl=12 * 3600)
        rec = recover(pool=pool, switches={"down": client}, node="n1", wait_s=0.3)
        assert rec.report.switches_down == ["down"]
        assert rec.report.released == 0
        assert [(a.employee_id, a.leg_uuid) for a in rec.report.adopted] == [(anna.id, None)]
        # kept under the recovered name (the MemberBoard's start-up clean-up of "n1" leaves it), short expiry
        with pool.transaction() as cur:
            cur.execute("SELECT node, expires_at - now() AS left FROM reservations WHERE employee_id = %s",
                        (anna.id,))
            row = cur.fetchone()
        assert row["node"] == "n1" + ADOPTED_SUFFIX and row["left"].total_seconds() <= 300
        rec.stop()
    finally:
        client.stop()


def test_nothing_to_recover(pool, sim):
    _switch, client = sim
    rec = recover(pool=pool, switches={"sim1": client}, node="n1", wait_s=2)
    assert rec.report.adopted == [] and rec.report.released == 0 and rec.report.legs_killed == []
    rec.stop()
