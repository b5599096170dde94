"""Pure adapters: store rows (fsd.store.models) -> the call-logic types of fsd.routing/fsd.queue.

No I/O. Prompt ids are turned into playable paths by a ``prompt_path(prompt_id) -> str | None``
function the caller supplies.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from fsd.queue.noanswer import NoAnswerAction
from fsd.queue.strategy import DepartmentPolicy, Member
from fsd.queue.waiting import ImpatientConfig
from fsd.routing import ivr as rivr
from fsd.routing.flow import Destination, NumberConfig, OutOfHours
from fsd.routing.schedule import DateException, Interval, Schedule, WeeklyInterval
from fsd.store import models

PromptPath = Callable[[int | None], str | None]


def _no_prompt(_pid):
    return None


def schedule(s: models.Schedule) -> Schedule:
    """The company's weekly intervals and dated exceptions (closed days, own hours). A company that
    never set working hours (no intervals, no exceptions) is open around the clock."""
    if not s.intervals and not s.exceptions:
        return Schedule.always(timezone=s.timezone)
    weekly = tuple(
        WeeklyInterval(weekday=i.weekday, interval=Interval(start_minute=i.start_minute, end_minute=i.end_minute))
        for i in s.intervals
    )
    days: dict[date, list[Interval]] = {}
    for ex in s.exceptions:
        lst = days.setdefault(ex.day, [])
        if not ex.closed and ex.start_minute is not None and ex.end_minute is not None:
            lst.append(Interval(start_minute=ex.start_minute, end_minute=ex.end_minute))
    exceptions = tuple(DateException(day=d, intervals=tuple(iv)) for d, iv in sorted(days.items()))
    return Schedule(timezone=s.timezone, weekly=weekly, exceptions=exceptions)


def _destination(kind: str | None, department_id, employee_id, ivr_id) -> Destination:
    if kind == "department":
        return Destination(kind="department", ref=department_id)
    if kind == "employee":
        return Destination(kind="employee", ref=employee_id)
    if kind == "ivr":
        return Destination(kind="ivr", ref=ivr_id)
    return Destination(kind="voicemail", ref=None)


def number_config(n: models.Number, *, prompt_path: PromptPath = _no_prompt,
                  offhours_default: str | None = None) -> NumberConfig:
    """A DID's routing. ``offhours_default`` is the standard "we are closed" prompt, used for
    message-and-hang-up when the company uploaded none."""
    dest = _destination(n.dest_kind, n.dest_department_id, n.dest_employee_id, n.dest_ivr_id)
    prompt = prompt_path(n.offhours_prompt_id)
    action = n.offhours_action
    if action == "message_hangup":
        ooh = OutOfHours(action=action, prompt=prompt or offhours_default or "offhours")
    elif action == "forward":
        ooh = OutOfHours(action=action, target=n.offhours_number, prompt=prompt)
    elif action == "destination":
        target = _destination(n.offhours_dest_kind, n.offhours_department_id, n.offhours_employee_id,
                              n.offhours_ivr_id)
        ooh = OutOfHours(action=action, target=target, prompt=prompt)
    else:
        ooh = OutOfHours(action="voicemail", prompt=prompt)
    return NumberConfig(number=n.did, destination=dest, mode=n.mode, out_of_hours=ooh,
                        greeting=prompt_path(n.greeting_prompt_id))


def department_policy(d: models.Department) -> DepartmentPolicy:
    return DepartmentPolicy(strategy=d.strategy, step_delay_s=float(d.step_delay), ring_timeout_s=float(d.ring_timeout))


def no_answer_action(d: models.Department, *, prompt_path: PromptPath = _no_prompt,
                     forward_timeout_s: float = 30.0) -> NoAnswerAction:
    greeting = prompt_path(d.voicemail_prompt_id)
    kind = d.no_answer_action
    target = {
        "forward_external": d.no_answer_number,
        "transfer_employee": d.no_answer_employee_id,
        "transfer_department": d.no_answer_department_id,
    }.get(kind)
    if kind != "voicemail" and not target:
        kind, target = "voicemail", None
    return NoAnswerAction(kind=kind, target=target, greeting=greeting, forward_timeout_s=float(forward_timeout_s))


def impatient_config(d: models.Department, *, prompt_path: PromptPath = _no_prompt,
                     default_threshold_s: float = 20.0) -> ImpatientConfig:
    threshold = float(d.impatient_threshold or default_threshold_s)
    return ImpatientConfig(enabled=bool(d.impatient_enabled), threshold_s=threshold,
                           prompt=prompt_path(d.impatient_prompt_id))


def member(e: models.Employee, *, registered: bool = True, busy: bool = False,
           last_call_ended_at: float | None = None) -> Member:
    """A department member as the ring strategy sees it (forwarding without a mobile = off)."""
    mode = e.forward_mode if e.mobile else "off"
    return Member(employee_id=e.id, registered=registered, busy=busy or not e.enabled, forward_mode=mode,
                  forward_delay_s=float(e.forward_delay), mobile=e.mobile, last_call_ended_at=last_call_ended_at)


def _ivr_action(kind: str, department_id, employee_id, menu_id) -> rivr.IvrAction:
    if kind == "department" and department_id:
        return rivr.IvrAction(kind="department", target=department_id)
    if kind == "employee" and employee_id:
        return rivr.IvrAction(kind="employee", target=employee_id)
    if kind == "menu" and menu_id:
        return rivr.IvrAction(kind="menu", target=menu_id)
    if kind == "voicemail":
        return rivr.IvrAction(kind="voicemail")
    if kind == "dial_extension":
        return rivr.IvrAction(kind="dial_extension")
    return rivr.IvrAction(kind="hangup")


def ivr_menu(m: models.IvrMenu, *, prompt_path: PromptPath = _no_prompt, default_prompt: str = "ivr_sample",
             default_invalid: str | None = None) -> rivr.IvrMenu:
    items = tuple(
        rivr.IvrItem(digit=i.digit, action=_ivr_action(i.action, i.department_id, i.employee_id, i.submenu_id))
        for i in m.items
    )
    fallback = _ivr_action(m.fallback_kind, m.fallback_department_id, m.fallback_employee_id, m.fallback_menu_id)
    return rivr.IvrMenu(
        menu_id=m.id,
        prompt=prompt_path(m.prompt_id) or default_prompt,
        items=items,
        timeout_s=float(m.timeout_s),
        max_repeats=int(m.max_repeats),
        invalid_prompt=prompt_path(m.invalid_prompt_id) or default_invalid,
        fallback=fallback,
        extension_digits=int(m.ext_digits),
        name=m.name,
    )


def did_candidates(dialled: str) -> list[str]:
    """The E.164 spellings a dialled DID may be stored as ('74950000001' -> '+74950000001')."""
    d = (dialled or "").strip()
    digits = "".join(ch for ch in d if ch.isdigit())
    out = [d]
    if digits:
        out.append("+" + digits)
        if len(digits) == 11 and digits.startswith("8"):
            out.append("+7" + digits[1:])
    return list(dict.fromkeys(x for x in out if x))


def dial_number(e164: str) -> str:
    """The number as sent to the trunk: digits only."""
    return "".join(ch for ch in e164 if ch.isdigit())
