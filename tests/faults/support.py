"""Shared pieces of the fault-injection, multi-node and resilience tests: `fsd serve` subprocesses, a cuttable
TCP proxy (to a switch's ESL port or to PostgreSQL), and a small company fixture built through the service layer."""

from __future__ import annotations

import ctypes
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import gevent
from gevent.server import StreamServer
from gevent.socket import create_connection

from fsd.services import Actor, Services
from fsd.sim import Phone
from tests.helpers import free_port, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SYS = Actor.system("faults")
_seq = itertools.count(1)


def _die_with_parent() -> None:
    """In the child: SIGKILL when the test process dies (a test killed by its timeout leaves nothing)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class FsdProcess:
    """One `fsd serve` in its own process (ports and node name of its own), log in a file."""

    def __init__(self, *, dsn: str, switches: dict[str, int], node: str, scale: float = 1.0,
                 xmlcurl_password: str = "xc-secret", extra: dict | None = None):  # noqa: S107
        self.node = node
        self.http_port, self.outbound_port = free_port(), free_port()
        self.storage = tempfile.mkdtemp(prefix=f"fsd-{node}-")
        self.logpath = os.path.join(self.storage, "fsd.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FSD_")}
        env.update({
            "FSD_DATABASE_URL": dsn, "FSD_HTTP_PORT": str(self.http_port),
            "FSD_OUTBOUND_PORT": str(self.outbound_port),
            "FSD_ESL_SWITCHES": ",".join(f"{n}=127.0.0.1:{p}" for n, p in switches.items()),
            "FSD_XMLCURL_PASSWORD": xmlcurl_password, "FSD_CALLS_STORAGE_DIR": self.storage,
            "FSD_NODE_NAME": node, "FSD_CALLS_TIME_SCALE": str(scale), "FSD_HTTP_SECRET_KEY": "k" * 32,
            "FSD_SMTP_PORT": str(free_port()), "FSD_OUTBOUND_DRAIN_TIMEOUT_S": "3",
            "FSD_DATABASE_POOL_MAX": "30",
        })
        env.update(extra or {})
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> FsdProcess:
        self._log = open(self.logpath, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "fsd", "serve"], env=self.env, cwd=ROOT,  # noqa: S603
                                     stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def get(self, path: str, timeout: float = 3.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as r:  # noqa: S310
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        req = urllib.request.Request(self.url(path), data=body, method=method,  # noqa: S310
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def ready(self) -> bool:
        try:
            return self.get("/readyz", timeout=1)[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ok():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"fsd {self.node} exited rc={self.proc.returncode}: {self.log_text()[-3000:]}")
            return self.ready()

        wait_for(ok, timeout=timeout, interval=0.05, message=f"fsd {self.node} ready")

    def metric(self, name_and_labels: str) -> float | None:
        status, body = self.get("/metrics")
        for line in body.splitlines():
            if line.startswith(name_and_labels + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def log_text(self) -> str:
        try:
            with open(self.logpath, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None


def pipe(a, b, gate=None) -> None:
    """Copy socket a → b until either side closes, then close both; with `gate` (an Event), each chunk waits
    for the gate to be set before it is forwarded."""
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            if gate is not None:
                gate.wait()
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass


class TcpProxy:
    """A loopback TCP proxy that can be cut: open connections dropped, new ones refused (closed at once).

    `gate`: an Event a subclass may set up; while it is clear, client → server bytes are held (not forwarded)."""

    gate = None

    def __init__(self, port: int):
        self.target = ("127.0.0.1", port)
        self.conns: list = []
        self.up = True
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.server_port

    def _handle(self, sock, _addr):
        if not self.up:
            sock.close()
            return
        try:
            up = create_connection(self.target)
        except OSError:
            sock.close()
            return
        self.conns += [sock, up]
        g = gevent.spawn(pipe, up, sock)
        pipe(sock, up, self.gate)
        g.join()

    def cut(self) -> None:
        self.up = False
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass
        self.conns.clear()

    def restore(self) -> None:
        self.up = True

    def stop(self) -> None:
        self.cut()
        self.server.stop()


class Company:
    """A tenant with employees, departments and numbers made through the service layer."""

    def __init__(self, pool, *, max_users: int = 200, timezone: str | None = None, language: str | None = None):
        """`timezone` and `language` of the company: the service's defaults when not given."""
        self.pool = pool
        self.svc = Services(pool=pool)
        n = next(_seq)
        self.domain = f"f{n}-{os.getpid()}.example"
        settings = {k: v for k, v in (("timezone", timezone), ("language", language)) if v is not None}
        self.tenant = self.svc.tenants.create(SYS, name=f"Faults {n}", domain=self.domain, max_users=max_users,
                                              **settings)
        self.tid = self.tenant.id
        self._did = itertools.count(1)
        self.passwords: dict[int, str] = {}

    def employee(self, name: str, ext: str):
        c = self.svc.employees.create(SYS, self.tid, name=name, extension=ext)
        self.passwords[c.employee.id] = c.password
        return c.employee

    def department(self, name: str, members, **kw):
        return self.svc.departments.create(SYS, self.tid, name=name, members=[m.id for m in members], **kw)

    def number(self, **kw):
        did = f"+7495{self.tid % 1000:03d}{next(self._did):04d}"
        return self.svc.numbers.create(SYS, self.tid, did=did, **kw)

    def rows(self, sql: str, params=()):
        with self.pool.transaction() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    def history(self, call_uuid: str):
        r = self.rows("SELECT * FROM calls WHERE call_uuid = %s", (call_uuid,))
        return r[0] if r else None


def phone_for(switch, company: Company, emp, behaviour=None, **kw) -> Phone:
    """The employee's phone on `switch`, known by the extension fsd dials (user/<ext>@<domain>)."""
    return switch.add_phone(Phone(emp.extension, company.domain, password=company.passwords.get(emp.id, "x"),
                                  behaviour=behaviour, **kw))


def leg_intervals(switch, user: str, domain: str) -> list[tuple[float, float]]:
    """(created, ended) in simulated seconds of every leg the switch sent to user@domain's phone."""
    phone = switch.phones.get(f"{user}@{domain}")
    out = []
    for u in (phone.calls if phone else []):
        ch = switch.channel(u)
        if ch is None:
            continue
        created = ch.times["Channel-Created-Time"] / 1e6
        ended = ch.times.get("Channel-Hangup-Time") or 0
        out.append((created, ended / 1e6 if ended else float("inf")))
    return out
