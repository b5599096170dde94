"""A private PostgreSQL cluster run from Debian's server binaries (tests and `make demo`).

PostgreSQL refuses to run as root, so when we are root the cluster's files belong to the
`postgres` system user and the server runs as that user. The server listens on a unix socket
inside the cluster directory and, if asked, on a TCP port on loopback.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import subprocess
import time

from fsd.errors import StoreError

log = logging.getLogger(__name__)


def find_pg_bindir() -> str:
    """The directory holding initdb/pg_ctl/postgres (newest Debian version first)."""
    env = os.environ.get("FSD_PG_BINDIR")
    if env:
        return env
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
        reverse=True,
    )
    for c in candidates:
        if os.path.exists(os.path.join(c, "initdb")):
            return c
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    raise StoreError("PostgreSQL server binaries not found (apt-get install postgresql)")


class PgCluster:
    """One private cluster in `datadir`. `start()` initialises it on first use."""

    def __init__(self, *, datadir: str, port: int | None = None, bindir: str | None = None):
        self.datadir = os.path.abspath(datadir)
        self.port = port or 5432
        self.tcp = port is not None
        self.bindir = bindir or find_pg_bindir()
        self.sockdir = os.path.join(self.datadir, "sock")
        self._run_as: str | None = "postgres" if os.geteuid() == 0 else None

    # -- helpers -----------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return os.path.join(self.bindir, name)

    def _run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        kw.setdefault("check", True)
        kw.setdefault("capture_output", True)
        if self._run_as:
            kw["user"] = self._run_as
            kw["group"] = pwd.getpwnam(self._run_as).pw_gid
            kw["extra_groups"] = []
        return subprocess.run(args, **kw)  # noqa: PLW1510

    def _chown(self, path: str) -> None:
        if self._run_as:
            pw = pwd.getpwnam(self._run_as)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    @property
    def pgdata(self) -> str:
        return os.path.join(self.datadir, "data")

    @property
    def user(self) -> str:
        return self._run_as or pwd.getpwuid(os.geteuid()).pw_name

    def dsn(self, dbname: str = "postgres") -> str:
        host = "127.0.0.1" if self.tcp else self.sockdir
        return f"host={host} port={self.port} dbname={dbname} user={self.user}"

    # -- lifecycle ---------------------------------------------------------------------------
    def initialized(self) -> bool:
        return os.path.exists(os.path.join(self.pgdata, "PG_VERSION"))

    def init(self) -> None:
        os.makedirs(self.datadir, exist_ok=True)
        os.makedirs(self.sockdir, exist_ok=True)
        self._chown(self.datadir)
        self._chown(self.sockdir)
        self._ensure_traversable()
        self._run(
            [self._bin("initdb"), "-D", self.pgdata, "-A", "trust", "-E", "UTF8",
             "--locale=C.UTF-8", "-U", self.user, "--no-sync"],
        )
        with open(os.path.join(self.pgdata, "postgresql.auto.conf"), "a") as f:
            f.write(
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 300\nshared_buffers = 64MB\n"
                f"unix_socket_directories = '{self.sockdir}'\n"
                f"listen_addresses = '{'127.0.0.1' if self.tcp else ''}'\n"
                f"port = {self.port}\n"
            )

    def _ensure_traversable(self) -> None:
        """The server user must be able to reach the data directory through every parent."""
        if not self._run_as:
            return
        p = os.path.dirname(self.datadir)
        while p not in ("/", ""):
            st = os.stat(p)
            if not st.st_mode & 0o001:
                os.chmod(p, st.st_mode | 0o001)
            p = os.path.dirname(p)

    def running(self) -> bool:
        self._ensure_traversable()
        r = self._run([self._bin("pg_ctl"), "-D", self.pgdata, "status"], check=False)
        return r.returncode == 0

    def start(self, timeout: float = 30.0) -> None:
        if not self.initialized():
            self.init()
        if self.running():
            return
        logfile = os.path.join(self.datadir, "postgres.log")
        if not os.path.exists(logfile):
            open(logfile, "a").close()
            self._chown(logfile)
        r = self._run(
            [self._bin("pg_ctl"), "-D", self.pgdata, "-l", logfile, "-w", "-t", str(int(timeout)),
             "-o", f"-p {self.port}", "start"],
            check=False,
        )
        if r.returncode != 0:
            tail = ""
            try:
                with open(logfile) as f:
                    tail = f.read()[-2000:]
            except OSError:
                pass
            raise StoreError(f"postgres did not start: {r.stderr.decode(errors='replace')} {tail}")
        log.info("pg_cluster=started datadir=%s port=%s", self.datadir, self.port)

    def stop(self, mode: str = "fast") -> None:
        if self.initialized() and self.running():
            self._run([self._bin("pg_ctl"), "-D", self.pgdata, "-m", mode, "-w", "stop"], check=False)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run(  # noqa: PLW1510
                [self._bin("pg_isready"), "-h", self.sockdir if not self.tcp else "127.0.0.1",
                 "-p", str(self.port)], capture_output=True,
            )
            if r.returncode == 0:
                return
            time.sleep(0.05)
        raise StoreError("postgres not ready")

    def destroy(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.datadir, ignore_errors=True)
