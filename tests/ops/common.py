"""Shared by the ops tests: where the ops files are and what fsd exports."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from fsd.metrics.catalogue import full_registry, series
from tests.ops.promql import Usage

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPS = os.path.join(ROOT, "ops")
ALERTS = os.path.join(OPS, "prometheus", "fsd-alerts.yml")
ALERT_TESTS = os.path.join(OPS, "prometheus", "fsd-alerts.test.yml")
DASHBOARD = os.path.join(OPS, "grafana", "fsd-dashboard.json")

# labels Prometheus attaches to every scraped series (target labels), not defined by fsd
TARGET_LABELS = {"job", "instance"}
# series Prometheus itself synthesises for every target; alerts may use them
PROMETHEUS_SERIES = {"up": set(), "scrape_duration_seconds": set(), "scrape_samples_scraped": set()}

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")


def exported() -> dict[str, set[str]]:
    """Series name → label names, for everything fsd's Metrics and scrape-time gauges export."""
    return series(full_registry())


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)


def problems(expr: str, u: Usage, known: dict[str, set[str]], legend: str | None = None) -> list[str]:
    """Every metric name or label in `u` that `known` does not have, as readable strings."""
    out = []
    in_expr: set[str] = set(TARGET_LABELS)
    for sel in u.selectors:
        if sel.metric is None:
            out.append(f"selector without a metric name in {expr!r}")
            continue
        if sel.metric not in known:
            out.append(f"unknown series {sel.metric} in {expr!r}")
            continue
        labels = known[sel.metric] | TARGET_LABELS
        in_expr |= labels
        for lab in sel.labels - labels:
            out.append(f"{sel.metric} has no label {lab!r} (in {expr!r})")
    for lab in u.grouping - in_expr:
        out.append(f"grouping label {lab!r} is on none of the series of {expr!r}")
    if legend is not None:
        import re

        for lab in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
            if lab not in in_expr:
                out.append(f"legend uses {{{{{lab}}}}} which no series of {expr!r} carries")
    return out
