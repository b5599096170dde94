"""The composition root: builds every part of fsd from the Config, starts and stops them in order.

Nothing opens a connection at import time; `App.start()` does, `App.stop()` undoes it.
"""

from __future__ import annotations

import logging
import signal
import time

import gevent
import gevent.event

from fsd.config import Config
from fsd.metrics import Metrics
from fsd.services import MailSettings, Services
from fsd.store.listen import ConfigListener
from fsd.store.pool import Pool
from fsd.web.ops import healthz_app, make_metrics_app, make_readyz_app
from fsd.web.server import Dispatcher, HttpServer

log = logging.getLogger(__name__)


class App:
    def __init__(self, *, config: Config, metrics: Metrics | None = None):
        self.config = config
        self.metrics = metrics or Metrics()
        db = config.database
        self.pool = Pool(dsn=db.dsn, minconn=db.pool_min, maxconn=db.pool_max,
                         statement_timeout_ms=db.statement_timeout_ms)
        self.services = Services(pool=self.pool, mail=MailSettings(
            cabinet_url=config.http.public_url, softphone_url=config.calls.softphone_url,
            sip_server=config.calls.sip_server))
        self._change_handlers: list = []
        self._reconnect_handlers: list = []
        self.listener = ConfigListener(dsn=db.dsn, on_change=self._on_change, on_reconnect=self._on_reconnect)
        self.dispatcher = Dispatcher()
        self.dispatcher.mount("/healthz", healthz_app)
        self.dispatcher.mount("/readyz", make_readyz_app(self.readiness))
        self.dispatcher.mount("/metrics", make_metrics_app(self.metrics.registry))
        self.http = HttpServer(host=config.http.host, port=config.http.port, app=self.dispatcher,
                               max_body_bytes=config.http.max_body_bytes)
        self.metrics.add_collector("fsd_db_pool_connections", "Database pool connections by state", ["state"],
                                   lambda: [(("in_use",), self.pool.in_use), (("waiting",), self.pool.waiting)])
        self.started = gevent.event.Event()
        self.stopped = gevent.event.Event()

    # -- change fan-out (LISTEN/NOTIFY) ---------------------------------------------------------
    def on_change(self, handler) -> None:
        self._change_handlers.append(handler)

    def on_listener_reconnect(self, handler) -> None:
        self._reconnect_handlers.append(handler)

    def _on_change(self, payload: dict) -> None:
        for h in self._change_handlers:
            try:
                h(payload)
            except Exception:
                log.exception("change_handler_failed entity=%s", payload.get("entity"))

    def _on_reconnect(self) -> None:
        for h in self._reconnect_handlers:
            h()

    # -- health ------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        db_ok = self.pool.ping()
        return (db_ok, "database reachable" if db_ok else "database unreachable")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.listener.start()
        self.http.start()
        self.started.set()
        log.info("fsd_started node=%s http_port=%s", self.config.node.name, self.http.port)

    def stop(self, timeout: float = 10.0) -> None:
        t0 = time.monotonic()
        self.http.stop(timeout=max(0.1, timeout - (time.monotonic() - t0)))
        self.listener.stop()
        self.pool.close()
        self.stopped.set()
        log.info("fsd_stopped")


def run(config: Config) -> int:
    """`fsd serve`: run until SIGTERM/SIGINT (drain, then exit 0)."""
    app = App(config=config)
    app.start()
    done = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, done.set)
    gevent.signal_handler(signal.SIGINT, done.set)
    done.wait()
    log.info("fsd_draining deadline_s=%s", config.outbound.drain_timeout_s)
    app.stop(timeout=config.outbound.drain_timeout_s)
    return 0
