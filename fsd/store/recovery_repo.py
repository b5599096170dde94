"""SQL for start-up recovery (fsd.calls.recovery): reservations a dead fsd process left behind."""

from __future__ import annotations


def reservations_of(cur, nodes: list[str]) -> list[dict]:
    """Every reservation held in the name of one of `nodes` (expired ones too)."""
    cur.execute("SELECT employee_id, call_uuid, node, expires_at FROM reservations WHERE node = ANY(%s) "
                "ORDER BY employee_id", (list(nodes),))
    return list(cur.fetchall())


def adopt(cur, employee_id: int, *, call_uuid: str, from_nodes: list[str], node: str, ttl_s: float) -> bool:
    """Keep a reservation whose conversation survived the process: move it to `node`, new expiry."""
    cur.execute("UPDATE reservations SET node = %s, expires_at = now() + make_interval(secs => %s) "
                "WHERE employee_id = %s AND call_uuid = %s AND node = ANY(%s)",
                (node, float(ttl_s), employee_id, call_uuid, list(from_nodes)))
    return cur.rowcount == 1


def drop(cur, employee_id: int, *, call_uuid: str) -> int:
    cur.execute("DELETE FROM reservations WHERE employee_id = %s AND call_uuid = %s", (employee_id, call_uuid))
    return cur.rowcount


def employee_by_extension(cur, domain: str, extension: str) -> int | None:
    """The employee a member leg dialled (user/<extension>@<domain>)."""
    cur.execute("SELECT e.id FROM employees e JOIN tenants t ON t.id = e.tenant_id "
                "WHERE t.domain = %s AND e.extension = %s", (domain.lower(), extension))
    row = cur.fetchone()
    return row["id"] if row else None
