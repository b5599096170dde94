"""A small PromQL reader for the ops tests: which series and which labels an expression uses.

It is not a full parser (promtool checks the syntax); it tokenises the expression and tells apart
metric selectors, label matchers, grouping labels (by/without/on/ignoring/group_left/group_right) and
function or aggregation names. Good enough for the expressions we ship, and strict: an identifier it
cannot classify is reported as a metric name, so a typo fails the test instead of passing silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
                "quantile", "limitk", "limit_ratio"}
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "day_of_month",
    "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "histogram_count",
    "histogram_sum", "histogram_fraction", "histogram_quantile", "holt_winters", "hour", "idelta", "increase",
    "irate", "label_join", "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "rate",
    "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp", "vector", "year",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "quantile_over_time",
    "stddev_over_time", "stdvar_over_time", "last_over_time", "present_over_time", "acos", "asin", "atan", "cos",
    "sin", "tan", "deg", "rad", "pi",
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|s|m|h|d|w|y)(?:\d+(?:ms|s|m|h|d|w|y))*)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){},@])
""", re.VERBOSE)


@dataclass
class Selector:
    metric: str | None
    labels: set[str] = field(default_factory=set)


@dataclass
class Usage:
    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)

    @property
    def metrics(self) -> set[str]:
        return {s.metric for s in self.selectors if s.metric}


def tokenize(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot tokenise {expr[pos:pos + 20]!r} in {expr!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def _matchers(toks, i) -> tuple[set[str], str | None, int]:
    """toks[i] is '{'; return (label names, __name__ value, index after '}')."""
    labels, name = set(), None
    i += 1
    while toks[i][1] != "}":
        kind, val = toks[i]
        if kind == "ident":
            op, rhs = toks[i + 1][1], toks[i + 2]
            if op not in ("=", "!=", "=~", "!~") or rhs[0] != "string":
                raise ValueError(f"bad matcher near {val!r}")
            if val == "__name__":
                name = rhs[1][1:-1]
            else:
                labels.add(val)
            i += 3
        elif val == ",":
            i += 1
        else:
            raise ValueError(f"unexpected {val!r} in label matchers")
    return labels, name, i + 1


def usage(expr: str) -> Usage:
    toks = tokenize(expr)
    u = Usage()
    i = 0
    while i < len(toks):
        kind, val = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident" and val in GROUPING:
            if nxt != "(":
                raise ValueError(f"{val} without a label list in {expr!r}")
            i += 2
            while toks[i][1] != ")":
                if toks[i][0] == "ident":
                    u.grouping.add(toks[i][1])
                i += 1
            i += 1
        elif kind == "ident" and val.lower() in KEYWORDS:
            i += 1
        elif kind == "ident" and (val in AGGREGATIONS or val in FUNCTIONS) and nxt in ("(", "by", "without"):
            u.functions.add(val)
            i += 1
        elif kind == "ident":
            if nxt == "{":
                labels, _, i = _matchers(toks, i + 1)
            else:
                labels, i = set(), i + 1
            u.selectors.append(Selector(val, labels))
        elif val == "{":
            labels, name, i = _matchers(toks, i)
            u.selectors.append(Selector(name, labels))
        else:
            i += 1
    return u


_GRAFANA_VARS = {
    "$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "${__rate_interval}": "5m",
}


def substitute_grafana(expr: str) -> str:
    """Replace Grafana's variables by values PromQL accepts (durations, a regex that matches anything)."""
    for k, v in _GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*(?P<label>\w+)\s*\)\s*$")


def label_values_query(query: str) -> tuple[str, str]:
    """Grafana's `label_values(selector, label)` → (selector, label)."""
    m = _LABEL_VALUES.match(query)
    if not m:
        raise ValueError(f"not a label_values() query: {query!r}")
    return m.group("selector"), m.group("label")
