"""`make demo`: a living virtual PBX on one machine, without FreeSWITCH.

Starts a private PostgreSQL (data under var/), migrates, loads the demo company «Ромашка» (once),
starts `fsd serve` and `fsd sim` (the FreeSWITCH emulator: phones register through fsd's
directory, callers arrive at random on both numbers, some hang up early, some order a callback,
some leave voicemail, members answer after random delays), prints the cabinet URL with admin
credentials and a live summary. Ctrl-C stops everything and leaves nothing running. A second run
reuses the data and starts in seconds.
"""

from gevent import monkey

monkey.patch_all()

import psycogreen.gevent  # noqa: E402

psycogreen.gevent.patch_psycopg()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

import gevent  # noqa: E402

from fsd.paths import ROOT  # noqa: E402

XMLCURL_PASSWORD = "demo-xmlcurl"  # noqa: S105 - a local demo's credentials, printed on purpose


def free_port(preferred: int | None = None) -> int:
    if preferred:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Demo:
    def __init__(self, *, var: str, time_scale: float = 1.0, http_port: int | None = None, seed: int = 7,
                 quiet: bool = False):
        self.var = os.path.abspath(var)
        self.time_scale = time_scale
        self.seed = seed
        self.quiet = quiet
        self.state_path = os.path.join(self.var, "demo.json")
        self.state: dict = {}
        self.cluster = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.http_port_wanted = http_port

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    # -- database ----------------------------------------------------------------------------
    def start_db(self) -> str:
        import psycopg2

        from fsd.store.cluster import PgCluster
        from fsd.store.migrate import migrate

        os.makedirs(self.var, exist_ok=True)
        if os.path.exists(self.state_path):
            with open(self.state_path) as f:
                self.state = json.load(f)
        port = free_port(self.state.get("pg_port") or 54329)
        self.state["pg_port"] = port
        self.cluster = PgCluster(datadir=os.path.join(self.var, "pg"), port=port)
        t0 = time.monotonic()
        self.cluster.start()
        conn = psycopg2.connect(self.cluster.dsn())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = 'fsd'")
            if cur.fetchone() is None:
                cur.execute("CREATE DATABASE fsd")
        conn.close()
        dsn = self.cluster.dsn("fsd")
        migrate(dsn=dsn)
        self.say(f"PostgreSQL: {self.cluster.pgdata} (port {port}, ready in {time.monotonic() - t0:.1f}s)")
        return dsn

    def load_company(self, dsn: str) -> dict:
        from fsd import demo_data
        from fsd.services import Services
        from fsd.store import repos
        from fsd.store.pool import Pool

        pool = Pool(dsn=dsn, maxconn=2)
        try:
            company = demo_data.load(Services(pool=pool))
            if company is not None:
                with pool.transaction() as cur:
                    repos.gateway_upsert(cur, name="trunk", proxy="127.0.0.1:5080", register=False)
                self.state["company"] = {"domain": company.domain, "admin": company.admin_login,
                                         "passwords": company.passwords, "extensions": company.extensions,
                                         "dids": company.dids}
                self.save_state()
                self.say("Demo company «Ромашка» created.")
            elif "company" not in self.state:
                raise SystemExit("var/ holds a demo database but not its demo.json: remove var/ and run again")
        finally:
            pool.close()
        return self.state["company"]

    def save_state(self) -> None:
        tmp = self.state_path + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(self.state, f, ensure_ascii=False, indent=2)
        os.replace(tmp, self.state_path)

    # -- processes ---------------------------------------------------------------------------
    def scenario(self, company: dict, esl_port: int, outbound_port: int, http_port: int) -> dict:
        rnd = random.Random(self.seed)
        phones = []
        for login in company["passwords"]:
            roll = rnd.random()
            behaviour = {"noanswer": {}} if roll < 0.15 else {"answer": {"after": round(rnd.uniform(2, 14), 1)}}
            phones.append({"user": login, "domain": company["domain"], "password": company["passwords"][login],
                           "behaviour": behaviour, "hangup_after": round(rnd.uniform(20, 90))})
        main, sales = company["dids"][0].lstrip("+"), company["dids"][1].lstrip("+")
        traffic = [
            # the main number (IVR: 1 sales, 2 support, 3 accounting); in sales, after 20 s of waiting the
            # caller hears the offer: 1 callback, 2 stay, 3 voicemail
            {"did": main, "calls_per_second": 1 / 16, "caller": "7916{seq:07d}", "caller_name": "Клиент",
             "script": {"hangup_after": 150, "prompt_digits": ["1", "2"]}},
            {"did": main, "calls_per_second": 1 / 30, "caller": "7999{seq:07d}", "start_after": 2,
             "script": {"hangup_after": 150, "prompt_digits": ["1", "1"]}},
            {"did": main, "calls_per_second": 1 / 50, "caller": "7977{seq:07d}", "start_after": 5,
             "script": {"hangup_after": 150, "prompt_digits": ["1", "3"], "record_seconds": 5}},
            {"did": main, "calls_per_second": 1 / 34, "caller": "7925{seq:07d}", "start_after": 4,
             "script": {"hangup_after": 150, "prompt_digits": ["2"]}},
            {"did": main, "calls_per_second": 1 / 58, "caller": "7903{seq:07d}", "start_after": 9,
             "script": {"hangup_after": 150, "prompt_digits": ["3"]}},
            # the sales number, on the company schedule
            {"did": sales, "calls_per_second": 1 / 22, "caller": "7985{seq:07d}", "start_after": 1,
             "script": {"hangup_after": 100, "prompt_digits": ["1"], "record_seconds": 4}},
            # callers who give up early
            {"did": sales, "calls_per_second": 1 / 38, "caller": "7911{seq:07d}", "start_after": 3,
             "script": {"hangup_after": 8}},
        ]
        for gen in traffic:
            gen["context"] = "fsd-public"  # as freeswitch-conf/dialplan/fsd.xml hands DID calls to fsd
        return {
            "switch": {"hostname": "demo-fs1", "esl_port": esl_port, "password": "ClueCon",
                       "outbound_target": f"127.0.0.1:{outbound_port}",
                       "xml_curl_url": f"http://127.0.0.1:{http_port}/freeswitch/directory",
                       "xml_curl_credentials": f"freeswitch:{XMLCURL_PASSWORD}", "time_scale": self.time_scale,
                       "domain": company["domain"], "keep_events": 5000},
            "phones": phones,
            "gateways": [{"name": "trunk", "behaviour": {"answer": {"after": 6}}}],
            "traffic": traffic,
            "run_for": 10**9,  # until the demo stops it
        }

    def spawn(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        log = open(os.path.join(self.var, f"{name}.log"), "ab")
        p = subprocess.Popen([sys.executable, "-m", *args], env=env, cwd=ROOT, stdout=log, stderr=log,
                             start_new_session=True)
        self.procs[name] = p
        return p

    def http(self, path: str, timeout: float = 2.0) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=timeout) as r:  # noqa: S310
                return r.read().decode()
        except OSError:
            return None

    def start(self) -> None:
        dsn = self.start_db()
        company = self.load_company(dsn)
        self.http_port = free_port(self.http_port_wanted or self.state.get("http_port") or 8080)
        esl_port = free_port(self.state.get("esl_port") or 18021)
        outbound_port = free_port(self.state.get("outbound_port") or 18084)
        self.state.update(http_port=self.http_port, esl_port=esl_port, outbound_port=outbound_port)
        self.save_state()
        smtp_port = free_port(self.state.get("smtp_port") or 18025)
        self.state["smtp_port"] = smtp_port
        storage = os.path.join(self.var, "storage")
        os.makedirs(storage, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FSD_")}
        env.update({
            "FSD_DATABASE_URL": dsn, "FSD_HTTP_PORT": str(self.http_port), "FSD_OUTBOUND_PORT": str(outbound_port),
            "FSD_ESL_SWITCHES": f"fs1=127.0.0.1:{esl_port}", "FSD_ESL_PASSWORD": "ClueCon",
            "FSD_XMLCURL_PASSWORD": XMLCURL_PASSWORD, "FSD_CALLS_STORAGE_DIR": storage,
            "FSD_HTTP_PUBLIC_URL": f"http://127.0.0.1:{self.http_port}",
            "FSD_HTTP_SECRET_KEY": self.state.setdefault("secret_key", os.urandom(16).hex()),
            "FSD_CALLS_TIME_SCALE": str(self.time_scale), "FSD_OUTBOUND_DRAIN_TIMEOUT_S": "5",
            "FSD_SMTP_PORT": str(smtp_port), "FSD_NODE_NAME": "demo",
        })
        self.save_state()
        # letters (credentials, voicemail) go to a local SMTP sink: var/mail.log
        self.spawn("mail", ["aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Debugging", "-l",
                            f"127.0.0.1:{smtp_port}"], env)
        self.spawn("fsd", ["fsd", "serve"], env)
        deadline = time.monotonic() + 60
        while self.http("/healthz") is None:
            if self.procs["fsd"].poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"fsd serve did not start; see {self.var}/fsd.log")
            gevent.sleep(0.1)
        path = os.path.join(self.var, "demo-scenario.json")
        with open(path, "w") as f:
            json.dump(self.scenario(company, esl_port, outbound_port, self.http_port), f, ensure_ascii=False,
                      indent=1)
        self.spawn("sim", ["fsd.sim", "--scenario", path], env)
        self.say("")
        self.say(f"Cabinet:  http://127.0.0.1:{self.http_port}/  — sign in as "
                 f"{company['admin']}@{company['domain']} / {company['passwords'][company['admin']]}")
        self.say(f"Metrics:  http://127.0.0.1:{self.http_port}/metrics")
        self.say(f"Numbers:  {', '.join(company['dids'])} (IVR on the first, the sales schedule on the second)")
        self.say(f"Logs:     {self.var}/fsd.log, {self.var}/sim.log, letters in {self.var}/mail.log "
                 "— Ctrl-C stops everything")
        self.say("")

    # -- summary -----------------------------------------------------------------------------
    def summary(self) -> dict[str, float]:
        text = self.http("/metrics") or ""
        out = {"in_progress": 0.0, "waiting": 0.0, "answered": 0.0, "callbacks": 0.0, "voicemails": 0.0,
               "calls": 0.0}
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            name, _, value = line.rpartition(" ")
            try:
                v = float(value)
            except ValueError:
                continue
            base = name.split("{", 1)[0]
            if base == "fsd_queue_callers_waiting":
                out["waiting"] += v
            elif base == "fsd_calls_in_progress":
                out["in_progress"] += v
            elif base == "fsd_calls_total":
                out["calls"] += v
                if 'result="answered"' in name:
                    out["answered"] += v
                if 'result="callback_requested"' in name:
                    out["callbacks"] += v
            elif base == "fsd_voicemails_total":
                out["voicemails"] += v
        return out

    def run(self, duration: float | None = None) -> int:
        stop = gevent.event.Event()
        gevent.signal_handler(signal.SIGINT, stop.set)
        gevent.signal_handler(signal.SIGTERM, stop.set)
        end = time.monotonic() + duration if duration else None
        while not stop.is_set():
            for name, p in self.procs.items():
                if p.poll() is not None:
                    self.say(f"{name} exited with {p.returncode}; see {self.var}/{name}.log")
                    stop.set()
            s = self.summary()
            self.say(f"[{time.strftime('%H:%M:%S')}] waiting {s['waiting']:.0f}  calls {s['calls']:.0f}  "
                     f"answered {s['answered']:.0f}  callbacks {s['callbacks']:.0f}  "
                     f"voicemails {s['voicemails']:.0f}")
            if end is not None and time.monotonic() >= end:
                break
            stop.wait(5.0 if end is None else min(5.0, max(0.1, end - time.monotonic())))
        return 0

    def stop(self) -> None:
        for name in ("sim", "fsd", "mail"):
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name in ("sim", "fsd", "mail"):
            p = self.procs.get(name)
            if p is None:
                continue
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        if self.cluster is not None:
            self.cluster.stop()
        here = os.getcwd() + os.sep
        where = os.path.relpath(self.var) if self.var.startswith(here) else self.var
        self.say(f"Demo stopped; data kept in {where}/ (remove it to start afresh).")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="fsd.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--var", default=os.path.join(ROOT, "var"), help="where the demo keeps its data")
    ap.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    ap.add_argument("--time-scale", type=float, default=1.0, help="0.1 runs the demo ten times faster")
    ap.add_argument("--http-port", type=int, default=None)
    args = ap.parse_args(argv)
    demo = Demo(var=args.var, time_scale=args.time_scale, http_port=args.http_port)
    try:
        demo.start()
        return demo.run(args.duration)
    finally:
        demo.stop()


if __name__ == "__main__":
    raise SystemExit(main())
