"""The PromQL reader the dashboard and alert checks rely on must see every name, and not more."""

import pytest

from tests.ops.promql import label_values_query, substitute_grafana, usage


def test_selectors_matchers_and_grouping():
    u = usage('histogram_quantile(0.99, sum by (le, action) (rate(fsd_x_bucket{instance=~"$i",action!="a"}[5m])))')
    assert [(s.metric, s.labels) for s in u.selectors] == [("fsd_x_bucket", {"instance", "action"})]
    assert u.grouping == {"le", "action"}
    assert u.functions == {"histogram_quantile", "sum", "rate"}


def test_binary_operators_keywords_and_trailing_by():
    u = usage('sum(rate(a_total[5m])) by (tenant) / on (tenant) group_left(x) b > bool 0.5 and c offset 1h30m or d')
    assert u.metrics == {"a_total", "b", "c", "d"}
    assert u.grouping == {"tenant", "x"}


def test_strings_never_become_names():
    u = usage('label_replace(up{job="fsd"}, "dst", "$1", "src", "(fsd_.*)")')
    assert u.metrics == {"up"}
    assert u.selectors[0].labels == {"job"}


def test_name_matcher_and_a_typo_is_reported_as_a_metric():
    assert usage('{__name__="fsd_info",version="1"}').metrics == {"fsd_info"}
    # a misspelt function is not silently ignored: it shows up as a (unknown) series name
    assert "rtae" in usage("rtae(fsd_x_total[5m])").metrics


def test_grafana_variables_and_label_values():
    assert substitute_grafana('rate(a{i=~"$instance",t=~"${tenant}"}[$__rate_interval])') == \
        'rate(a{i=~".*",t=~".*"}[5m])'
    assert label_values_query('label_values(fsd_info{instance=~"$i"}, version)') == ('fsd_info{instance=~"$i"}',
                                                                                    "version")
    with pytest.raises(ValueError):
        label_values_query("query_result(up)")


def test_problems_reports_unknown_series_labels_grouping_and_legend():
    from tests.ops.common import problems

    known = {"fsd_a_total": {"tenant"}, "fsd_b": {"state"}}
    expr = 'sum by (tenant, nope) (rate(fsd_a_total{tenant="x",who="y"}[5m])) + fsd_missing'
    out = problems(expr, usage(expr), known, legend="{{tenant}} {{state}} {{instance}}")
    assert any("unknown series fsd_missing" in p for p in out)
    assert any("no label 'who'" in p for p in out)
    assert any("grouping label 'nope'" in p for p in out)
    assert any("{{state}}" in p for p in out)
    assert not any("'tenant'" in p or "{{instance}}" in p or "{{tenant}}" in p for p in out)
    ok = 'sum by (state) (fsd_b{instance="i"})'
    assert problems(ok, usage(ok), known, legend="{{state}}") == []
