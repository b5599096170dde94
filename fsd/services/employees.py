"""Employees (extensions): create with generated login/password/extension, edit, reset password."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fsd import mailtemplates
from fsd.domain import rules
from fsd.errors import PermissionDenied, ValidationError
from fsd.services.base import Actor, Service, check_extension_free
from fsd.store import repos
from fsd.store.models import Employee, Tenant
from fsd.store.pool import Pool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MailSettings:
    """What the credentials letter needs that is not in the database."""

    cabinet_url: str = "http://127.0.0.1:8080"
    softphone_url: str = "https://www.microsip.org/downloads"
    sip_server: str = ""


@dataclass(frozen=True)
class CreatedEmployee:
    employee: Employee
    password: str  # shown once, never stored in clear
    letter_queued: bool


class EmployeeService(Service):
    def __init__(self, *, pool: Pool, mail: MailSettings | None = None):
        super().__init__(pool=pool)
        self.mail = mail or MailSettings()

    # -- reads -------------------------------------------------------------------------------
    def list(self, actor: Actor, tenant_id: int) -> list[Employee]:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.employee_list(cur, tenant_id)

    def get(self, actor: Actor, tenant_id: int, employee_id: int) -> Employee:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.employee_get(cur, tenant_id, employee_id)

    def find(self, actor: Actor, tenant_id: int, ref: str) -> Employee:
        """By id, login or extension."""
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.employee_find(cur, tenant_id, ref)

    def suggest(self, actor: Actor, tenant_id: int, name: str) -> dict[str, str]:
        """What the "Add employee" form pre-fills: login from the name and the next free extension."""
        actor.require_admin(tenant_id)
        with self.pool.transaction() as cur:
            login = rules.suggest_login(name or "", repos.employee_logins(cur, tenant_id))
            ext = rules.next_free_extension(repos.extensions_taken(cur, tenant_id))
        return {"login": login, "extension": ext, "password": rules.generate_password()}

    # -- changes -----------------------------------------------------------------------------
    def create(self, actor: Actor, tenant_id: int, *, name: str, login: str | None = None,
               extension: str | None = None, password: str | None = None, role: str = "user",
               position: str = "", email: str | None = None, mobile: str | None = None,
               forward_mode: str = "off", forward_delay: int | None = None,
               enabled: bool = True) -> CreatedEmployee:
        actor.require_admin(tenant_id)
        name = rules.validate_name(name)
        login = rules.validate_login(login) if login else None
        extension = rules.validate_extension(extension) if extension else None
        password = rules.validate_password(password) if password else rules.generate_password()
        role = rules.validate_role(role)
        position = _position(position)
        email = rules.validate_email(email)
        mobile = rules.normalize_phone(mobile) if mobile else None
        forward_mode, forward_delay = rules.validate_forwarding(forward_mode or "off", forward_delay, mobile)

        with self.change(actor, tenant_id=tenant_id, action="create", entity="employee") as ch:
            cur = ch.cur
            tenant = repos.tenant_lock(cur, tenant_id)  # serialises creations: the tariff cap holds
            rules.check_tariff(repos.employee_count(cur, tenant_id), tenant.max_users)
            if login is None:
                login = rules.suggest_login(name, repos.employee_logins(cur, tenant_id))
            if extension is None:
                extension = rules.next_free_extension(repos.extensions_taken(cur, tenant_id))
            else:
                check_extension_free(cur, tenant_id, extension)
            emp = repos.employee_insert(
                cur, tenant_id=tenant_id, name=name, login=login, extension=extension, role=role,
                position=position, email=email, mobile=mobile, forward_mode=forward_mode,
                forward_delay=forward_delay, enabled=enabled,
                password_hash=rules.hash_password(password),
                sip_a1_hash=rules.sip_a1_hash(login, tenant.domain, password),
            )
            queued = self._queue_letter(cur, tenant, emp, password)
            ch.entity_id = emp.id
            ch.details = {"login": login, "extension": extension, "role": role, "letter": queued}
            ch.notify = {"domain": tenant.domain, "login": login, "extension": extension}
        return CreatedEmployee(employee=emp, password=password, letter_queued=queued)

    def update(self, actor: Actor, tenant_id: int, employee_id: int, **changes) -> Employee:
        """Change any of: name, login, extension, role, position, email, mobile, forward_mode,
        forward_delay, enabled. Users and limited users may change only their own profile, and not
        their role, extension or login."""
        actor.require_tenant(tenant_id)
        own = actor.employee_id == employee_id
        if not actor.is_admin_of(tenant_id):
            if not own:
                raise PermissionDenied("you can edit only your own profile")
            for k in ("login", "extension", "role", "enabled"):
                if changes.get(k) is not None:
                    raise PermissionDenied(f"changing {k} needs administrator rights")
        values: dict = {}
        if changes.get("name") is not None:
            values["name"] = rules.validate_name(changes["name"])
        if changes.get("login") is not None:
            values["login"] = rules.validate_login(changes["login"])
        if changes.get("extension") is not None:
            values["extension"] = rules.validate_extension(changes["extension"])
        if changes.get("role") is not None:
            values["role"] = rules.validate_role(changes["role"])
        if changes.get("position") is not None:
            values["position"] = _position(changes["position"])
        if changes.get("email") is not None:
            values["email"] = rules.validate_email(changes["email"])  # "" clears it
        if changes.get("mobile") is not None:
            values["mobile"] = rules.normalize_phone(changes["mobile"]) if changes["mobile"] else None
        if changes.get("enabled") is not None:
            values["enabled"] = bool(changes["enabled"])

        with self.change(actor, tenant_id=tenant_id, action="update", entity="employee") as ch:
            cur = ch.cur
            tenant = repos.tenant_get(cur, tenant_id)
            old = repos.employee_get(cur, tenant_id, employee_id)
            if "forward_mode" in changes or "forward_delay" in changes or "mobile" in values:
                mode = changes.get("forward_mode") or old.forward_mode
                delay = changes.get("forward_delay")
                if delay is None:
                    delay = old.forward_delay
                mobile = values.get("mobile", old.mobile)
                values["forward_mode"], values["forward_delay"] = rules.validate_forwarding(mode, delay, mobile)
            if "extension" in values and values["extension"] != old.extension:
                check_extension_free(cur, tenant_id, values["extension"])
            if "login" in values and values["login"] != old.login and not changes.get("password"):
                # the SIP digest covers the login: without the clear password it cannot be re-derived
                raise ValidationError("changing the login needs a new password (the SIP digest covers both)",
                                      field="login")
            if changes.get("password"):
                pw = rules.validate_password(changes["password"])
                values["password_hash"] = rules.hash_password(pw)
                values["sip_a1_hash"] = rules.sip_a1_hash(values.get("login", old.login), tenant.domain, pw)
            if values:
                emp = repos.employee_update(cur, tenant_id, employee_id, **values)
            else:
                emp = old
            ch.entity_id = employee_id
            ch.details = {k: v for k, v in values.items() if k not in ("password_hash", "sip_a1_hash")}
            if "password_hash" in values:
                ch.details["password_changed"] = True
            ch.notify = {"domain": tenant.domain, "login": emp.login, "old_login": old.login,
                         "extension": emp.extension, "old_extension": old.extension}
        return emp

    def reset_password(self, actor: Actor, tenant_id: int, employee_id: int, *, password: str | None = None,
                       login: str | None = None, send_letter: bool = True) -> CreatedEmployee:
        """Set a new (generated unless given) password; optionally a new login with it (the SIP
        digest depends on both). The letter with the new credentials is queued."""
        actor.require_tenant(tenant_id)
        if actor.employee_id != employee_id:
            actor.require_admin(tenant_id)
        pw = rules.validate_password(password) if password else rules.generate_password()
        new_login = rules.validate_login(login) if login else None
        with self.change(actor, tenant_id=tenant_id, action="reset_password", entity="employee") as ch:
            cur = ch.cur
            tenant = repos.tenant_get(cur, tenant_id)
            old = repos.employee_get(cur, tenant_id, employee_id)
            lg = new_login or old.login
            emp = repos.employee_update(cur, tenant_id, employee_id, login=lg, password_hash=rules.hash_password(pw),
                                        sip_a1_hash=rules.sip_a1_hash(lg, tenant.domain, pw))
            queued = self._queue_letter(cur, tenant, emp, pw) if send_letter else False
            ch.entity_id = employee_id
            ch.details = {"login": lg, "letter": queued}
            ch.notify = {"domain": tenant.domain, "login": lg, "old_login": old.login, "extension": emp.extension}
        return CreatedEmployee(employee=emp, password=pw, letter_queued=queued)

    def delete(self, actor: Actor, tenant_id: int, employee_id: int) -> None:
        actor.require_admin(tenant_id)
        if actor.employee_id == employee_id:
            raise ValidationError("you cannot delete your own account", field="id")
        with self.change(actor, tenant_id=tenant_id, action="delete", entity="employee") as ch:
            tenant = repos.tenant_get(ch.cur, tenant_id)
            emp = repos.employee_get(ch.cur, tenant_id, employee_id)
            repos.employee_delete(ch.cur, tenant_id, employee_id)
            ch.entity_id = employee_id
            ch.details = {"login": emp.login, "extension": emp.extension}
            ch.notify = {"domain": tenant.domain, "login": emp.login, "extension": emp.extension}

    # -- internals ---------------------------------------------------------------------------
    def _queue_letter(self, cur, tenant: Tenant, emp: Employee, password: str) -> bool:
        if not emp.email:
            return False
        subject, body = mailtemplates.render(
            "credentials", tenant.language, name=emp.name, tenant_name=tenant.name, login=emp.login,
            password=password, extension=emp.extension, domain=tenant.domain,
            sip_server=self.mail.sip_server or tenant.domain, cabinet_url=self.mail.cabinet_url,
            softphone_url=self.mail.softphone_url,
        )
        repos.email_enqueue(cur, tenant_id=tenant.id, kind="credentials", recipient=emp.email, subject=subject,
                            body=body)
        return True


def _position(value) -> str:
    text = str(value or "").strip()
    if len(text) > 200:
        raise ValidationError("position must be at most 200 characters", field="position")
    return text
