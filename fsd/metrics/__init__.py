"""Every Prometheus metric fsd exports, defined once, on a registry given by the caller.

A fresh `Metrics(registry=CollectorRegistry())` per test keeps tests independent. Gauges whose
value lives elsewhere (callers waiting, longest wait, pool use, queue depth) are computed at scrape
time by collectors registered with `add_collector`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

import fsd

XMLCURL_ACTIONS = ("sip_auth", "user_call", "message-count", "voicemail-lookup", "reverse-auth-lookup",
                   "group_call", "gateways", "other")
XMLCURL_RESULTS = ("found", "not_found", "denied", "bad_request", "stale", "error")
CALL_RESULTS = ("answered", "missed", "abandoned", "voicemail", "callback_requested", "callback_completed",
                "callback_failed")
IMPATIENT_CHOICES = ("callback", "stay", "voicemail", "none", "answered_during_offer")
CALLBACK_OUTCOMES = ("completed", "failed", "cancelled", "retry")
MEMBER_STATES = ("free", "ringing", "busy", "unregistered")


class Metrics:
    def __init__(self, *, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.info = Info("fsd", "fsd build information", registry=r)
        self.info.info({"version": fsd.__version__})

        # Event Socket
        self.esl_up = Gauge("fsd_esl_connection_up", "1 when the inbound Event Socket to the switch is up",
                            ["switch"], registry=r)
        self.esl_reconnects = Counter("fsd_esl_reconnects_total", "Event Socket reconnections", ["switch"],
                                      registry=r)
        self.esl_liveness_failures = Counter(
            "fsd_esl_liveness_failures_total",
            "Event Socket links closed because the switch stopped answering (stalled: no reply, no event)",
            ["switch"], registry=r)
        self.esl_events = Counter("fsd_esl_events_received_total", "Events received, by event name",
                                  ["switch", "event"], registry=r)
        self.esl_command_seconds = Histogram("fsd_esl_command_duration_seconds", "api/bgapi command latency",
                                             ["command"], registry=r,
                                             buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.esl_command_errors = Counter("fsd_esl_command_errors_total", "api/bgapi commands that failed",
                                          ["command", "reason"], registry=r)
        self.outbound_sessions = Counter("fsd_outbound_sessions_total", "Calls connected to the outbound socket",
                                         registry=r)

        # mod_xml_curl directory
        self.xmlcurl_requests = Counter("fsd_xmlcurl_requests_total", "Directory requests by action and result",
                                        ["action", "result"], registry=r)
        self.xmlcurl_seconds = Histogram("fsd_xmlcurl_request_duration_seconds", "Directory request latency",
                                         ["action"], registry=r,
                                         buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1))
        self.directory_cache_evictions = Counter("fsd_directory_cache_evictions_total",
                                                 "Directory cache entries evicted on change", registry=r)
        self.directory_flushes = Counter("fsd_directory_flush_commands_total",
                                         "xml_flush_cache commands sent to switches", ["result"], registry=r)

        # calls
        self.calls_offered = Counter("fsd_calls_offered_total", "Calls offered to a department",
                                     ["tenant", "department"], registry=r)
        self.calls_answered = Counter("fsd_calls_answered_total", "Department calls answered by a member",
                                      ["tenant", "department"], registry=r)
        self.calls_abandoned = Counter("fsd_calls_abandoned_total", "Callers who hung up while waiting",
                                       ["tenant", "department"], registry=r)
        self.calls_missed = Counter("fsd_calls_missed_total", "Calls nobody answered in time",
                                    ["tenant", "department"], registry=r)
        self.calls_finished = Counter("fsd_calls_total", "Calls finished, by direction and result",
                                      ["direction", "result"], registry=r)
        self.queue_wait = Histogram("fsd_queue_wait_seconds", "Time callers waited in a department queue",
                                    ["tenant", "department"], registry=r,
                                    buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300))
        self.impatient_offers = Counter("fsd_impatient_offers_total", "Impatient-caller offers played",
                                        ["tenant", "department"], registry=r)
        self.impatient_choices = Counter("fsd_impatient_choices_total", "What callers chose after the offer",
                                         ["choice"], registry=r)
        self.callbacks = Counter("fsd_callbacks_total", "Callback attempts by outcome", ["outcome"], registry=r)
        self.voicemails = Counter("fsd_voicemails_total", "Voicemail messages recorded", registry=r)
        self.history_spooled = Counter("fsd_history_spooled_total",
                                       "History records spooled locally because the database was down", registry=r)
        self.db_errors = Counter("fsd_db_errors_total", "Database errors seen by fsd", ["operation"], registry=r)
        self.emails = Counter("fsd_emails_total", "E-mail send attempts", ["kind", "result"], registry=r)
        self.call_setup = Histogram("fsd_call_setup_seconds",
                                    "Time from a call's outbound socket connect to its first member originate "
                                    "(fsd's routing decision, database reservation included)", registry=r,
                                    buckets=(.001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5))
        self.loop_lag = Histogram("fsd_event_loop_lag_seconds",
                                  "How late fsd's event loop ran a timer it checks twice a second (CPU saturation, "
                                  "or something blocking the loop)", registry=r,
                                  buckets=(.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))

        for a in XMLCURL_ACTIONS:
            for res in XMLCURL_RESULTS:
                self.xmlcurl_requests.labels(a, res)
        for c in IMPATIENT_CHOICES:
            self.impatient_choices.labels(c)
        for o in CALLBACK_OUTCOMES:
            self.callbacks.labels(o)
        for res in CALL_RESULTS:
            for d in ("inbound", "internal", "outbound", "callback"):
                self.calls_finished.labels(d, res)

    def add_collector(self, name: str, documentation: str, labels: Iterable[str],
                      sample: Callable[[], Iterable[tuple[tuple[str, ...], float]]]) -> None:
        """A gauge computed at scrape time: `sample()` yields (label values, value)."""
        self.registry.register(_FnCollector(name, documentation, list(labels), sample))


class _FnCollector(Collector):
    def __init__(self, name, documentation, labels, sample):
        self.name, self.documentation, self.labels, self.sample = name, documentation, labels, sample

    def describe(self):
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labels)]

    def collect(self):
        g = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, v in self.sample():
            g.add_metric(list(values), v)
        yield g
