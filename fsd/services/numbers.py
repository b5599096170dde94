"""Company numbers (DIDs) and IVR menus."""

from __future__ import annotations

from fsd.domain import rules
from fsd.errors import ValidationError
from fsd.services.base import Actor, Service
from fsd.services.departments import _bool, _opt_id
from fsd.store import repos
from fsd.store.models import IvrItem, IvrMenu, Number

DEST_KINDS = ("department", "employee", "ivr", "voicemail")
OFFHOURS_ACTIONS = ("voicemail", "message_hangup", "forward", "destination")
MODES = ("schedule", "always")
NUMBER_FIELDS = ("did", "name", "is_main", "mode", "dest_kind", "dest_department_id", "dest_employee_id",
                 "dest_ivr_id", "offhours_action", "offhours_number", "offhours_dest_kind",
                 "offhours_department_id", "offhours_employee_id", "offhours_ivr_id", "offhours_prompt_id",
                 "greeting_prompt_id")
NUMBER_DEFAULTS = {"name": "", "is_main": False, "mode": "always", "dest_kind": "voicemail",
                   "offhours_action": "voicemail"}

IVR_ACTIONS = ("department", "employee", "dial_extension", "voicemail", "menu", "hangup")
IVR_FALLBACKS = ("department", "employee", "voicemail", "menu", "hangup")
IVR_FIELDS = ("name", "prompt_id", "invalid_prompt_id", "timeout_s", "max_repeats", "ext_digits", "fallback_kind",
              "fallback_department_id", "fallback_employee_id", "fallback_menu_id")
IVR_DEFAULTS = {"timeout_s": 5, "max_repeats": 3, "ext_digits": 3, "fallback_kind": "voicemail"}


def _choice(value, allowed, field: str) -> str:
    v = str(value or "").strip()
    if v not in allowed:
        raise ValidationError(f"{field} must be one of: {', '.join(allowed)}", field=field)
    return v


def validate_number_fields(data: dict) -> dict:
    out: dict = {}
    if "did" in data:
        out["did"] = rules.validate_did(data["did"])
    if "name" in data:
        out["name"] = str(data["name"] or "").strip()[:100]
    if "is_main" in data:
        out["is_main"] = _bool(data["is_main"], "is_main")
    if "mode" in data:
        out["mode"] = _choice(data["mode"], MODES, "mode")
    if "dest_kind" in data:
        out["dest_kind"] = _choice(data["dest_kind"], DEST_KINDS, "dest_kind")
    if "offhours_action" in data:
        out["offhours_action"] = _choice(data["offhours_action"], OFFHOURS_ACTIONS, "offhours_action")
    if "offhours_dest_kind" in data:
        out["offhours_dest_kind"] = (_choice(data["offhours_dest_kind"], DEST_KINDS, "offhours_dest_kind")
                                     if data["offhours_dest_kind"] else None)
    if "offhours_number" in data:
        out["offhours_number"] = (rules.normalize_phone(data["offhours_number"], field="offhours_number")
                                  if data["offhours_number"] else None)
    for k in ("dest_department_id", "dest_employee_id", "dest_ivr_id", "offhours_department_id",
              "offhours_employee_id", "offhours_ivr_id", "offhours_prompt_id", "greeting_prompt_id"):
        if k in data:
            out[k] = _opt_id(data[k], k)
    return out


def _normalise_targets(m: dict) -> None:
    """Exactly the reference the chosen kind needs is kept; a missing one is an error."""
    kind = m["dest_kind"]
    for k in DEST_KINDS[:3]:
        col = f"dest_{k}_id"
        if k == kind:
            if not m.get(col):
                raise ValidationError(f"destination {k} is required", field=col)
        else:
            m[col] = None
    action = m["offhours_action"]
    if action == "forward":
        if not m.get("offhours_number"):
            raise ValidationError("out-of-hours forwarding needs an external number", field="offhours_number")
    else:
        m["offhours_number"] = None
    if action == "destination":
        okind = m.get("offhours_dest_kind")
        if not okind:
            raise ValidationError("out-of-hours destination is required", field="offhours_dest_kind")
        for k in DEST_KINDS[:3]:
            col = f"offhours_{k}_id"
            if k == okind:
                if not m.get(col):
                    raise ValidationError(f"out-of-hours {k} is required", field=col)
            else:
                m[col] = None
    else:
        m["offhours_dest_kind"] = None
        for k in DEST_KINDS[:3]:
            m[f"offhours_{k}_id"] = None


def _check_refs(cur, tenant_id: int, m: dict) -> None:
    for prefix in ("dest", "offhours"):
        if m.get(f"{prefix}_department_id"):
            repos.department_get(cur, tenant_id, m[f"{prefix}_department_id"])
        if m.get(f"{prefix}_employee_id"):
            repos.employee_get(cur, tenant_id, m[f"{prefix}_employee_id"])
        if m.get(f"{prefix}_ivr_id"):
            repos.ivr_get(cur, tenant_id, m[f"{prefix}_ivr_id"])
    for k in ("offhours_prompt_id", "greeting_prompt_id"):
        if m.get(k):
            repos.prompt_get(cur, tenant_id, m[k])


class NumberService(Service):
    def list(self, actor: Actor, tenant_id: int) -> list[Number]:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.number_list(cur, tenant_id)

    def get(self, actor: Actor, tenant_id: int, number_id: int) -> Number:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.number_get(cur, tenant_id, number_id)

    def find(self, actor: Actor, tenant_id: int, ref: str) -> Number:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.number_find(cur, tenant_id, ref)

    def create(self, actor: Actor, tenant_id: int, **fields) -> Number:
        """Connecting a DID to a company is the operator's act; routing it is the admin's."""
        actor.require_operator()
        if not fields.get("did"):
            raise ValidationError("number is required", field="did")
        return self.save(actor, tenant_id, None, **fields)

    def update(self, actor: Actor, tenant_id: int, number_id: int, **fields) -> Number:
        if "did" in fields:
            actor.require_operator()
        return self.save(actor, tenant_id, number_id, **fields)

    def save(self, actor: Actor, tenant_id: int, number_id: int | None, **fields) -> Number:
        actor.require_admin(tenant_id)
        unknown = set(fields) - set(NUMBER_FIELDS)
        if unknown:
            raise ValidationError(f"unknown number field {sorted(unknown)[0]}", field=sorted(unknown)[0])
        values = validate_number_fields(fields)
        op = "create" if number_id is None else "update"
        with self.change(actor, tenant_id=tenant_id, action=op, entity="number") as ch:
            cur = ch.cur
            tenant = repos.tenant_lock(cur, tenant_id)
            old = repos.number_get(cur, tenant_id, number_id) if number_id else None
            merged = dict(NUMBER_DEFAULTS)
            if old is not None:
                merged.update({k: getattr(old, k) for k in NUMBER_FIELDS})
            merged.update(values)
            _normalise_targets(merged)
            _check_refs(cur, tenant_id, merged)
            if old is None:
                if not repos.number_list(cur, tenant_id):
                    merged["is_main"] = True  # the first number is the company's caller ID
                num = repos.number_insert(cur, tenant_id=tenant_id, **{k: merged.get(k) for k in NUMBER_FIELDS})
            else:
                changed = {k: merged.get(k) for k in NUMBER_FIELDS if getattr(old, k) != merged.get(k)}
                if changed.get("is_main"):
                    for other in repos.number_list(cur, tenant_id):
                        if other.is_main and other.id != number_id:
                            repos.number_update(cur, tenant_id, other.id, is_main=False)
                num = repos.number_update(cur, tenant_id, number_id, **changed)
            ch.entity_id = num.id
            ch.details = {**values}
            ch.notify = {"domain": tenant.domain, "did": num.did}
        return num

    def delete(self, actor: Actor, tenant_id: int, number_id: int) -> None:
        actor.require_operator()
        with self.change(actor, tenant_id=tenant_id, action="delete", entity="number") as ch:
            num = repos.number_get(ch.cur, tenant_id, number_id)
            repos.number_delete(ch.cur, tenant_id, number_id)
            ch.entity_id = number_id
            ch.details = {"did": num.did}
            ch.notify = {"did": num.did}


def validate_ivr_fields(data: dict) -> dict:
    out: dict = {}
    if "name" in data:
        out["name"] = rules.validate_name(data["name"])
    if "timeout_s" in data:
        out["timeout_s"] = rules.validate_seconds(data["timeout_s"], field="timeout_s", lo=1, hi=60)
    if "max_repeats" in data:
        out["max_repeats"] = rules.validate_seconds(data["max_repeats"], field="max_repeats", lo=1, hi=10)
    if "ext_digits" in data:
        out["ext_digits"] = rules.validate_seconds(data["ext_digits"], field="ext_digits", lo=2, hi=8)
    if "fallback_kind" in data:
        out["fallback_kind"] = _choice(data["fallback_kind"], IVR_FALLBACKS, "fallback_kind")
    for k in ("prompt_id", "invalid_prompt_id", "fallback_department_id", "fallback_employee_id",
              "fallback_menu_id"):
        if k in data:
            out[k] = _opt_id(data[k], k)
    return out


def parse_items(items) -> list[IvrItem]:
    """[{digit, action, department_id|employee_id|submenu_id}] → validated items (one per digit)."""
    out: list[IvrItem] = []
    seen = set()
    for it in items or []:
        digit = str(it.get("digit", "")).strip()
        if len(digit) != 1 or digit not in "0123456789*#":
            raise ValidationError("an IVR key must be one of 0-9, * or #", field="items")
        if digit in seen:
            raise ValidationError(f"key {digit} is used twice", field="items")
        seen.add(digit)
        action = _choice(it.get("action"), IVR_ACTIONS, "items")
        item = IvrItem(digit=digit, action=action,
                       department_id=_opt_id(it.get("department_id"), "department_id") if action == "department"
                       else None,
                       employee_id=_opt_id(it.get("employee_id"), "employee_id") if action == "employee" else None,
                       submenu_id=_opt_id(it.get("submenu_id"), "submenu_id") if action == "menu" else None)
        if action == "department" and not item.department_id:
            raise ValidationError(f"key {digit}: choose a department", field="items")
        if action == "employee" and not item.employee_id:
            raise ValidationError(f"key {digit}: choose an employee", field="items")
        if action == "menu" and not item.submenu_id:
            raise ValidationError(f"key {digit}: choose a menu", field="items")
        out.append(item)
    return out


class IvrService(Service):
    def list(self, actor: Actor, tenant_id: int) -> list[IvrMenu]:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.ivr_list(cur, tenant_id)

    def get(self, actor: Actor, tenant_id: int, menu_id: int) -> IvrMenu:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.ivr_get(cur, tenant_id, menu_id)

    def save(self, actor: Actor, tenant_id: int, menu_id: int | None, *, items=None, **fields) -> IvrMenu:
        actor.require_admin(tenant_id)
        unknown = set(fields) - set(IVR_FIELDS)
        if unknown:
            raise ValidationError(f"unknown IVR field {sorted(unknown)[0]}", field=sorted(unknown)[0])
        if menu_id is None and not fields.get("name"):
            raise ValidationError("name is required", field="name")
        values = validate_ivr_fields(fields)
        parsed = parse_items(items) if items is not None else None
        op = "create" if menu_id is None else "update"
        with self.change(actor, tenant_id=tenant_id, action=op, entity="ivr") as ch:
            cur = ch.cur
            tenant = repos.tenant_lock(cur, tenant_id)
            old = repos.ivr_get(cur, tenant_id, menu_id) if menu_id else None
            merged = dict(IVR_DEFAULTS)
            if old is not None:
                merged.update({k: getattr(old, k) for k in IVR_FIELDS})
            merged.update(values)
            fb = merged["fallback_kind"]
            for k in ("department", "employee", "menu"):
                col = f"fallback_{k}_id"
                if k == fb:
                    if not merged.get(col):
                        raise ValidationError(f"fallback {k} is required", field=col)
                else:
                    merged[col] = None
            if merged.get("fallback_department_id"):
                repos.department_get(cur, tenant_id, merged["fallback_department_id"])
            if merged.get("fallback_employee_id"):
                repos.employee_get(cur, tenant_id, merged["fallback_employee_id"])
            if merged.get("fallback_menu_id"):
                if menu_id and merged["fallback_menu_id"] == menu_id:
                    raise ValidationError("a menu cannot fall back to itself", field="fallback_menu_id")
                repos.ivr_get(cur, tenant_id, merged["fallback_menu_id"])
            for k in ("prompt_id", "invalid_prompt_id"):
                if merged.get(k):
                    repos.prompt_get(cur, tenant_id, merged[k])
            if old is None:
                menu = repos.ivr_insert(cur, tenant_id=tenant_id, **{k: merged.get(k) for k in IVR_FIELDS})
            else:
                menu = repos.ivr_update(cur, tenant_id, menu_id, **{k: merged.get(k) for k in IVR_FIELDS
                                                                   if getattr(old, k) != merged.get(k)})
            if parsed is not None:
                for it in parsed:
                    if it.department_id:
                        repos.department_get(cur, tenant_id, it.department_id)
                    if it.employee_id:
                        repos.employee_get(cur, tenant_id, it.employee_id)
                    if it.submenu_id:
                        repos.ivr_get(cur, tenant_id, it.submenu_id)
                repos.ivr_set_items(cur, menu.id, parsed)
            menu = repos.ivr_get(cur, tenant_id, menu.id)
            ch.entity_id = menu.id
            ch.details = {**values, "items": len(menu.items)}
            ch.notify = {"domain": tenant.domain}
        return menu

    def delete(self, actor: Actor, tenant_id: int, menu_id: int) -> None:
        actor.require_admin(tenant_id)
        with self.change(actor, tenant_id=tenant_id, action="delete", entity="ivr") as ch:
            menu = repos.ivr_get(ch.cur, tenant_id, menu_id)
            repos.ivr_delete(ch.cur, tenant_id, menu_id)
            ch.entity_id = menu_id
            ch.details = {"name": menu.name}
