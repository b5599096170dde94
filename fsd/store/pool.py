"""A gevent-safe PostgreSQL connection pool.

psycopg2 is made cooperative by `psycogreen.gevent.patch_psycopg()` (done at process start, in
fsd.cli / tests' conftest). A greenlet checks a connection out for one unit of work with
`pool.transaction()` (commit on success, rollback on error), `pool.autocommit()` (single statements,
each its own transaction: one round trip) or `pool.connection()`; a connection
that saw an error is discarded rather than returned, so a broken socket never poisons the pool.
Each connection remembers the server-side prepared statements of its session (fsd.store.prepared):
a new or reconnected connection has none; `Pool(prepare=False)` turns them off.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import gevent
import gevent.lock
import psycopg2
import psycopg2.extensions
import psycopg2.extras

from fsd.errors import StoreError

log = logging.getLogger(__name__)


class PoolTimeout(StoreError):
    """No connection became free in time."""


class _Connection(psycopg2.extensions.connection):
    """A pooled connection: remembers the server-side prepared statements of its session
    (fsd.store.prepared); None when the pool must not prepare any."""

    prepared: set[str] | None = None
    ac_cursor: psycopg2.extras.RealDictCursor | None = None  # the cursor of Pool.autocommit()


def _store_error(e: psycopg2.Error) -> StoreError:
    return StoreError(f"database error: {str(e).strip().splitlines()[0] if str(e) else e}")


class Pool:
    def __init__(
        self,
        *,
        dsn: str,
        minconn: int = 1,
        maxconn: int = 20,
        statement_timeout_ms: int = 5000,
        connect_timeout_s: int = 3,
        checkout_timeout_s: float = 5.0,
        application_name: str = "fsd",
        prepare: bool = True,
    ):
        if maxconn < 1 or minconn < 0 or minconn > maxconn:
            raise StoreError("invalid pool size")
        self.dsn = dsn
        self.minconn = minconn
        self.maxconn = maxconn
        self.statement_timeout_ms = statement_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        self.checkout_timeout_s = checkout_timeout_s
        self.application_name = application_name
        # server-side prepared statements for the hot statements (fsd.store.prepared); off behind a
        # pooler that moves sessions between server connections (PgBouncer in transaction mode)
        self.prepare = prepare
        self._idle: list[psycopg2.extensions.connection] = []
        self._sem = gevent.lock.BoundedSemaphore(maxconn)
        self._closed = False
        # counters read by metrics collectors
        self.in_use = 0
        self.waiting = 0
        self.errors_total = 0
        self.connects_total = 0

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> psycopg2.extensions.connection:
        try:
            conn = psycopg2.connect(
                self.dsn,
                connect_timeout=self.connect_timeout_s,
                application_name=self.application_name,
                options=f"-c statement_timeout={int(self.statement_timeout_ms)}",
                connection_factory=_Connection,
            )
        except psycopg2.Error as e:
            self.errors_total += 1
            raise StoreError(f"database unreachable: {str(e).strip().splitlines()[0] if str(e) else e}") from e
        self.connects_total += 1
        conn.prepared = set() if self.prepare else None
        return conn

    def _discard(self, conn) -> None:
        if isinstance(conn, _Connection):
            conn.ac_cursor = None  # no cycle left for the collector
        with contextlib.suppress(Exception):
            conn.close()

    def _checkout(self):
        if self._closed:
            raise StoreError("pool is closed")
        self.waiting += 1
        try:
            if not self._sem.acquire(timeout=self.checkout_timeout_s):
                raise PoolTimeout("no database connection free")
        finally:
            self.waiting -= 1
        try:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
            return self._connect()
        except BaseException:
            self._sem.release()
            raise

    def _checkin(self, conn, *, broken: bool) -> None:
        try:
            if broken or conn.closed or self._closed:
                self._discard(conn)
            else:
                status = conn.get_transaction_status()
                if status != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
                    try:
                        conn.rollback()
                    except psycopg2.Error:
                        self._discard(conn)
                        return
                self._idle.append(conn)
        finally:
            self._sem.release()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        """A connection for this greenlet (autocommit off); rolled back and discarded on any error."""
        conn = self._checkout()
        self.in_use += 1
        broken = False
        try:
            if conn.autocommit:  # left on by autocommit(): kept while idle, not toggled per use
                conn.autocommit = False
            yield conn
        except BaseException as e:
            broken = True
            with contextlib.suppress(Exception):
                conn.rollback()
            if isinstance(e, psycopg2.OperationalError | psycopg2.InterfaceError):
                self.errors_total += 1
            raise
        finally:
            self.in_use -= 1
            self._checkin(conn, broken=broken)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        """One transaction: a dict cursor; commit at the end, rollback on error."""
        try:
            with self.connection() as conn:
                with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    yield cur
                conn.commit()
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
            raise _store_error(e) from e

    @contextlib.contextmanager
    def autocommit(self) -> Iterator[psycopg2.extras.RealDictCursor]:
        """A dict cursor whose statements each commit on their own: no BEGIN and COMMIT round trips.
        For a unit of work that is one statement (PostgreSQL runs a statement atomically anyway); the
        hot paths of a call use it, and only there are the statements of fsd.store.prepared run
        prepared. The connection is discarded on any error; errors as in transaction().

        Kept lean (it runs several times per call): the connection stays in autocommit mode while idle
        (connection() and transaction() switch it off when they get it) and keeps one cursor for these
        units of work."""
        conn = self._checkout()
        self.in_use += 1
        broken = False
        try:
            if not conn.autocommit:
                conn.autocommit = True
            cur = conn.ac_cursor
            if cur is None or cur.closed:
                cur = conn.ac_cursor = conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
            yield cur
        except BaseException as e:
            broken = True
            if isinstance(e, psycopg2.OperationalError | psycopg2.InterfaceError):
                self.errors_total += 1
                raise _store_error(e) from e
            raise
        finally:
            self.in_use -= 1
            self._checkin(conn, broken=broken)

    def ping(self) -> bool:
        try:
            with self.transaction() as cur:
                cur.execute("SELECT 1 AS ok")
                return cur.fetchone()["ok"] == 1
        except StoreError:
            return False

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._discard(self._idle.pop())

    def listen_connection(self) -> psycopg2.extensions.connection:
        """A dedicated autocommit connection for LISTEN (not counted in the pool)."""
        conn = self._connect()
        conn.autocommit = True
        return conn


def wait_for_db(dsn: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            psycopg2.connect(dsn, connect_timeout=2).close()
            return
        except psycopg2.Error as e:
            last = e
            gevent.sleep(0.1)
    raise StoreError(f"database not reachable: {last}")
