"""What the configuration services (departments, numbers, IVR menus) share: field checks, reads and the
create/update/delete steps.

Each service describes its fields as tables (a check per field, the target column each choice needs, the
repository that proves each reference exists) and these helpers apply them, so every service rejects the same
mistakes with the same messages.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fsd.domain import rules
from fsd.errors import ValidationError
from fsd.services.base import Actor, Service
from fsd.store import repos
from fsd.store.models import Tenant

Check = Callable[[Any, str], Any]  # (value, field name) → clean value, or ValidationError
Targets = Mapping[str, tuple[str, str]]  # choice → (column it needs, message when that column is empty)
Refs = Mapping[str, Callable[..., Any]]  # column → repos getter (cur, tenant_id, id), NotFound when absent


# -- one value -------------------------------------------------------------------------------------------------
def as_bool(value, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValidationError(f"{field} must be true or false", field=field)


def opt_id(value, field: str) -> int | None:
    """An optional reference: empty, 0 or "0" mean none."""
    if value in (None, "", 0, "0"):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{field} must be an id", field=field) from None


def choice(value, allowed: Iterable[str], field: str) -> str:
    v = str(value or "").strip()
    if v not in allowed:
        raise ValidationError(f"{field} must be one of: {', '.join(allowed)}", field=field)
    return v


def opt_phone(value, field: str) -> str | None:
    """An optional external number in E.164 (empty means none)."""
    return rules.normalize_phone(value, field=field) if value else None


def valid_name(value, field: str) -> str:
    return rules.validate_name(value, field=field)


def one_of(allowed: Iterable[str], *, optional: bool = False) -> Check:
    """A check for a value from `allowed` (with `optional`, an empty value is None)."""
    def check(value, field: str) -> str | None:
        if optional and not value:
            return None
        return choice(value, allowed, field)
    return check


def seconds(lo: int, hi: int) -> Check:
    """A check for a whole number from lo to hi."""
    return lambda value, field: rules.validate_seconds(value, field=field, lo=lo, hi=hi)


# -- a set of fields -------------------------------------------------------------------------------------------
def check_names(fields: Mapping, allowed: Iterable[str], what: str) -> None:
    """Every field given is one the entity has."""
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValidationError(f"unknown {what} field {unknown[0]}", field=unknown[0])


def require_name(fields: Mapping, creating: bool) -> None:
    if creating and not fields.get("name"):
        raise ValidationError("name is required", field="name")


def validate(data: Mapping, checks: Mapping[str, Check]) -> dict:
    """The fields of `data` that `checks` names, each through its check, in the order of `checks`."""
    return {k: check(data[k], k) for k, check in checks.items() if k in data}


def merge(defaults: Mapping, old, names: Iterable[str], values: Mapping) -> dict:
    """What the entity will be: defaults, then what it is now (`old`, None when new), then the new values."""
    merged = dict(defaults)
    if old is not None:
        merged.update({k: getattr(old, k) for k in names})
    merged.update(values)
    return merged


def changed(old, names: Iterable[str], merged: Mapping) -> dict:
    """The columns of `merged` that differ from `old`."""
    return {k: merged.get(k) for k in names if getattr(old, k) != merged.get(k)}


def kind_targets(prefix: str, label: str, kinds: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Targets for a choice of kind: kind K needs column <prefix>_K_id ("<label> K is required")."""
    return {k: (f"{prefix}_{k}_id", f"{label} {k} is required") for k in kinds}


def keep_target(merged: dict, chosen, targets: Targets) -> None:
    """Exactly the target the chosen option needs is kept: missing, it is an error; the others are cleared, so
    the configuration never keeps a stale branch."""
    for option, (column, message) in targets.items():
        if option == chosen:
            if not merged.get(column):
                raise ValidationError(message, field=column)
        else:
            merged[column] = None


def refuse_self(merged: Mapping, column: str, own_id: int | None, message: str) -> None:
    """An entity being updated cannot name itself in `column`."""
    if own_id is not None and merged.get(column) == own_id:
        raise ValidationError(message, field=column)


def check_refs(cur, tenant_id: int, values: Mapping, refs: Refs) -> None:
    """Every reference set in `values` exists in the tenant (the getter raises NotFound), in the order of `refs`."""
    for column, get in refs.items():
        if values.get(column):
            get(cur, tenant_id, values[column])


# -- the service ----------------------------------------------------------------------------------------------
@dataclass
class Edit:
    """One create or update in progress: the open change (audit + NOTIFY), the company (locked), the entity as it
    is (`old`, None when new) and as it will be (`merged`)."""

    ch: Any
    tenant: Tenant
    old: Any
    merged: dict
    names: tuple[str, ...]

    @property
    def cur(self):
        return self.ch.cur

    def write(self, insert: Callable[..., Any], update: Callable[..., Any]):
        """Insert the new entity, or update the columns that changed; the change is about its id."""
        tid = self.tenant.id
        if self.old is None:
            row = insert(self.cur, tenant_id=tid, **{k: self.merged.get(k) for k in self.names})
        else:
            row = update(self.cur, tid, self.old.id, **changed(self.old, self.names, self.merged))
        self.ch.entity_id = row.id
        return row


class ConfigService(Service):
    """A service of tenant configuration: reads are open to every user of the tenant, changes go through `_edit`
    and `_delete`, which the caller has checked the rights for."""

    def _read(self, actor: Actor, tenant_id: int, fetch: Callable[..., Any], *args):
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return fetch(cur, tenant_id, *args)

    @contextlib.contextmanager
    def _edit(self, actor: Actor, tenant_id: int, entity_id: int | None, *, entity: str, get: Callable[..., Any],
              defaults: Mapping, names: tuple[str, ...], values: dict) -> Iterator[Edit]:
        """Create (entity_id None) or update one entity in one change: audited with the validated `values`,
        NOTIFYed with the company's domain."""
        op = "create" if entity_id is None else "update"
        with self.change(actor, tenant_id=tenant_id, action=op, entity=entity) as ch:
            tenant = repos.tenant_lock(ch.cur, tenant_id)
            old = get(ch.cur, tenant_id, entity_id) if entity_id else None
            ch.details = dict(values)
            ch.notify = {"domain": tenant.domain}
            yield Edit(ch=ch, tenant=tenant, old=old, merged=merge(defaults, old, names, values), names=names)

    def _delete(self, actor: Actor, tenant_id: int, entity_id: int, *, entity: str, get: Callable[..., Any],
                delete: Callable[..., Any], details: Callable[[Any], dict], notify: bool = False) -> None:
        """Delete one entity in one change, audited with `details(entity)` (also NOTIFYed with `notify`)."""
        with self.change(actor, tenant_id=tenant_id, action="delete", entity=entity) as ch:
            gone = get(ch.cur, tenant_id, entity_id)
            delete(ch.cur, tenant_id, entity_id)
            ch.entity_id = entity_id
            ch.details = details(gone)
            if notify:
                ch.notify = details(gone)
