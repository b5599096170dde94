"""What a registry exports: every series name Prometheus will see, its type and its label names.

Used by the ops tests (every dashboard and alert query must name a series fsd exports, with labels
that series has) and by `python -m fsd.metrics.catalogue` to print the metric reference table of
ops/README.md. A labelled metric with no child yet has no samples, so names are derived from the
metric type (counter → ``_total``, histogram → ``_bucket``/``_sum``/``_count``, ...)
and label names from the metric definition, not from samples.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}


@dataclass
class Family:
    name: str  # the family name as Prometheus-client knows it (counters without _total)
    type: str
    help: str
    labels: set[str] = field(default_factory=set)
    series: set[str] = field(default_factory=set)  # series names as scraped


def _declared_labels(collector) -> set[str]:
    # prometheus_client metric wrappers keep their label names in _labelnames; fsd's scrape-time
    # collectors in .labels; Info adds its keys as labels of the _info sample.
    names = getattr(collector, "_labelnames", None)
    if names is None and isinstance(getattr(collector, "labels", None), list | tuple):
        names = collector.labels
    return set(names or ())


def families(registry: CollectorRegistry) -> dict[str, Family]:
    """Family name → Family, for everything registered on `registry`."""
    out: dict[str, Family] = {}
    collectors = list(registry._collector_to_names)  # noqa: SLF001 - no public way to list collectors
    for collector in collectors:
        declared = _declared_labels(collector)
        for mf in collector.collect():
            fam = out.setdefault(mf.name, Family(mf.name, mf.type, mf.documentation))
            fam.labels |= declared
            for suffix in _SUFFIXES.get(mf.type, ("",)):
                fam.series.add(mf.name + suffix)
            for s in mf.samples:
                fam.series.add(s.name)
                fam.labels |= set(s.labels)
            if mf.type == "histogram":
                fam.labels.add("le")
            elif mf.type == "summary":
                fam.labels.add("quantile")
    return out


def series(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Series name (as scraped, e.g. ``fsd_calls_offered_total``) → its label names."""
    out: dict[str, set[str]] = {}
    for fam in families(registry).values():
        for name in fam.series:
            labels = set(fam.labels)
            if fam.type == "histogram" and not name.endswith("_bucket"):
                labels.discard("le")
            out.setdefault(name, set()).update(labels)
    return out


# words in a label name that would carry a phone number, a person or a call id: never allowed as labels
# (unbounded cardinality, personal data). Checked per `_`-separated word: "caller_number" → caller, number.
FORBIDDEN_LABEL_WORDS = frozenset({"number", "numbers", "caller", "callee", "uuid", "did", "phone", "mobile", "ani",
                                   "dnis", "cid", "email", "login", "extension", "user", "employee", "destination"})


def forbidden_label(name: str) -> bool:
    return any(w in FORBIDDEN_LABEL_WORDS for w in name.lower().split("_"))

_UUID = re.compile(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
_PHONE = re.compile(r"\+?\d[\d\s()-]{5,}\d")


def suspicious_label_values(registry: CollectorRegistry) -> list[str]:
    """Samples whose label values look like a call UUID or a phone number (for tests after scripted calls).

    Returns ``name{label="value"}`` strings; an empty list means nothing personal leaked into labels.
    """
    out = []
    for mf in registry.collect():
        for s in mf.samples:
            for k, v in s.labels.items():
                if k in ("le", "quantile", "version"):
                    continue
                if _UUID.search(v) or _PHONE.search(v):
                    out.append(f'{s.name}{{{k}="{v}"}}')
    return out


def markdown(registry: CollectorRegistry) -> str:
    rows = ["| metric | type | labels | help |", "|---|---|---|---|"]
    for fam in sorted(families(registry).values(), key=lambda f: f.name):
        shown = fam.name + ("_total" if fam.type == "counter" else "_info" if fam.type == "info" else "")
        labels = ", ".join(sorted(fam.labels - {"le", "quantile"}))
        rows.append(f"| `{shown}` | {fam.type} | {labels} | {fam.help} |")
    return "\n".join(rows) + "\n"


def full_registry() -> CollectorRegistry:
    """A registry with everything fsd exports: Metrics plus the scrape-time gauges (no sources)."""
    from fsd.metrics import Metrics
    from fsd.metrics.gauges import install_scrape_gauges

    m = Metrics(registry=CollectorRegistry())
    install_scrape_gauges(m)
    return m.registry


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(markdown(full_registry()))
