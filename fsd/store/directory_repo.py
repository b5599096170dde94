"""SQL for the mod_xml_curl directory (fsd.directory): one query per lookup, rows as plain dataclasses.

Only enabled employees of enabled companies are ever returned: a disabled employee is "not found".
"""

from __future__ import annotations

from dataclasses import dataclass

from fsd.store import repos
from fsd.store.models import Gateway

# One row per directory user: the employee, its company and the company's main number (the number
# marked main, else the oldest one; the same choice as repos.number_main).
_USER_COLUMNS = (
    "e.id AS employee_id, e.tenant_id, e.login, e.extension, e.name, e.sip_a1_hash, "
    "t.domain, t.name AS tenant_name, "
    "(SELECT n.did FROM numbers n WHERE n.tenant_id = t.id ORDER BY n.is_main DESC, n.id LIMIT 1) AS main_number"
)


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    employee_id: int
    tenant_id: int
    login: str
    extension: str
    name: str
    a1_hash: str
    domain: str
    tenant_name: str
    main_number: str | None


@dataclass(frozen=True, slots=True)
class DirectoryDomain:
    tenant_id: int
    domain: str
    name: str


@dataclass(frozen=True, slots=True)
class DirectoryGroup:
    domain: DirectoryDomain
    department_id: int
    name: str
    extension: str | None
    members: tuple[DirectoryUser, ...]


def _user(r) -> DirectoryUser:
    return DirectoryUser(employee_id=r["employee_id"], tenant_id=r["tenant_id"], login=r["login"],
                         extension=r["extension"], name=r["name"], a1_hash=r["sip_a1_hash"], domain=r["domain"],
                         tenant_name=r["tenant_name"], main_number=r["main_number"])


def user(cur, domain: str, name: str) -> DirectoryUser | None:
    """An enabled employee of an enabled company, by login or by extension (number-alias)."""
    cur.execute(
        f"SELECT {_USER_COLUMNS} FROM tenants t JOIN employees e ON e.tenant_id = t.id "  # noqa: S608 - constant
        "WHERE t.domain = %s AND t.enabled AND e.enabled AND (e.login = %s OR e.extension = %s) LIMIT 1",
        (domain, name, name),
    )
    r = cur.fetchone()
    return _user(r) if r else None


def users_all(cur, *, limit: int | None = None) -> list[DirectoryUser]:
    """Every directory user of every enabled company (cache warm-up)."""
    sql = (f"SELECT {_USER_COLUMNS} FROM tenants t JOIN employees e ON e.tenant_id = t.id "  # noqa: S608
           "WHERE t.enabled AND e.enabled ORDER BY e.id")
    if limit is not None:
        cur.execute(sql + " LIMIT %s", (limit,))
    else:
        cur.execute(sql)
    return [_user(r) for r in cur.fetchall()]


def domain(cur, name: str) -> DirectoryDomain | None:
    cur.execute("SELECT id, domain, name FROM tenants WHERE domain = %s AND enabled", (name,))
    r = cur.fetchone()
    return DirectoryDomain(tenant_id=r["id"], domain=r["domain"], name=r["name"]) if r else None


def domains(cur) -> list[DirectoryDomain]:
    cur.execute("SELECT id, domain, name FROM tenants WHERE enabled ORDER BY domain")
    return [DirectoryDomain(tenant_id=r["id"], domain=r["domain"], name=r["name"]) for r in cur.fetchall()]


def group(cur, domain_name: str, group_name: str) -> DirectoryGroup | None:
    """A department as a directory group, by its extension or its name; members in ring order
    (enabled members only)."""
    d = domain(cur, domain_name)
    if d is None:
        return None
    cur.execute("SELECT id, name, extension FROM departments WHERE tenant_id = %s AND (extension = %s OR name = %s) "
                "ORDER BY (extension = %s) DESC NULLS LAST LIMIT 1", (d.tenant_id, group_name, group_name, group_name))
    dep = cur.fetchone()
    if dep is None:
        return None
    cur.execute(
        f"SELECT {_USER_COLUMNS} FROM department_members m JOIN employees e ON e.id = m.employee_id "  # noqa: S608
        "JOIN tenants t ON t.id = e.tenant_id WHERE m.department_id = %s AND e.enabled ORDER BY m.position",
        (dep["id"],),
    )
    members = tuple(_user(r) for r in cur.fetchall())
    return DirectoryGroup(domain=d, department_id=dep["id"], name=dep["name"], extension=dep["extension"],
                          members=members)


def tenant_names(cur, tenant_id: int) -> tuple[str | None, list[tuple[str, str]]]:
    """(domain, [(login, extension)]) of every employee of a company, enabled or not (for cache flushes)."""
    cur.execute("SELECT domain FROM tenants WHERE id = %s", (tenant_id,))
    r = cur.fetchone()
    if r is None:
        return None, []
    cur.execute("SELECT login, extension FROM employees WHERE tenant_id = %s ORDER BY id", (tenant_id,))
    return r["domain"], [(x["login"], x["extension"]) for x in cur.fetchall()]


def gateways(cur) -> list[Gateway]:
    """Enabled trunk gateways (for sofia's purpose=gateways lookups)."""
    return repos.gateway_list(cur, enabled_only=True)
