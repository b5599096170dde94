"""Scrape-time gauges and label pre-initialisation, defined once.

The values of these gauges live in other parts of fsd (the department queues, the member
registry, the ESL dispatchers, the history spool, the database pool); they are read when
Prometheus scrapes, never copied into a Gauge that could go stale. The composition root calls
`install_scrape_gauges` once with a source for each; a source left out exports the metric with
no samples (its name and help still appear on /metrics, so dashboards and alerts stay valid), and a
source that raises is logged and skipped for that scrape instead of failing the whole /metrics.

Sources are plain callables so this module imports nothing from the parts it observes:

* ``queues()``      → iterable of ``(tenant, department, callers_waiting, longest_wait_seconds)``
* ``members()``     → mapping ``state -> count`` (states outside MEMBER_STATES are ignored and logged)
* ``esl_queues()``  → mapping ``switch -> events waiting in that switch's handler queues``
* ``spool_depth()`` → int, history records spooled locally and not yet written to PostgreSQL
* ``pool()``        → mapping ``state -> connections`` for the states in POOL_STATES
* ``ready()``       → bool, or the ``(ready, reason)`` pair App.readiness() returns

Label values for departments and switches are pre-initialised with `init_department` and
`init_switch` as soon as fsd learns about them, so `rate()` and `increase()` see a zero before
the first event instead of a missing series.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client import ProcessCollector

from fsd.metrics import MEMBER_STATES, Metrics

log = logging.getLogger(__name__)

POOL_STATES = ("in_use", "idle", "waiting")


@dataclass(frozen=True)
class GaugeSpec:
    name: str
    help: str
    labels: tuple[str, ...]


QUEUE_CALLERS_WAITING = GaugeSpec("fsd_queue_callers_waiting", "Callers waiting in a department queue now",
                                  ("tenant", "department"))
QUEUE_LONGEST_WAIT = GaugeSpec("fsd_queue_longest_wait_seconds",
                               "How long the longest-waiting caller of a department has waited",
                               ("tenant", "department"))
MEMBERS = GaugeSpec("fsd_members", "Department members (employees) by state",
                    ("state",))
ESL_EVENT_QUEUE_DEPTH = GaugeSpec("fsd_esl_event_queue_depth",
                                  "Events received from a switch and not yet handled", ("switch",))
HISTORY_SPOOL_DEPTH = GaugeSpec("fsd_history_spool_depth",
                                "Call history records spooled locally, waiting for the database", ())
DB_POOL_CONNECTIONS = GaugeSpec("fsd_db_pool_connections", "Database pool connections by state", ("state",))
READY = GaugeSpec("fsd_ready", "1 when fsd is ready to take calls (what /readyz answers), else 0", ())

SCRAPE_GAUGES: tuple[GaugeSpec, ...] = (QUEUE_CALLERS_WAITING, QUEUE_LONGEST_WAIT, MEMBERS, ESL_EVENT_QUEUE_DEPTH,
                                        HISTORY_SPOOL_DEPTH, DB_POOL_CONNECTIONS, READY)

Sample = tuple[tuple[str, ...], float]


def _none() -> list[Sample]:
    return []


def _safe(name: str, sample: Callable[[], list[Sample]]) -> Callable[[], list[Sample]]:
    """A source that raises loses its samples for this scrape; the rest of /metrics is still served."""

    def guarded() -> list[Sample]:
        try:
            return list(sample())
        except Exception:
            log.exception("metrics_source_failed metric=%s", name)
            return []

    return guarded


def _queue_samples(source, index: int) -> Callable[[], list[Sample]]:
    def sample() -> list[Sample]:
        return [((str(row[0]), str(row[1])), float(row[index])) for row in source()]

    return sample


def _members_samples(source) -> Callable[[], list[Sample]]:
    def sample() -> list[Sample]:
        counts = dict.fromkeys(MEMBER_STATES, 0.0)
        for state, n in source().items():
            if state in counts:
                counts[state] += float(n)
            else:
                log.warning("metrics_unknown_member_state state=%s", state)
        return [((s,), v) for s, v in counts.items()]

    return sample


def _mapping_samples(source, keys: Iterable[str] = ()) -> Callable[[], list[Sample]]:
    keys = tuple(keys)

    def sample() -> list[Sample]:
        values = dict.fromkeys(keys, 0.0)
        for k, v in source().items():
            values[str(k)] = float(v)
        return [((k,), v) for k, v in values.items()]

    return sample


def _ready_samples(source) -> Callable[[], list[Sample]]:
    def sample() -> list[Sample]:
        try:
            r = source()
        except Exception:  # a failing check means not ready; the scrape itself must not fail
            log.exception("metrics_ready_check_failed")
            return [((), 0.0)]
        ok = r[0] if isinstance(r, tuple) else r
        return [((), 1.0 if ok else 0.0)]

    return sample


def install_scrape_gauges(
    metrics: Metrics,
    *,
    queues: Callable[[], Iterable[tuple[str, str, int, float]]] | None = None,
    members: Callable[[], Mapping[str, int]] | None = None,
    esl_queues: Callable[[], Mapping[str, int]] | None = None,
    spool_depth: Callable[[], int] | None = None,
    pool: Callable[[], Mapping[str, int]] | None = None,
    ready: Callable[[], bool | tuple[bool, str]] | None = None,
    process: bool = True,
) -> None:
    """Register every scrape-time gauge of SCRAPE_GAUGES on `metrics.registry` (call once per registry).

    `process=True` also registers prometheus_client's ProcessCollector (process_cpu_seconds_total,
    process_resident_memory_bytes, process_open_fds, process_start_time_seconds, ...) on Linux.
    """
    add = metrics.add_collector

    def gauge(spec: GaugeSpec, sample: Callable[[], list[Sample]] | None) -> None:
        add(spec.name, spec.help, spec.labels, _safe(spec.name, sample) if sample else _none)

    gauge(QUEUE_CALLERS_WAITING, _queue_samples(queues, 2) if queues else None)
    gauge(QUEUE_LONGEST_WAIT, _queue_samples(queues, 3) if queues else None)
    gauge(MEMBERS, _members_samples(members) if members else None)
    gauge(ESL_EVENT_QUEUE_DEPTH, _mapping_samples(esl_queues) if esl_queues else None)
    gauge(HISTORY_SPOOL_DEPTH, (lambda: [((), float(spool_depth()))]) if spool_depth else None)
    gauge(DB_POOL_CONNECTIONS, _mapping_samples(pool, POOL_STATES) if pool else None)
    gauge(READY, _ready_samples(ready) if ready else None)
    if process:
        ProcessCollector(registry=metrics.registry)


# -- label pre-initialisation -------------------------------------------------------------------
def init_department(metrics: Metrics, tenant: str, department: str) -> None:
    """Create the zero-valued series of one department (call when departments are loaded or created)."""
    t, d = str(tenant), str(department)
    for m in (metrics.calls_offered, metrics.calls_answered, metrics.calls_abandoned, metrics.calls_missed,
              metrics.queue_wait, metrics.impatient_offers):
        m.labels(t, d)


def forget_department(metrics: Metrics, tenant: str, department: str) -> None:
    """Drop a deleted department's series so /metrics does not grow forever."""
    t, d = str(tenant), str(department)
    for m in (metrics.calls_offered, metrics.calls_answered, metrics.calls_abandoned, metrics.calls_missed,
              metrics.queue_wait, metrics.impatient_offers):
        try:
            m.remove(t, d)
        except KeyError:
            pass


def init_switch(metrics: Metrics, switch: str) -> None:
    """A configured switch shows as down (0) with zero reconnects until it connects."""
    metrics.esl_up.labels(switch).set(0)
    metrics.esl_reconnects.labels(switch)
    metrics.esl_liveness_failures.labels(switch)


ESL_COMMAND_ERROR_REASONS = ("timeout", "disconnected", "error")
# the vocabulary for fsd_db_errors_total{operation}: the part of fsd that met the error, never free text
# (fsd.directory counts "directory"; the history writer should count "history" when it spools)
DB_OPERATIONS = ("directory", "history", "callbacks", "listen")


def init_fixed_labels(metrics: Metrics, *, esl_commands: Iterable[str] = ("api", "bgapi")) -> None:
    """Pre-initialise the label sets fsd knows in advance that Metrics() does not already create."""
    for c in esl_commands:
        metrics.esl_command_seconds.labels(c)
        for r in ESL_COMMAND_ERROR_REASONS:
            metrics.esl_command_errors.labels(c, r)
    for op in DB_OPERATIONS:
        metrics.db_errors.labels(op)
    for res in ("ok", "error"):
        metrics.directory_flushes.labels(res)
