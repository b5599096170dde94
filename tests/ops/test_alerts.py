"""ops/prometheus/fsd-alerts.yml: valid for promtool, every alert fires in its unit test, names what fsd exports."""

import re

import yaml

from tests.ops.common import ALERT_TESTS, ALERTS, PROMETHEUS_SERIES, exported, needs_promtool, problems, promtool
from tests.ops.promql import AGGREGATIONS, usage

# what issue 7 asks the rules to cover, and the alert(s) that do
REQUIRED = {
    "switch disconnected": {"FsdSwitchDisconnected"},
    "xml_curl errors": {"FsdXmlCurlErrors"},
    "xml_curl latency": {"FsdXmlCurlSlow"},
    "callers waiting too long": {"FsdCallersWaitingTooLong"},
    "abandonment rate": {"FsdHighAbandonment"},
    "callback failures": {"FsdCallbackFailures"},
    "spool growing": {"FsdHistorySpoolGrowing"},
    "DB errors": {"FsdDatabaseErrors"},
}


def rules():
    with open(ALERTS, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"]]


@needs_promtool
def test_promtool_check_rules():
    r = promtool("check", "rules", ALERTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


@needs_promtool
def test_promtool_unit_tests_pass():
    r = promtool("test", "rules", ALERT_TESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_every_alert_fires_in_a_unit_test():
    with open(ALERT_TESTS, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    fired, quiet = set(), set()
    for t in doc["tests"]:
        for case in t.get("alert_rule_test", []):
            (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {r["alert"] for r in rules()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"


def test_required_alerts_present():
    names = {r["alert"] for r in rules()}
    missing = {what: alerts - names for what, alerts in REQUIRED.items() if alerts - names}
    assert missing == {}


def test_rule_shape():
    seen = set()
    for r in rules():
        name = r["alert"]
        assert name not in seen, f"duplicate alert {name}"
        seen.add(name)
        assert name.startswith("Fsd"), name
        assert "for" in r, f"{name}: no for:"
        assert r["labels"]["severity"] in ("warning", "critical"), name
        ann = r["annotations"]
        assert ann.get("summary") and ann.get("description"), name


def test_alert_expressions_name_only_exported_series_and_labels():
    known = {**exported(), **PROMETHEUS_SERIES}
    bad = []
    for r in rules():
        u = usage(r["expr"])
        assert u.metrics, f"{r['alert']}: no series in {r['expr']!r}"
        bad += problems(r["expr"], u, known)
        # annotations may only template labels the alert's result carries: after an aggregation only the
        # grouping labels survive
        if u.functions & AGGREGATIONS:
            labels_in_expr = set(u.grouping)
        else:
            labels_in_expr = set().union(*(known.get(m, set()) for m in u.metrics)) | {"instance", "job"}
        for text in r["annotations"].values():
            for lab in re.findall(r"\$labels\.(\w+)", text):
                if lab not in labels_in_expr:
                    bad.append(f"{r['alert']}: annotation uses $labels.{lab}, not on {sorted(u.metrics)}")
    assert bad == []
