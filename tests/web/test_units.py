"""Pure pieces of the web layer: the sign-in rate limiter, message translation, the body checker,
the CSV export's spreadsheet-formula guard, and the SVG charts' escaping."""

from __future__ import annotations

import pytest

from fsd.errors import ValidationError
from fsd.services.auth import RateLimiter, split_login
from fsd.services.history import _csv_safe
from fsd.web import charts, i18n
from fsd.web import schema as S


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_rate_limiter_window_slides():
    clock = Clock()
    rl = RateLimiter(per_minute=3, clock=clock)
    for _ in range(3):
        assert rl.retry_after("k") == 0
        rl.fail("k")
    assert rl.retry_after("k") == 60
    clock.t += 30
    assert rl.retry_after("k") == 30
    assert rl.retry_after("other") == 0
    clock.t += 30.5
    assert rl.retry_after("k") == 0
    rl.fail("k")
    rl.reset("k")
    assert rl.retry_after("k") == 0


def test_split_login():
    assert split_login(" Ivanov@Company.Example ") == ("ivanov", "company.example")
    for bad in ("ivanov", "@x.y", "a@", "a@b@c"):
        with pytest.raises(ValidationError):
            split_login(bad)


def test_messages_are_translated_by_pattern_and_fall_back_to_english():
    ru = i18n.translate_message("tariff limit reached: 5 of 5 users", "ru")
    assert ru.startswith("Достигнут лимит тарифа: 5 из 5")
    assert i18n.translate_message("tariff limit reached: 5 of 5 users", "en") == "tariff limit reached: 5 of 5 users"
    assert i18n.translate_message("something new and unknown", "ru") == "something new and unknown"
    assert i18n.gettext("Employees", "ru") == "Сотрудники" and i18n.gettext("Employees", "en") == "Employees"


def test_body_checker_names_the_field():
    sch = S.obj({"name": S.string(5), "n": S.integer(1, 3), "tags": S.array(S.enum(("a", "b")))}, required=["name"])
    S.check(sch, {"name": "ok", "n": 2, "tags": ["a"]}, "")
    for body, field in (({}, "name"), ({"name": 1}, "name"), ({"name": "toolong"}, "name"),
                        ({"name": "x", "n": True}, "n"), ({"name": "x", "n": 9}, "n"),
                        ({"name": "x", "tags": ["c"]}, "tags"), ({"name": "x", "zzz": 1}, "zzz"),
                        ({"name": "a\x00"}, "name")):
        with pytest.raises(ValidationError) as e:
            S.check(sch, body, "")
        assert e.value.field == field, body
    with pytest.raises(ValidationError):
        S.check(sch, [1], "")
    assert S.coerce_query(S.integer(1, 10), " 7 ", "limit") == 7
    with pytest.raises(ValidationError):
        S.coerce_query(S.integer(1, 10), "7; DROP", "limit")


def test_csv_cells_cannot_become_formulas():
    assert _csv_safe("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert _csv_safe("@SUM(A1)") == "'@SUM(A1)"
    assert _csv_safe("+79161234567") == "+79161234567"
    assert _csv_safe(None) == ""


def test_chart_escapes_labels():
    svg = str(charts.stacked_bars(["<b>"], [("<script>", "#000", [1.0])], title="t&t"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;b&gt;" in svg and "t&amp;t" in svg
