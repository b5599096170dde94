"""Departments: members in order, ring strategy, no-answer action, impatient-caller option.

One `save` applies everything atomically (the cabinet's single "Save" button).
"""

from __future__ import annotations

from fsd.domain import rules
from fsd.errors import ValidationError
from fsd.services.base import Actor, Service, check_extension_free
from fsd.store import repos
from fsd.store.models import Department

FIELDS = ("name", "extension", "strategy", "step_delay", "ring_timeout", "no_answer_action", "no_answer_number",
          "no_answer_employee_id", "no_answer_department_id", "voicemail_prompt_id", "impatient_enabled",
          "impatient_threshold", "impatient_offer_callback", "impatient_offer_voicemail", "impatient_prompt_id")

DEFAULTS = {"strategy": "simultaneous", "step_delay": 15, "ring_timeout": 60, "no_answer_action": "voicemail",
            "impatient_enabled": False, "impatient_threshold": 20, "impatient_offer_callback": True,
            "impatient_offer_voicemail": True}


def _bool(v, field: str) -> bool:
    if isinstance(v, bool):
        return v
    text = str(v).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValidationError(f"{field} must be true or false", field=field)


def _opt_id(v, field: str) -> int | None:
    if v in (None, "", 0, "0"):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        raise ValidationError(f"{field} must be an id", field=field) from None


def validate_fields(data: dict) -> dict:
    """Validate the department fields present in `data` (pure)."""
    out: dict = {}
    if "name" in data:
        out["name"] = rules.validate_name(data["name"])
    if "extension" in data:
        out["extension"] = rules.validate_extension(data["extension"]) if data["extension"] else None
    if "strategy" in data:
        out["strategy"] = rules.validate_strategy(data["strategy"])
    if "step_delay" in data:
        out["step_delay"] = rules.validate_seconds(data["step_delay"], field="step_delay", lo=1, hi=600)
    if "ring_timeout" in data:
        out["ring_timeout"] = rules.validate_seconds(data["ring_timeout"], field="ring_timeout", lo=5, hi=3600)
    if "no_answer_action" in data:
        out["no_answer_action"] = rules.validate_no_answer_action(data["no_answer_action"])
    if "no_answer_number" in data:
        out["no_answer_number"] = (rules.normalize_phone(data["no_answer_number"], field="no_answer_number")
                                   if data["no_answer_number"] else None)
    for k in ("no_answer_employee_id", "no_answer_department_id", "voicemail_prompt_id", "impatient_prompt_id"):
        if k in data:
            out[k] = _opt_id(data[k], k)
    for k in ("impatient_enabled", "impatient_offer_callback", "impatient_offer_voicemail"):
        if k in data:
            out[k] = _bool(data[k], k)
    if "impatient_threshold" in data:
        out["impatient_threshold"] = rules.validate_seconds(data["impatient_threshold"],
                                                            field="impatient_threshold", lo=5, hi=600)
    return out


def _check_consistency(merged: dict) -> None:
    action = merged.get("no_answer_action", "voicemail")
    if action == "forward_external" and not merged.get("no_answer_number"):
        raise ValidationError("forwarding on no answer needs an external number", field="no_answer_number")
    if action == "transfer_employee" and not merged.get("no_answer_employee_id"):
        raise ValidationError("transfer on no answer needs an employee", field="no_answer_employee_id")
    if action == "transfer_department" and not merged.get("no_answer_department_id"):
        raise ValidationError("transfer on no answer needs a department", field="no_answer_department_id")
    # targets not used by the chosen action are cleared, so the scheme never shows a stale branch
    if action != "forward_external":
        merged["no_answer_number"] = None
    if action != "transfer_employee":
        merged["no_answer_employee_id"] = None
    if action != "transfer_department":
        merged["no_answer_department_id"] = None


class DepartmentService(Service):
    def list(self, actor: Actor, tenant_id: int) -> list[Department]:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.department_list(cur, tenant_id)

    def get(self, actor: Actor, tenant_id: int, department_id: int) -> Department:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.department_get(cur, tenant_id, department_id)

    def find(self, actor: Actor, tenant_id: int, ref: str) -> Department:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.department_find(cur, tenant_id, ref)

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
        unknown = set(fields) - set(FIELDS)
        if unknown:
            raise ValidationError(f"unknown department field {sorted(unknown)[0]}", field=sorted(unknown)[0])
        if department_id is None and not fields.get("name"):
            raise ValidationError("name is required", field="name")
        values = validate_fields(fields)
        op = "create" if department_id is None else "update"
        with self.change(actor, tenant_id=tenant_id, action=op, entity="department") as ch:
            cur = ch.cur
            tenant = repos.tenant_lock(cur, tenant_id)
            old = repos.department_get(cur, tenant_id, department_id) if department_id else None
            merged = dict(DEFAULTS)
            if old is not None:
                merged.update({k: getattr(old, k) for k in FIELDS})
            merged.update(values)
            _check_consistency(merged)
            if merged.get("no_answer_employee_id"):
                repos.employee_get(cur, tenant_id, merged["no_answer_employee_id"])
            if merged.get("no_answer_department_id"):
                if department_id is not None and merged["no_answer_department_id"] == department_id:
                    raise ValidationError("a department cannot transfer to itself", field="no_answer_department_id")
                repos.department_get(cur, tenant_id, merged["no_answer_department_id"])
            for k in ("voicemail_prompt_id", "impatient_prompt_id"):
                if merged.get(k):
                    repos.prompt_get(cur, tenant_id, merged[k])
            ext = merged.get("extension")
            if ext and (old is None or old.extension != ext):
                check_extension_free(cur, tenant_id, ext)
            to_write = {k: merged.get(k) for k in FIELDS}
            if old is None:
                dep = repos.department_insert(cur, tenant_id=tenant_id, **to_write)
            else:
                changed = {k: v for k, v in to_write.items() if getattr(old, k) != v}
                dep = repos.department_update(cur, tenant_id, department_id, **changed)
            if members is not None:
                ids = []
                for ref in members:
                    emp = repos.employee_find(cur, tenant_id, str(ref))
                    if emp.id in ids:
                        raise ValidationError(f"employee {emp.login} is listed twice", field="members")
                    ids.append(emp.id)
                repos.department_set_members(cur, dep.id, ids)
            dep = repos.department_get(cur, tenant_id, dep.id)
            ch.entity_id = dep.id
            ch.details = {**values, "members": dep.member_ids}
            ch.notify = {"domain": tenant.domain}
        return dep

    def delete(self, actor: Actor, tenant_id: int, department_id: int) -> None:
        actor.require_admin(tenant_id)
        with self.change(actor, tenant_id=tenant_id, action="delete", entity="department") as ch:
            dep = repos.department_get(ch.cur, tenant_id, department_id)
            repos.department_delete(ch.cur, tenant_id, department_id)
            ch.entity_id = department_id
            ch.details = {"name": dep.name}

