"""Companies (tenants) and their working schedule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fsd.domain import rules
from fsd.errors import ValidationError
from fsd.services.base import Actor, Service
from fsd.store import repos
from fsd.store.models import Schedule, ScheduleException, ScheduleInterval, Tenant


@dataclass(frozen=True)
class TenantUsage:
    tenant: Tenant
    users: int

    @property
    def label(self) -> str:
        return f"{self.users} of {self.tenant.max_users}"


def _minute(value) -> int:
    """'09:30' / 570 → minutes from midnight; '24:00' → 1440."""
    if isinstance(value, int):
        m = value
    else:
        text = str(value).strip()
        try:
            hh, mm = text.split(":")
            m = int(hh) * 60 + int(mm)
            if not (0 <= int(mm) < 60):
                raise ValueError
        except ValueError:
            raise ValidationError(f"time {text!r} must be HH:MM", field="schedule") from None
    if not 0 <= m <= 1440:
        raise ValidationError("time must be between 00:00 and 24:00", field="schedule")
    return m


def parse_intervals(items) -> list[ScheduleInterval]:
    """[{weekday, start, end}] or (weekday, '09:00', '18:00') tuples → validated intervals."""
    out = []
    for it in items:
        if isinstance(it, dict):
            wd, start, end = it.get("weekday"), it.get("start", it.get("start_minute")), it.get("end",
                                                                                                 it.get("end_minute"))
        else:
            wd, start, end = it
        try:
            wd = int(wd)
        except (TypeError, ValueError):
            raise ValidationError("weekday must be 0 (Monday) .. 6 (Sunday)", field="schedule") from None
        if not 0 <= wd <= 6:
            raise ValidationError("weekday must be 0 (Monday) .. 6 (Sunday)", field="schedule")
        s, e = _minute(start), _minute(end)
        if s >= e or s >= 1440:
            raise ValidationError("an interval must end after it starts", field="schedule")
        out.append(ScheduleInterval(weekday=wd, start_minute=s, end_minute=e))
    out.sort(key=lambda i: (i.weekday, i.start_minute))
    for a, b in zip(out, out[1:], strict=False):
        if a.weekday == b.weekday and b.start_minute < a.end_minute:
            raise ValidationError("intervals of one day must not overlap", field="schedule")
    return out


def parse_exceptions(items) -> list[ScheduleException]:
    out = []
    for it in items:
        try:
            day = it["day"] if isinstance(it["day"], date) else date.fromisoformat(str(it["day"]))
        except (KeyError, ValueError):
            raise ValidationError("exception day must be YYYY-MM-DD", field="schedule") from None
        closed = bool(it.get("closed", True))
        note = str(it.get("note", ""))[:200]
        if closed:
            out.append(ScheduleException(day=day, closed=True, note=note))
        else:
            s, e = _minute(it.get("start")), _minute(it.get("end"))
            if s >= e:
                raise ValidationError("an interval must end after it starts", field="schedule")
            out.append(ScheduleException(day=day, closed=False, start_minute=s, end_minute=e, note=note))
    return out


class TenantService(Service):
    def create(self, actor: Actor, *, name: str, domain: str, max_users: int, timezone: str = "Europe/Moscow",
               language: str = "ru") -> Tenant:
        actor.require_operator()
        name = rules.validate_name(name)
        domain = rules.validate_domain(domain)
        timezone = rules.validate_timezone(timezone)
        max_users = rules.validate_seconds(max_users, field="max_users", lo=1, hi=100000)
        if language not in ("ru", "en"):
            raise ValidationError("language must be ru or en", field="language")
        with self.change(actor, tenant_id=None, action="create", entity="tenant") as ch:
            t = repos.tenant_insert(ch.cur, name=name, domain=domain, timezone=timezone, max_users=max_users,
                                    language=language)
            repos.feature_codes_insert(ch.cur, t.id, sorted(rules.FEATURE_CODES))
            ch.entity_id = t.id
            ch.details = {"name": name, "domain": domain, "max_users": max_users}
            ch.notify = {"domain": domain}
        return t

    def update(self, actor: Actor, tenant_id: int, **changes) -> Tenant:
        actor.require_admin(tenant_id)
        values = {}
        if "name" in changes and changes["name"] is not None:
            values["name"] = rules.validate_name(changes["name"])
        if "timezone" in changes and changes["timezone"] is not None:
            values["timezone"] = rules.validate_timezone(changes["timezone"])
        if "language" in changes and changes["language"] is not None:
            if changes["language"] not in ("ru", "en"):
                raise ValidationError("language must be ru or en", field="language")
            values["language"] = changes["language"]
        if "max_users" in changes and changes["max_users"] is not None:
            actor.require_operator()
            values["max_users"] = rules.validate_seconds(changes["max_users"], field="max_users", lo=1, hi=100000)
        if "enabled" in changes and changes["enabled"] is not None:
            actor.require_operator()
            values["enabled"] = bool(changes["enabled"])
        with self.change(actor, tenant_id=tenant_id, action="update", entity="tenant") as ch:
            t = repos.tenant_lock(ch.cur, tenant_id)
            if "max_users" in values and values["max_users"] < repos.employee_count(ch.cur, tenant_id):
                raise ValidationError("max_users is below the number of existing employees", field="max_users")
            t = repos.tenant_update(ch.cur, tenant_id, **values) if values else t
            ch.entity_id = tenant_id
            ch.details = values
            ch.notify = {"domain": t.domain}
        return t

    def delete(self, actor: Actor, tenant_id: int) -> None:
        actor.require_operator()
        with self.change(actor, tenant_id=None, action="delete", entity="tenant") as ch:
            t = repos.tenant_get(ch.cur, tenant_id)
            repos.tenant_delete(ch.cur, tenant_id)
            ch.entity_id = tenant_id
            ch.details = {"domain": t.domain}
            ch.notify = {"domain": t.domain}

    def get(self, actor: Actor, tenant_id: int) -> Tenant:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.tenant_get(cur, tenant_id)

    def by_domain(self, actor: Actor, domain: str) -> Tenant:
        with self.pool.transaction() as cur:
            t = repos.tenant_by_domain(cur, domain)
        actor.require_tenant(t.id)
        return t

    def list(self, actor: Actor) -> list[Tenant]:
        actor.require_operator()
        with self.pool.transaction() as cur:
            return repos.tenant_list(cur)

    def usage(self, actor: Actor, tenant_id: int) -> TenantUsage:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return TenantUsage(tenant=repos.tenant_get(cur, tenant_id), users=repos.employee_count(cur, tenant_id))

    # -- schedule ------------------------------------------------------------------------------
    def schedule(self, actor: Actor, tenant_id: int) -> Schedule:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return repos.schedule_get(cur, tenant_id)

    def set_schedule(self, actor: Actor, tenant_id: int, *, intervals, exceptions=()) -> Schedule:
        actor.require_admin(tenant_id)
        ivs = parse_intervals(intervals)
        exs = parse_exceptions(exceptions)
        with self.change(actor, tenant_id=tenant_id, action="update", entity="schedule") as ch:
            repos.tenant_lock(ch.cur, tenant_id)
            repos.schedule_replace(ch.cur, tenant_id, ivs, exs)
            ch.entity_id = tenant_id
            ch.details = {"intervals": len(ivs), "exceptions": len(exs)}
            sched = repos.schedule_get(ch.cur, tenant_id)
        return sched

    def audit_log(self, actor: Actor, tenant_id: int, *, limit: int = 200):
        actor.require_admin(tenant_id)
        with self.pool.transaction() as cur:
            return repos.audit_list(cur, tenant_id, limit=limit)
