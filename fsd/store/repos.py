"""Repositories: every SQL statement of fsd's configuration lives here.

Functions take a cursor from `Pool.transaction()` so a service can compose several of them into one
transaction; they return the dataclasses of fsd.store.models.
"""

from __future__ import annotations

import json
from typing import Any

from fsd.errors import NotFound
from fsd.store.errors import translated
from fsd.store.models import (
    AuditEntry,
    Department,
    DepartmentMember,
    Employee,
    Gateway,
    IvrItem,
    IvrMenu,
    Number,
    Prompt,
    Schedule,
    ScheduleException,
    ScheduleInterval,
    Tenant,
    from_row,
)

NOTIFY_CHANNEL = "fsd_config"


def _set_clause(values: dict[str, Any]) -> tuple[str, list[Any]]:
    cols = sorted(values)
    return ", ".join(f"{c} = %s" for c in cols), [values[c] for c in cols]


def _insert(cur, table: str, values: dict[str, Any]) -> dict:
    cols = sorted(values)
    sql = (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
           "RETURNING *")
    with translated():
        cur.execute(sql, [values[c] for c in cols])
    return cur.fetchone()


def _update(cur, table: str, row_id: int, tenant_id: int | None, values: dict[str, Any]) -> dict | None:
    clause, params = _set_clause(values)
    where = "id = %s" + (" AND tenant_id = %s" if tenant_id is not None else "")
    params += [row_id] + ([tenant_id] if tenant_id is not None else [])
    with translated():
        cur.execute(f"UPDATE {table} SET {clause}, updated_at = now() WHERE {where} RETURNING *", params)
    return cur.fetchone()


def notify(cur, payload: dict[str, Any]) -> None:
    """Queue a NOTIFY; PostgreSQL delivers it to every listener when the transaction commits."""
    cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, json.dumps(payload, separators=(",", ":"))))


# -- tenants ----------------------------------------------------------------------------------
def tenant_insert(cur, **values) -> Tenant:
    return from_row(Tenant, _insert(cur, "tenants", values))


def tenant_update(cur, tenant_id: int, **values) -> Tenant:
    row = _update(cur, "tenants", tenant_id, None, values)
    if row is None:
        raise NotFound("company not found")
    return from_row(Tenant, row)


def tenant_get(cur, tenant_id: int) -> Tenant:
    cur.execute("SELECT * FROM tenants WHERE id = %s", (tenant_id,))
    t = from_row(Tenant, cur.fetchone())
    if t is None:
        raise NotFound("company not found")
    return t


def tenant_by_domain(cur, domain: str, *, lock: bool = False) -> Tenant:
    cur.execute("SELECT * FROM tenants WHERE domain = %s" + (" FOR UPDATE" if lock else ""),
                (domain.strip().lower(),))
    t = from_row(Tenant, cur.fetchone())
    if t is None:
        raise NotFound(f"company with domain {domain} not found")
    return t


def tenant_list(cur) -> list[Tenant]:
    cur.execute("SELECT * FROM tenants ORDER BY id")
    return [from_row(Tenant, r) for r in cur.fetchall()]


def tenant_lock(cur, tenant_id: int) -> Tenant:
    cur.execute("SELECT * FROM tenants WHERE id = %s FOR UPDATE", (tenant_id,))
    t = from_row(Tenant, cur.fetchone())
    if t is None:
        raise NotFound("company not found")
    return t


def tenant_delete(cur, tenant_id: int) -> None:
    cur.execute("DELETE FROM tenants WHERE id = %s", (tenant_id,))
    if cur.rowcount == 0:
        raise NotFound("company not found")


# -- schedule ---------------------------------------------------------------------------------
def schedule_get(cur, tenant_id: int) -> Schedule:
    t = tenant_get(cur, tenant_id)
    cur.execute("SELECT weekday, start_minute, end_minute FROM schedule_intervals WHERE tenant_id = %s "
                "ORDER BY weekday, start_minute", (tenant_id,))
    intervals = tuple(from_row(ScheduleInterval, r) for r in cur.fetchall())
    cur.execute("SELECT day, closed, start_minute, end_minute, note FROM schedule_exceptions "
                "WHERE tenant_id = %s ORDER BY day, start_minute NULLS FIRST", (tenant_id,))
    exceptions = tuple(from_row(ScheduleException, r) for r in cur.fetchall())
    return Schedule(tenant_id=tenant_id, timezone=t.timezone, intervals=intervals, exceptions=exceptions)


def schedule_replace(cur, tenant_id: int, intervals, exceptions) -> None:
    cur.execute("DELETE FROM schedule_intervals WHERE tenant_id = %s", (tenant_id,))
    cur.execute("DELETE FROM schedule_exceptions WHERE tenant_id = %s", (tenant_id,))
    with translated():
        for iv in intervals:
            cur.execute("INSERT INTO schedule_intervals (tenant_id, weekday, start_minute, end_minute) "
                        "VALUES (%s, %s, %s, %s)", (tenant_id, iv.weekday, iv.start_minute, iv.end_minute))
        for ex in exceptions:
            cur.execute("INSERT INTO schedule_exceptions (tenant_id, day, closed, start_minute, end_minute, note) "
                        "VALUES (%s, %s, %s, %s, %s, %s)",
                        (tenant_id, ex.day, ex.closed, ex.start_minute, ex.end_minute, ex.note))


# -- extensions -------------------------------------------------------------------------------
def extensions_taken(cur, tenant_id: int) -> set[str]:
    cur.execute("SELECT extension FROM extensions WHERE tenant_id = %s", (tenant_id,))
    return {r["extension"] for r in cur.fetchall()}


def extension_owner(cur, tenant_id: int, extension: str) -> tuple[str, int | None] | None:
    cur.execute("SELECT owner_kind, owner_id FROM extensions WHERE tenant_id = %s AND extension = %s",
                (tenant_id, extension))
    r = cur.fetchone()
    return (r["owner_kind"], r["owner_id"]) if r else None


def feature_codes_insert(cur, tenant_id: int, codes: list[str]) -> None:
    with translated():
        for code in codes:
            cur.execute("INSERT INTO extensions (tenant_id, extension, owner_kind) VALUES (%s, %s, 'feature') "
                        "ON CONFLICT DO NOTHING", (tenant_id, code))


# -- employees --------------------------------------------------------------------------------
def employee_insert(cur, **values) -> Employee:
    return from_row(Employee, _insert(cur, "employees", values))


def employee_update(cur, tenant_id: int, employee_id: int, **values) -> Employee:
    row = _update(cur, "employees", employee_id, tenant_id, values)
    if row is None:
        raise NotFound("employee not found")
    return from_row(Employee, row)


def employee_get(cur, tenant_id: int, employee_id: int) -> Employee:
    cur.execute("SELECT * FROM employees WHERE id = %s AND tenant_id = %s", (employee_id, tenant_id))
    e = from_row(Employee, cur.fetchone())
    if e is None:
        raise NotFound("employee not found")
    return e


def employee_find(cur, tenant_id: int, ref: str) -> Employee:
    """By id, login or extension."""
    ref = str(ref).strip()
    if ref.isdigit():
        cur.execute("SELECT * FROM employees WHERE tenant_id = %s AND (extension = %s OR id = %s) "
                    "ORDER BY (extension = %s) DESC LIMIT 1", (tenant_id, ref, int(ref), ref))
    else:
        cur.execute("SELECT * FROM employees WHERE tenant_id = %s AND login = %s", (tenant_id, ref.lower()))
    e = from_row(Employee, cur.fetchone())
    if e is None:
        raise NotFound(f"employee {ref} not found")
    return e


def employee_by_login(cur, domain: str, login: str) -> tuple[Tenant, Employee] | None:
    """Directory lookup by SIP user (login or extension) and domain; None when unknown."""
    cur.execute(
        "SELECT e.*, t.id AS t_id, t.name AS t_name, t.domain AS t_domain, t.timezone AS t_timezone, "
        "t.max_users AS t_max_users, t.language AS t_language, t.enabled AS t_enabled "
        "FROM employees e JOIN tenants t ON t.id = e.tenant_id "
        "WHERE t.domain = %s AND (e.login = %s OR e.extension = %s) LIMIT 1",
        (domain.lower(), login.lower(), login),
    )
    r = cur.fetchone()
    if r is None:
        return None
    t = Tenant(id=r["t_id"], name=r["t_name"], domain=r["t_domain"], timezone=r["t_timezone"],
               max_users=r["t_max_users"], language=r["t_language"], enabled=r["t_enabled"])
    return t, from_row(Employee, r)


def employee_list(cur, tenant_id: int) -> list[Employee]:
    cur.execute("SELECT * FROM employees WHERE tenant_id = %s ORDER BY extension::bigint, id", (tenant_id,))
    return [from_row(Employee, r) for r in cur.fetchall()]


def employee_count(cur, tenant_id: int) -> int:
    cur.execute("SELECT count(*) AS n FROM employees WHERE tenant_id = %s", (tenant_id,))
    return cur.fetchone()["n"]


def employee_logins(cur, tenant_id: int) -> set[str]:
    cur.execute("SELECT login FROM employees WHERE tenant_id = %s", (tenant_id,))
    return {r["login"] for r in cur.fetchall()}


def employee_delete(cur, tenant_id: int, employee_id: int) -> None:
    with translated():
        cur.execute("DELETE FROM employees WHERE id = %s AND tenant_id = %s", (employee_id, tenant_id))
    if cur.rowcount == 0:
        raise NotFound("employee not found")


# -- departments ------------------------------------------------------------------------------
def _department_with_members(cur, row) -> Department:
    cur.execute("SELECT employee_id, position FROM department_members WHERE department_id = %s "
                "ORDER BY position", (row["id"],))
    members = tuple(from_row(DepartmentMember, r) for r in cur.fetchall())
    return from_row(Department, {**row, "members": members})


def department_insert(cur, **values) -> Department:
    return from_row(Department, _insert(cur, "departments", values))


def department_update(cur, tenant_id: int, department_id: int, **values) -> Department:
    row = _update(cur, "departments", department_id, tenant_id, values) if values else None
    if not values:
        return department_get(cur, tenant_id, department_id)
    if row is None:
        raise NotFound("department not found")
    return _department_with_members(cur, row)


def department_set_members(cur, department_id: int, employee_ids: list[int]) -> None:
    cur.execute("DELETE FROM department_members WHERE department_id = %s", (department_id,))
    with translated():
        for pos, eid in enumerate(employee_ids):
            cur.execute("INSERT INTO department_members (department_id, employee_id, position) "
                        "VALUES (%s, %s, %s)", (department_id, eid, pos))


def department_get(cur, tenant_id: int, department_id: int) -> Department:
    cur.execute("SELECT * FROM departments WHERE id = %s AND tenant_id = %s", (department_id, tenant_id))
    row = cur.fetchone()
    if row is None:
        raise NotFound("department not found")
    return _department_with_members(cur, row)


def department_find(cur, tenant_id: int, ref: str) -> Department:
    ref = str(ref).strip()
    if ref.isdigit():
        cur.execute("SELECT * FROM departments WHERE tenant_id = %s AND (extension = %s OR id = %s) "
                    "ORDER BY (extension = %s) DESC NULLS LAST LIMIT 1", (tenant_id, ref, int(ref), ref))
    else:
        cur.execute("SELECT * FROM departments WHERE tenant_id = %s AND name = %s", (tenant_id, ref))
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"department {ref} not found")
    return _department_with_members(cur, row)


def department_list(cur, tenant_id: int) -> list[Department]:
    cur.execute("SELECT * FROM departments WHERE tenant_id = %s ORDER BY name", (tenant_id,))
    rows = cur.fetchall()
    cur.execute("SELECT m.department_id, m.employee_id, m.position FROM department_members m "
                "JOIN departments d ON d.id = m.department_id WHERE d.tenant_id = %s ORDER BY m.position",
                (tenant_id,))
    by_dep: dict[int, list[DepartmentMember]] = {}
    for r in cur.fetchall():
        by_dep.setdefault(r["department_id"], []).append(
            DepartmentMember(employee_id=r["employee_id"], position=r["position"]))
    return [from_row(Department, {**r, "members": tuple(by_dep.get(r["id"], ()))}) for r in rows]


def department_delete(cur, tenant_id: int, department_id: int) -> None:
    with translated():
        cur.execute("DELETE FROM departments WHERE id = %s AND tenant_id = %s", (department_id, tenant_id))
    if cur.rowcount == 0:
        raise NotFound("department not found")


def departments_of_employee(cur, employee_id: int) -> list[int]:
    cur.execute("SELECT department_id FROM department_members WHERE employee_id = %s", (employee_id,))
    return [r["department_id"] for r in cur.fetchall()]


# -- IVR --------------------------------------------------------------------------------------
def _menu_with_items(cur, row) -> IvrMenu:
    cur.execute("SELECT digit, action, department_id, employee_id, submenu_id FROM ivr_items "
                "WHERE menu_id = %s ORDER BY digit", (row["id"],))
    items = tuple(from_row(IvrItem, r) for r in cur.fetchall())
    return from_row(IvrMenu, {**row, "items": items})


def ivr_insert(cur, **values) -> IvrMenu:
    return from_row(IvrMenu, _insert(cur, "ivr_menus", values))


def ivr_update(cur, tenant_id: int, menu_id: int, **values) -> IvrMenu:
    if not values:
        return ivr_get(cur, tenant_id, menu_id)
    row = _update(cur, "ivr_menus", menu_id, tenant_id, values)
    if row is None:
        raise NotFound("IVR menu not found")
    return _menu_with_items(cur, row)


def ivr_set_items(cur, menu_id: int, items: list[IvrItem]) -> None:
    cur.execute("DELETE FROM ivr_items WHERE menu_id = %s", (menu_id,))
    with translated():
        for it in items:
            cur.execute("INSERT INTO ivr_items (menu_id, digit, action, department_id, employee_id, submenu_id) "
                        "VALUES (%s, %s, %s, %s, %s, %s)",
                        (menu_id, it.digit, it.action, it.department_id, it.employee_id, it.submenu_id))


def ivr_get(cur, tenant_id: int, menu_id: int) -> IvrMenu:
    cur.execute("SELECT * FROM ivr_menus WHERE id = %s AND tenant_id = %s", (menu_id, tenant_id))
    row = cur.fetchone()
    if row is None:
        raise NotFound("IVR menu not found")
    return _menu_with_items(cur, row)


def ivr_list(cur, tenant_id: int) -> list[IvrMenu]:
    cur.execute("SELECT * FROM ivr_menus WHERE tenant_id = %s ORDER BY name", (tenant_id,))
    return [_menu_with_items(cur, r) for r in cur.fetchall()]


def ivr_delete(cur, tenant_id: int, menu_id: int) -> None:
    with translated():
        cur.execute("DELETE FROM ivr_menus WHERE id = %s AND tenant_id = %s", (menu_id, tenant_id))
    if cur.rowcount == 0:
        raise NotFound("IVR menu not found")


# -- numbers ----------------------------------------------------------------------------------
def number_insert(cur, **values) -> Number:
    return from_row(Number, _insert(cur, "numbers", values))


def number_update(cur, tenant_id: int, number_id: int, **values) -> Number:
    if not values:
        return number_get(cur, tenant_id, number_id)
    row = _update(cur, "numbers", number_id, tenant_id, values)
    if row is None:
        raise NotFound("number not found")
    return from_row(Number, row)


def number_get(cur, tenant_id: int, number_id: int) -> Number:
    cur.execute("SELECT * FROM numbers WHERE id = %s AND tenant_id = %s", (number_id, tenant_id))
    n = from_row(Number, cur.fetchone())
    if n is None:
        raise NotFound("number not found")
    return n


def number_find(cur, tenant_id: int, ref: str) -> Number:
    ref = str(ref).strip()
    cur.execute("SELECT * FROM numbers WHERE tenant_id = %s AND (did = %s OR id::text = %s) LIMIT 1",
                (tenant_id, ref, ref))
    n = from_row(Number, cur.fetchone())
    if n is None:
        raise NotFound(f"number {ref} not found")
    return n


def number_by_did(cur, did: str) -> Number | None:
    cur.execute("SELECT * FROM numbers WHERE did = %s", (did,))
    return from_row(Number, cur.fetchone())


def number_list(cur, tenant_id: int) -> list[Number]:
    cur.execute("SELECT * FROM numbers WHERE tenant_id = %s ORDER BY is_main DESC, did", (tenant_id,))
    return [from_row(Number, r) for r in cur.fetchall()]


def number_main(cur, tenant_id: int) -> Number | None:
    cur.execute("SELECT * FROM numbers WHERE tenant_id = %s ORDER BY is_main DESC, id LIMIT 1", (tenant_id,))
    return from_row(Number, cur.fetchone())


def number_delete(cur, tenant_id: int, number_id: int) -> None:
    cur.execute("DELETE FROM numbers WHERE id = %s AND tenant_id = %s", (number_id, tenant_id))
    if cur.rowcount == 0:
        raise NotFound("number not found")


# -- prompts ----------------------------------------------------------------------------------
def prompt_insert(cur, **values) -> Prompt:
    return from_row(Prompt, _insert(cur, "prompts", values))


def prompt_get(cur, tenant_id: int | None, prompt_id: int) -> Prompt:
    cur.execute("SELECT id, tenant_id, name, kind, language, filename, sample_rate, duration_ms, size_bytes, "
                "sha256, created_at FROM prompts WHERE id = %s AND (tenant_id = %s OR tenant_id IS NULL)",
                (prompt_id, tenant_id))
    p = from_row(Prompt, cur.fetchone())
    if p is None:
        raise NotFound("prompt not found")
    return p


def prompt_audio(cur, tenant_id: int | None, prompt_id: int) -> bytes:
    cur.execute("SELECT audio FROM prompts WHERE id = %s AND (tenant_id = %s OR tenant_id IS NULL)",
                (prompt_id, tenant_id))
    r = cur.fetchone()
    if r is None or r["audio"] is None:
        raise NotFound("prompt audio not found")
    return bytes(r["audio"])


def prompt_list(cur, tenant_id: int) -> list[Prompt]:
    cur.execute("SELECT id, tenant_id, name, kind, language, filename, sample_rate, duration_ms, size_bytes, "
                "sha256, created_at FROM prompts WHERE tenant_id = %s OR tenant_id IS NULL "
                "ORDER BY tenant_id NULLS FIRST, name", (tenant_id,))
    return [from_row(Prompt, r) for r in cur.fetchall()]


def prompt_delete(cur, tenant_id: int, prompt_id: int) -> None:
    cur.execute("DELETE FROM prompts WHERE id = %s AND tenant_id = %s", (prompt_id, tenant_id))
    if cur.rowcount == 0:
        raise NotFound("prompt not found")


# -- gateways ---------------------------------------------------------------------------------
def gateway_list(cur, *, enabled_only: bool = True) -> list[Gateway]:
    cur.execute("SELECT * FROM gateways" + (" WHERE enabled" if enabled_only else "") + " ORDER BY name")
    return [from_row(Gateway, r) for r in cur.fetchall()]


def gateway_upsert(cur, **values) -> Gateway:
    cols = sorted(values)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != "name")
    with translated():
        cur.execute(f"INSERT INTO gateways ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
                    f"ON CONFLICT (name) DO UPDATE SET {updates} RETURNING *", [values[c] for c in cols])
    return from_row(Gateway, cur.fetchone())


def gateway_insert(cur, **values) -> Gateway:
    return from_row(Gateway, _insert(cur, "gateways", values))


def gateway_get(cur, name: str, *, for_update: bool = False) -> Gateway:
    cur.execute("SELECT * FROM gateways WHERE name = %s" + (" FOR UPDATE" if for_update else ""), (name,))
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"gateway {name!r} not found")
    return from_row(Gateway, row)


def gateway_update(cur, name: str, **values) -> Gateway:
    clause, params = _set_clause(values)
    with translated():
        cur.execute(f"UPDATE gateways SET {clause} WHERE name = %s RETURNING *", params + [name])
    row = cur.fetchone()
    if row is None:
        raise NotFound(f"gateway {name!r} not found")
    return from_row(Gateway, row)


def gateway_delete(cur, name: str) -> None:
    cur.execute("DELETE FROM gateways WHERE name = %s", (name,))
    if cur.rowcount == 0:
        raise NotFound(f"gateway {name!r} not found")


# -- audit ------------------------------------------------------------------------------------
def audit(cur, *, tenant_id: int | None, actor: str, action: str, entity: str, entity_id: Any = "",
          details: dict | None = None) -> None:
    cur.execute("INSERT INTO audit_log (tenant_id, actor, action, entity, entity_id, details) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (tenant_id, actor, action, entity, str(entity_id),
                 json.dumps(details or {}, ensure_ascii=False, default=str)))


def audit_list(cur, tenant_id: int | None, *, limit: int = 200) -> list[AuditEntry]:
    if tenant_id is None:
        cur.execute("SELECT * FROM audit_log ORDER BY at DESC, id DESC LIMIT %s", (limit,))
    else:
        cur.execute("SELECT * FROM audit_log WHERE tenant_id = %s ORDER BY at DESC, id DESC LIMIT %s",
                    (tenant_id, limit))
    return [from_row(AuditEntry, r) for r in cur.fetchall()]


# -- e-mail outbox ----------------------------------------------------------------------------
def email_enqueue(cur, *, tenant_id: int | None, kind: str, recipient: str, subject: str, body: str,
                  attachment_name: str | None = None, attachment: bytes | None = None) -> int:
    cur.execute("INSERT INTO email_outbox (tenant_id, kind, recipient, subject, body, attachment_name, attachment) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (tenant_id, kind, recipient, subject, body, attachment_name, attachment))
    return cur.fetchone()["id"]
