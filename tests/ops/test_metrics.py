"""fsd's metrics follow Prometheus conventions, carry no personal data in labels, and are pre-initialised."""

import re

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from fsd.metrics import (
    CALL_RESULTS,
    CALLBACK_OUTCOMES,
    IMPATIENT_CHOICES,
    MEMBER_STATES,
    XMLCURL_ACTIONS,
    XMLCURL_RESULTS,
    Metrics,
)
from fsd.metrics.catalogue import families, forbidden_label, full_registry, markdown, series, suspicious_label_values
from fsd.metrics.gauges import (
    DB_OPERATIONS,
    ESL_COMMAND_ERROR_REASONS,
    POOL_STATES,
    SCRAPE_GAUGES,
    forget_department,
    init_department,
    init_fixed_labels,
    init_switch,
    install_scrape_gauges,
)
from fsd.web.ops import make_metrics_app

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")
BAD_UNITS = ("_ms", "_msec", "_millis", "_milliseconds", "_minutes", "_hours", "_days", "_kb", "_mb",
             "_kilobytes", "_megabytes", "_percent")


def _value(registry, name, labels=None):
    return registry.get_sample_value(name, labels or {})


def _scrape(registry) -> dict:
    """Run the /metrics WSGI app and parse its body: family name → family."""
    status = []
    body = b"".join(make_metrics_app(registry)({"PATH_INFO": "/metrics", "REQUEST_METHOD": "GET"},
                                               lambda s, h: status.append(s)))
    assert status == ["200 OK"]
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


# -- conventions ------------------------------------------------------------------------------------
def test_names_units_and_help():
    for fam in families(full_registry()).values():
        name = fam.name
        assert SNAKE.match(name), name
        assert name.startswith("fsd") or name.startswith("process_"), name
        assert fam.help.strip(), f"{name} has no help"
        assert not any(name.endswith(u) or u + "_" in name for u in BAD_UNITS), f"{name}: use base units"
        if fam.type == "counter":
            assert f"{name}_total" in fam.series and not name.endswith("_total_total"), name
        else:
            assert not name.endswith("_total"), f"{name}: only counters end in _total"
        if fam.type == "histogram":
            assert name.endswith("_seconds") or name.endswith("_bytes"), f"{name}: histogram without a base unit"
        is_time = re.search(r"duration|latency|_wait(_|$)|_time(_|$)", name)
        if is_time and fam.type != "counter":
            assert name.endswith("_seconds"), f"{name}: a time must be in seconds"


def test_label_names_carry_no_numbers_callers_or_uuids():
    assert forbidden_label("caller_id_number") and forbidden_label("uuid") and forbidden_label("did")
    assert not forbidden_label("tenant") and not forbidden_label("department") and not forbidden_label("state")
    for name, labels in series(full_registry()).items():
        for lab in labels:
            assert SNAKE.match(lab), f"{name}{{{lab}}}"
            assert not forbidden_label(lab), f"{name} has label {lab!r}: no phone numbers or call ids as labels"
            assert not lab.startswith("__"), f"{name}{{{lab}}} is reserved"


def test_suspicious_label_values_finds_uuids_and_phone_numbers():
    m = Metrics(registry=CollectorRegistry())
    install_scrape_gauges(m)
    init_department(m, "acme.example", "sales")
    init_switch(m, "fs1")
    assert suspicious_label_values(m.registry) == []
    m.calls_offered.labels("acme.example", "+7 (495) 123-45-67").inc()
    m.esl_events.labels("fs1", "CHANNEL_CREATE 8c6b9d3e-1f0a-4a4e-9d43-0f2f0b4c7d11").inc()
    found = suspicious_label_values(m.registry)
    assert any("123-45-67" in f for f in found) and any("8c6b9d3e" in f for f in found)


# -- pre-initialisation --------------------------------------------------------------------------------
def test_fixed_label_sets_are_zero_before_any_event():
    r = CollectorRegistry()
    Metrics(registry=r)
    for a in XMLCURL_ACTIONS:
        for res in XMLCURL_RESULTS:
            assert _value(r, "fsd_xmlcurl_requests_total", {"action": a, "result": res}) == 0
    for c in IMPATIENT_CHOICES:
        assert _value(r, "fsd_impatient_choices_total", {"choice": c}) == 0
    for o in CALLBACK_OUTCOMES:
        assert _value(r, "fsd_callbacks_total", {"outcome": o}) == 0
    for res in CALL_RESULTS:
        assert _value(r, "fsd_calls_total", {"direction": "inbound", "result": res}) == 0
    assert _value(r, "fsd_voicemails_total") == 0
    assert _value(r, "fsd_history_spooled_total") == 0
    assert _value(r, "fsd_info", {"version": __import__("fsd").__version__}) == 1


def test_init_department_switch_and_fixed_labels():
    m = Metrics(registry=CollectorRegistry())
    r = m.registry
    init_department(m, "acme.example", "sales")
    d = {"tenant": "acme.example", "department": "sales"}
    for name in ("fsd_calls_offered_total", "fsd_calls_answered_total", "fsd_calls_abandoned_total",
                 "fsd_calls_missed_total", "fsd_impatient_offers_total", "fsd_queue_wait_seconds_count"):
        assert _value(r, name, d) == 0, name
    assert _value(r, "fsd_queue_wait_seconds_bucket", {**d, "le": "+Inf"}) == 0
    forget_department(m, "acme.example", "sales")
    forget_department(m, "acme.example", "never-seen")  # harmless
    assert _value(r, "fsd_calls_offered_total", d) is None

    init_switch(m, "fs1")
    assert _value(r, "fsd_esl_connection_up", {"switch": "fs1"}) == 0
    assert _value(r, "fsd_esl_reconnects_total", {"switch": "fs1"}) == 0

    init_fixed_labels(m)
    for c in ("api", "bgapi"):
        assert _value(r, "fsd_esl_command_duration_seconds_count", {"command": c}) == 0
        for reason in ESL_COMMAND_ERROR_REASONS:
            assert _value(r, "fsd_esl_command_errors_total", {"command": c, "reason": reason}) == 0
    for op in DB_OPERATIONS:
        assert _value(r, "fsd_db_errors_total", {"operation": op}) == 0


# -- scrape-time gauges ------------------------------------------------------------------------------
def test_scrape_gauges_without_sources_export_names_but_no_made_up_values():
    m = Metrics(registry=CollectorRegistry())
    install_scrape_gauges(m, process=False)
    fams = _scrape(m.registry)
    for spec in SCRAPE_GAUGES:
        assert spec.name in fams and fams[spec.name].type == "gauge", spec.name
        assert fams[spec.name].samples == [], spec.name


def test_fixed_states_are_zero_filled_once_a_source_exists():
    m = Metrics(registry=CollectorRegistry())
    install_scrape_gauges(m, members=dict, pool=dict, process=False)
    fams = _scrape(m.registry)
    assert {s.labels["state"]: s.value for s in fams["fsd_members"].samples} == dict.fromkeys(MEMBER_STATES, 0.0)
    assert {s.labels["state"]: s.value for s in fams["fsd_db_pool_connections"].samples} == \
        dict.fromkeys(POOL_STATES, 0.0)


def test_a_failing_source_does_not_break_the_scrape():
    def broken():
        raise OSError("spool unreadable")

    m = Metrics(registry=CollectorRegistry())
    install_scrape_gauges(m, spool_depth=broken, queues=broken, members=broken, esl_queues=broken, pool=broken,
                          process=False)
    m.calls_offered.labels("1", "2").inc()
    fams = _scrape(m.registry)
    assert fams["fsd_history_spool_depth"].samples == []
    assert fams["fsd_members"].samples == []
    assert _value(m.registry, "fsd_calls_offered_total", {"tenant": "1", "department": "2"}) == 1


@pytest.mark.parametrize(("answer", "value"), [(True, 1), (False, 0), ((True, "switch fs1 connected"), 1),
                                               ((False, "database unreachable"), 0), (RuntimeError("boom"), 0)])
def test_ready_gauge_follows_the_readiness_check(answer, value):
    def check():
        if isinstance(answer, Exception):
            raise answer
        return answer

    m = Metrics(registry=CollectorRegistry())
    install_scrape_gauges(m, ready=check, process=False)
    assert _value(m.registry, "fsd_ready") == value


def test_scrape_gauges_read_their_sources_at_scrape_time():
    waiting = {("acme.example", "sales"): (3, 42.5), ("acme.example", "support"): (0, 0.0)}
    members = {"free": 2, "busy": 1, "bogus": 9}
    depth = {"fs1": 7}
    spool = [0]
    m = Metrics(registry=CollectorRegistry())
    install_scrape_gauges(
        m,
        queues=lambda: [(t, d, n, w) for (t, d), (n, w) in waiting.items()],
        members=lambda: members,
        esl_queues=lambda: depth,
        spool_depth=lambda: spool[0],
        pool=lambda: {"in_use": 4, "waiting": 1},
    )
    r = m.registry
    sales = {"tenant": "acme.example", "department": "sales"}
    assert _value(r, "fsd_queue_callers_waiting", sales) == 3
    assert _value(r, "fsd_queue_longest_wait_seconds", sales) == 42.5
    assert _value(r, "fsd_queue_callers_waiting", {"tenant": "acme.example", "department": "support"}) == 0
    assert _value(r, "fsd_members", {"state": "free"}) == 2
    assert _value(r, "fsd_members", {"state": "ringing"}) == 0
    assert _value(r, "fsd_members", {"state": "bogus"}) is None
    assert _value(r, "fsd_esl_event_queue_depth", {"switch": "fs1"}) == 7
    assert _value(r, "fsd_db_pool_connections", {"state": "in_use"}) == 4
    assert _value(r, "fsd_db_pool_connections", {"state": "idle"}) == 0
    # values change with their source, no stale copy
    waiting[("acme.example", "sales")] = (1, 3.0)
    spool[0] = 12
    depth["fs2"] = 1
    assert _value(r, "fsd_queue_callers_waiting", sales) == 1
    assert _value(r, "fsd_history_spool_depth") == 12
    assert _value(r, "fsd_esl_event_queue_depth", {"switch": "fs2"}) == 1
    assert _value(r, "process_cpu_seconds_total") is not None


def test_markdown_reference_lists_every_family():
    r = full_registry()
    text = markdown(r)
    for fam in families(r).values():
        assert f"`{fam.name}" in text


# -- the real composition root ------------------------------------------------------------------------
def test_app_registry_exports_what_dashboard_and_alerts_use():
    import json

    import yaml

    from fsd import config
    from fsd.app import App
    from tests.ops.common import ALERTS, DASHBOARD
    from tests.ops.promql import substitute_grafana, usage

    app = App(config=config.load(path=None, env={}))  # builds everything, opens nothing
    have = series(app.metrics.registry)
    used = set()
    with open(DASHBOARD, encoding="utf-8") as f:
        for p in json.load(f)["panels"]:
            for t in p.get("targets", []):
                used |= usage(substitute_grafana(t["expr"])).metrics
    with open(ALERTS, encoding="utf-8") as f:
        for g in yaml.safe_load(f)["groups"]:
            for rule in g["rules"]:
                used |= usage(rule["expr"]).metrics
    missing = used - have.keys() - {"up"}
    assert not missing, f"used by the dashboard or alerts but not exported by App: {sorted(missing)}"
