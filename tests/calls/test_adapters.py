"""Unit tests: store rows -> call-logic types (pure), and the driver clocks."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from fsd.calls import adapters
from fsd.calls.clock import RealClock, ScaledClock, as_clock
from fsd.routing.flow import route_call
from fsd.routing.schedule import is_open
from fsd.routing.steps import Forward, PlayMessage, RingDepartment, Voicemail
from fsd.store import models as m


def _emp(**kw):
    base = dict(id=7, tenant_id=1, name="Anna", login="anna", password_hash="x", sip_a1_hash="0" * 32, position="",
                role="user", extension="201", email=None, mobile=None, forward_mode="off", forward_delay=15)
    base.update(kw)
    return m.Employee(**base)


def _dept(**kw):
    base = dict(id=3, tenant_id=1, name="Sales", extension=None, strategy="in_order", step_delay=10, ring_timeout=45,
                no_answer_action="voicemail", no_answer_number=None, no_answer_employee_id=None,
                no_answer_department_id=None, voicemail_prompt_id=None, impatient_enabled=True,
                impatient_threshold=25, impatient_offer_callback=True, impatient_offer_voicemail=True,
                impatient_prompt_id=None)
    base.update(kw)
    return m.Department(**base)


def _num(**kw):
    base = dict(id=9, tenant_id=1, did="+74950000001", name="", is_main=True, mode="always", dest_kind="department",
                dest_department_id=3, dest_employee_id=None, dest_ivr_id=None, offhours_action="voicemail",
                offhours_number=None, offhours_dest_kind=None, offhours_department_id=None,
                offhours_employee_id=None, offhours_ivr_id=None, offhours_prompt_id=None, greeting_prompt_id=None)
    base.update(kw)
    return m.Number(**base)


PATHS = {1: "/p/greeting.wav", 2: "/p/closed.wav", 3: "/p/vm.wav", 4: "/p/menu.wav"}


def test_schedule_weekly_and_exceptions():
    s = m.Schedule(tenant_id=1, timezone="Europe/Moscow",
                   intervals=(m.ScheduleInterval(weekday=0, start_minute=540, end_minute=1080),),
                   exceptions=(m.ScheduleException(day=date(2026, 11, 30), closed=True),
                               m.ScheduleException(day=date(2026, 12, 1), closed=False, start_minute=600,
                                                   end_minute=660)))
    sch = adapters.schedule(s)
    # Monday 2026-11-23 10:00 Moscow = 07:00 UTC: open; Monday 2026-11-30 is a holiday
    assert is_open(sch, datetime(2026, 11, 23, 7, 0, tzinfo=UTC))
    assert not is_open(sch, datetime(2026, 11, 30, 7, 0, tzinfo=UTC))
    assert is_open(sch, datetime(2026, 12, 1, 7, 30, tzinfo=UTC))  # the exception's own hours
    assert not is_open(sch, datetime(2026, 12, 1, 9, 0, tzinfo=UTC))


def test_empty_schedule_is_open_around_the_clock():
    sch = adapters.schedule(m.Schedule(tenant_id=1, timezone="UTC"))
    assert is_open(sch, datetime(2026, 11, 29, 3, 0, tzinfo=UTC))


def test_number_config_destinations_and_out_of_hours():
    cfg = adapters.number_config(_num(greeting_prompt_id=1), prompt_path=PATHS.get)
    assert cfg.greeting == "/p/greeting.wav" and cfg.destination.kind == "department"
    plan = route_call(cfg, None, datetime.now(UTC))
    assert isinstance(plan.steps[-1], RingDepartment) and plan.steps[-1].department_id == 3

    closed = adapters.schedule(m.Schedule(tenant_id=1, timezone="UTC", exceptions=tuple(
        m.ScheduleException(day=date(2026, 11, 28 + i), closed=True) for i in range(2))))
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    mh = adapters.number_config(_num(mode="schedule", offhours_action="message_hangup"), prompt_path=PATHS.get,
                                offhours_default="/d/offhours.wav")
    steps = route_call(mh, closed, at).steps
    assert isinstance(steps[0], PlayMessage) and steps[0].prompt == "/d/offhours.wav"
    fw = adapters.number_config(_num(mode="schedule", offhours_action="forward", offhours_number="+79030000000"))
    steps = route_call(fw, closed, at).steps
    assert isinstance(steps[0], Forward) and steps[0].number == "+79030000000"
    vm = adapters.number_config(_num(mode="schedule", offhours_prompt_id=2), prompt_path=PATHS.get)
    steps = route_call(vm, closed, at).steps
    assert isinstance(steps[0], Voicemail) and steps[0].greeting == "/p/closed.wav"
    dest = adapters.number_config(_num(mode="schedule", offhours_action="destination", offhours_dest_kind="employee",
                                       offhours_employee_id=7))
    assert route_call(dest, closed, at).steps[0].employee_id == 7


def test_department_policy_no_answer_and_impatient():
    d = _dept(voicemail_prompt_id=3)
    p = adapters.department_policy(d)
    assert (p.strategy, p.step_delay_s, p.ring_timeout_s) == ("in_order", 10.0, 45.0)
    na = adapters.no_answer_action(d, prompt_path=PATHS.get)
    assert na.kind == "voicemail" and na.greeting == "/p/vm.wav"
    fw = adapters.no_answer_action(_dept(no_answer_action="forward_external", no_answer_number="+79031112233"),
                                   forward_timeout_s=30)
    assert fw.kind == "forward_external" and fw.target == "+79031112233" and fw.forward_timeout_s == 30
    # a target deleted under us: voicemail rather than a broken action
    assert adapters.no_answer_action(_dept(no_answer_action="transfer_employee")).kind == "voicemail"
    imp = adapters.impatient_config(d)
    assert imp.enabled and imp.threshold_s == 25.0


def test_member_forwarding_and_state():
    mem = adapters.member(_emp(mobile="+79035550001", forward_mode="delayed", forward_delay=12), registered=True)
    assert mem.legs() == (("desk", 0.0), ("mobile", 12.0))
    assert adapters.member(_emp(forward_mode="instant"), registered=True).legs() == (("desk", 0.0),)  # no mobile
    assert adapters.member(_emp(), registered=False).legs() == ()
    assert adapters.member(_emp(), busy=True).legs() == ()
    assert adapters.member(_emp(enabled=False)).legs() == ()


def test_ivr_menu():
    menu = m.IvrMenu(id=5, tenant_id=1, name="Main", prompt_id=4, invalid_prompt_id=None, timeout_s=4, max_repeats=2,
                     ext_digits=3, fallback_kind="department", fallback_department_id=3, fallback_employee_id=None,
                     fallback_menu_id=None,
                     items=(m.IvrItem(digit="1", action="department", department_id=3),
                            m.IvrItem(digit="2", action="menu", submenu_id=6),
                            m.IvrItem(digit="9", action="dial_extension"),
                            m.IvrItem(digit="0", action="voicemail")))
    r = adapters.ivr_menu(menu, prompt_path=PATHS.get, default_invalid="/d/invalid.wav")
    assert r.prompt == "/p/menu.wav" and r.invalid_prompt == "/d/invalid.wav" and r.timeout_s == 4.0
    assert r.action_for("1").target == 3 and r.action_for("2").kind == "menu" and r.action_for("2").target == 6
    assert r.action_for("9").kind == "dial_extension" and r.action_for("0").kind == "voicemail"
    assert r.fallback.kind == "department" and r.extension_digits == 3
    # a menu fallback whose target was deleted hangs up
    gone = adapters.ivr_menu(m.IvrMenu(**{**menu.__dict__, "fallback_kind": "menu", "fallback_menu_id": None}))
    assert gone.fallback.kind == "hangup" and gone.prompt == "ivr_sample"


@pytest.mark.parametrize(("dialled", "first"), [("74950000001", "+74950000001"), ("+74950000001", "+74950000001"),
                                                ("84950000001", "+74950000001")])
def test_did_candidates(dialled, first):
    assert first in adapters.did_candidates(dialled)
    assert adapters.dial_number("+7 (495) 000-00-01") == "74950000001"


def test_clocks():
    c = ScaledClock(time_scale=0.01, start=1000.0)
    assert c.real(20) == pytest.approx(0.2)
    assert 1000.0 <= c.now() < 1100.0 and c.monotonic() == pytest.approx(c.now(), abs=1.0)
    assert c.utcnow().tzinfo is UTC
    assert isinstance(as_clock(None), RealClock) and as_clock(c) is c

    class Foreign:
        time_scale = 0.5

        def now(self):
            return 42.0

        def real(self, s):
            return s * 0.5

    a = as_clock(Foreign())
    assert a.now() == 42.0 and a.monotonic() == 42.0 and a.real(4) == 2.0
