"""Benchmark: mod_xml_curl directory lookups served by one fsd process, compared with nginx.

Setup: a private PostgreSQL with 1,000 companies x 10 employees (10,000 directory users); one fsd
process per server kind (fsd.directory.Directory + fsd.web.xmlcurl.XmlCurlApp, cache warmed, metrics on)
pinned to one CPU: behind fsd.web.fastlane.FastLaneServer (inline answers on, and off: a greenlet per lookup),
and on pywsgi with the Dispatcher; the load generator is a separate process on the other CPU. Every
request is a REGISTER's `action=sip_auth` POST shaped like the captured one (about 1.1 kB, HTTP basic
credentials) for a random user, on a NEW TCP connection, as mod_xml_curl does.

Compared in the same run with Debian's nginx (nginx-light, one worker, private config in a temp dir)
answering the same POSTs with a static XML file of the same size as fsd's answer.

Figures: lookups/s at concurrency 50 (goal >= 5,000/s and >= 0.4 x nginx), p50/p99 at concurrency 50,
and p50/p99 at a steady 1,000 lookups/s (goal p99 < 5 ms).

Run: ``.venv/bin/python -m fsd.bench.directory`` (installs nothing; needs PostgreSQL binaries and nginx;
``apt-get install -y nginx-light``).
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TENANTS = 1000
PER_TENANT = 10
CONCURRENCY = 50
DURATION_S = 3.0
ROUNDS = 3
GEN_S = 3.0
STEADY_RATE = 1000
STEADY_S = 4.0
PATH = "/freeswitch/directory"
CREDS = ("freeswitch", "bench-secret")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _pin(cpu: int) -> None:
    try:
        if cpu < os.cpu_count():
            os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass


def _percentile(values, q):
    values = sorted(values)
    if not values:
        return float("nan")
    i = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[i]


# ---------------------------------------------------------------------------------------------- data
def _seed(dsn: str) -> None:
    from fsd.domain import rules
    from fsd.store import repos
    from fsd.store.pool import Pool

    pool = Pool(dsn=dsn, maxconn=2)
    with pool.transaction() as cur:
        for t in range(TENANTS):
            domain = f"c{t}.bench.example.com"
            tenant = repos.tenant_insert(cur, name=f"Company {t}", domain=domain, max_users=100)
            repos.number_insert(cur, tenant_id=tenant.id, did=f"+7495{t:07d}", is_main=True)
            for e in range(PER_TENANT):
                login = f"user{e}"
                repos.employee_insert(cur, tenant_id=tenant.id, name=f"Employee {e} of {t}", login=login,
                                      extension=str(201 + e), password_hash="bench-not-a-password",  # noqa: S106
                                      sip_a1_hash=rules.sip_a1_hash(login, domain, f"pw-{t}-{e}"))
    pool.close()


_BODY = (
    "hostname=vm&section=directory&tag_name=domain&key_name=name&key_value={d}&Event-Name=REQUEST_PARAMS"
    "&Core-UUID=09e46314-5803-4678-a4e0-01803b2eecc3&FreeSWITCH-Hostname=vm&FreeSWITCH-Switchname=vm"
    "&FreeSWITCH-IPv4=192.0.2.2&FreeSWITCH-IPv6=fd00%3A%3A2&Event-Date-Local=2026-11-28%2008%3A05%3A00"
    "&Event-Date-GMT=Sat,%2028%20Nov%202026%2008%3A05%3A00%20GMT&Event-Date-Timestamp=1795853100365709"
    "&Event-Calling-File=sofia_reg.c&Event-Calling-Function=sofia_reg_parse_auth&Event-Calling-Line-Number=3124"
    "&Event-Sequence={n}&action=sip_auth&sip_profile=internal&sip_user_agent=bench&sip_auth_username={u}"
    "&sip_auth_realm={d}&sip_auth_nonce=0772179a-9de6-4831-8dac-bc34d261158d&sip_auth_uri=sip%3A{d}%3A5060"
    "&sip_contact_user={u}&sip_contact_host=127.0.0.1&sip_to_user={u}&sip_to_host={d}&sip_via_protocol=udp"
    "&sip_from_user={u}&sip_from_host={d}&sip_call_id=1-1750%40127.0.0.1&sip_request_host={d}&sip_auth_qop=auth"
    "&sip_auth_cnonce=6b8b4567&sip_auth_nc=00000001&sip_auth_response=c1f0102d15f1f9171e3e9d9c81490dd6"
    "&sip_auth_method=REGISTER&client_port=5111&key=id&user={u}&domain={d}&ip=127.0.0.1"
)


def _request(user: str, domain: str, path: str, n: int) -> bytes:
    body = _BODY.format(u=user, d=domain, n=n).encode()
    auth = base64.b64encode(f"{CREDS[0]}:{CREDS[1]}".encode()).decode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: freeswitch-xml/1.0\r\nAccept: */*\r\n"
            f"Authorization: Basic {auth}\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n\r\n")
    return head.encode() + body


def _requests(path: str, count: int = 4000, seed: int = 7) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        t, e = rnd.randrange(TENANTS), rnd.randrange(PER_TENANT)
        user = f"user{e}" if rnd.random() < 0.8 else str(201 + e)
        out.append(_request(user, f"c{t}.bench.example.com", path, i))
    return out


# ---------------------------------------------------------------------------------------------- fsd server
def _serve(conn, dsn: str, cpu: int, kind: str) -> None:
    from gevent import monkey

    monkey.patch_all()
    import psycogreen.gevent

    psycogreen.gevent.patch_psycopg()
    import logging

    import gevent
    from prometheus_client import CollectorRegistry

    from fsd.directory import Directory
    from fsd.metrics import Metrics
    from fsd.store.pool import Pool
    from fsd.web.fastlane import FastLaneServer
    from fsd.web.server import Dispatcher, HttpServer
    from fsd.web.xmlcurl import XmlCurlApp

    logging.basicConfig(level=logging.WARNING)
    _pin(cpu)
    metrics = Metrics(registry=CollectorRegistry())
    pool = Pool(dsn=dsn, maxconn=10)
    directory = Directory(pool=pool, metrics=metrics)
    t0 = time.perf_counter()
    users = directory.warm()
    warm_s = time.perf_counter() - t0
    app = XmlCurlApp(directory=directory, user=CREDS[0], password=CREDS[1], metrics=metrics)
    dispatcher = Dispatcher()
    dispatcher.mount(PATH, app)
    if kind == "pywsgi":  # fsd's HttpServer, the app mounted on the Dispatcher
        http = HttpServer(host="127.0.0.1", port=0, app=dispatcher)
        http.start()
        port = http.port
    elif kind == "front":  # the same, behind FastLaneServer with inline answers off (a greenlet per lookup)
        front = FastLaneServer(("127.0.0.1", 0), dispatcher, xmlcurl=app, log=None, inline=False)
        front.start()
        port = front.server_port
    else:  # the same, behind FastLaneServer (cached lookups answered in its accept loop)
        front = FastLaneServer(("127.0.0.1", 0), dispatcher, xmlcurl=app, log=None)
        front.start()
        port = front.server_port
    sample = directory.lookup(_parse_for_size())[0]
    conn.send((port, users, warm_s, len(sample)))
    gevent.wait()


def _parse_for_size():
    from fsd.directory import parse

    return parse(_request("user1", "c1.bench.example.com", PATH, 1).split(b"\r\n\r\n", 1)[1])


# ---------------------------------------------------------------------------------------------- load
def _load(conn, port: int, path: str, concurrency: int, duration: float, rate: float | None, cpu: int) -> None:
    import gevent
    import gevent.pool
    import gevent.socket

    _pin(cpu)
    reqs = _requests(path)
    addr = ("127.0.0.1", port)
    lat: list[float] = []
    errors = [0]
    perf = time.perf_counter

    def one(req: bytes) -> None:
        t0 = perf()
        try:
            s = gevent.socket.create_connection(addr)
            s.sendall(req)
            first = s.recv(65536)
            data = first
            while data:
                data = s.recv(65536)
            s.close()
            if not first.startswith(b"HTTP/1.1 200"):
                errors[0] += 1
                return
        except OSError:
            errors[0] += 1
            return
        lat.append(perf() - t0)

    start = perf()
    stop_at = start + duration
    if rate is None:
        def worker(i: int) -> None:
            k = i
            while perf() < stop_at:
                one(reqs[k % len(reqs)])
                k += concurrency

        gevent.joinall([gevent.spawn(worker, i) for i in range(concurrency)])
    else:
        group = gevent.pool.Pool(concurrency)
        interval = 1.0 / rate
        k = 0
        while True:
            due = start + k * interval
            if due >= stop_at:
                break
            delay = due - perf()
            if delay > 0:
                gevent.sleep(delay)
            group.spawn(one, reqs[k % len(reqs)])
            k += 1
        group.join()
    elapsed = perf() - start
    conn.send((len(lat), errors[0], elapsed, lat))


def _run_load(port: int, path: str, *, concurrency: int, duration: float, rate: float | None = None) -> dict:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_load, args=(child, port, path, concurrency, duration, rate, 1), daemon=True)
    p.start()
    child.close()
    n, errors, elapsed, lat = parent.recv()
    p.join(10)
    return {"rate": n / elapsed, "errors": errors, "p50_ms": _percentile(lat, 50) * 1000,
            "p99_ms": _percentile(lat, 99) * 1000, "n": n}


def _ab(port: int, path: str, *, concurrency: int, duration: float, tmp: str) -> dict | None:
    """ApacheBench (apache2-utils): a C load generator, new connection per request (no -k), pinned to CPU 1.
    Its request body is one fixed sip_auth POST (one user: every lookup is a cache hit anyway)."""
    ab = shutil.which("ab")
    if ab is None:
        return None
    body_file = os.path.join(tmp, "body.txt")
    with open(body_file, "wb") as f:
        f.write(_requests(path, count=1)[0].split(b"\r\n\r\n", 1)[1])
    auth = base64.b64encode(f"{CREDS[0]}:{CREDS[1]}".encode()).decode()
    cmd = ["taskset", "-c", "1", ab, "-q", "-r", "-c", str(concurrency), "-t", str(duration), "-n", "10000000",
           "-p", body_file, "-T", "application/x-www-form-urlencoded", "-H", f"Authorization: Basic {auth}",
           f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout  # noqa: S603
    res: dict = {"rate": 0.0, "p50_ms": float("nan"), "p99_ms": float("nan"), "errors": 0}
    for line in out.splitlines():
        parts = line.split()
        if line.startswith("Requests per second:"):
            res["rate"] = float(parts[3])
        elif line.startswith(("Failed requests:", "Non-2xx responses:")):
            res["errors"] += int(parts[-1])
        elif line.strip().startswith("50%"):
            res["p50_ms"] = float(parts[1])
        elif line.strip().startswith("99%"):
            res["p99_ms"] = float(parts[1])
    return res


def _max_load(port: int, tmp: str) -> tuple[dict, str]:
    res = _ab(port, PATH, concurrency=CONCURRENCY, duration=DURATION_S, tmp=tmp)
    if res is not None:
        return res, "ab"
    return _run_load(port, PATH, concurrency=CONCURRENCY, duration=DURATION_S), "python-gevent"


# ---------------------------------------------------------------------------------------------- nginx
def _nginx(tmp: str, size: int) -> tuple[subprocess.Popen, int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = os.path.join(tmp, "www")
    os.makedirs(os.path.join(root, "freeswitch"), exist_ok=True)
    with open(os.path.join(root, "freeswitch", "directory"), "wb") as f:
        f.write(b"<?xml version=\"1.0\"?>\n<document type=\"freeswitch/xml\">" + b" " * max(0, size - 56) +
                b"</document>\n")
    for d in (tmp, root, os.path.join(root, "freeswitch")):  # nginx's worker runs as nobody
        os.chmod(d, 0o755)  # noqa: S103 - a throw-away benchmark directory
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_timeout 0;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        default_type text/xml;
        # the static module refuses POST (405): answer it with the file, as an error page
        error_page 405 =200 $uri;
    }}
}}
""")
    proc = subprocess.Popen(["taskset", "-c", "0", NGINX, "-c", conf, "-p", tmp],  # noqa: S603
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nginx did not start")


def _nginx_worker(master: int) -> int | None:
    """The pid of nginx's one worker (the master only waits)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{master}/task/{master}/children") as f:
                kids = f.read().split()
        except OSError:
            return None
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    return None


def _cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), None if unknown."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------- main
def _start_fsd(dsn: str, kind: str):
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_serve, args=(child, dsn, 0, kind), daemon=True)
    proc.start()
    child.close()
    port, users, warm_s, doc_size = parent.recv()
    return proc, port, users, warm_s, doc_size


def run() -> list[dict]:
    """Servers: fsd with FastLaneServer (inline on and off), with HttpServer (pywsgi), nginx; all on
    CPU 0 and all up at once, measured in alternating rounds (the median round counts) so that a busy machine hurts them
    alike."""
    import socket

    from fsd.store.cluster import PgCluster
    from fsd.store.migrate import migrate

    tmp = tempfile.mkdtemp(prefix="fsd-bench-dir-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        pg_port = s.getsockname()[1]
    cluster = PgCluster(datadir=os.path.join(tmp, "pg"), port=pg_port)
    cluster.start()
    procs = []
    nginx = None
    try:
        import psycopg2

        c = psycopg2.connect(cluster.dsn())
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute("CREATE DATABASE fsd_bench")
        c.close()
        dsn = cluster.dsn("fsd_bench")
        migrate(dsn=dsn)
        _seed(dsn)

        ports = {}
        pids: dict[str, int | None] = {}
        for kind in ("lane", "front", "pywsgi"):
            proc, ports[kind], users, warm_s, doc_size = _start_fsd(dsn, kind)
            procs.append(proc)
            pids[kind] = proc.pid
        nginx, ports["nginx"] = _nginx(tmp, doc_size)
        pids["nginx"] = _nginx_worker(nginx.pid)
        for port in ports.values():
            _run_load(port, PATH, concurrency=CONCURRENCY, duration=1.0)  # warm-up

        rounds: dict[str, list[dict]] = {k: [] for k in ports}
        tool = "python-gevent"
        order = list(ports)
        for r in range(ROUNDS):
            for kind in order[r % len(order):] + order[:r % len(order)]:
                cpu0 = _cpu_s(pids[kind])
                res, tool = _max_load(ports[kind], tmp)
                cpu1 = _cpu_s(pids[kind])
                served = res["rate"] * DURATION_S
                res["cpu_us"] = (cpu1 - cpu0) / served * 1e6 if served and cpu0 is not None and cpu1 is not None \
                    else float("nan")
                rounds[kind].append(res)
        best = {k: sorted(v, key=lambda x: x["rate"])[len(v) // 2] for k, v in rounds.items()}
        cpu_us = {k: _percentile([r["cpu_us"] for r in v], 50) for k, v in rounds.items()}
        gen = {k: _run_load(p, PATH, concurrency=CONCURRENCY, duration=GEN_S) for k, p in ports.items()}
        steady = {k: _run_load(p, PATH, concurrency=CONCURRENCY, duration=STEADY_S, rate=STEADY_RATE)
                  for k, p in ports.items()}
    finally:
        if nginx is not None:
            nginx.send_signal(signal.SIGQUIT)
            try:
                nginx.wait(5)
            except subprocess.TimeoutExpired:
                nginx.kill()
        for proc in procs:
            proc.terminate()
            proc.join(5)
        cluster.destroy()
        shutil.rmtree(tmp, ignore_errors=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    scen = (f"{TENANTS * PER_TENANT} users in {TENANTS} tenants, new TCP connection per request, {doc_size} B answer, "
            f"median of {ROUNDS} rounds of {DURATION_S:g} s, load average {load:.1f} on {os.cpu_count()} CPUs")
    names = {"lane": "fsd FastLaneServer", "front": "fsd FastLaneServer, inline answers off",
             "pywsgi": "fsd HttpServer (pywsgi) + Dispatcher",
             "nginx": "nginx 1 worker, static file of the same size"}
    rows = []
    for kind in ports:
        b, g, st = best[kind], gen[kind], steady[kind]
        unit = "requests/s" if kind == "nginx" else "lookups/s"
        row = {"figure": f"{names[kind]}: throughput, concurrency {CONCURRENCY}, load by {tool} ({scen})",
               "value": round(b["rate"]), "unit": unit, "errors": b["errors"]}
        if kind == "nginx":
            row.update(anchor=None, ratio=None)
        else:
            row.update(anchor=5000, ratio=round(b["rate"] / 5000, 3), goal=">= 5000")
        rows.append(row)
        if kind != "nginx":
            ratio = b["rate"] / best["nginx"]["rate"]
            rows.append({"figure": f"{names[kind]} / nginx throughput", "value": round(ratio, 3), "unit": "x",
                         "anchor": 0.4, "ratio": round(ratio / 0.4, 3), "goal": ">= 0.4"})
        # CPU time the server process spent per answered request during the ab rounds (user + system, from
        # /proc): unlike throughput it hardly depends on what else the machine is doing.
        rows.append({"figure": f"{names[kind]}: server CPU time per request ({tool} rounds, median)",
                     "value": round(cpu_us[kind], 1), "unit": "us", "anchor": None, "ratio": None})
        if kind != "nginx" and cpu_us[kind] > 0:
            rows.append({"figure": f"{names[kind]} / nginx, by CPU time per request (nginx us / fsd us)",
                         "value": round(cpu_us["nginx"] / cpu_us[kind], 3), "unit": "x", "anchor": None,
                         "ratio": None})
        rows += [
            {"figure": f"{names[kind]}: p50 / p99 at concurrency {CONCURRENCY} ({tool})",
             "value": f"{b['p50_ms']:.3f} / {b['p99_ms']:.3f}", "unit": "ms", "anchor": None, "ratio": None},
            {"figure": f"{names[kind]}: throughput, concurrency {CONCURRENCY}, python-gevent generator, "
                       "random users", "value": round(g["rate"]), "unit": unit, "anchor": None, "ratio": None,
             "errors": g["errors"]},
            {"figure": f"{names[kind]}: p50 at {STEADY_RATE}/s offered", "value": round(st["p50_ms"], 3),
             "unit": "ms", "anchor": None, "ratio": None, "achieved_rate": round(st["rate"])},
            {"figure": f"{names[kind]}: p99 at {STEADY_RATE}/s offered", "value": round(st["p99_ms"], 3),
             "unit": "ms", "anchor": 5.0 if kind != "nginx" else None,
             "ratio": round(st["p99_ms"] / 5.0, 3) if kind != "nginx" else None,
             "goal": "< 5 ms" if kind != "nginx" else None, "errors": st["errors"],
             "achieved_rate": round(st["rate"])},
        ]
    rows.append({"figure": f"directory cache warm-up ({users} users rendered)", "value": round(warm_s, 3),
                 "unit": "s", "anchor": None, "ratio": None})
    return rows


if __name__ == "__main__":
    for row in run():
        extra = {k: v for k, v in row.items() if k not in ("figure", "value", "unit")}
        print(f"{row['figure']}: {row['value']} {row['unit']}  {extra}")
    sys.exit(0)
