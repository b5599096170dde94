"""/metrics over a real HTTP server: parses, passes `promtool check metrics`, carries every family."""

import subprocess
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from fsd.metrics import Metrics
from fsd.metrics.catalogue import families, suspicious_label_values
from fsd.metrics.gauges import init_department, init_fixed_labels, init_switch, install_scrape_gauges
from fsd.web.ops import healthz_app, make_metrics_app
from fsd.web.server import Dispatcher, HttpServer
from tests.ops.common import PROMTOOL, needs_promtool


@pytest.fixture
def served():
    m = Metrics(registry=CollectorRegistry())
    install_scrape_gauges(m, queues=lambda: [("acme.example", "sales", 2, 31.5)], members=lambda: {"free": 3},
                          esl_queues=lambda: {"fs1": 0}, spool_depth=lambda: 0,
                          pool=lambda: {"in_use": 1, "idle": 1, "waiting": 0})
    init_switch(m, "fs1")
    init_department(m, "acme.example", "sales")
    init_fixed_labels(m)
    # a little traffic, as a call through a department would leave it
    m.esl_up.labels("fs1").set(1)
    m.esl_events.labels("fs1", "CHANNEL_ANSWER").inc()
    m.esl_command_seconds.labels("api").observe(0.004)
    m.xmlcurl_requests.labels("sip_auth", "found").inc()
    m.xmlcurl_seconds.labels("sip_auth").observe(0.002)
    m.calls_offered.labels("acme.example", "sales").inc()
    m.calls_answered.labels("acme.example", "sales").inc()
    m.queue_wait.labels("acme.example", "sales").observe(12)
    m.calls_finished.labels("inbound", "answered").inc()
    d = Dispatcher()
    d.mount("/metrics", make_metrics_app(m.registry))
    d.mount("/healthz", healthz_app)
    srv = HttpServer(host="127.0.0.1", port=0, app=d)
    srv.start()
    try:
        yield m, f"http://127.0.0.1:{srv.port}"
    finally:
        srv.stop(timeout=2)


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback test server
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


def test_metrics_endpoint_parses_and_has_every_family(served):
    m, base = served
    status, ctype, body = _get(base + "/metrics")
    assert status == 200 and ctype.startswith("text/plain") and "version=" in ctype
    got = {f.name: f for f in text_string_to_metric_families(body)}
    exposed = set(got) | {s.name for f in got.values() for s in f.samples}
    # every family appears (Info is exposed as the gauge fsd_info, families without children by name only)
    assert [f.name for f in families(m.registry).values() if not (f.series | {f.name}) & exposed] == []
    waiting = got["fsd_queue_callers_waiting"].samples
    assert [(s.labels, s.value) for s in waiting] == [({"tenant": "acme.example", "department": "sales"}, 2.0)]
    assert got["fsd_esl_connection_up"].samples[0].value == 1.0
    assert suspicious_label_values(m.registry) == []


@needs_promtool
def test_promtool_lints_the_exposition_clean(served):
    _, base = served
    _, _, body = _get(base + "/metrics")
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr
