"""LISTEN for configuration changes (NOTIFY from the service layer of any fsd process).

One dedicated connection; on loss it reconnects with backoff and calls `on_reconnect` so the owner
can drop whatever it cached while it could not hear changes.
"""

from __future__ import annotations

import json
import logging
import select
from collections.abc import Callable

import gevent
import psycopg2

from fsd.store.repos import NOTIFY_CHANNEL

log = logging.getLogger(__name__)


class ConfigListener:
    def __init__(self, *, dsn: str, on_change: Callable[[dict], None],
                 on_reconnect: Callable[[], None] | None = None, channel: str = NOTIFY_CHANNEL,
                 backoff: tuple[float, float] = (0.2, 5.0)):
        self.dsn = dsn
        self.channel = channel
        self.on_change = on_change
        self.on_reconnect = on_reconnect
        self.backoff = backoff
        self.connected = False
        self.notifications_total = 0
        self.reconnects_total = 0
        self._greenlet: gevent.Greenlet | None = None
        self._stopping = False
        self._conn = None

    def start(self) -> None:
        self._stopping = False
        self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        self._stopping = True
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=2)
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001, S110
                pass
            self._conn = None
        self.connected = False

    def _run(self) -> None:
        delay = self.backoff[0]
        first = True
        while not self._stopping:
            try:
                self._conn = psycopg2.connect(self.dsn, connect_timeout=3, application_name="fsd-listen")
                self._conn.autocommit = True
                with self._conn.cursor() as cur:
                    cur.execute(f"LISTEN {self.channel}")
                self.connected = True
                delay = self.backoff[0]
                if not first:
                    self.reconnects_total += 1
                    log.info("config_listener_reconnected channel=%s", self.channel)
                    if self.on_reconnect:
                        self.on_reconnect()
                first = False
                self._loop()
            except (psycopg2.Error, OSError) as e:
                if not self._stopping:
                    log.warning("config_listener_down error=%s retry_in=%.1f", str(e).strip().splitlines()[0]
                                if str(e) else type(e).__name__, delay)
            self._close()
            if self._stopping:
                return
            gevent.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    def _loop(self) -> None:
        conn = self._conn
        while not self._stopping:
            ready, _, _ = select.select([conn], [], [], 5.0)
            if not ready:
                with conn.cursor() as cur:  # keep-alive: notices a dead server
                    cur.execute("SELECT 1")
                continue
            conn.poll()
            while conn.notifies:
                n = conn.notifies.pop(0)
                self.notifications_total += 1
                try:
                    payload = json.loads(n.payload)
                except ValueError:
                    log.warning("config_notify_bad_payload")
                    continue
                try:
                    self.on_change(payload)
                except Exception:
                    log.exception("config_notify_handler_failed entity=%s", payload.get("entity"))
