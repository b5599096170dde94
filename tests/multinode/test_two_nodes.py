"""Two `fsd serve` processes and two emulated FreeSWITCH nodes sharing one PostgreSQL.

Topology: switch simA hands its calls to fsd-1, simB to fsd-2; each fsd holds an inbound Event Socket
to both switches (directory flushes reach every node). Two departments of 50 members each; calls to
both departments arrive on both switches, so both fsd processes compete for the same members.

fsd rings a member with ``user/<ext>@<domain>`` on the switch that carries the call: it does not bridge
across switches. A member must therefore be reachable on the switch of the call; here every member's
phone is registered on both switches (as with a shared registrar / a phone registered to both nodes).

Traffic is closed-loop (at most IN_FLIGHT callers at once, fewer than the members) and bounded by a
real-time budget: on an idle 2-core machine all 1,000 calls are placed (about 26 s); on a busy one the
test places as many as fit (at least MIN_CALLS) and prints how many.

Pass: no member is ever offered two calls at once (legs to each member, on both switches, never
overlap in time: tests/multinode/support.py overlapping_offers); every call has exactly one history row;
a password changed through fsd-1's API is refused by fsd-2's directory on the next REGISTER within a second.

Stress (not in the suite): FSD_MULTINODE_IN_FLIGHT=80 (or 120) raises the callers in flight from 40;
FSD_MULTINODE_DUMP=/tmp/legs.json writes every leg and every reservation change when overlaps are found.
On a loaded 2-core host 80 in flight still shows overlaps: legs whose originate reply came late, or whose
channel was created after a `uuid_exists` said false, are taken for gone by fsd/calls/call.py and their
member released while they ring (see the strict-xfail tests in test_reservations.py).
"""

from __future__ import annotations

import json
import os
import time

import gevent
import gevent.lock

from fsd.services import Actor
from fsd.services.tokens import TokenService
from fsd.sim import Answer, CallerScript, Phone, Switch
from fsd.sim.clock import Clock
from fsd.sim.xmlcurl import XmlCurlDirectory
from tests.faults.support import Company, FsdProcess, phone_for
from tests.helpers import wait_for
from tests.multinode.support import member_legs, overlapping_offers

SCALE = 0.05  # 1 simulated second = 50 ms
MEMBERS = 50
CALLS = int(os.environ.get("FSD_MULTINODE_CALLS", "1000"))
RATE = 40.0  # at most this many calls per real second, both switches together
IN_FLIGHT = int(os.environ.get("FSD_MULTINODE_IN_FLIGHT", "40"))  # callers at once (of 100 members)
BUDGET_S = 55.0  # real seconds for placing calls; fewer than CALLS are placed on a slow or busy machine
MIN_CALLS = 100


def test_two_fsd_two_switches_one_database(db_dsn, pool):
    clock = Clock(time_scale=SCALE)  # one simulated time line for both switches: legs compare across them
    sw = {n: Switch(hostname=n, clock=clock, heartbeat_interval=0, keep_events=5000).start()
          for n in ("simA", "simB")}
    ports = {n: s.esl_port for n, s in sw.items()}
    fsd1 = FsdProcess(dsn=db_dsn, switches=ports, node="fsd-1", scale=SCALE).start()
    fsd2 = FsdProcess(dsn=db_dsn, switches=ports, node="fsd-2", scale=SCALE).start()
    try:
        fsd1.wait_ready()
        fsd2.wait_ready()
        sw["simA"].outbound_target = ("127.0.0.1", fsd1.outbound_port)
        sw["simB"].outbound_target = ("127.0.0.1", fsd2.outbound_port)

        co = Company(pool, max_users=2 * MEMBERS + 5)
        admin = co.svc.employees.create(Actor.system("multinode"), co.tid, name="Admin Adminov", extension="900",
                                        role="admin").employee
        depts, nums = [], []
        for d, (strategy, base) in enumerate((("evenly", 2000), ("in_order", 3000))):
            members = [co.employee(f"M{d} {i}", str(base + i)) for i in range(MEMBERS)]
            dept = co.department(f"Dept {d}", members, strategy=strategy, ring_timeout=1200, step_delay=5)
            depts.append((dept, members))
            nums.append(co.number(dest_kind="department", dest_department_id=dept.id))
            for m in members:
                for s in sw.values():
                    phone_for(s, co, m, Answer(after=1), hangup_after=40)

        placed = []
        names = list(sw)
        dump = os.environ.get("FSD_MULTINODE_DUMP")
        if dump:  # investigation aid: every reservation change, with the database's clock
            co.rows("CREATE TABLE reservations_audit (at timestamptz DEFAULT clock_timestamp(), op text, "
                    "employee_id bigint, call_uuid text, node text) ; SELECT 1")
            co.rows("CREATE FUNCTION reservations_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF TG_OP = 'DELETE' THEN INSERT INTO reservations_audit (op, employee_id, call_uuid, node) "
                    "VALUES (TG_OP, OLD.employee_id, OLD.call_uuid, OLD.node); RETURN OLD; END IF; "
                    "INSERT INTO reservations_audit (op, employee_id, call_uuid, node) "
                    "VALUES (TG_OP, NEW.employee_id, NEW.call_uuid, NEW.node); RETURN NEW; END $$; SELECT 1")
            co.rows("CREATE TRIGGER reservations_audit AFTER INSERT OR UPDATE OR DELETE ON reservations "
                    "FOR EACH ROW EXECUTE FUNCTION reservations_audit(); SELECT 1")

        in_flight = gevent.lock.Semaphore(IN_FLIGHT)

        def traffic():
            # closed loop: at most IN_FLIGHT callers at once (fewer than the members), so no caller has to
            # queue for long however slow this shared machine is; stop placing when the budget is spent
            t0 = time.monotonic()
            for i in range(CALLS):
                if time.monotonic() - t0 > BUDGET_S:
                    break
                in_flight.acquire()
                s = sw[names[i % 2]]
                num = nums[(i // 2) % 2]
                ch = s.incoming_call(did=num.did.lstrip("+"), caller=f"7916{i:07d}", context="fsd-public",
                                     script=CallerScript(hangup_after=6000))
                ch.hungup.rawlink(lambda _e: in_flight.release())
                placed.append(ch)
                lag = t0 + (i + 1) / RATE - time.monotonic()
                gevent.sleep(max(0.0, lag))

        t_start = time.monotonic()
        g = gevent.spawn(traffic)
        g.join(timeout=BUDGET_S + 30)
        n_calls = len(placed)

        def done():
            return all(c.hungup.is_set() for c in placed)

        try:
            wait_for(done, timeout=60, interval=0.1, message="every call over")
            not_over = None
        except AssertionError as e:
            not_over = e  # reported after the overlap check: a leg still up counts as offered until now

        # no member was ever offered two calls at once, whichever fsd and switch offered them
        overlaps = []
        offers = 0
        for _dept, members in depts:
            for m in members:
                offers += len(member_legs(sw.values(), m.extension, co.domain))
                overlaps += [(m.extension, a.brief(), b.brief())
                             for a, b in overlapping_offers(sw.values(), m.extension, co.domain)]
        assert offers >= n_calls
        if overlaps and dump:  # every leg and reservation change (simulated µs), for a closer look
            ext_of = {m.id: m.extension for _d, ms in depts for m in ms}
            audit = [{"op": r["op"], "employee_id": r["employee_id"], "call": r["call_uuid"], "node": r["node"],
                      "ext": ext_of.get(r["employee_id"]),
                      "at_us": int((clock._sim0 + (r["at"].timestamp() - clock._sim0) / SCALE) * 1e6)}
                     for r in co.rows("SELECT * FROM reservations_audit ORDER BY at")]
            with open(dump, "w") as f:
                json.dump({"legs": {m.extension: [leg.__dict__ for leg in member_legs(sw.values(), m.extension,
                                                                                       co.domain)]
                                    for _d, ms in depts for m in ms}, "audit": audit}, f)
        if overlaps:  # what fsd logged about the first overlapping legs and their calls
            keys = {k for _ext, a, b in overlaps[:3] for k in (a[1], a[4], b[1], b[4]) if k}
            for f in (fsd1, fsd2):
                print(f"--- {f.node} log {f.logpath}")  # noqa: T201
                lines = [ln for ln in f.log_text().splitlines() if any(k in ln for k in keys)]
                for line in lines[:80]:
                    print(line[:400])  # noqa: T201
        assert not overlaps, (len(overlaps), overlaps[:3])
        if not_over is not None:
            raise not_over
        assert g.dead and n_calls >= MIN_CALLS, n_calls

        def counted():
            return co.rows("SELECT count(*) AS n FROM calls")[0]["n"] >= n_calls

        wait_for(counted, timeout=30, interval=0.1, message="history of every call")
        elapsed = time.monotonic() - t_start

        # every call exactly once in history, handled by the fsd its switch talks to
        rows = co.rows("SELECT call_uuid, count(*) AS n, min(node) AS node, min(result) AS result, "
                       "min(answered_by) AS answered_by FROM calls GROUP BY call_uuid")
        by_uuid = {r["call_uuid"]: r for r in rows}
        assert set(by_uuid) == {c.uuid for c in placed}
        assert all(r["n"] == 1 for r in rows)
        node_of = {"simA": "fsd-1", "simB": "fsd-2"}
        for i, c in enumerate(placed):
            assert by_uuid[c.uuid]["node"] == node_of[names[i % 2]]
        results = {}
        for r in rows:
            results[r["result"]] = results.get(r["result"], 0) + 1
        assert results.get("answered", 0) == n_calls, (results, co.rows(
            "SELECT call_uuid, node, department_id, route, wait_s, started_at, ended_at FROM calls "
            "WHERE result <> 'answered'"))

        # both processes did real work on both departments
        per_node = co.rows("SELECT node, department_id, count(*) AS n FROM calls GROUP BY node, department_id")
        assert len(per_node) == 4 and all(r["n"] >= n_calls // 5 for r in per_node), per_node

        # a configuration change through fsd-1 takes effect in fsd-2 within a second
        victim = depts[0][1][0]
        sw_b = sw["simB"]
        sw_b.xmlcurl = XmlCurlDirectory(switch=sw_b, url=fsd2.url("/freeswitch/directory"),
                                        credentials=("freeswitch", "xc-secret"))
        reg = Phone(victim.login, co.domain, password=co.passwords[victim.id], register=False)
        assert sw_b.register(reg, password=co.passwords[victim.id])  # fsd-2's directory knows the password
        token = TokenService(pool=pool).create(
            Actor.employee(tenant_id=co.tid, employee_id=admin.id, role="admin", login=admin.login),
            co.tid, name="multinode").token
        status, body = fsd1.request("POST", f"/api/v1/employees/{victim.id}/password",
                                    json.dumps({"send_letter": False}).encode(),
                                    {"Authorization": f"Bearer {token}"})
        assert status in (200, 201), body
        new_password = json.loads(body)["password"]
        t0 = time.monotonic()
        wait_for(lambda: not sw_b.register(reg, password=co.passwords[victim.id]), timeout=1.0, interval=0.02,
                 message="old password refused by the other fsd within a second")
        assert time.monotonic() - t0 < 1.0
        assert sw_b.register(reg, password=new_password)
        print(f"multinode: {n_calls} calls in {elapsed:.1f} s real, {offers} member offers, results {results}")  # noqa: T201
    finally:
        fsd1.stop()
        fsd2.stop()
        for s in sw.values():
            s.stop()
