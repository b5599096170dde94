"""Builds ops/grafana/fsd-dashboard.json (run: python ops/grafana/build_dashboard.py > ops/grafana/fsd-dashboard.json).

The JSON is generated so that panels stay laid out on Grafana's 24-column grid and every query is
written once; tests/ops checks that the committed file equals this script's output, that it imports
(schemaVersion, a Prometheus `datasource` variable), and that every query names only series and
labels fsd exports.
"""

from __future__ import annotations

import json
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
INST = 'instance=~"$instance"'
DEPT = f'{INST},tenant=~"$tenant",department=~"$department"'
RI = "$__rate_interval"


class Layout:
    def __init__(self) -> None:
        self.panels: list[dict] = []
        self.y = 0
        self.x = 0
        self.row_h = 0
        self.next_id = 1

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"id": self._id(), "type": "row", "title": title, "collapsed": False,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
        self.y += 1

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
            self.x, self.row_h = 0, 0

    def panel(self, title: str, targets: list[tuple[str, str]], *, unit: str = "short", kind: str = "timeseries",
              w: int = 8, h: int = 8, description: str = "", stack: bool = False, min0: bool = True,
              fmt: str = "time_series") -> None:
        if self.x + w > 24:
            self._newline()
        defaults: dict = {"unit": unit}
        if kind == "timeseries":
            defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                                  "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
            if min0:
                defaults["min"] = 0
        p = {
            "id": self._id(),
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": _options(kind),
            "targets": [
                {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend,
                 "range": True, "instant": False, "format": fmt}
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        self.panels.append(p)
        self.x += w
        self.row_h = max(self.row_h, h)


def _options(kind: str) -> dict:
    if kind == "stat":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value", "graphMode": "area", "textMode": "auto", "orientation": "auto"}
    if kind == "heatmap":
        return {"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1, "color": {"scheme": "Oranges"}}
    return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"}}


def build() -> dict:
    L = Layout()

    L.row("Overview")
    L.panel("Nodes ready", [(f"sum(fsd_ready{{{INST}}})", "ready")], kind="stat", w=3, h=4,
            description="fsd nodes whose /readyz answers ready (a switch connected, the database or cache usable).")
    L.panel("Switches connected", [(f"sum(fsd_esl_connection_up{{{INST}}})", "connected")], kind="stat", w=3, h=4)
    L.panel("Callers waiting", [(f"sum(fsd_queue_callers_waiting{{{DEPT}}})", "waiting")], kind="stat", w=3, h=4)
    L.panel("Longest wait", [(f"max(fsd_queue_longest_wait_seconds{{{DEPT}}})", "longest")], kind="stat", w=3,
            h=4, unit="s")
    L.panel("Members free", [(f'sum(fsd_members{{{INST},state="free"}})', "free")], kind="stat", w=3, h=4)
    L.panel("Calls offered (1h)", [(f"sum(increase(fsd_calls_offered_total{{{DEPT}}}[1h]))", "offered")],
            kind="stat", w=3, h=4)
    L.panel("History spool", [(f"sum(fsd_history_spool_depth{{{INST}}})", "spooled")], kind="stat", w=3, h=4)
    L.panel("Version", [(f"count by (version) (fsd_info{{{INST}}})", "{{version}}")], kind="stat", w=3, h=4)

    L.row("Event Socket (ESL)")
    L.panel("Connection up by switch", [(f"fsd_esl_connection_up{{{INST}}}", "{{instance}} {{switch}}")],
            description="1 while the inbound Event Socket to the switch is connected and authenticated.")
    L.panel("Reconnects and stalls", [
        (f"sum by (instance, switch) (increase(fsd_esl_reconnects_total{{{INST}}}[{RI}]))",
         "reconnects {{instance}} {{switch}}"),
        (f"sum by (instance, switch) (increase(fsd_esl_liveness_failures_total{{{INST}}}[{RI}]))",
         "stalled {{instance}} {{switch}}")],
        description="Reconnections, and links closed because the switch stopped answering (liveness).")
    L.panel("Event queue depth", [(f"fsd_esl_event_queue_depth{{{INST}}}", "{{instance}} {{switch}}")],
            description="Events received and not yet handled; a growing queue means fsd is falling behind.")
    L.panel("Events received / s by event",
            [(f"sum by (event) (rate(fsd_esl_events_received_total{{{INST}}}[{RI}]))", "{{event}}")],
            unit="ops", stack=True)
    L.panel("Command latency", [
        (f"histogram_quantile(0.5, sum by (le, command) (rate(fsd_esl_command_duration_seconds_bucket{{{INST}}}"
         f"[{RI}])))", "p50 {{command}}"),
        (f"histogram_quantile(0.99, sum by (le, command) (rate(fsd_esl_command_duration_seconds_bucket{{{INST}}}"
         f"[{RI}])))", "p99 {{command}}"),
    ], unit="s")
    L.panel("Command errors / s", [
        (f"sum by (command, reason) (rate(fsd_esl_command_errors_total{{{INST}}}[{RI}]))", "{{command}} {{reason}}"),
        (f"sum(rate(fsd_outbound_sessions_total{{{INST}}}[{RI}]))", "outbound sessions"),
    ], unit="ops")

    L.row("Directory (mod_xml_curl)")
    L.panel("Requests / s by action and result",
            [(f"sum by (action, result) (rate(fsd_xmlcurl_requests_total{{{INST}}}[{RI}]))", "{{action}} {{result}}")],
            unit="reqps", stack=True)
    L.panel("Error and stale ratio", [
        (f'sum(rate(fsd_xmlcurl_requests_total{{{INST},result="error"}}[{RI}])) / '
         f"sum(rate(fsd_xmlcurl_requests_total{{{INST}}}[{RI}]))", "error"),
        (f'sum(rate(fsd_xmlcurl_requests_total{{{INST},result="stale"}}[{RI}])) / '
         f"sum(rate(fsd_xmlcurl_requests_total{{{INST}}}[{RI}]))", "stale (served from cache, DB down)"),
    ], unit="percentunit")
    L.panel("Latency by action", [
        (f"histogram_quantile(0.5, sum by (le, action) (rate(fsd_xmlcurl_request_duration_seconds_bucket{{{INST}}}"
         f"[{RI}])))", "p50 {{action}}"),
        (f"histogram_quantile(0.99, sum by (le, action) (rate(fsd_xmlcurl_request_duration_seconds_bucket{{{INST}}}"
         f"[{RI}])))", "p99 {{action}}"),
    ], unit="s")
    L.panel("Cache evictions and FreeSWITCH cache flushes", [
        (f"sum(increase(fsd_directory_cache_evictions_total{{{INST}}}[{RI}]))", "evictions"),
        (f"sum by (result) (increase(fsd_directory_flush_commands_total{{{INST}}}[{RI}]))", "flush {{result}}"),
    ], w=12)
    L.panel("Directory latency (mean)", [
        (f"sum(rate(fsd_xmlcurl_request_duration_seconds_sum{{{INST}}}[{RI}])) / "
         f"sum(rate(fsd_xmlcurl_request_duration_seconds_count{{{INST}}}[{RI}]))", "mean"),
    ], unit="s", w=12)

    L.row("Calls and queues")
    L.panel("Department calls", [
        (f"sum by (tenant, department) (increase(fsd_calls_offered_total{{{DEPT}}}[{RI}]))",
         "offered {{tenant}}/{{department}}"),
        (f"sum by (tenant, department) (increase(fsd_calls_answered_total{{{DEPT}}}[{RI}]))",
         "answered {{tenant}}/{{department}}"),
        (f"sum by (tenant, department) (increase(fsd_calls_abandoned_total{{{DEPT}}}[{RI}]))",
         "abandoned {{tenant}}/{{department}}"),
        (f"sum by (tenant, department) (increase(fsd_calls_missed_total{{{DEPT}}}[{RI}]))",
         "missed {{tenant}}/{{department}}"),
    ], w=12)
    L.panel("Abandonment ratio", [
        (f"sum by (tenant, department) (increase(fsd_calls_abandoned_total{{{DEPT}}}[1h])) / "
         f"sum by (tenant, department) (increase(fsd_calls_offered_total{{{DEPT}}}[1h]))",
         "{{tenant}}/{{department}}"),
    ], unit="percentunit", w=12, description="Share of calls offered in the last hour whose caller hung up waiting.")
    L.panel("Callers waiting", [(f"fsd_queue_callers_waiting{{{DEPT}}}", "{{tenant}}/{{department}}")], stack=True)
    L.panel("Longest wait now", [(f"fsd_queue_longest_wait_seconds{{{DEPT}}}", "{{tenant}}/{{department}}")],
            unit="s")
    L.panel("Queue wait (p50, p90)", [
        (f"histogram_quantile(0.5, sum by (le, tenant, department) (rate(fsd_queue_wait_seconds_bucket{{{DEPT}}}"
         f"[{RI}])))", "p50 {{tenant}}/{{department}}"),
        (f"histogram_quantile(0.9, sum by (le, tenant, department) (rate(fsd_queue_wait_seconds_bucket{{{DEPT}}}"
         f"[{RI}])))", "p90 {{tenant}}/{{department}}"),
    ], unit="s")
    L.panel("Queue wait distribution",
            [(f"sum by (le) (increase(fsd_queue_wait_seconds_bucket{{{DEPT}}}[{RI}]))", "{{le}}")],
            kind="heatmap", fmt="heatmap", w=8)
    L.panel("Members by state", [(f"sum by (state) (fsd_members{{{INST}}})", "{{state}}")], stack=True)
    L.panel("Calls finished by direction and result",
            [(f"sum by (direction, result) (increase(fsd_calls_total{{{INST}}}[{RI}]))", "{{direction}} {{result}}")],
            stack=True)

    L.row("Impatient callers, callbacks and voicemail")
    L.panel("Impatient offers by department",
            [(f"sum by (tenant, department) (increase(fsd_impatient_offers_total{{{DEPT}}}[{RI}]))",
              "{{tenant}}/{{department}}")], w=6)
    L.panel("Choice after the offer",
            [(f"sum by (choice) (increase(fsd_impatient_choices_total{{{INST}}}[{RI}]))", "{{choice}}")],
            w=6, stack=True)
    L.panel("Callbacks by outcome",
            [(f"sum by (outcome) (increase(fsd_callbacks_total{{{INST}}}[{RI}]))", "{{outcome}}")], w=6, stack=True)
    L.panel("Voicemails and e-mails", [
        (f"sum(increase(fsd_voicemails_total{{{INST}}}[{RI}]))", "voicemails"),
        (f"sum by (kind, result) (increase(fsd_emails_total{{{INST}}}[{RI}]))", "e-mail {{kind}} {{result}}"),
    ], w=6)

    L.row("Database and history spool")
    L.panel("DB pool connections", [(f"sum by (instance, state) (fsd_db_pool_connections{{{INST}}})",
                                     "{{instance}} {{state}}")], w=6)
    L.panel("DB errors / s by operation",
            [(f"sum by (operation) (rate(fsd_db_errors_total{{{INST}}}[{RI}]))", "{{operation}}")], unit="ops", w=6)
    L.panel("History spool depth", [(f"fsd_history_spool_depth{{{INST}}}", "{{instance}}")], w=6,
            description="Call history records kept locally while PostgreSQL is unreachable; drains by itself.")
    L.panel("History records spooled", [(f"sum(increase(fsd_history_spooled_total{{{INST}}}[{RI}]))", "spooled")],
            w=6)

    L.row("Process")
    L.panel("CPU", [(f"rate(process_cpu_seconds_total{{{INST}}}[{RI}])", "{{instance}}")], unit="percentunit", w=6)
    L.panel("Resident memory", [(f"process_resident_memory_bytes{{{INST}}}", "{{instance}}")], unit="bytes", w=6)
    L.panel("Open file descriptors", [
        (f"process_open_fds{{{INST}}}", "{{instance}} open"),
        (f"process_max_fds{{{INST}}}", "{{instance}} max"),
    ], w=6)
    L.panel("Uptime", [(f"time() - process_start_time_seconds{{{INST}}}", "{{instance}}")], unit="s", w=6)
    L.panel("Call setup (connect to first member originate)", [
        (f"histogram_quantile(0.5, sum by (le, instance) (rate(fsd_call_setup_seconds_bucket{{{INST}}}[{RI}])))",
         "p50 {{instance}}"),
        (f"histogram_quantile(0.99, sum by (le, instance) (rate(fsd_call_setup_seconds_bucket{{{INST}}}[{RI}])))",
         "p99 {{instance}}"),
    ], unit="s", w=12,
        description="From the call's outbound socket connect to its first member leg originate: routing, "
                    "the member reservation in PostgreSQL, and the switch's replies on the way.")
    L.panel("Event loop lag", [
        (f"histogram_quantile(0.99, sum by (le, instance) (rate(fsd_event_loop_lag_seconds_bucket{{{INST}}}[{RI}])))",
         "p99 {{instance}}"),
        (f"rate(fsd_event_loop_lag_seconds_sum{{{INST}}}[{RI}]) / "
         f"rate(fsd_event_loop_lag_seconds_count{{{INST}}}[{RI}])", "mean {{instance}}"),
    ], unit="s", w=12,
        description="How late fsd's event loop runs a timer due twice a second. Rising with CPU near one core: "
                    "fsd is saturated (every call and timer waits); spikes at low CPU: something blocks the loop.")

    def var(name: str, label: str, query: str, *, include_all: bool = True) -> dict:
        return {
            "name": name, "label": label, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
            "refresh": 2, "includeAll": include_all, "multi": True, "allValue": ".*", "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [], "hide": 0,
        }

    return {
        "title": "fsd",
        "uid": "fsd-overview",
        "description": "fsd call distribution: Event Socket, directory, department queues, callbacks, database.",
        "tags": ["fsd", "freeswitch", "telephony"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1,
             "regex": ""},
            var("instance", "fsd node", "label_values(fsd_info, instance)"),
            var("tenant", "Tenant", 'label_values(fsd_calls_offered_total{instance=~"$instance"}, tenant)'),
            var("department", "Department",
                'label_values(fsd_calls_offered_total{instance=~"$instance",tenant=~"$tenant"}, department)'),
        ]},
        "panels": L.panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
