"""Benchmark: the call driver against the FreeSWITCH emulator (fsd/sim) and a private PostgreSQL.

1. Routing throughput: DID calls arrive as fast as the emulator can place them; each goes through
   the outbound socket (connect, myevents, linger), the routing snapshot, the member reservation in
   PostgreSQL and ends in ``bgapi originate`` of a member leg. Figures: calls routed per second and
   the time from the socket connect to the first originate (p50/p99), both taken from the
   emulator's own log (connect and api entries, monotonic real time). Goal >= 500 calls/s, p99 < 20 ms.
2. The impatient offer with 500 callers waiting at once in one department (no member free), real
   time: when each caller's offer (play_and_get_digits) starts, counted from its ring-back start,
   from the emulator's event timestamps. Goal 20.0 s +- 0.2 s.

The emulator runs in its own process (as FreeSWITCH would); fsd's CPU time per call is reported
too, because on a small machine the emulator itself (about as much CPU per call as fsd) can be the
limit. Run: ``.venv/bin/python -m fsd.bench.calls``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time

import gevent

ROUTE_CALLS = 1500
ROUTE_MEMBERS = 60
ROUTE_RATE = 600  # offered calls per second
LIGHT_CALLS = 300
LIGHT_RATE = 20
OFFER_CALLERS = 500
OFFER_THRESHOLD_S = 20.0
OFFER_RATE = 50  # callers arrive over 10 s, so all 500 wait at once when the first offers start


def _percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    i = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[i]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sim_child(conn, outbound_port: int, time_scale: float) -> None:
    """The emulated FreeSWITCH in its own process (FreeSWITCH is never inside fsd's process)."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    import gevent.select

    from fsd.sim import CallerScript, NoAnswer, Phone, Switch

    sw = Switch(hostname="bench", time_scale=time_scale, heartbeat_interval=0,
                outbound_target=("127.0.0.1", outbound_port))
    sw.start()
    calls: list = []

    def place(did, n, rate, hangup_after, prompt_digits, prefix):
        t0 = time.monotonic()
        for i in range(n):
            calls.append(sw.incoming_call(did=did, caller=f"{prefix}{i:07d}", context="fsd-public",
                                          script=CallerScript(hangup_after=hangup_after,
                                                              prompt_digits=list(prompt_digits))))
            if rate:
                gevent.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
        return time.monotonic() - t0

    def collect(mark):
        connects, first, ring, offer = {}, {}, {}, {}
        for e in sw.log[mark:]:
            if e.kind == "connect" and "uuid=" in e.text:
                connects.setdefault(e.text.rsplit("uuid=", 1)[1], e.real)
            elif e.kind == "api" and e.text.startswith("originate") and "fsd_queue_call=" in e.text:
                first.setdefault(e.text.split("fsd_queue_call=", 1)[1].split(",", 1)[0], e.real)
            elif e.kind == "event" and e.event is not None and e.event.name == "CHANNEL_EXECUTE":
                app = e.event.get("Application")
                ts = int(e.event.get("Event-Date-Timestamp")) / 1e6
                if app == "endless_playback":
                    ring.setdefault(e.event.uuid, ts)
                elif app == "play_and_get_digits":
                    offer.setdefault(e.event.uuid, ts)
        return {"connects": connects, "first": first, "ring": ring, "offer": offer}

    conn.send(("port", sw.esl_port))
    while True:
        gevent.select.select([conn.fileno()], [], [])
        cmd, arg = conn.recv()
        if cmd == "phones":
            for user, domain in arg:
                sw.add_phone(Phone(user, domain, behaviour=NoAnswer()))
            conn.send(("ok", len(arg)))
        elif cmd == "mark":
            conn.send(("mark", len(sw.log)))
        elif cmd == "place":
            gevent.spawn(lambda a=arg: conn.send(("placed", place(**a))))
        elif cmd == "live":
            conn.send(("live", sum(1 for c in calls if not c.hungup.is_set())))
        elif cmd == "collect":
            # large: through a file (a pipe message of megabytes does not suit a non-blocking reader)
            import json

            fd, path = tempfile.mkstemp(prefix="fsd-bench-collect-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(collect(arg), f)
            conn.send(("collect", path))
        elif cmd == "stop":
            sw.stop()
            conn.send(("stopped", None))
            return


class _Env:
    def __init__(self, dsn: str, storage: str, *, time_scale: float):
        import multiprocessing

        from prometheus_client import CollectorRegistry

        from fsd.calls import CallDriver
        from fsd.config import CallsConfig
        from fsd.esl.inbound import InboundClient
        from fsd.esl.outbound import OutboundServer
        from fsd.metrics import Metrics
        from fsd.store.pool import Pool

        self.pool = Pool(dsn=dsn, maxconn=40)
        self.server = OutboundServer(host="127.0.0.1", port=0, handler=lambda s: self.driver.handle(s),
                                     backlog=2048)
        self.server.start()
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=_sim_child, args=(child, self.server.port, time_scale), daemon=True)
        self.proc.start()
        _, port = self.ask(None, timeout=60)
        self.client = InboundClient(host="127.0.0.1", port=port, password="ClueCon", name="bench")  # noqa: S106
        self.client.connect(timeout=10)
        self.driver = CallDriver(pool=self.pool, switches={"bench": self.client},
                                 config=CallsConfig(storage_dir=storage), metrics=Metrics(registry=CollectorRegistry()),
                                 clock=None, node="bench", storage_dir=storage, callbacks=False)
        self.driver.start()

    def ask(self, msg, timeout: float = 120.0):
        """Send a command to the emulator process and wait (cooperatively) for its answer."""
        import gevent.select

        if msg is not None:
            self.pipe.send(msg)
        r, _, _ = gevent.select.select([self.pipe.fileno()], [], [], timeout)
        if not r:
            raise TimeoutError(f"emulator did not answer {msg!r}")
        return self.pipe.recv()

    def collect(self, mark):
        import json

        path = self.ask(("collect", mark), timeout=120)[1]
        try:
            with open(path) as f:
                return json.load(f)
        finally:
            os.unlink(path)

    def stop(self):
        self.server.stop(timeout=5)
        self.driver.drain(5)
        self.driver.stop()
        self.client.stop()
        try:
            self.ask(("stop", None), timeout=10)
        except (TimeoutError, OSError, EOFError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
        self.pool.close()


def _seed(pool, *, members: int, strategy: str, impatient: bool, ring_timeout: int):
    from fsd.domain import rules
    from fsd.services import Actor, Services

    rules.configure_password_hasher(time_cost=1, memory_cost=1024, parallelism=1)
    svc = Services(pool=pool)
    admin = Actor.system("bench")
    t = svc.tenants.create(admin, name="Bench", domain=f"bench{os.getpid()}{int(time.time())}.example",
                           max_users=100000, timezone="UTC", language="en")
    emps = [svc.employees.create(admin, t.id, name=f"Member {i}", extension=str(2000 + i),
                                 password="BenchPassw0rd!x").employee  # noqa: S106
            for i in range(members)]
    dept = svc.departments.create(admin, t.id, name="Queue", members=[e.id for e in emps], strategy=strategy,
                                  ring_timeout=ring_timeout, impatient_enabled=impatient,
                                  impatient_threshold=int(OFFER_THRESHOLD_S))
    num = svc.numbers.create(admin, t.id, did=f"+7495{t.id:07d}", dest_kind="department",
                             dest_department_id=dept.id)
    return t, emps, num


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _wait_idle(env, deadline):
    while time.monotonic() < deadline and (env.driver.active or env.ask(("live", None))[1]):
        gevent.sleep(0.1)


def _bench_routing(dsn: str, storage: str, *, calls: int = ROUTE_CALLS, rate: int = ROUTE_RATE,
                   tag: str = "") -> list[dict]:
    env = _Env(dsn, storage, time_scale=1.0)
    try:
        t, emps, num = _seed(env.pool, members=ROUTE_MEMBERS, strategy="evenly", impatient=False, ring_timeout=60)
        env.ask(("phones", [(e.extension, t.domain) for e in emps]))
        did = num.did.lstrip("+")
        # warm-up: the routing snapshot and the pool's connections
        env.ask(("place", {"did": did, "n": 50, "rate": 200, "hangup_after": 0.2, "prompt_digits": [],
                           "prefix": "7900"}))
        _wait_idle(env, time.monotonic() + 30)
        mark = env.ask(("mark", None))[1]
        cpu0 = _cpu()
        _, placed_s = env.ask(("place", {"did": did, "n": calls, "rate": rate, "hangup_after": 0.3,
                                         "prompt_digits": [], "prefix": "7910"}), timeout=600)
        _wait_idle(env, time.monotonic() + 60)
        cpu = _cpu() - cpu0
        data = env.collect(mark)
    finally:
        env.stop()
    connects, first = data["connects"], data["first"]
    want = set(connects)
    lat = [(first[u] - connects[u]) * 1000 for u in want if u in first]
    routed = [first[u] for u in want if u in first]
    span = (max(routed) - min(connects.values())) if routed else float("nan")
    routed_rate = len(routed) / span if routed else 0.0
    cpu_ms = cpu / max(1, len(want)) * 1000
    load = os.getloadavg()[0]
    scen = (f"{calls} DID calls offered at {rate}/s by the emulator in its own process, evenly "
            f"department of {ROUTE_MEMBERS} members, placing took {placed_s:.2f} s, load average {load:.1f} "
            f"on {os.cpu_count()} CPUs")
    return [
        {"figure": f"{tag}calls routed per second through the outbound server ({scen})",
         "value": round(routed_rate), "unit": "calls/s", "anchor": 500, "ratio": round(routed_rate / 500, 3),
         "goal": ">= 500",
         "routed": len(routed), "offered": len(want)},
        {"figure": f"{tag}fsd CPU per call (outbound session, routing, reservation, originate, history)",
         "value": round(cpu_ms, 3), "unit": "ms", "anchor": 2.0, "ratio": round(cpu_ms / 2.0, 3),
         "goal": "<= 2 ms (= 500 calls/s on one core)"},
        {"figure": f"{tag}socket connect -> first originate, p50", "value": round(_percentile(lat, 50), 3),
         "unit": "ms",
         "anchor": None, "ratio": None},
        {"figure": f"{tag}socket connect -> first originate, p99", "value": round(_percentile(lat, 99), 3),
         "unit": "ms",
         "anchor": 20.0, "ratio": round(_percentile(lat, 99) / 20.0, 3), "goal": "< 20 ms"},
    ]


def _bench_offer(dsn: str, storage: str) -> list[dict]:
    env = _Env(dsn, storage, time_scale=1.0)
    try:
        t, emps, num = _seed(env.pool, members=0, strategy="simultaneous", impatient=True, ring_timeout=120)
        did = num.did.lstrip("+")
        mark = env.ask(("mark", None))[1]
        env.ask(("place", {"did": did, "n": OFFER_CALLERS, "rate": OFFER_RATE, "hangup_after": OFFER_THRESHOLD_S + 8,
                           "prompt_digits": ["2"], "prefix": "7920"}), timeout=120)
        _wait_idle(env, time.monotonic() + OFFER_THRESHOLD_S + 60)
        data = env.collect(mark)
        late = list(env.driver.offer_lateness)
    finally:
        env.stop()
    ring, offer = data["ring"], data["offer"]
    waits = [offer[u] - ring[u] for u in offer if u in ring]
    dev = [abs(w - OFFER_THRESHOLD_S) for w in waits]
    worst = max(dev) if dev else float("nan")
    return [
        {"figure": f"impatient offer start with {OFFER_CALLERS} callers waiting, p50 (offered {len(waits)})",
         "value": round(_percentile(waits, 50), 3), "unit": "s", "anchor": OFFER_THRESHOLD_S,
         "ratio": round(_percentile(waits, 50) / OFFER_THRESHOLD_S, 4)},
        {"figure": f"impatient offer start with {OFFER_CALLERS} callers waiting, max |deviation| from 20 s",
         "value": round(worst, 3), "unit": "s", "anchor": 0.2, "ratio": round(worst / 0.2, 3), "goal": "<= 0.2 s"},
        {"figure": "impatient offer start, p99 |deviation|", "value": round(_percentile(dev, 99), 3), "unit": "s",
         "anchor": 0.2, "ratio": round(_percentile(dev, 99) / 0.2, 3)},
        {"figure": "of which fsd's offer timer firing late, p99 / max (the rest is the emulator's latency)",
         "value": f"{_percentile(late, 99):.3f} / {max(late, default=float('nan')):.3f}", "unit": "s",
         "anchor": None, "ratio": None},
    ]


def run() -> list[dict]:
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    try:
        import psycogreen.gevent

        psycogreen.gevent.patch_psycopg()
    except ImportError:  # pragma: no cover
        pass
    from fsd.store.cluster import PgCluster
    from fsd.store.migrate import migrate

    logging.getLogger("fsd").setLevel(logging.ERROR)
    tmp = tempfile.mkdtemp(prefix="fsd-bench-calls-")
    cluster = PgCluster(datadir=os.path.join(tmp, "pg"), port=_free_port())
    cluster.start()
    try:
        _createdb(cluster)
        dsn = cluster.dsn("fsd_bench")
        migrate(dsn=dsn)
        rows = _bench_routing(dsn, os.path.join(tmp, "s0"), calls=LIGHT_CALLS, rate=LIGHT_RATE,
                              tag=f"light load ({LIGHT_RATE}/s): ")
        rows += _bench_routing(dsn, os.path.join(tmp, "s1"), tag="full load: ")
        rows += _bench_offer(dsn, os.path.join(tmp, "s2"))
    finally:
        cluster.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def _createdb(cluster) -> None:
    from fsd.store.pool import Pool

    p = Pool(dsn=cluster.dsn(), maxconn=1)
    with p.connection() as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE fsd_bench")
    p.close()


if __name__ == "__main__":
    for row in run():
        print(f"{row['figure']}: {row['value']} {row['unit']} (anchor {row['anchor']}, ratio {row['ratio']})")
