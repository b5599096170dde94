"""Company numbers (DIDs) and IVR menus."""

from __future__ import annotations

from fsd.domain import rules
from fsd.errors import ValidationError
from fsd.services import common
from fsd.services.base import Actor
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


NUMBER_CHECKS: dict[str, common.Check] = {
    "did": lambda v, _f: rules.validate_did(v),
    "name": lambda v, _f: str(v or "").strip()[:100],
    "is_main": common.as_bool,
    "mode": common.one_of(MODES),
    "dest_kind": common.one_of(DEST_KINDS),
    "offhours_action": common.one_of(OFFHOURS_ACTIONS),
    "offhours_dest_kind": common.one_of(DEST_KINDS, optional=True),
    "offhours_number": common.opt_phone,
    **dict.fromkeys(("dest_department_id", "dest_employee_id", "dest_ivr_id", "offhours_department_id",
                     "offhours_employee_id", "offhours_ivr_id", "offhours_prompt_id", "greeting_prompt_id"),
                    common.opt_id),
}
_REF_KINDS = ("department", "employee", "ivr")  # the destination kinds that name an entity
DEST_TARGETS = common.kind_targets("dest", "destination", _REF_KINDS)
OFFHOURS_TARGETS = {"forward": ("offhours_number", "out-of-hours forwarding needs an external number"),
                    "destination": ("offhours_dest_kind", "out-of-hours destination is required")}
OFFHOURS_DEST_TARGETS = common.kind_targets("offhours", "out-of-hours", _REF_KINDS)
NUMBER_REFS = {
    **{f"{prefix}_{kind}_id": get for prefix in ("dest", "offhours")
       for kind, get in zip(_REF_KINDS, (repos.department_get, repos.employee_get, repos.ivr_get), strict=True)},
    "offhours_prompt_id": repos.prompt_get, "greeting_prompt_id": repos.prompt_get,
}


def validate_number_fields(data: dict) -> dict:
    return common.validate(data, NUMBER_CHECKS)


def _normalise_targets(m: dict) -> None:
    """Exactly the references the chosen kind and out-of-hours action need are kept; a missing one is an error."""
    common.keep_target(m, m["dest_kind"], DEST_TARGETS)
    common.keep_target(m, m["offhours_action"], OFFHOURS_TARGETS)
    common.keep_target(m, m["offhours_dest_kind"], OFFHOURS_DEST_TARGETS)


class NumberService(common.ConfigService):
    def list(self, actor: Actor, tenant_id: int) -> list[Number]:
        return self._read(actor, tenant_id, repos.number_list)

    def get(self, actor: Actor, tenant_id: int, number_id: int) -> Number:
        return self._read(actor, tenant_id, repos.number_get, number_id)

    def find(self, actor: Actor, tenant_id: int, ref: str) -> Number:
        return self._read(actor, tenant_id, repos.number_find, ref)

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
        common.check_names(fields, NUMBER_FIELDS, "number")
        values = validate_number_fields(fields)
        with self._edit(actor, tenant_id, number_id, entity="number", get=repos.number_get,
                        defaults=NUMBER_DEFAULTS, names=NUMBER_FIELDS, values=values) as ed:
            cur, old, merged = ed.cur, ed.old, ed.merged
            _normalise_targets(merged)
            common.check_refs(cur, tenant_id, merged, NUMBER_REFS)
            existing = repos.number_list(cur, tenant_id) if old is None or merged.get("is_main") else []
            if old is None and not existing:
                merged["is_main"] = True  # the first number is the company's caller ID
            elif merged.get("is_main") and (old is None or not old.is_main):
                # one main number: the previous one steps down (on create as on update)
                for other in existing:
                    if other.is_main and other.id != number_id:
                        repos.number_update(cur, tenant_id, other.id, is_main=False)
            num = ed.write(repos.number_insert, repos.number_update)
            ed.ch.notify["did"] = num.did
        return num

    def delete(self, actor: Actor, tenant_id: int, number_id: int) -> None:
        actor.require_operator()
        self._delete(actor, tenant_id, number_id, entity="number", get=repos.number_get, delete=repos.number_delete,
                     details=lambda num: {"did": num.did}, notify=True)


IVR_CHECKS: dict[str, common.Check] = {
    "name": common.valid_name,
    "timeout_s": common.seconds(1, 60),
    "max_repeats": common.seconds(1, 10),
    "ext_digits": common.seconds(2, 8),
    "fallback_kind": common.one_of(IVR_FALLBACKS),
    **dict.fromkeys(("prompt_id", "invalid_prompt_id", "fallback_department_id", "fallback_employee_id",
                     "fallback_menu_id"), common.opt_id),
}
FALLBACK_TARGETS = common.kind_targets("fallback", "fallback", ("department", "employee", "menu"))
IVR_REFS = {"fallback_department_id": repos.department_get, "fallback_employee_id": repos.employee_get,
            "fallback_menu_id": repos.ivr_get, "prompt_id": repos.prompt_get, "invalid_prompt_id": repos.prompt_get}
ITEM_TARGETS = {"department": ("department_id", "a department"), "employee": ("employee_id", "an employee"),
                "menu": ("submenu_id", "a menu")}  # item action → (reference it needs, what to choose)
ITEM_REFS = {"department_id": repos.department_get, "employee_id": repos.employee_get,
             "submenu_id": repos.ivr_get}


def validate_ivr_fields(data: dict) -> dict:
    return common.validate(data, IVR_CHECKS)


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
        action = common.choice(it.get("action"), IVR_ACTIONS, "items")
        # only the reference the action uses is read, and it is required
        ref = {col: common.opt_id(it.get(col), col) if action == kind else None
               for kind, (col, _what) in ITEM_TARGETS.items()}
        if action in ITEM_TARGETS and not ref[ITEM_TARGETS[action][0]]:
            raise ValidationError(f"key {digit}: choose {ITEM_TARGETS[action][1]}", field="items")
        out.append(IvrItem(digit=digit, action=action, **ref))
    return out


class IvrService(common.ConfigService):
    def list(self, actor: Actor, tenant_id: int) -> list[IvrMenu]:
        return self._read(actor, tenant_id, repos.ivr_list)

    def get(self, actor: Actor, tenant_id: int, menu_id: int) -> IvrMenu:
        return self._read(actor, tenant_id, repos.ivr_get, menu_id)

    def save(self, actor: Actor, tenant_id: int, menu_id: int | None, *, items=None, **fields) -> IvrMenu:
        actor.require_admin(tenant_id)
        common.check_names(fields, IVR_FIELDS, "IVR")
        common.require_name(fields, creating=menu_id is None)
        values = validate_ivr_fields(fields)
        parsed = parse_items(items) if items is not None else None
        with self._edit(actor, tenant_id, menu_id, entity="ivr", get=repos.ivr_get, defaults=IVR_DEFAULTS,
                        names=IVR_FIELDS, values=values) as ed:
            cur, merged = ed.cur, ed.merged
            common.keep_target(merged, merged["fallback_kind"], FALLBACK_TARGETS)
            common.refuse_self(merged, "fallback_menu_id", menu_id, "a menu cannot fall back to itself")
            common.check_refs(cur, tenant_id, merged, IVR_REFS)
            menu = ed.write(repos.ivr_insert, repos.ivr_update)
            if parsed is not None:
                for it in parsed:
                    common.check_refs(cur, tenant_id, vars(it), ITEM_REFS)
                repos.ivr_set_items(cur, menu.id, parsed)
            menu = repos.ivr_get(cur, tenant_id, menu.id)
            ed.ch.details["items"] = len(menu.items)
        return menu

    def delete(self, actor: Actor, tenant_id: int, menu_id: int) -> None:
        actor.require_admin(tenant_id)
        self._delete(actor, tenant_id, menu_id, entity="ivr", get=repos.ivr_get, delete=repos.ivr_delete,
                     details=lambda menu: {"name": menu.name})
