"""API bearer tokens: created and revoked in the cabinet or the API; only a SHA-256 of the token is stored.

A token acts with the rights of the employee who owns it (an admin's token can do what the admin can).
Tokens are 256-bit random strings, so a fast hash is enough (nothing to brute-force)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from fsd.errors import NotFound, PermissionDenied
from fsd.services.base import Actor, Service
from fsd.store import web_repo

PREFIX = "fsd_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: str  # shown once
    info: dict


class TokenService(Service):
    def list(self, actor: Actor, tenant_id: int) -> list[dict]:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            if actor.is_admin_of(tenant_id):
                return web_repo.token_list(cur, tenant_id)
            return web_repo.token_list(cur, tenant_id, actor.employee_id)

    def create(self, actor: Actor, tenant_id: int, *, name: str = "") -> NewToken:
        actor.require_tenant(tenant_id)
        if actor.employee_id is None:
            raise PermissionDenied("API tokens belong to an employee; sign in as one")
        name = str(name or "").strip()[:100]
        token = PREFIX + secrets.token_urlsafe(32)
        with self.change(actor, tenant_id=tenant_id, action="create", entity="api_token") as ch:
            info = web_repo.token_insert(ch.cur, tenant_id=tenant_id, employee_id=actor.employee_id, name=name,
                                         token_hash=token_hash(token))
            ch.entity_id = info["id"]
            ch.details = {"name": name}
        return NewToken(token=token, info=info)

    def revoke(self, actor: Actor, tenant_id: int, token_id: int) -> None:
        actor.require_tenant(tenant_id)
        with self.change(actor, tenant_id=tenant_id, action="delete", entity="api_token") as ch:
            info = web_repo.token_get(ch.cur, tenant_id, token_id)
            if info["employee_id"] != actor.employee_id and not actor.is_admin_of(tenant_id):
                raise NotFound("token not found")
            web_repo.token_delete(ch.cur, tenant_id, token_id)
            ch.entity_id = token_id
            ch.details = {"name": info["name"]}

    def authenticate(self, token: str) -> Actor | None:
        if not token or not token.startswith(PREFIX) or len(token) > 200:
            return None
        with self.pool.transaction() as cur:
            found = web_repo.token_lookup(cur, token_hash(token))
        if found is None:
            return None
        _, emp = found
        return Actor.employee(tenant_id=emp.tenant_id, employee_id=emp.id, role=emp.role, login=emp.login)
