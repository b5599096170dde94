"""ops/grafana/fsd-dashboard.json: importable, generated, and every query names only what fsd exports."""

import importlib.util
import json
import os

import pytest

from fsd.metrics.catalogue import families, full_registry
from tests.ops.common import DASHBOARD, OPS, exported, needs_promtool, problems, promtool
from tests.ops.promql import label_values_query, substitute_grafana, usage

ROWS = ["Overview", "Event Socket (ESL)", "Directory (mod_xml_curl)", "Calls and queues",
        "Impatient callers, callbacks and voicemail", "Database and history spool", "Process"]

# the metrics issue 7 lists, each of which the dashboard must chart
REQUIRED = {
    "fsd_esl_connection_up", "fsd_esl_reconnects_total", "fsd_esl_events_received_total",
    "fsd_esl_command_duration_seconds_bucket", "fsd_esl_command_errors_total", "fsd_esl_event_queue_depth",
    "fsd_xmlcurl_requests_total", "fsd_xmlcurl_request_duration_seconds_bucket",
    "fsd_calls_offered_total", "fsd_calls_answered_total", "fsd_calls_abandoned_total", "fsd_calls_missed_total",
    "fsd_queue_callers_waiting", "fsd_queue_longest_wait_seconds", "fsd_queue_wait_seconds_bucket", "fsd_members",
    "fsd_impatient_offers_total", "fsd_impatient_choices_total", "fsd_callbacks_total", "fsd_voicemails_total",
    "fsd_history_spool_depth", "fsd_db_pool_connections", "fsd_db_errors_total", "fsd_info",
}


@pytest.fixture(scope="module")
def dash():
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def _panels(d):
    for p in d["panels"]:
        yield p
        yield from p.get("panels", [])  # panels inside collapsed rows


def _targets(d):
    for p in _panels(d):
        for t in p.get("targets", []):
            yield p, t


def test_committed_json_is_the_generator_output():
    spec = importlib.util.spec_from_file_location("build_dashboard", os.path.join(OPS, "grafana",
                                                                                  "build_dashboard.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with open(DASHBOARD, encoding="utf-8") as f:
        assert f.read() == mod.render(), "run: python ops/grafana/build_dashboard.py > ops/grafana/fsd-dashboard.json"


def test_importable_shape(dash):
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 36
    assert dash["title"] and dash["uid"]
    assert "id" not in dash or dash["id"] is None  # an id would clash with the importing Grafana's own
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    ids = [p["id"] for p in _panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ROWS
    for p in _panels(dash):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}" and t["expr"].strip(), p["title"]


def test_grid_fits_and_nothing_overlaps(dash):
    cells = {}
    for p in _panels(dash):
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


def test_every_query_names_exported_series_and_labels(dash):
    known = exported()
    bad = []
    for p, t in _targets(dash):
        expr = substitute_grafana(t["expr"])
        u = usage(expr)
        assert u.metrics, f"{p['title']}: no series in {expr!r}"
        bad += [f"{p['title']}: {m}" for m in problems(expr, u, known, legend=t.get("legendFormat"))]
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        selector, label = label_values_query(v["query"]["query"])
        u = usage(substitute_grafana(selector))
        bad += problems(selector, u, known)
        for m in u.metrics & known.keys():
            if label not in known[m] | {"instance", "job"}:
                bad.append(f"variable {v['name']}: {m} has no label {label}")
    assert bad == []


def test_dashboard_charts_every_required_metric_and_every_fsd_family(dash):
    used = set()
    for _, t in _targets(dash):
        used |= usage(substitute_grafana(t["expr"])).metrics
    assert REQUIRED - used == set()
    # every fsd_ family fsd exports is on the dashboard under one of its series names
    unused = []
    for fam in families(full_registry()).values():
        if fam.name.startswith("fsd") and not (fam.series & used):
            unused.append(fam.name)
    assert unused == []


@needs_promtool
def test_every_query_is_valid_promql(dash, tmp_path):
    rules = [{"record": f"fsd_dashboard:query_{i}", "expr": substitute_grafana(t["expr"])}
             for i, (_, t) in enumerate(_targets(dash))]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
    r = promtool("check", "rules", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
