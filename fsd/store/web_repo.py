"""SQL for the cabinet, the API and the mail worker: sign-in lookups, API tokens, history, statistics,
voicemail, callbacks and the e-mail outbox. Functions take a cursor from `Pool.transaction()`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fsd.errors import NotFound
from fsd.store.errors import translated
from fsd.store.models import Employee, Tenant, from_row


# -- sign-in ----------------------------------------------------------------------------------
def employee_for_signin(cur, domain: str, login: str) -> tuple[Tenant, Employee] | None:
    cur.execute(
        "SELECT e.*, t.id AS t_id, t.name AS t_name, t.domain AS t_domain, t.timezone AS t_timezone, "
        "t.max_users AS t_max_users, t.language AS t_language, t.enabled AS t_enabled "
        "FROM employees e JOIN tenants t ON t.id = e.tenant_id WHERE t.domain = %s AND e.login = %s",
        (domain.strip().lower(), login.strip().lower()),
    )
    r = cur.fetchone()
    if r is None:
        return None
    t = Tenant(id=r["t_id"], name=r["t_name"], domain=r["t_domain"], timezone=r["t_timezone"],
               max_users=r["t_max_users"], language=r["t_language"], enabled=r["t_enabled"])
    return t, from_row(Employee, r)


def employee_set_password_hash(cur, employee_id: int, password_hash: str) -> None:
    cur.execute("UPDATE employees SET password_hash = %s WHERE id = %s", (password_hash, employee_id))


# -- API tokens -------------------------------------------------------------------------------
_TOKEN_COLS = "id, tenant_id, employee_id, name, created_at, last_used_at"  # noqa: S105 - column list


def token_insert(cur, *, tenant_id: int, employee_id: int, name: str, token_hash: str) -> dict:
    with translated():
        cur.execute(f"INSERT INTO api_tokens (tenant_id, employee_id, name, token_hash) VALUES (%s, %s, %s, %s) "
                    f"RETURNING {_TOKEN_COLS}", (tenant_id, employee_id, name, token_hash))
    return dict(cur.fetchone())


def token_list(cur, tenant_id: int, employee_id: int | None = None) -> list[dict]:
    if employee_id is None:
        cur.execute(f"SELECT {_TOKEN_COLS} FROM api_tokens WHERE tenant_id = %s ORDER BY id", (tenant_id,))
    else:
        cur.execute(f"SELECT {_TOKEN_COLS} FROM api_tokens WHERE tenant_id = %s AND employee_id = %s ORDER BY id",
                    (tenant_id, employee_id))
    return [dict(r) for r in cur.fetchall()]


def token_get(cur, tenant_id: int, token_id: int) -> dict:
    cur.execute(f"SELECT {_TOKEN_COLS} FROM api_tokens WHERE tenant_id = %s AND id = %s", (tenant_id, token_id))
    r = cur.fetchone()
    if r is None:
        raise NotFound("token not found")
    return dict(r)


def token_delete(cur, tenant_id: int, token_id: int) -> None:
    cur.execute("DELETE FROM api_tokens WHERE tenant_id = %s AND id = %s", (tenant_id, token_id))
    if cur.rowcount == 0:
        raise NotFound("token not found")


def token_lookup(cur, token_hash: str) -> tuple[dict, Employee] | None:
    cur.execute("UPDATE api_tokens SET last_used_at = now() WHERE token_hash = %s "
                f"RETURNING {_TOKEN_COLS}", (token_hash,))
    tok = cur.fetchone()
    if tok is None:
        return None
    cur.execute("SELECT e.* FROM employees e JOIN tenants t ON t.id = e.tenant_id "
                "WHERE e.id = %s AND e.enabled AND t.enabled", (tok["employee_id"],))
    emp = from_row(Employee, cur.fetchone())
    return (dict(tok), emp) if emp else None


# -- call history -----------------------------------------------------------------------------
_CALL_COLS = ("c.id, c.call_uuid, c.direction, c.caller, c.caller_name, c.called, c.number_id, c.route, "
              "c.department_id, c.employee_id, c.answered_by, c.started_at, c.answered_at, c.ended_at, "
              "c.wait_s, c.talk_s, c.result, c.hangup_cause, d.name AS department_name, "
              "ea.name AS answered_by_name, ee.name AS employee_name")


def _call_where(tenant_id: int, *, since: datetime | None, until: datetime | None, employee_id: int | None,
                department_id: int | None, result: str | None, own_employee_id: int | None
                ) -> tuple[str, list[Any]]:
    where = ["c.tenant_id = %s"]
    params: list[Any] = [tenant_id]
    if since is not None:
        where.append("c.started_at >= %s")
        params.append(since)
    if until is not None:
        where.append("c.started_at < %s")
        params.append(until)
    if employee_id is not None:
        where.append("(c.answered_by = %s OR c.employee_id = %s)")
        params += [employee_id, employee_id]
    if own_employee_id is not None:
        where.append("(c.answered_by = %s OR c.employee_id = %s)")
        params += [own_employee_id, own_employee_id]
    if department_id is not None:
        where.append("c.department_id = %s")
        params.append(department_id)
    if result is not None:
        where.append("c.result = %s")
        params.append(result)
    return " AND ".join(where), params


def call_list(cur, tenant_id: int, *, since=None, until=None, employee_id=None, department_id=None, result=None,
              own_employee_id=None, limit: int = 200, offset: int = 0) -> tuple[list[dict], int]:
    where, params = _call_where(tenant_id, since=since, until=until, employee_id=employee_id,
                                department_id=department_id, result=result, own_employee_id=own_employee_id)
    cur.execute(f"SELECT count(*) AS n FROM calls c WHERE {where}", params)
    total = cur.fetchone()["n"]
    cur.execute(f"SELECT {_CALL_COLS} FROM calls c LEFT JOIN departments d ON d.id = c.department_id "
                "LEFT JOIN employees ea ON ea.id = c.answered_by LEFT JOIN employees ee ON ee.id = c.employee_id "
                f"WHERE {where} ORDER BY c.started_at DESC, c.id DESC LIMIT %s OFFSET %s", [*params, limit, offset])
    return [dict(r) for r in cur.fetchall()], total


def call_stats(cur, tenant_id: int, *, since, until, tz: str, own_employee_id: int | None = None,
               employee_id: int | None = None, department_id: int | None = None) -> dict:
    where, params = _call_where(tenant_id, since=since, until=until, employee_id=employee_id,
                                department_id=department_id, result=None, own_employee_id=own_employee_id)
    out: dict = {}
    cur.execute(f"SELECT c.result, count(*) AS n, coalesce(avg(c.wait_s), 0) AS avg_wait, "
                f"coalesce(max(c.wait_s), 0) AS max_wait, coalesce(sum(c.talk_s), 0) AS talk "
                f"FROM calls c WHERE {where} GROUP BY c.result", params)
    out["by_result"] = [dict(r) for r in cur.fetchall()]
    cur.execute(f"SELECT extract(hour FROM c.started_at AT TIME ZONE %s)::int AS hour, c.result, count(*) AS n "
                f"FROM calls c WHERE {where} GROUP BY 1, 2 ORDER BY 1", [tz, *params])
    out["by_hour"] = [dict(r) for r in cur.fetchall()]
    cur.execute(f"SELECT (c.started_at AT TIME ZONE %s)::date AS day, c.result, count(*) AS n "
                f"FROM calls c WHERE {where} GROUP BY 1, 2 ORDER BY 1", [tz, *params])
    out["by_day"] = [dict(r) for r in cur.fetchall()]
    cur.execute(f"SELECT e.id AS employee_id, e.name, count(c.id) AS answered, coalesce(sum(c.talk_s), 0) AS talk, "
                f"coalesce(avg(c.wait_s), 0) AS avg_wait FROM calls c JOIN employees e ON e.id = c.answered_by "
                f"WHERE {where} GROUP BY e.id, e.name ORDER BY answered DESC, e.name", params)
    out["by_employee"] = [dict(r) for r in cur.fetchall()]
    cur.execute(f"SELECT d.id AS department_id, d.name, count(c.id) AS total, "
                f"count(c.id) FILTER (WHERE c.result = 'answered') AS answered, "
                f"count(c.id) FILTER (WHERE c.result = 'missed') AS missed, "
                f"count(c.id) FILTER (WHERE c.result = 'abandoned') AS abandoned, "
                f"coalesce(avg(c.wait_s), 0) AS avg_wait "
                f"FROM calls c JOIN departments d ON d.id = c.department_id "
                f"WHERE {where} GROUP BY d.id, d.name ORDER BY total DESC, d.name", params)
    out["by_department"] = [dict(r) for r in cur.fetchall()]
    cur.execute(f"SELECT width_bucket(c.wait_s, 0, 60, 6) AS bucket, count(*) AS n FROM calls c "
                f"WHERE {where} GROUP BY 1 ORDER BY 1", params)
    out["wait_buckets"] = [dict(r) for r in cur.fetchall()]
    return out


def call_insert(cur, **values) -> int:
    """Used by tests and the demo to seed history (the call driver has its own writer)."""
    cols = sorted(values)
    with translated():
        cur.execute(f"INSERT INTO calls ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) RETURNING id",
                    [values[c] for c in cols])
    return cur.fetchone()["id"]


# -- voicemail --------------------------------------------------------------------------------
_VM_COLS = ("v.id, v.tenant_id, v.call_uuid, v.employee_id, v.department_id, v.caller, v.duration_s, v.size_bytes, "
            "v.heard, v.emailed_at, v.email_error, v.created_at, e.name AS employee_name, d.name AS department_name")


def voicemail_list(cur, tenant_id: int, *, own_employee_id: int | None = None, limit: int = 200) -> list[dict]:
    where, params = "v.tenant_id = %s", [tenant_id]
    if own_employee_id is not None:
        where += (" AND (v.employee_id = %s OR v.department_id IN "
                  "(SELECT department_id FROM department_members WHERE employee_id = %s))")
        params += [own_employee_id, own_employee_id]
    cur.execute(f"SELECT {_VM_COLS} FROM voicemails v LEFT JOIN employees e ON e.id = v.employee_id "
                f"LEFT JOIN departments d ON d.id = v.department_id WHERE {where} "
                "ORDER BY v.created_at DESC, v.id DESC LIMIT %s", [*params, limit])
    return [dict(r) for r in cur.fetchall()]


def voicemail_get(cur, tenant_id: int, voicemail_id: int) -> dict:
    cur.execute(f"SELECT {_VM_COLS}, v.path FROM voicemails v LEFT JOIN employees e ON e.id = v.employee_id "
                "LEFT JOIN departments d ON d.id = v.department_id WHERE v.tenant_id = %s AND v.id = %s",
                (tenant_id, voicemail_id))
    r = cur.fetchone()
    if r is None:
        raise NotFound("voicemail not found")
    return dict(r)


def voicemail_audio(cur, tenant_id: int, voicemail_id: int) -> bytes | None:
    cur.execute("SELECT audio FROM voicemails WHERE tenant_id = %s AND id = %s", (tenant_id, voicemail_id))
    r = cur.fetchone()
    if r is None:
        raise NotFound("voicemail not found")
    return bytes(r["audio"]) if r["audio"] is not None else None


def voicemail_mark_heard(cur, tenant_id: int, voicemail_id: int) -> None:
    cur.execute("UPDATE voicemails SET heard = true WHERE tenant_id = %s AND id = %s", (tenant_id, voicemail_id))


def voicemail_insert(cur, **values) -> int:
    cols = sorted(values)
    with translated():
        cur.execute(f"INSERT INTO voicemails ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
                    "RETURNING id", [values[c] for c in cols])
    return cur.fetchone()["id"]


def employee_departments(cur, employee_id: int) -> list[int]:
    cur.execute("SELECT department_id FROM department_members WHERE employee_id = %s", (employee_id,))
    return [r["department_id"] for r in cur.fetchall()]


# -- callbacks --------------------------------------------------------------------------------
def callback_list(cur, tenant_id: int, *, status: str | None = None, own_employee_id: int | None = None,
                  limit: int = 200) -> list[dict]:
    where, params = "c.tenant_id = %s", [tenant_id]
    if status:
        where += " AND c.status = %s"
        params.append(status)
    if own_employee_id is not None:
        where += (" AND (c.employee_id = %s OR c.department_id IN "
                  "(SELECT department_id FROM department_members WHERE employee_id = %s))")
        params += [own_employee_id, own_employee_id]
    cur.execute("SELECT c.id, c.department_id, c.number_id, c.caller, c.position, c.status, c.attempts, "
                "c.max_attempts, c.interval_s, c.next_attempt_at, c.last_error, c.employee_id, c.created_at, "
                "c.updated_at, c.finished_at, d.name AS department_name, e.name AS employee_name "
                "FROM callbacks c LEFT JOIN departments d ON d.id = c.department_id "
                f"LEFT JOIN employees e ON e.id = c.employee_id WHERE {where} "
                "ORDER BY c.created_at DESC, c.id DESC LIMIT %s", [*params, limit])
    return [dict(r) for r in cur.fetchall()]


def callback_cancel(cur, tenant_id: int, callback_id: int) -> dict:
    cur.execute("UPDATE callbacks SET status = 'cancelled', finished_at = now(), updated_at = now() "
                "WHERE tenant_id = %s AND id = %s AND status IN ('pending', 'in_progress') RETURNING id, status",
                (tenant_id, callback_id))
    r = cur.fetchone()
    if r is None:
        cur.execute("SELECT id FROM callbacks WHERE tenant_id = %s AND id = %s", (tenant_id, callback_id))
        if cur.fetchone() is None:
            raise NotFound("callback not found")
        return {}
    return dict(r)


def callback_insert(cur, **values) -> int:
    cols = sorted(values)
    with translated():
        cur.execute(f"INSERT INTO callbacks ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
                    "RETURNING id", [values[c] for c in cols])
    return cur.fetchone()["id"]


# -- e-mail outbox ----------------------------------------------------------------------------
_MAIL_COLS = ("id, tenant_id, kind, recipient, subject, status, attempts, next_attempt_at, last_error, created_at, "
              "sent_at")


def email_claim_due(cur, limit: int = 10) -> list[dict]:
    """Due pending letters, locked for this transaction (other workers skip them)."""
    cur.execute("SELECT id, tenant_id, kind, recipient, subject, body, attachment_name, attachment, attempts "
                "FROM email_outbox WHERE status = 'pending' AND next_attempt_at <= now() "
                "ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED", (limit,))
    return [dict(r) for r in cur.fetchall()]


def email_mark_sent(cur, email_id: int) -> None:
    cur.execute("UPDATE email_outbox SET status = 'sent', sent_at = now(), attempts = attempts + 1, "
                "last_error = '' WHERE id = %s", (email_id,))


def email_mark_retry(cur, email_id: int, *, error: str, delay_s: float, give_up: bool) -> None:
    cur.execute("UPDATE email_outbox SET attempts = attempts + 1, last_error = %s, "
                "next_attempt_at = now() + make_interval(secs => %s), status = %s WHERE id = %s",
                (error[:500], float(delay_s), "failed" if give_up else "pending", email_id))


def email_list(cur, tenant_id: int, *, limit: int = 100) -> list[dict]:
    cur.execute(f"SELECT {_MAIL_COLS} FROM email_outbox WHERE tenant_id = %s ORDER BY created_at DESC, id DESC "
                "LIMIT %s", (tenant_id, limit))
    return [dict(r) for r in cur.fetchall()]


def email_get(cur, tenant_id: int, email_id: int) -> dict:
    cur.execute(f"SELECT {_MAIL_COLS} FROM email_outbox WHERE tenant_id = %s AND id = %s", (tenant_id, email_id))
    r = cur.fetchone()
    if r is None:
        raise NotFound("letter not found")
    return dict(r)


def email_retry_now(cur, tenant_id: int, email_id: int) -> None:
    cur.execute("UPDATE email_outbox SET status = 'pending', next_attempt_at = now() "
                "WHERE tenant_id = %s AND id = %s AND status <> 'sent'", (tenant_id, email_id))


def email_pending_count(cur) -> int:
    cur.execute("SELECT count(*) AS n FROM email_outbox WHERE status = 'pending'")
    return cur.fetchone()["n"]
