"""Departments: members in order, ring strategy, no-answer action, impatient-caller option.

One `save` applies everything atomically (the cabinet's single "Save" button).
"""

from __future__ import annotations

from fsd.domain import rules
from fsd.errors import ValidationError
from fsd.services import common
from fsd.services.base import Actor, check_extension_free
from fsd.store import repos
from fsd.store.models import Department

FIELDS = ("name", "extension", "strategy", "step_delay", "ring_timeout", "no_answer_action", "no_answer_number",
          "no_answer_employee_id", "no_answer_department_id", "voicemail_prompt_id", "impatient_enabled",
          "impatient_threshold", "impatient_offer_callback", "impatient_offer_voicemail", "impatient_prompt_id")

DEFAULTS = {"strategy": "simultaneous", "step_delay": 15, "ring_timeout": 60, "no_answer_action": "voicemail",
            "impatient_enabled": False, "impatient_threshold": 20, "impatient_offer_callback": True,
            "impatient_offer_voicemail": True}


# field → check (value, field name) → clean value
CHECKS: dict[str, common.Check] = {
    "name": common.valid_name,
    "extension": lambda v, _f: rules.validate_extension(v) if v else None,
    "strategy": lambda v, _f: rules.validate_strategy(v),
    "step_delay": common.seconds(1, 600),
    "ring_timeout": common.seconds(5, 3600),
    "no_answer_action": lambda v, _f: rules.validate_no_answer_action(v),
    "no_answer_number": common.opt_phone,
    **dict.fromkeys(("no_answer_employee_id", "no_answer_department_id", "voicemail_prompt_id",
                     "impatient_prompt_id"), common.opt_id),
    **dict.fromkeys(("impatient_enabled", "impatient_offer_callback", "impatient_offer_voicemail"),
                    common.as_bool),
    "impatient_threshold": common.seconds(5, 600),
}

# what each no-answer action needs; the targets of the other actions are cleared
NO_ANSWER_TARGETS = {
    "forward_external": ("no_answer_number", "forwarding on no answer needs an external number"),
    "transfer_employee": ("no_answer_employee_id", "transfer on no answer needs an employee"),
    "transfer_department": ("no_answer_department_id", "transfer on no answer needs a department"),
}

# references that must exist in the company
REFS = {"no_answer_employee_id": repos.employee_get, "no_answer_department_id": repos.department_get,
        "voicemail_prompt_id": repos.prompt_get, "impatient_prompt_id": repos.prompt_get}


def validate_fields(data: dict) -> dict:
    """Validate the department fields present in `data` (pure)."""
    return common.validate(data, CHECKS)


class DepartmentService(common.ConfigService):
    def list(self, actor: Actor, tenant_id: int) -> list[Department]:
        return self._read(actor, tenant_id, repos.department_list)

    def get(self, actor: Actor, tenant_id: int, department_id: int) -> Department:
        return self._read(actor, tenant_id, repos.department_get, department_id)

    def find(self, actor: Actor, tenant_id: int, ref: str) -> Department:
        return self._read(actor, tenant_id, repos.department_find, ref)

    def create(self, actor: Actor, tenant_id: int, *, members: list | None = None, **fields) -> Department:
        return self.save(actor, tenant_id, None, members=members if members is not None else [], **fields)

    def update(self, actor: Actor, tenant_id: int, department_id: int, *, members: list | None = None,
               **fields) -> Department:
        return self.save(actor, tenant_id, department_id, members=members, **fields)

    def save(self, actor: Actor, tenant_id: int, department_id: int | None, *, members: list | None = None,
             **fields) -> Department:
        """Create (department_id None) or update a department and its members in one transaction.

        `members` is an ordered list of employee ids, logins or extensions; None leaves them as they are.
        """
        actor.require_admin(tenant_id)
        common.check_names(fields, FIELDS, "department")
        common.require_name(fields, creating=department_id is None)
        values = validate_fields(fields)
        with self._edit(actor, tenant_id, department_id, entity="department", get=repos.department_get,
                        defaults=DEFAULTS, names=FIELDS, values=values) as ed:
            cur, old, merged = ed.cur, ed.old, ed.merged
            common.keep_target(merged, merged["no_answer_action"], NO_ANSWER_TARGETS)
            common.refuse_self(merged, "no_answer_department_id", department_id,
                               "a department cannot transfer to itself")
            common.check_refs(cur, tenant_id, merged, REFS)
            ext = merged.get("extension")
            if ext and (old is None or old.extension != ext):
                check_extension_free(cur, tenant_id, ext)
            dep = ed.write(repos.department_insert, repos.department_update)
            if members is not None:
                ids = []
                for ref in members:
                    emp = repos.employee_find(cur, tenant_id, str(ref))
                    if emp.id in ids:
                        raise ValidationError(f"employee {emp.login} is listed twice", field="members")
                    ids.append(emp.id)
                repos.department_set_members(cur, dep.id, ids)
            dep = repos.department_get(cur, tenant_id, dep.id)
            ed.ch.details["members"] = dep.member_ids
        return dep

    def delete(self, actor: Actor, tenant_id: int, department_id: int) -> None:
        actor.require_admin(tenant_id)
        self._delete(actor, tenant_id, department_id, entity="department", get=repos.department_get,
                     delete=repos.department_delete, details=lambda dep: {"name": dep.name})
