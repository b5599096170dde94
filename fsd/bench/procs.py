"""Process helpers shared by the benchmarks (fsd/bench/calls.py, memory.py, impatient.py).

* :class:`SimProcess` - the FreeSWITCH emulator (fsd.sim) in its own process, driven over a pipe
  (FreeSWITCH is never inside fsd's process): phones, placing calls, the emulator's own timings.
* :class:`FsdProcess` - ``python -m fsd serve`` in its own process (FSD_* configuration), with /metrics.
* :class:`Pg` - a private PostgreSQL cluster with one migrated database.
* ``seed_department`` - a tenant, a department of members who never answer, a DID routed to it.
* ``free_port``, ``rss_kb``, ``cpu_s`` (CPU seconds of any process, from /proc), ``percentile``,
  ``patch_gevent``.

Profiling hooks: FSD_BENCH_PROFILE_FSD=<dir> (cProfile of fsd serve -> fsd-<pid>-<port>.prof at exit),
FSD_BENCH_PROFILE_SIM=<dir> (cProfile of the emulator -> sim-<pid>.prof).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

log = logging.getLogger(__name__)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM / RssAnon of a process, in KB (from /proc/<pid>/status)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "Threads"):
                out[name] = int(value.split()[0])
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------------------------- emulator
def _sim_child(conn, outbound_port: int, time_scale: float, keep_events: int | None) -> None:
    """The emulated FreeSWITCH in its own process (FreeSWITCH is never inside fsd's process)."""
    from gevent import monkey

    monkey.patch_all()
    import json

    import gevent
    import gevent.select

    from fsd.sim import CallerScript, NoAnswer, Phone, Switch

    profile = None
    if os.environ.get("FSD_BENCH_PROFILE_SIM"):  # a directory: cProfile of the emulator -> sim-<pid>.prof
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    sw = Switch(hostname="bench", time_scale=time_scale, heartbeat_interval=0, keep_events=keep_events,
                outbound_target=("127.0.0.1", outbound_port))
    sw.start()
    import gc

    from fsd.app import tune_runtime

    tune_runtime()  # the load generator's own collector and greenlets, tuned as fsd serve tunes its own

    def _freeze_kept():
        # The emulator keeps every event and log entry of the run for the figures (keep_events=None): full
        # collections over that growing heap paused it for tens of ms, and its pauses showed up as fsd's
        # latency. What it has kept is moved out of the collector's way each second (the garbage among it is
        # not collected: a load generator that exits after one run can afford that).
        while True:
            gevent.sleep(1.0)
            gc.freeze()

    gevent.spawn(_freeze_kept)
    calls: list = []

    def place(did, n, rate, hangup_after, prompt_digits, prefix):
        dids = [did] if isinstance(did, str) else list(did)  # several: round robin
        t0 = time.monotonic()
        for i in range(n):
            calls.append(sw.incoming_call(did=dids[i % len(dids)], caller=f"{prefix}{i:07d}", context="fsd-public",
                                          script=CallerScript(hangup_after=hangup_after,
                                                              prompt_digits=list(prompt_digits))))
            if rate:
                gevent.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
        return time.monotonic() - t0

    def timings():
        """Per caller channel: CHANNEL_CREATE, ring-back start, offer start (event timestamps, seconds)."""
        mine = {c.uuid for c in calls}
        out: dict[str, dict[str, float]] = {}
        for ev in sw.events:
            if ev.uuid not in mine:
                continue
            name = ev.name
            ts = int(ev.get("Event-Date-Timestamp")) / 1e6
            rec = out.setdefault(ev.uuid, {})
            if name == "CHANNEL_CREATE":
                rec.setdefault("create", ts)
            elif name == "CHANNEL_EXECUTE":
                app = ev.get("Application")
                if app == "endless_playback":
                    rec.setdefault("ring", ts)
                elif app == "play_and_get_digits":
                    rec.setdefault("offer", ts)
        return out

    def collect(mark):
        """From log entry ``mark`` on: per caller, the socket connect and its first member originate (the
        emulator's monotonic real time), ring-back start and offer start (event timestamps)."""
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

    def to_file(obj, what):
        # large: through a file (a pipe message of megabytes does not suit a non-blocking reader)
        fd, path = tempfile.mkstemp(prefix=f"fsd-bench-{what}-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
        return path

    conn.send(("port", sw.esl_port))
    while True:
        gevent.select.select([conn.fileno()], [], [])
        cmd, arg = conn.recv()
        if cmd == "phones":
            for user, domain in arg:
                sw.add_phone(Phone(user, domain, behaviour=NoAnswer()))
            conn.send(("ok", len(arg)))
        elif cmd == "place":
            gevent.spawn(lambda a=arg: conn.send(("placed", place(**a))))
        elif cmd == "live":
            conn.send(("live", sum(1 for c in calls if not c.hungup.is_set())))
        elif cmd == "mark":
            conn.send(("mark", len(sw.log)))
        elif cmd == "timings":
            conn.send(("timings", to_file(timings(), "timings")))
        elif cmd == "collect":
            conn.send(("collect", to_file(collect(arg), "collect")))
        elif cmd == "stop":
            sw.stop()
            if profile is not None:
                profile.disable()
                profile.dump_stats(os.path.join(os.environ["FSD_BENCH_PROFILE_SIM"], f"sim-{os.getpid()}.prof"))
            conn.send(("stopped", None))
            return


class SimProcess:
    """fsd.sim's Switch in a child process, driven over a pipe."""

    def __init__(self, *, outbound_port: int, time_scale: float = 1.0, keep_events: int | None = None):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(target=_sim_child, args=(child, outbound_port, time_scale, keep_events),
                                daemon=True)
        self.proc.start()
        _, self.esl_port = self.ask(None, timeout=60)

    def ask(self, msg, timeout: float = 120.0):
        """Send a command and wait (cooperatively under gevent) for the answer."""
        import gevent.select

        if msg is not None:
            self.pipe.send(msg)
        r, _, _ = gevent.select.select([self.pipe.fileno()], [], [], timeout)
        if not r:
            raise TimeoutError(f"emulator did not answer {msg!r}")
        return self.pipe.recv()

    def place(self, *, did: str | list[str], n: int, rate: float, hangup_after: float | None, prompt_digits=(),
              prefix: str = "7900") -> None:
        """Start placing calls (returns at once; the emulator answers ("placed", seconds) when done).
        ``did``: one number, or a list the calls go to in turn."""
        self.pipe.send(("place", {"did": did, "n": n, "rate": rate, "hangup_after": hangup_after,
                                  "prompt_digits": list(prompt_digits), "prefix": prefix}))

    def _from_file(self, msg) -> dict:
        import json

        path = self.ask(msg, timeout=120)[1]
        try:
            with open(path) as f:
                return json.load(f)
        finally:
            os.unlink(path)

    def timings(self) -> dict:
        """Per caller channel: CHANNEL_CREATE, ring-back start, offer start (event timestamps, seconds)."""
        return self._from_file(("timings", None))

    def mark(self) -> int:
        """The emulator's log position now (for ``collect``)."""
        return self.ask(("mark", None))[1]

    def collect(self, mark: int) -> dict:
        """connects / first originates / ring-back starts / offer starts by call uuid since ``mark``."""
        return self._from_file(("collect", mark))

    def live(self) -> int:
        """Calls placed by this process that have not hung up yet."""
        return self.ask(("live", None))[1]

    def stop(self) -> None:
        try:
            self.ask(("stop", None), timeout=20)
        except (TimeoutError, OSError, EOFError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# ----------------------------------------------------------------------------------------------- fsd
class FsdProcess:
    """`python -m fsd serve` in its own process, configured through FSD_* variables."""

    def __init__(self, *, dsn: str, esl_port: int, outbound_port: int, storage: str, extra: dict | None = None):
        self.http_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FSD_")}
        env.update({
            "FSD_DATABASE_URL": dsn, "FSD_DATABASE_POOL_MAX": "20", "FSD_HTTP_PORT": str(self.http_port),
            "FSD_OUTBOUND_PORT": str(outbound_port), "FSD_ESL_SWITCHES": f"bench=127.0.0.1:{esl_port}",
            "FSD_XMLCURL_PASSWORD": "bench", "FSD_CALLS_STORAGE_DIR": storage, "FSD_SMTP_PORT": str(free_port()),
            "FSD_HTTP_SECRET_KEY": "b" * 32, "FSD_LOG_LEVEL": "WARNING", "FSD_OUTBOUND_DRAIN_TIMEOUT_S": "1",
            "FSD_NODE_NAME": "bench",
        })
        env.update(extra or {})
        self.log_path = os.path.join(storage, "fsd-serve.log")
        os.makedirs(storage, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        argv = [sys.executable, "-m", "fsd", "serve"]
        if os.environ.get("FSD_BENCH_PROFILE_FSD"):  # a directory: cProfile of fsd serve -> fsd-<pid>.prof at exit
            argv[1:1] = ["-m", "cProfile", "-o", os.path.join(os.environ["FSD_BENCH_PROFILE_FSD"],
                                                              f"fsd-{os.getpid()}-{outbound_port}.prof")]
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT,  # noqa: S603
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self._wait_ready(60)

    def _get(self, path: str, timeout: float = 10) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=timeout) as r:  # noqa: S310
            return r.read().decode()

    def _wait_ready(self, timeout: float) -> None:
        import gevent

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fsd serve exited ({self.proc.returncode}): {self.tail()}")
            try:
                self._get("/readyz", timeout=2)
                return
            except OSError:
                gevent.sleep(0.2)
        raise TimeoutError(f"fsd serve not ready: {self.tail()}")

    def tail(self, n: int = 3000) -> str:
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")

    def metric(self, name: str) -> float:
        """Sum of one metric's samples (all label sets) from /metrics."""
        total = 0.0
        pat = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.M)
        for m in pat.finditer(self._get("/metrics", timeout=30)):
            total += float(m.group(1))
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


# ----------------------------------------------------------------------------------------------- database
class Pg:
    """A private PostgreSQL cluster with one migrated database for the benchmark: over TCP on 127.0.0.1,
    or with ``unix_socket=True`` only over its unix socket (PostgreSQL on fsd's host, as a single-host
    install would reach it: about a third less CPU per statement on both sides than loopback TCP)."""

    def __init__(self, tmp: str, *, unix_socket: bool = False):
        from fsd.store.cluster import PgCluster
        from fsd.store.migrate import migrate
        from fsd.store.pool import Pool

        self.unix_socket = unix_socket
        self.cluster = PgCluster(datadir=os.path.join(tmp, "pg"), port=None if unix_socket else free_port())
        self.cluster.start()
        try:
            p = Pool(dsn=self.cluster.dsn(), maxconn=1)
            with p.connection() as conn:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute("CREATE DATABASE fsd_bench")
            p.close()
            self.dsn = self.cluster.dsn("fsd_bench")
            migrate(dsn=self.dsn)
        except Exception:
            self.cluster.destroy()
            raise

    def destroy(self) -> None:
        self.cluster.destroy()

    def cpu_s(self) -> float:
        """CPU seconds of the postmaster and its live children (backends, background workers)."""
        try:
            with open(os.path.join(self.cluster.pgdata, "postmaster.pid")) as f:
                pid = int(f.readline())
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except (OSError, ValueError):
            return float("nan")
        total = 0.0
        for p in [pid, *kids]:
            try:
                total += cpu_s(p)
            except OSError:
                pass  # a backend that just ended
        return total


def seed_department(dsn: str, *, members: int, impatient: bool, ring_timeout: int, threshold: int = 20,
                    strategy: str = "simultaneous"):
    """A tenant with one department (members who never answer) and a DID routed to it.
    Returns (tenant, employees, number)."""
    from fsd.domain import rules
    from fsd.services import Actor, Services
    from fsd.store.pool import Pool

    rules.configure_password_hasher(time_cost=1, memory_cost=1024, parallelism=1)
    pool = Pool(dsn=dsn, maxconn=2)
    try:
        svc = Services(pool=pool)
        admin = Actor.system("bench")
        t = svc.tenants.create(admin, name="Bench", domain=f"bench{os.getpid()}{int(time.time())}.example",
                               max_users=100000, timezone="UTC", language="en")
        emps = [svc.employees.create(admin, t.id, name=f"Member {i}", extension=str(2000 + i),
                                     password="BenchPassw0rd!x").employee  # noqa: S106
                for i in range(members)]
        dept = svc.departments.create(admin, t.id, name="Queue", members=[e.id for e in emps], strategy=strategy,
                                      ring_timeout=ring_timeout, impatient_enabled=impatient,
                                      impatient_threshold=threshold)
        num = svc.numbers.create(admin, t.id, did=f"+7495{t.id:07d}", dest_kind="department",
                                 dest_department_id=dept.id)
    finally:
        pool.close()
    return t, emps, num


def seed_companies(dsn: str, *, companies: int, members: int, strategy: str = "evenly",
                   ring_timeout: int = 60) -> tuple[list[tuple[str, str]], list[str]]:
    """``companies`` tenants, each with one department of ``members`` members (who never answer) and a
    DID routed to it: the hosted-PBX shape of load (many small companies). Returns the phones
    [(extension, domain)] and the DIDs (without the +)."""
    from fsd.domain import rules
    from fsd.services import Actor, Services
    from fsd.store.pool import Pool

    rules.configure_password_hasher(time_cost=1, memory_cost=1024, parallelism=1)
    pool = Pool(dsn=dsn, maxconn=2)
    phones, dids = [], []
    try:
        svc = Services(pool=pool)
        admin = Actor.system("bench")
        stamp = f"{os.getpid()}{int(time.time())}"
        for c in range(companies):
            t = svc.tenants.create(admin, name=f"Company {c}", domain=f"c{c}-{stamp}.example", max_users=1000,
                                   timezone="UTC", language="en")
            emps = [svc.employees.create(admin, t.id, name=f"Member {i}", extension=str(2000 + i),
                                         password="BenchPassw0rd!x").employee  # noqa: S106
                    for i in range(members)]
            dept = svc.departments.create(admin, t.id, name="Sales", members=[e.id for e in emps],
                                          strategy=strategy, ring_timeout=ring_timeout)
            num = svc.numbers.create(admin, t.id, did=f"+7495{t.id:07d}", dest_kind="department",
                                     dest_department_id=dept.id)
            phones += [(e.extension, t.domain) for e in emps]
            dids.append(num.did.lstrip("+"))
    finally:
        pool.close()
    return phones, dids


def patch_gevent() -> None:
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    try:
        import psycogreen.gevent

        psycogreen.gevent.patch_psycopg()
    except ImportError:  # pragma: no cover
        pass
