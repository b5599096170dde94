"""The caller's name reaches the member's phone as it came, spaces included, and nothing in it can add a
variable or end the dial string. Real sockets, the emulator, PostgreSQL."""

from __future__ import annotations

import pytest

from fsd.calls.call import _safe, _safe_quoted
from fsd.sim import NoAnswer
from tests.calls.harness import World, phone
from tests.helpers import wait_for


@pytest.mark.parametrize(("name", "shown"), [
    ("Ivan Petrov", "Ivan Petrov"),
    ("Иванов Пётр", "Иванов Пётр"),
    ("Eve', fsd_x=1}{evil", "Eve fsd_x=1evil"),
    ("  spaced   out  ", "spaced out"),
])
def test_member_leg_shows_the_callers_name(pool, node, name, shown):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a], strategy="simultaneous", ring_timeout=60)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    pa = phone(node, w, a, NoAnswer())
    ch = node.switch.incoming_call(did=num.did.lstrip("+"), caller="79161234567", caller_name=name,
                                   context="fsd-public")
    wait_for(lambda: pa.calls, timeout=10, message="Anna's phone rings")
    leg = node.switch.channel(pa.calls[0])
    assert leg.profile["Caller-ID-Name"] == shown  # what the member's phone displays
    assert leg.get_var("fsd_x") is None  # nothing in the name became a variable
    node.switch.channel(ch.uuid).hangup("NORMAL_CLEARING", remote=True)


def test_the_sanitisers():
    assert _safe("+7 916 123-45-67") == "+7916123-45-67"  # bare: no blank either
    assert _safe("${system(x)}") == "system(x)"
    assert _safe_quoted("A\\\\'B, C") == "AB C"
    assert _safe_quoted("") == "" and _safe_quoted("'''") == ""
