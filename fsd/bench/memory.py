"""Benchmark: fsd's memory per concurrent call, up to 10,000 concurrent calls in one fsd process.

The real daemon (``python -m fsd serve``, fsd/app.py) runs in its own process against a private
PostgreSQL; the load comes from the FreeSWITCH emulator (fsd/sim) in another process, which places DID
calls into a department whose members never answer (ring timeout one hour), so every caller is
answered, hears the ring-back and stays waiting in the queue: one outbound Event Socket session, one
call greenlet, the queue entry and the member-ring state per call - the state a call centre's fsd holds
most of the time. fsd's resident set (VmRSS of its process, /proc) is read before the load and at
each step (1,000 / 2,500 / 5,000 / 10,000 calls live), once fsd's own gauge
``fsd_queue_callers_waiting`` reports them all waiting; KB per call is the RSS growth over the
baseline divided by the number of waiting callers. Goal: < 50 KB per call, 10,000 calls in one process.

No time scaling is needed: the callers wait (ring timeout 3,600 s) longer than the ramp lasts, so the
run is bounded by how fast fsd takes calls (a minute or two at 10,000 calls).

The process harness (``Pg``, ``SimProcess``, ``FsdProcess``, ``seed_department``...) lives in
fsd/bench/procs.py; its names are importable from here too. Run: ``.venv/bin/python -m fsd.bench.memory [N]``.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time

from fsd.bench.procs import (  # noqa: F401 - re-exported: fsd/bench/impatient.py imports them from here
    ROOT,
    FsdProcess,
    Pg,
    SimProcess,
    cpu_s,
    free_port,
    patch_gevent,
    rss_kb,
    seed_department,
)

log = logging.getLogger(__name__)

STEPS = (1000, 2500, 5000, 10000)
RATE = 400  # offered calls per second (fsd takes them as fast as it can; the ramp waits for it)
GOAL_KB = 50.0


# ----------------------------------------------------------------------------------------------- the bench
def _wait_waiting(fsd: FsdProcess, sim: SimProcess, n: int, timeout: float) -> tuple[float, float]:
    """Wait until fsd reports n callers waiting; returns (waiting, seconds taken)."""
    import gevent

    t0 = time.monotonic()
    waiting = 0.0
    while time.monotonic() - t0 < timeout:
        if fsd.proc.poll() is not None:
            raise RuntimeError(f"fsd serve died: {fsd.tail()}")
        waiting = fsd.metric("fsd_queue_callers_waiting")
        if waiting >= n:
            break
        gevent.sleep(0.5)
    return waiting, time.monotonic() - t0


def run(steps=None, *, rate: float = RATE, members: int = 20) -> list[dict]:
    if steps is None:
        steps = (500, 2000) if os.environ.get("FSD_BENCH_QUICK") else STEPS
    patch_gevent()
    import gevent

    logging.getLogger("fsd").setLevel(logging.ERROR)
    tmp = tempfile.mkdtemp(prefix="fsd-bench-memory-")
    pg = Pg(tmp)
    fsd = sim = None
    rows: list[dict] = []
    try:
        t, emps, num = seed_department(pg.dsn, members=members, impatient=False, ring_timeout=3600)
        did = num.did.lstrip("+")
        out_port = free_port()
        sim = SimProcess(outbound_port=out_port, keep_events=2000)
        sim.ask(("phones", [(e.extension, t.domain) for e in emps]))
        fsd = FsdProcess(dsn=pg.dsn, esl_port=sim.esl_port, outbound_port=out_port, storage=os.path.join(tmp, "s"))
        # warm-up: the routing snapshot, the pool's connections, lazy imports
        sim.place(did=did, n=100, rate=100, hangup_after=3.0, prefix="7800")
        sim.ask(None, timeout=60)
        _wait_waiting(fsd, sim, 100, 30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (sim.ask(("live", None))[1] or fsd.metric("fsd_queue_callers_waiting")):
            gevent.sleep(0.2)
        gevent.sleep(1.0)
        base = rss_kb(fsd.pid)
        cpu0 = cpu_s(fsd.pid)
        t_start = time.monotonic()
        live = 0
        samples = []
        for step in steps:
            sim.place(did=did, n=step - live, rate=rate, hangup_after=3500, prefix=f"79{step:05d}")
            sim.ask(None, timeout=600)  # ("placed", seconds)
            waiting, _ = _wait_waiting(fsd, sim, step, timeout=max(60.0, step / 50))
            live = step
            gevent.sleep(1.0)
            mem = rss_kb(fsd.pid)
            samples.append((step, waiting, mem, cpu_s(fsd.pid) - cpu0, time.monotonic() - t_start))
            log.warning("bench_memory step=%s waiting=%s rss_kb=%s", step, waiting, mem["VmRSS"])
            if waiting < step:
                break
        errors = fsd.tail(100000).count("Traceback")
    finally:
        if fsd is not None:
            fsd.stop()
        if sim is not None:
            sim.stop()
        pg.destroy()
        shutil.rmtree(tmp, ignore_errors=True)

    scen = (f"callers waiting in a department ({members} members who never answer), fsd serve in its own "
            f"process, emulator in another, {os.cpu_count()} CPUs")
    rows.append({"figure": "fsd RSS at rest (after warm-up)", "value": round(base["VmRSS"] / 1024, 1), "unit": "MB",
                 "anchor": None, "ratio": None})
    for _step, waiting, mem, cpu, elapsed in samples:
        per_call = (mem["VmRSS"] - base["VmRSS"]) / max(1.0, waiting)
        rows.append({"figure": f"fsd memory per concurrent call at {int(waiting)} callers waiting ({scen})",
                     "value": round(per_call, 1), "unit": "KB/call", "anchor": GOAL_KB,
                     "ratio": round(per_call / GOAL_KB, 3), "goal": f"< {GOAL_KB:g} KB",
                     "rss_mb": round(mem["VmRSS"] / 1024, 1), "anon_mb": round(mem.get("RssAnon", 0) / 1024, 1),
                     "cpu_s": round(cpu, 1), "elapsed_s": round(elapsed, 1)})
    if samples:
        step, waiting, mem, cpu, elapsed = samples[-1]
        rows.append({"figure": f"concurrent calls held by one fsd process (asked {step})", "value": int(waiting),
                     "unit": "calls", "anchor": 10000, "ratio": round(waiting / 10000, 3), "goal": ">= 10,000",
                     "rss_mb": round(mem["VmRSS"] / 1024, 1)})
        rows.append({"figure": f"fsd RSS with {int(waiting)} calls waiting", "value": round(mem["VmRSS"] / 1024, 1),
                     "unit": "MB", "anchor": round(base["VmRSS"] / 1024, 1),
                     "ratio": round(mem["VmRSS"] / base["VmRSS"], 3)})
        rows.append({"figure": f"fsd CPU per call taken into the queue ({int(waiting)} calls in {elapsed:.0f} s)",
                     "value": round(cpu / max(1.0, waiting) * 1000, 3), "unit": "ms", "anchor": None, "ratio": None})
        rows.append({"figure": "tracebacks in fsd's log during the run", "value": errors, "unit": "",
                     "anchor": 0, "ratio": None})
    rows += _finished_calls()
    return rows


def _finished_calls(batches: int | None = None, per_batch: int | None = None, rate: int = 250) -> list[dict]:
    """What finished calls leave behind: batches of short DID calls (100 companies, a member rung and the
    caller gone after 0.3 s) through the call driver in this process; after each batch, once every call is
    over, the objects the collector tracks and the RSS. A daemon that keeps anything per call grows
    between batches; bounded state (per member, per department) is made by the first batch."""
    import gc

    import gevent

    from fsd.bench.calls import _Env, _wait_idle
    from fsd.bench.procs import seed_companies

    quick = bool(os.environ.get("FSD_BENCH_QUICK"))
    batches = batches or (3 if quick else 5)
    per_batch = per_batch or (2000 if quick else 4000)
    tmp = tempfile.mkdtemp(prefix="fsd-bench-finished-")
    pg = Pg(tmp, unix_socket=True)
    env = None
    try:
        phones, did = seed_companies(pg.dsn, companies=100, members=10)
        env = _Env(pg.dsn, os.path.join(tmp, "s"), time_scale=1.0)
        env.sim.ask(("phones", phones))
        points = []
        for i in range(batches):
            env.place(did=did, n=per_batch, rate=rate, hangup_after=0.3, prefix=f"76{i:02d}")
            _wait_idle(env, time.monotonic() + 120)
            gevent.sleep(2.0)  # the last members' releases and history rows
            gc.collect()
            points.append((len(gc.get_objects()), rss_kb(os.getpid())["VmRSS"], len(env.driver.active)))
    finally:
        if env is not None:
            env.stop()
        pg.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    (obj0, rss0, _), (obj1, rss1, active) = points[0], points[-1]
    calls = per_batch * (batches - 1)
    scen = (f"{batches - 1} batches of {per_batch} DID calls at {rate}/s after a first one, 100 companies, "
            f"fsd's call driver in the bench process; objects after each batch: {', '.join(str(p[0]) for p in points)}")
    return [
        {"figure": f"objects left per 1,000 finished calls ({scen})",
         "value": round((obj1 - obj0) / calls * 1000, 1), "unit": "objects", "anchor": 0, "ratio": None,
         "goal": "none kept per call", "active_after": active},
        {"figure": f"RSS growth per 1,000 finished calls (same run; RSS {rss0 // 1024} -> {rss1 // 1024} MB)",
         "value": round((rss1 - rss0) / calls * 1000, 1), "unit": "KB", "anchor": 0, "ratio": None},
    ]


if __name__ == "__main__":
    steps = tuple(int(a) for a in sys.argv[1:]) or None
    for row in run(steps):
        print(f"{row['figure']}: {row['value']} {row['unit']} (anchor {row['anchor']}, ratio {row['ratio']})")  # noqa: T201
