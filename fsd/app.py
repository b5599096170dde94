"""The composition root: builds every part of fsd from the Config, starts and stops them in order.

Nothing opens a connection at import time; `App.start()` does, `App.stop()` undoes it. Start order:
database listener → switches (ESL inbound) → call driver → outbound socket → mail → HTTP. Stop is
the reverse, after a drain: the outbound socket stops accepting (new calls take the dialplan
fallback), running calls may finish until the deadline, then everything closes.
"""

from __future__ import annotations

import gc
import logging
import signal
import time

import gevent
import gevent.event

from fsd.calls.clock import ScaledClock
from fsd.calls.driver import CallDriver
from fsd.calls.recovery import recover
from fsd.config import Config
from fsd.directory import Directory
from fsd.esl.inbound import InboundClient
from fsd.esl.outbound import OutboundServer
from fsd.mailer import Mailer
from fsd.metrics import Metrics
from fsd.metrics.gauges import init_department, init_fixed_labels, init_switch, install_scrape_gauges
from fsd.metrics.looplag import LoopLagMonitor
from fsd.services import MailSettings, Services
from fsd.store.listen import ConfigListener
from fsd.store.pool import Pool
from fsd.trunk import GatewaySync
from fsd.web.app import create_app
from fsd.web.ops import healthz_app, make_metrics_app, make_readyz_app
from fsd.web.server import Dispatcher, HttpServer
from fsd.web.xmlcurl import make_xmlcurl_app

log = logging.getLogger(__name__)


class App:
    def __init__(self, *, config: Config, metrics: Metrics | None = None, clock=None):
        self.config = config
        self.metrics = metrics or Metrics()
        self.loop_lag = LoopLagMonitor(histogram=self.metrics.loop_lag)
        db = config.database
        self.pool = Pool(dsn=db.dsn, minconn=db.pool_min, maxconn=db.pool_max,
                         statement_timeout_ms=db.statement_timeout_ms, prepare=db.prepare_statements)
        self.services = Services(pool=self.pool, mail=MailSettings(
            cabinet_url=config.http.public_url, softphone_url=config.calls.softphone_url,
            sip_server=config.calls.sip_server))
        self._change_handlers: list = []
        self._reconnect_handlers: list = []
        self.listener = ConfigListener(dsn=db.dsn, on_change=self._on_change, on_reconnect=self._on_reconnect)

        # switches: one inbound Event Socket client each
        self.switches: dict[str, InboundClient] = {}
        for sw in config.switch_list():
            init_switch(self.metrics, sw.name)
            self.switches[sw.name] = InboundClient(
                host=sw.host, port=sw.port, password=sw.password, name=sw.name,
                command_timeout=config.esl.command_timeout_s, connect_timeout=config.esl.connect_timeout_s,
                reconnect_backoff=(0.1, config.esl.reconnect_max_s),
                liveness_timeout=config.esl.liveness_timeout_s, probe_interval=config.esl.probe_interval_s,
                on_connect=self._switch_up, on_disconnect=self._switch_down)
            self.switches[sw.name].stats.latency_observers.append(
                lambda word, secs: self.metrics.esl_command_seconds.labels(word).observe(secs))
        self._esl_seen: dict[tuple[str, str], int] = {}
        init_fixed_labels(self.metrics)

        # calls
        if clock is None and config.calls.time_scale != 1.0:
            clock = ScaledClock(time_scale=config.calls.time_scale)
        self.calls = CallDriver(pool=self.pool, switches=self.switches, config=config, metrics=self.metrics,
                                clock=clock, node=config.node.name)
        self.outbound = OutboundServer(host=config.outbound.host, port=config.outbound.port,
                                       handler=self.calls.handle, command_timeout=config.esl.command_timeout_s)
        self.on_change(self.calls.on_change)
        self.on_listener_reconnect(self.calls.invalidate)

        # directory
        self.directory = Directory(pool=self.pool, metrics=self.metrics, flush=self._flush_directory)
        self.xmlcurl = make_xmlcurl_app(directory=self.directory, config=config.xmlcurl, metrics=self.metrics)
        self.on_change(self.directory.on_change)
        self.on_listener_reconnect(self.directory.on_reconnect)
        self.on_change(self._department_labels)
        # trunk gateways: changes reach every connected switch's external profile
        self.trunk = GatewaySync(switches=self.switches, profile=self.directory.gateways_profile,
                                 command_timeout_s=config.esl.command_timeout_s)
        self.on_change(self.trunk.on_change)

        # mail, web
        self.mailer = Mailer(pool=self.pool, smtp=config.smtp, metrics=self.metrics)
        self.web = create_app(services=self.services, config=config, metrics=self.metrics, mailer=self.mailer)
        self.dispatcher = Dispatcher(default=self.web.wsgi_app)
        self.dispatcher.mount("/healthz", healthz_app)
        self.dispatcher.mount("/readyz", make_readyz_app(self.readiness))
        self.dispatcher.mount("/metrics", make_metrics_app(self.metrics.registry, before=self._sync_esl_stats))
        self.dispatcher.mount("/freeswitch/directory", self.xmlcurl)
        self.http = HttpServer(host=config.http.host, port=config.http.port, app=self.dispatcher,
                               max_body_bytes=config.http.max_body_bytes, xmlcurl=self.xmlcurl)

        install_scrape_gauges(
            self.metrics,
            queues=self._queue_stats,
            members=self._member_counts,
            esl_queues=lambda: {name: c.queue_depth() for name, c in self.switches.items()},
            spool_depth=self.calls.history.pending,
            pool=lambda: {"in_use": self.pool.in_use, "idle": len(self.pool._idle), "waiting": self.pool.waiting},
            ready=lambda: self.readiness()[0],
        )
        self.recovery = None
        self.started = gevent.event.Event()
        self.stopped = gevent.event.Event()

    # -- switches ----------------------------------------------------------------------------
    def _switch_up(self, client: InboundClient) -> None:
        self.metrics.esl_up.labels(client.name).set(1)
        log.info("switch_up switch=%s", client.name)

    def _switch_down(self, client: InboundClient, error) -> None:
        self.metrics.esl_up.labels(client.name).set(0)
        self.metrics.esl_reconnects.labels(client.name).inc()
        log.warning("switch_down switch=%s error=%s", client.name, type(error).__name__ if error else "closed")

    def _flush_directory(self, user: str, domain: str) -> None:
        """FreeSWITCH keeps its own user cache (`cacheable`): flush the entry on every switch."""
        failed = None
        for client in self.switches.values():
            if client.connected:
                try:
                    client.bgapi(f"xml_flush_cache id {user} {domain}")
                except Exception as e:  # noqa: BLE001 - counted by the directory, the others still flushed
                    failed = e
        if failed is not None:
            raise failed

    def _sync_esl_stats(self) -> None:
        """At scrape time: copy the ESL clients' plain counters into the Prometheus counters."""
        for name, c in self.switches.items():
            st = c.stats
            for ev, n in list(st.events_received.items()):
                key = (name, ev)
                delta = n - self._esl_seen.get(key, 0)
                if delta > 0:
                    self.metrics.esl_events.labels(name, ev).inc(delta)
                    self._esl_seen[key] = n
            key = (name, "liveness")
            delta = st.liveness_failures - self._esl_seen.get(key, 0)
            if delta > 0:
                self.metrics.esl_liveness_failures.labels(name).inc(delta)
                self._esl_seen[key] = st.liveness_failures
            for reason, n in (("error", st.command_errors), ("timeout", st.command_timeouts)):
                key = (name, "cmd:" + reason)
                delta = n - self._esl_seen.get(key, 0)
                if delta > 0:
                    self.metrics.esl_command_errors.labels("any", reason).inc(delta)
                    self._esl_seen[key] = n

    def _queue_stats(self):
        """(tenant, department, callers waiting, longest wait s) for every department queue."""
        now = self.calls.clock.monotonic()
        tenant_of = {}
        for snap in self.calls.cache.snapshots():
            for dept_id in snap.departments:
                tenant_of[dept_id] = snap.tenant_id
        for dept_id, q in list(self.calls.queues.items()):
            yield str(tenant_of.get(dept_id, "")), str(dept_id), len(q), float(q.longest_wait(now))

    def _member_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("free", "ringing", "busy", "unregistered"), 0)
        seen: set[int] = set()
        for snap in self.calls.cache.snapshots():
            for d in snap.departments.values():
                for e in d.member_ids:
                    if e not in seen:
                        seen.add(e)
                        state = self.calls.board.state(e)
                        counts[state] = counts.get(state, 0) + 1
        return counts

    def _department_labels(self, payload: dict) -> None:
        if payload.get("entity") == "department" and payload.get("op") == "create":
            init_department(self.metrics, str(payload.get("tenant_id")), str(payload.get("id")))

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
            try:
                h()
            except Exception:
                log.exception("reconnect_handler_failed")

    # -- health ------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        """Ready: at least one switch connected, and the database reachable or the directory warm."""
        up = [n for n, c in self.switches.items() if c.connected]
        db_ok = self.pool.ping()
        warm = len(self.directory) > 0
        reasons = [f"switches up: {', '.join(up) if up else 'none'} of {len(self.switches)}",
                   "database reachable" if db_ok else "database unreachable"]
        if not db_ok:
            reasons.append("directory cache warm" if warm else "directory cache cold")
        return bool(up) and (db_ok or warm), "; ".join(reasons)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.loop_lag.start()
        self.listener.start()
        for c in self.switches.values():
            c.start()
        # after a crash: rebuild this node's view of live calls from the switches and free stuck
        # reservations before the call driver starts taking calls
        self.recovery = recover(pool=self.pool, switches=self.switches, node=self.config.node.name,
                                wait_s=self.config.esl.connect_timeout_s,
                                command_timeout=self.config.esl.command_timeout_s)
        self.calls.start()
        self.outbound.start()
        self.mailer.start()
        self.http.start()
        gevent.spawn(self._warm_directory)
        self.started.set()
        log.info("fsd_started node=%s http_port=%s outbound_port=%s switches=%s", self.config.node.name,
                 self.http.port, self.outbound.port, ",".join(self.switches))

    def _warm_directory(self) -> None:
        try:
            n = self.directory.warm()
            log.info("directory_warm entries=%s", n)
        except Exception as e:  # noqa: BLE001 - a cold cache still answers from the database
            log.warning("directory_warm_failed error=%s", type(e).__name__)

    def drain(self, timeout: float) -> bool:
        """Stop taking new calls; let running call flows finish up to `timeout` seconds."""
        t0 = time.monotonic()
        ok_out = self.outbound.drain(timeout=timeout)
        ok_calls = self.calls.drain(timeout=max(0.0, timeout - (time.monotonic() - t0)))
        return bool(ok_out and ok_calls)

    def stop(self, timeout: float = 10.0) -> None:
        self.http.stop(timeout=min(timeout, 5.0))
        self.outbound.stop(timeout=min(timeout, 5.0))
        self.calls.stop()
        if self.recovery is not None:
            self.recovery.stop()
        self.mailer.stop()
        self.trunk.stop()
        for c in self.switches.values():
            c.stop()
        self.listener.stop()
        self.directory.close()
        self.pool.close()
        self.loop_lag.stop()
        self.stopped.set()
        log.info("fsd_stopped")


# Young collections every 10,000 container allocations instead of 700: a call allocates thousands
# (frames, events, greenlets) that die young, and at the default the collector took about a fifth of
# fsd's CPU at 120 calls/s (py-spy); with this and freeze() fsd's CPU per call fell by about 20 %.
GC_THRESHOLDS = (10_000, 20, 20)


def tune_gc() -> None:
    """Once started: everything built so far lives for the whole run and is kept out of the collector's
    scans (full collections stay short, so call timers - the impatient offer at 20 s - fire on time), and
    young collections run less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def tune_runtime() -> None:
    """What `fsd serve` does once started: the collector as tune_gc() leaves it, and gevent no longer
    records who spawned each greenlet (``track_greenlet_tree``, gevent's documented switch: spawning is
    cheaper, and ``spawning_greenlet``/``spawning_stack``/``spawn_tree_locals`` are None). A call spawns
    several greenlets, and each recorded ten frames of the spawner's stack with their line numbers: about
    4 % of fsd's CPU per call at 300 calls/s. fsd reads none of them."""
    tune_gc()
    gevent.config.track_greenlet_tree = False


def run(config: Config, *, config_loader=None) -> int:
    """`fsd serve`: run until SIGTERM/SIGINT (drain, then exit 0). SIGHUP re-reads the config file:
    the log level is applied at once; other changed settings are reported and need a restart."""
    app = App(config=config)
    app.start()
    tune_runtime()
    done = gevent.event.Event()

    def reload():
        if config_loader is None:
            return
        try:
            new = config_loader()
        except Exception as e:  # noqa: BLE001 - a bad file keeps the running config
            log.error("config_reload_failed error=%s", e)
            return
        changed = [f"{s}.{k}" for s, vals in new.masked().items() for k, v in vals.items()
                   if config.masked()[s][k] != v]
        applied = [c for c in changed if c == "log.level"]
        log.info("config_reloaded changed=%s applied=%s restart_needed=%s", ",".join(changed) or "none",
                 ",".join(applied) or "none", ",".join(c for c in changed if c not in applied) or "none")
        logging.getLogger().setLevel(new.log.level.upper())

    gevent.signal_handler(signal.SIGTERM, done.set)
    gevent.signal_handler(signal.SIGINT, done.set)
    gevent.signal_handler(signal.SIGHUP, lambda: gevent.spawn(reload))
    done.wait()
    deadline = config.outbound.drain_timeout_s
    log.info("fsd_draining deadline_s=%s calls=%s", deadline, len(app.calls.active))
    drained = app.drain(deadline)
    log.info("fsd_drained complete=%s", drained)
    app.stop()
    return 0
