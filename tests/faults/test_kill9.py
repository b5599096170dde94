"""kill -9 of `fsd serve` with calls in flight: bridged calls stay up in the emulator (as FreeSWITCH
keeps them), queued callers take the dialplan fallback; on restart fsd rebuilds its view of live
channels from FreeSWITCH and frees stuck reservations - without ever offering a member who is still
talking on a surviving call a second one."""

from __future__ import annotations

import pytest

from fsd.calls.recovery import recover
from fsd.esl.inbound import InboundClient
from fsd.sim import Answer, CallerScript, NoAnswer, Switch
from tests.faults.support import Company, FsdProcess, phone_for
from tests.helpers import wait_for

SCALE = 0.05


def _live(switch, uuid):
    ch = switch.channel(uuid)
    return ch is not None and not ch.hungup.is_set()


class Rig:
    """`fsd serve` (node k9) on an emulated switch: Anna talks on a bridged call, a second Sales caller
    waits for her, Boris (Support) is rung by a third caller and does not answer."""

    def __init__(self, db_dsn, pool):
        self.dsn = db_dsn
        self.switch = Switch(hostname="sim1", time_scale=SCALE, heartbeat_interval=0,
                             fallback=["set:fsd_fallback=taken", "hangup:NORMAL_CLEARING"]).start()
        self.procs = []
        self.fsd = self.serve()
        co = self.co = Company(pool)
        self.anna = co.employee("Anna Talks", "201")
        self.boris = co.employee("Boris Rings", "202")
        sales = co.department("Sales", [self.anna], ring_timeout=600)
        support = co.department("Support", [self.boris], ring_timeout=600)
        self.n_sales = co.number(dest_kind="department", dest_department_id=sales.id)
        self.n_support = co.number(dest_kind="department", dest_department_id=support.id)
        self.pa = phone_for(self.switch, co, self.anna, Answer(after=1), hangup_after=100000)
        self.pb = phone_for(self.switch, co, self.boris, NoAnswer())

    def serve(self) -> FsdProcess:
        p = FsdProcess(dsn=self.dsn, switches={"sim1": self.switch.esl_port}, node="k9", scale=SCALE).start()
        self.procs.append(p)
        p.wait_ready()
        self.switch.outbound_target = ("127.0.0.1", p.outbound_port)
        return p

    def call(self, num, i, **kw):
        return self.switch.incoming_call(did=num.did.lstrip("+"), caller=f"7916{i:07d}", context="fsd-public",
                                         script=CallerScript(**kw))

    def calls_in_flight(self):
        sw = self.switch
        self.talking = self.call(self.n_sales, 1)  # Anna answers: bridged
        wait_for(lambda: any((sw.channel(u).get_var("bridge_to") == self.talking.uuid) for u in self.pa.calls),
                 timeout=15, message="Anna bridged")
        self.anna_leg = self.pa.calls[0]
        self.queued = self.call(self.n_sales, 2)  # Anna is busy: this caller waits in the queue
        self.ringing = self.call(self.n_support, 3)  # Boris' phone rings, nobody answers
        wait_for(lambda: self.pb.calls and _live(sw, self.pb.calls[0]), timeout=15, message="Boris ringing")
        self.boris_leg = self.pb.calls[0]
        wait_for(lambda: len(self.co.rows("SELECT 1 FROM reservations")) == 2, timeout=10, message="reservations")

    def close(self):
        for p in self.procs:
            p.stop()
        self.switch.stop()


@pytest.fixture
def rig(db_dsn, pool):
    r = Rig(db_dsn, pool)
    yield r
    r.close()


def test_kill9_queued_callers_take_the_fallback(rig):
    rig.calls_in_flight()
    rig.procs[0].kill9()
    wait_for(lambda: rig.queued.hungup.is_set() and rig.ringing.hungup.is_set(), timeout=5,
             message="queued callers ran the fallback")
    assert rig.queued.get_var("fsd_fallback") == "taken" and rig.ringing.get_var("fsd_fallback") == "taken"


@pytest.mark.parametrize("restart", [
    "recover_then_serve",
    "serve_only",  # fsd serve runs fsd.calls.recovery.recover() at start
])
def test_kill9_bridged_calls_survive_and_restart_frees_stuck_reservations(rig, pool, restart):
    sw, co = rig.switch, rig.co
    rig.calls_in_flight()
    rig.procs[0].kill9()
    # the queued callers give up (their fate is the previous test's subject)
    for c in (rig.queued, rig.ringing):
        sw.channel(c.uuid).hangup("NORMAL_CLEARING", remote=True)
    # the bridged call stays up
    assert _live(sw, rig.talking.uuid) and _live(sw, rig.anna_leg)
    assert sw.channel(rig.anna_leg).get_var("bridge_to") == rig.talking.uuid
    assert _live(sw, rig.boris_leg)  # an orphan: FreeSWITCH rings Boris for a call nobody drives
    stuck = {r["employee_id"] for r in co.rows("SELECT employee_id FROM reservations WHERE node = 'k9'")}
    assert stuck == {rig.anna.id, rig.boris.id}

    client = rec = None
    try:
        if restart == "recover_then_serve":
            # what the restarted fsd does first (see fsd.calls.recovery for the wiring into fsd serve)
            client = InboundClient(host="127.0.0.1", port=sw.esl_port, password="ClueCon", name="sim1")
            client.start()
            rec = recover(pool=pool, switches={"sim1": client}, node="k9", wait_s=5, poll_s=0.2)
            assert rec.report.legs_killed == [rig.boris_leg]
            assert [(a.employee_id, a.call_uuid, a.leg_uuid) for a in rec.report.adopted] == [
                (rig.anna.id, rig.talking.uuid, rig.anna_leg)]
            assert rec.report.released == 1
        rig.serve()
        # the orphan leg is gone and Boris is free: a new call reaches him
        wait_for(lambda: not _live(sw, rig.boris_leg), timeout=10, message="orphan leg killed")
        rig.pb.behaviour = Answer(after=1)
        rig.pb.talk_after_bridge = 3  # talks 3 s once connected (a timer from its answer could race the bridge)
        to_boris = rig.call(rig.n_support, 4, hangup_after=60)
        wait_for(lambda: co.history(to_boris.uuid), timeout=20, message="Boris took a new call")
        assert co.history(to_boris.uuid)["answered_by"] == rig.boris.id
        assert len(rig.pb.calls) == 2
        # Anna still talks on the surviving call: a new Sales call must wait, not ring her
        to_anna = rig.call(rig.n_sales, 5, hangup_after=600)
        wait_for(lambda: to_anna.times["Channel-Answered-Time"], timeout=10,
                 message="fsd took the new Sales call (answered, ring-back)")
        sw.clock.sleep(5)  # five simulated seconds of queueing
        assert len(rig.pa.calls) == 1, "Anna was offered a second call while talking"
        # the surviving conversation ends: Anna's reservation is released, the waiting caller gets her
        sw.channel(rig.anna_leg).hangup("NORMAL_CLEARING")
        wait_for(lambda: len(rig.pa.calls) == 2, timeout=15, message="Anna offered the waiting call")
        wait_for(lambda: sw.channel(rig.pa.calls[1]).get_var("bridge_to") == to_anna.uuid, timeout=15,
                 message="waiting call bridged to Anna")
    finally:
        if rec is not None:
            rec.stop()
        if client is not None:
            client.stop()
