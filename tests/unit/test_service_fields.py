"""The field checks the configuration services share (fsd.services.common), without a database."""

from types import SimpleNamespace

import pytest

from fsd.errors import NotFound, ValidationError
from fsd.services.common import (
    as_bool,
    changed,
    check_names,
    check_refs,
    choice,
    keep_target,
    kind_targets,
    merge,
    one_of,
    opt_id,
    opt_phone,
    refuse_self,
    require_name,
    seconds,
    valid_name,
    validate,
)


def _error(fn) -> ValidationError:
    with pytest.raises(ValidationError) as ei:
        fn()
    return ei.value


@pytest.mark.parametrize("text", [True, "1", "true", " Yes ", "ON"])
def test_as_bool_true(text):
    assert as_bool(text, "f") is True


@pytest.mark.parametrize("text", [False, "0", "false", "no", "Off", ""])
def test_as_bool_false(text):
    assert as_bool(text, "f") is False


def test_as_bool_rejects_anything_else():
    e = _error(lambda: as_bool("maybe", "enabled"))
    assert (str(e), e.field) == ("enabled must be true or false", "enabled")


def test_opt_id():
    assert [opt_id(v, "x_id") for v in (None, "", 0, "0")] == [None] * 4
    assert opt_id("17", "x_id") == 17 and opt_id(5, "x_id") == 5
    for bad in ("abc", [1], "1.5"):
        e = _error(lambda bad=bad: opt_id(bad, "x_id"))
        assert (str(e), e.field) == ("x_id must be an id", "x_id")


def test_choice_and_one_of():
    assert choice(" b ", ("a", "b"), "kind") == "b"
    e = _error(lambda: choice("c", ("a", "b"), "kind"))
    assert (str(e), e.field) == ("kind must be one of: a, b", "kind")
    assert _error(lambda: choice(None, ("a",), "kind")).field == "kind"
    assert one_of(("a", "b"))("a", "kind") == "a"
    assert str(_error(lambda: one_of(("a", "b"))("", "kind"))) == "kind must be one of: a, b"
    assert one_of(("a",), optional=True)("", "kind") is None
    assert one_of(("a",), optional=True)(None, "kind") is None
    assert _error(lambda: one_of(("a",), optional=True)("z", "kind")).field == "kind"


def test_value_checks_name_their_field():
    assert opt_phone("", "no_answer_number") is None and opt_phone(None, "x") is None
    assert opt_phone("8 (495) 123-45-67", "no_answer_number") == "+74951234567"
    assert _error(lambda: opt_phone("12", "no_answer_number")).field == "no_answer_number"
    assert seconds(1, 10)("7", "t") == 7
    e = _error(lambda: seconds(1, 10)(11, "t"))
    assert (str(e), e.field) == ("t must be a whole number of seconds from 1 to 10", "t")
    assert valid_name("  Sales   team ", "name") == "Sales team"
    assert _error(lambda: valid_name("  ", "name")).field == "name"


def test_validate_keeps_only_named_fields_in_table_order():
    seen = []

    def rec(value, field):
        seen.append(field)
        return value * 2

    out = validate({"b": 2, "a": 1, "z": 9}, {"a": rec, "b": rec, "c": rec})
    assert out == {"a": 2, "b": 4} and seen == ["a", "b"]
    e = _error(lambda: validate({"a": "x", "b": "y"}, {"a": as_bool, "b": as_bool}))
    assert e.field == "a"  # the first bad field in table order


def test_check_names_and_require_name():
    check_names({"a": 1}, ("a", "b"), "thing")
    e = _error(lambda: check_names({"zz": 1, "a": 1, "yy": 2}, ("a",), "thing"))
    assert (str(e), e.field) == ("unknown thing field yy", "yy")
    require_name({"name": "X"}, creating=True)
    require_name({}, creating=False)
    e = _error(lambda: require_name({"name": ""}, creating=True))
    assert (str(e), e.field) == ("name is required", "name")


def test_merge_and_changed():
    old = SimpleNamespace(a=1, b=2, c=3)
    assert merge({"a": 0, "d": 4}, None, ("a", "b", "c"), {"b": 5}) == {"a": 0, "d": 4, "b": 5}
    merged = merge({"a": 0, "d": 4}, old, ("a", "b", "c"), {"b": 5})
    assert merged == {"a": 1, "b": 5, "c": 3, "d": 4}
    assert changed(old, ("a", "b", "c"), merged) == {"b": 5}
    assert changed(old, ("a", "b", "c"), {"a": 1, "b": 2}) == {"c": None}


def test_keep_target():
    targets = {"x": ("x_id", "x needs an id"), "y": ("y_id", "y needs an id")}
    m = {"x_id": 1, "y_id": 2, "other": 3}
    keep_target(m, "x", targets)
    assert m == {"x_id": 1, "y_id": None, "other": 3}
    m = {"x_id": 1, "y_id": 2}
    keep_target(m, "none", targets)
    assert m == {"x_id": None, "y_id": None}
    e = _error(lambda: keep_target({"x_id": 1, "y_id": 0}, "y", targets))
    assert (str(e), e.field) == ("y needs an id", "y_id")
    assert kind_targets("dest", "destination", ("department", "ivr")) == {
        "department": ("dest_department_id", "destination department is required"),
        "ivr": ("dest_ivr_id", "destination ivr is required")}


def test_refuse_self():
    refuse_self({"parent_id": 3}, "parent_id", None, "no")  # a new entity has no id yet
    refuse_self({"parent_id": 3}, "parent_id", 4, "no")
    refuse_self({"parent_id": None}, "parent_id", 4, "no")
    e = _error(lambda: refuse_self({"parent_id": 4}, "parent_id", 4, "cannot point at itself"))
    assert (str(e), e.field) == ("cannot point at itself", "parent_id")


def test_check_refs_asks_each_set_reference_in_order():
    asked = []

    def getter(kind, known):
        def get(cur, tenant_id, ref_id):
            asked.append((kind, cur, tenant_id, ref_id))
            if ref_id not in known:
                raise NotFound(f"{kind} not found")
        return get

    refs = {"a_id": getter("a", {1}), "b_id": getter("b", {2}), "c_id": getter("c", set())}
    check_refs("cur", 7, {"a_id": 1, "b_id": 2, "c_id": None}, refs)
    assert asked == [("a", "cur", 7, 1), ("b", "cur", 7, 2)]
    asked.clear()
    with pytest.raises(NotFound, match="b not found"):
        check_refs("cur", 7, {"a_id": 1, "b_id": 3, "c_id": 5}, refs)
    assert [k for k, *_ in asked] == ["a", "b"]
