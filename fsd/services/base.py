"""What every service shares: who is acting, rights checks, and the transaction + audit + notify step."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fsd.errors import NotFound, PermissionDenied, ValidationError
from fsd.store import repos
from fsd.store.pool import Pool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who performs an action. kind: system (CLI, workers), operator (API token), employee (cabinet/API)."""

    kind: str
    name: str
    tenant_id: int | None = None
    employee_id: int | None = None
    role: str | None = None

    @classmethod
    def system(cls, name: str = "cli") -> Actor:
        return cls(kind="system", name=name)

    @classmethod
    def operator(cls) -> Actor:
        return cls(kind="operator", name="operator")

    @classmethod
    def employee(cls, *, tenant_id: int, employee_id: int, role: str, login: str) -> Actor:
        return cls(kind="employee", name=login, tenant_id=tenant_id, employee_id=employee_id, role=role)

    @property
    def privileged(self) -> bool:
        return self.kind in ("system", "operator")

    def is_admin_of(self, tenant_id: int) -> bool:
        return self.privileged or (self.tenant_id == tenant_id and self.role == "admin")

    def require_tenant(self, tenant_id: int) -> None:
        """Another company's data is 'not found' (never 'forbidden': don't reveal it exists)."""
        if not self.privileged and self.tenant_id != tenant_id:
            raise NotFound("not found")

    def require_admin(self, tenant_id: int) -> None:
        self.require_tenant(tenant_id)
        if not self.is_admin_of(tenant_id):
            raise PermissionDenied("this action needs administrator rights")

    def require_operator(self) -> None:
        if not self.privileged:
            raise PermissionDenied("this action is for the operator only")


class Service:
    def __init__(self, *, pool: Pool):
        self.pool = pool

    @contextlib.contextmanager
    def change(self, actor: Actor, *, tenant_id: int | None, action: str, entity: str,
               notify: dict[str, Any] | None = None) -> Iterator[Any]:
        """One transaction for a change: yields a cursor and a dict to fill with audit details.

        On success the audit row and the NOTIFY go out with the same commit; on any error nothing
        is written.
        """
        with self.pool.transaction() as cur:
            ctx = _ChangeContext(cur)
            yield ctx
            repos.audit(cur, tenant_id=tenant_id, actor=f"{actor.kind}:{actor.name}", action=action,
                        entity=entity, entity_id=ctx.entity_id, details=ctx.details)
            payload = {"entity": entity, "op": action, "tenant_id": tenant_id, "id": ctx.entity_id}
            payload.update(notify or {})
            payload.update(ctx.notify)
            repos.notify(cur, payload)
        log.info("change action=%s entity=%s id=%s tenant=%s actor=%s:%s", action, entity, ctx.entity_id,
                 tenant_id, actor.kind, actor.name)


class _ChangeContext:
    def __init__(self, cur):
        self.cur = cur
        self.entity_id: Any = ""
        self.details: dict[str, Any] = {}
        self.notify: dict[str, Any] = {}


def check_extension_free(cur, tenant_id: int, extension: str) -> None:
    """Extensions are one namespace per company: employees, departments and feature codes."""
    owner = repos.extension_owner(cur, tenant_id, extension)
    if owner is not None:
        what = {"employee": "an employee", "department": "a department", "feature": "a feature code"}[owner[0]]
        raise ValidationError(f"extension {extension} is already used by {what}", field="extension")
