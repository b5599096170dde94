from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fsd.errors import Conflict, ValidationError
from fsd.queue.callback import (
    CANCELLED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    CallbackPolicy,
    attempt_failed,
    cancel,
    complete,
    due_callbacks,
    new_callback,
    start_attempt,
)
from fsd.queue.noanswer import NoAnswerAction, resolve_no_answer
from fsd.routing.schedule import Interval, Schedule, WeeklyInterval
from fsd.routing.steps import Forward, RingDepartment, RingEmployee, Voicemail

MSK = ZoneInfo("Europe/Moscow")
OFFICE = Schedule(
    timezone="Europe/Moscow",
    weekly=tuple(WeeklyInterval(weekday=d, interval=Interval.parse("09:00-18:00")) for d in range(5)),
)
ALWAYS = Schedule.always(timezone="Europe/Moscow")


def msk(*a):
    return datetime(*a, tzinfo=MSK)


def req(rid="r1", dept="sales", now=None, schedule=ALWAYS, **kw):
    return new_callback(
        request_id=rid,
        department_id=dept,
        caller_number="+79161234567",
        company_number="+74950000000",
        now=now or msk(2026, 11, 26, 10, 0),
        schedule=schedule,
        **kw,
    )


def test_happy_path_completed():
    now = msk(2026, 11, 26, 10, 0)
    r = req(now=now, position=4)
    assert (r.status, r.attempts, r.next_attempt_at, r.position, r.queued_at) == (PENDING, 0, now, 4, now)
    r = start_attempt(r, now)
    assert (r.status, r.attempts) == (IN_PROGRESS, 1)
    r = complete(r, now + timedelta(minutes=1))
    assert r.status == COMPLETED and r.final and r.finished_at == now + timedelta(minutes=1)
    with pytest.raises(Conflict):
        cancel(r, now)
    with pytest.raises(Conflict):
        start_attempt(r, now)


def test_retries_every_interval_then_failed():
    now = msk(2026, 11, 26, 10, 0)
    r = req(now=now, schedule=OFFICE)
    times = []
    for _ in range(3):
        times.append(r.next_attempt_at)
        r = start_attempt(r, r.next_attempt_at)
        r = attempt_failed(r, r_time := times[-1] + timedelta(seconds=40), schedule=OFFICE, reason="no_answer")
    assert r.status == FAILED and r.attempts == 3 and r.last_error == "no_answer"
    assert r.finished_at == r_time
    assert times == [now, now + timedelta(seconds=340), now + timedelta(seconds=680)]


def test_custom_policy_attempts_and_interval():
    now = msk(2026, 11, 26, 10, 0)
    r = req(now=now, policy=CallbackPolicy(max_attempts=1, retry_interval_s=60))
    r = attempt_failed(start_attempt(r, now), now, schedule=ALWAYS, reason="busy")
    assert r.status == FAILED
    with pytest.raises(ValidationError):
        CallbackPolicy(max_attempts=0)


def test_request_out_of_hours_waits_for_next_opening():
    friday_evening = msk(2026, 11, 27, 19, 30)
    r = req(now=friday_evening, schedule=OFFICE)
    assert r.next_attempt_at == msk(2026, 11, 30, 9, 0).astimezone(UTC)
    with pytest.raises(Conflict):
        start_attempt(r, friday_evening)


def test_retry_crossing_closing_time_moves_to_next_opening():
    r = req(now=msk(2026, 11, 26, 17, 58), schedule=OFFICE)
    r = start_attempt(r, msk(2026, 11, 26, 17, 58))
    r = attempt_failed(r, msk(2026, 11, 26, 17, 59), schedule=OFFICE, reason="no_answer")
    assert r.status == PENDING and r.next_attempt_at == msk(2026, 11, 27, 9, 0)


def test_never_open_schedule_fails_at_once():
    r = req(schedule=Schedule(timezone="UTC"))
    assert r.status == FAILED and r.last_error == "schedule_closed"


def test_cancel_from_pending_and_in_progress():
    now = msk(2026, 11, 26, 10, 0)
    assert cancel(req(now=now), now).status == CANCELLED
    r = cancel(start_attempt(req(now=now), now), now, reason="customer_called_again")
    assert r.status == CANCELLED and r.last_error == "customer_called_again"
    with pytest.raises(ValidationError):
        new_callback(request_id=1, department_id=1, caller_number="", company_number=None, now=now, schedule=ALWAYS)


def test_due_callbacks_place_in_line_and_free_members():
    base = msk(2026, 11, 26, 10, 0)
    a = req("a", now=base + timedelta(seconds=30), queued_at=base + timedelta(seconds=5), position=2)
    b = req("b", now=base + timedelta(seconds=20), queued_at=base, position=1)
    c = req("c", now=base + timedelta(seconds=40), queued_at=base + timedelta(seconds=9), position=3)
    other = req("o", dept="support", now=base + timedelta(seconds=50))  # later in line than sales' first
    later = req("later", now=base + timedelta(hours=1))
    done = complete(start_attempt(req("d", now=base), base), base)
    now = base + timedelta(minutes=1)
    got = due_callbacks(
        [a, b, c, other, later, done], {"sales": ["m1", "m2"], "support": ["m2", "m3"]}, now, schedule=OFFICE
    )
    assert [(g.request.request_id, g.member_id) for g in got] == [("b", "m1"), ("a", "m2"), ("o", "m3")]
    # no free members: nothing
    assert due_callbacks([a, b], {}, now, schedule=OFFICE) == []


def test_due_callbacks_nothing_while_closed():
    r = req(now=msk(2026, 11, 26, 10, 0))
    assert due_callbacks([r], {"sales": ["m1"]}, msk(2026, 11, 26, 20, 0), schedule=OFFICE) == []
    assert len(due_callbacks([r], {"sales": ["m1"]}, msk(2026, 11, 27, 9, 0), schedule=OFFICE)) == 1


# ---- no-answer -------------------------------------------------------------------------------------


def test_voicemail_default_and_uploaded_greeting():
    plan = resolve_no_answer(NoAnswerAction(), department_id=5)
    assert plan.steps == (Voicemail(box_kind="department", box_id=5, greeting=None),)
    plan = resolve_no_answer(NoAnswerAction(kind="voicemail", greeting="ours.wav"), department_id=5)
    assert plan.steps[0].greeting == "ours.wav"


def test_forward_external_30s_then_voicemail():
    plan = resolve_no_answer(NoAnswerAction(kind="forward_external", target="+79001112233"), department_id=5)
    assert plan.steps == (
        Forward(number="+79001112233", timeout_s=30.0, on_no_answer=(Voicemail(box_kind="department", box_id=5),)),
    )


def test_transfer_employee_and_department():
    assert resolve_no_answer(NoAnswerAction(kind="transfer_employee", target=7), department_id=5).steps == (
        RingEmployee(employee_id=7),
    )
    plan = resolve_no_answer(NoAnswerAction(kind="transfer_department", target=6), department_id=5)
    assert plan.steps == (RingDepartment(department_id=6, chain=(5,)),) and not plan.loop_guarded


def test_transfer_loop_guard_revisit_goes_to_voicemail():
    # sales(1) -> support(2) -> sales(1): loop
    step = resolve_no_answer(NoAnswerAction(kind="transfer_department", target=2), department_id=1).steps[0]
    plan = resolve_no_answer(NoAnswerAction(kind="transfer_department", target=1), department_id=2, chain=step.chain)
    assert plan.loop_guarded and plan.steps == (Voicemail(box_kind="department", box_id=2),)
    # self transfer
    assert resolve_no_answer(NoAnswerAction(kind="transfer_department", target=3), department_id=3).loop_guarded


def test_transfer_depth_guard_after_five_hops():
    chain = ()
    dept = 0
    hops = 0
    while True:
        plan = resolve_no_answer(
            NoAnswerAction(kind="transfer_department", target=dept + 1), department_id=dept, chain=chain
        )
        if plan.loop_guarded:
            break
        step = plan.steps[0]
        chain, dept = step.chain, step.department_id
        hops += 1
    assert hops == 5
    assert plan.steps == (Voicemail(box_kind="department", box_id=5),)


def test_no_answer_validation():
    with pytest.raises(ValidationError):
        NoAnswerAction(kind="pray")
    with pytest.raises(ValidationError):
        NoAnswerAction(kind="forward_external")
