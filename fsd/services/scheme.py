"""The graphical scheme of a number: store models → fsd.routing.flow inputs → graph and SVG."""

from __future__ import annotations

import logging

from fsd.errors import FsdError
from fsd.queue.callback import CallbackPolicy
from fsd.queue.noanswer import NoAnswerAction
from fsd.queue.strategy import DepartmentPolicy
from fsd.queue.waiting import ImpatientConfig
from fsd.routing import flow
from fsd.routing import ivr as rivr
from fsd.routing.schedule import Schedule as RSchedule
from fsd.services.base import Actor, Service
from fsd.store import repos
from fsd.store.models import Department, IvrMenu, Number

log = logging.getLogger(__name__)


def _dest(kind: str | None, dep: int | None, emp: int | None, menu: int | None) -> flow.Destination:
    if kind == "department":
        return flow.Destination(kind="department", ref=dep)
    if kind == "employee":
        return flow.Destination(kind="employee", ref=emp)
    if kind == "ivr":
        return flow.Destination(kind="ivr", ref=menu)
    return flow.Destination(kind="voicemail")


def number_config(num: Number, prompt_names: dict[int, str]) -> flow.NumberConfig:
    def pname(pid):
        return prompt_names.get(pid) if pid else None

    dest = _dest(num.dest_kind, num.dest_department_id, num.dest_employee_id, num.dest_ivr_id)
    action = num.offhours_action
    if action == "forward":
        ooh = flow.OutOfHours(action="forward", target=num.offhours_number)
    elif action == "destination":
        ooh = flow.OutOfHours(action="destination", target=_dest(num.offhours_dest_kind, num.offhours_department_id,
                                                                   num.offhours_employee_id, num.offhours_ivr_id))
    elif action == "message_hangup":
        ooh = flow.OutOfHours(action="message_hangup", prompt=pname(num.offhours_prompt_id) or "offhours (standard)")
    else:
        ooh = flow.OutOfHours(action="voicemail", prompt=pname(num.offhours_prompt_id))
    return flow.NumberConfig(number=num.did, destination=dest, mode=num.mode, out_of_hours=ooh,
                             greeting=pname(num.greeting_prompt_id))


def department_info(d: Department, names: dict[int, str], prompt_names: dict[int, str],
                    callback: CallbackPolicy) -> flow.DepartmentInfo:
    target = {"forward_external": d.no_answer_number, "transfer_employee": d.no_answer_employee_id,
              "transfer_department": d.no_answer_department_id}.get(d.no_answer_action)
    greeting = prompt_names.get(d.voicemail_prompt_id) if d.voicemail_prompt_id else None
    return flow.DepartmentInfo(
        name=d.name,
        policy=DepartmentPolicy(strategy=d.strategy, step_delay_s=float(d.step_delay),
                                ring_timeout_s=float(d.ring_timeout)),
        members=tuple(names.get(i, f"#{i}") for i in d.member_ids),
        impatient=ImpatientConfig(enabled=d.impatient_enabled, threshold_s=float(d.impatient_threshold)),
        no_answer=NoAnswerAction(kind=d.no_answer_action, target=target, greeting=greeting),
        callback=callback,
    )


def ivr_menu(m: IvrMenu, prompt_names: dict[int, str]) -> rivr.IvrMenu:
    def action(kind, dep, emp, sub):
        if kind == "department":
            return rivr.IvrAction(kind="department", target=dep)
        if kind == "employee":
            return rivr.IvrAction(kind="employee", target=emp)
        if kind == "menu":
            return rivr.IvrAction(kind="menu", target=sub)
        return rivr.IvrAction(kind=kind)

    items = tuple(rivr.IvrItem(digit=i.digit, action=action(i.action, i.department_id, i.employee_id, i.submenu_id))
                  for i in m.items)
    return rivr.IvrMenu(
        menu_id=m.id, name=m.name, prompt=prompt_names.get(m.prompt_id) if m.prompt_id else "ivr_sample (standard)",
        items=items, timeout_s=float(m.timeout_s), max_repeats=m.max_repeats, extension_digits=m.ext_digits,
        fallback=action(m.fallback_kind, m.fallback_department_id, m.fallback_employee_id, m.fallback_menu_id),
    )


class SchemeService(Service):
    def __init__(self, *, pool, callback: CallbackPolicy | None = None):
        super().__init__(pool=pool)
        self.callback = callback or CallbackPolicy()

    def graph(self, actor: Actor, tenant_id: int, number_id: int) -> flow.FlowGraph:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            tenant = repos.tenant_get(cur, tenant_id)
            num = repos.number_get(cur, tenant_id, number_id)
            emps = {e.id: e.name for e in repos.employee_list(cur, tenant_id)}
            deps = repos.department_list(cur, tenant_id)
            menus = repos.ivr_list(cur, tenant_id)
            pnames = {p.id: p.name for p in repos.prompt_list(cur, tenant_id)}
        departments = {}
        for d in deps:
            try:
                departments[d.id] = department_info(d, emps, pnames, self.callback)
            except FsdError as e:  # a half-configured department still draws (as "missing")
                log.info("scheme_department_skipped id=%s err=%s", d.id, e)
        menu_map = {}
        for m in menus:
            try:
                menu_map[m.id] = ivr_menu(m, pnames)
            except FsdError as e:
                log.info("scheme_menu_skipped id=%s err=%s", m.id, e)
        return flow.describe_flow(number_config(num, pnames), departments=departments, menus=menu_map,
                                  employees=emps, schedule=RSchedule(timezone=tenant.timezone))

    def svg(self, actor: Actor, tenant_id: int, number_id: int) -> str:
        return flow.render_svg(self.graph(actor, tenant_id, number_id))
