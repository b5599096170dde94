"""Call history, statistics, voicemail, callbacks and the letters outbox, read with the rights of SPEC §1:

- admin: history and statistics of everybody;
- user: statistics of the whole company, history of own calls;
- limited: only own history and statistics.
Voicemail and callbacks: admins see all; others those addressed to them or to their departments.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fsd.errors import PermissionDenied, ValidationError
from fsd.services.base import Actor, Service
from fsd.store import repos, web_repo
from fsd.store.models import Department, DepartmentMember, Employee, IvrItem, IvrMenu, Number, Prompt, Tenant

RESULTS = ("answered", "missed", "abandoned", "voicemail", "callback_requested", "callback_completed",
           "callback_failed")
CALLBACK_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
MAX_RANGE_DAYS = 366

#: The objects the API returns, for its response schemas (the web layer does not import the store).
API_MODELS = (Department, DepartmentMember, Employee, IvrItem, IvrMenu, Number, Prompt, Tenant)


def parse_day(value, field: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValidationError(f"{field} must be a date YYYY-MM-DD", field=field) from None


def parse_id(value, field: str) -> int | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    if not text.isdigit() or len(text) > 18:
        raise ValidationError(f"{field} must be an id", field=field)
    return int(text)


class HistoryService(Service):
    # -- scope ---------------------------------------------------------------------------------
    def _range(self, tz: str, since, until) -> tuple[datetime, datetime, date, date]:
        zone = ZoneInfo(tz)
        d_until = parse_day(until, "until") or datetime.now(zone).date()
        d_since = parse_day(since, "since") or (d_until - timedelta(days=6))
        if d_since > d_until:
            raise ValidationError("the start date must not be after the end date", field="since")
        if (d_until - d_since).days > MAX_RANGE_DAYS:
            raise ValidationError(f"the period must be at most {MAX_RANGE_DAYS} days", field="since")
        try:
            start = datetime.combine(d_since, time(0), zone).astimezone(UTC)
            end = datetime.combine(d_until + timedelta(days=1), time(0), zone).astimezone(UTC)
        except OverflowError:
            raise ValidationError("the date is out of range", field="since") from None
        return start, end, d_since, d_until

    def calls(self, actor: Actor, tenant_id: int, *, since=None, until=None, employee_id=None, department_id=None,
              result=None, limit: int = 200, offset: int = 0) -> dict:
        actor.require_tenant(tenant_id)
        employee_id = parse_id(employee_id, "employee_id")
        department_id = parse_id(department_id, "department_id")
        if result not in (None, "") and result not in RESULTS:
            raise ValidationError(f"result must be one of: {', '.join(RESULTS)}", field="result")
        limit = max(1, min(int(limit), 10000))
        offset = max(0, min(int(offset), 10**9))
        own = None if actor.is_admin_of(tenant_id) else actor.employee_id
        with self.pool.transaction() as cur:
            tenant = repos.tenant_get(cur, tenant_id)
            start, end, d0, d1 = self._range(tenant.timezone, since, until)
            rows, total = web_repo.call_list(cur, tenant_id, since=start, until=end, employee_id=employee_id,
                                             department_id=department_id, result=result or None,
                                             own_employee_id=own, limit=limit, offset=offset)
        return {"calls": rows, "total": total, "since": d0, "until": d1, "own_only": own is not None}

    def calls_csv(self, actor: Actor, tenant_id: int, **filters) -> str:
        data = self.calls(actor, tenant_id, limit=10000, **filters)
        buf = io.StringIO()
        w = csv.writer(buf)
        cols = ["started_at", "direction", "caller", "caller_name", "called", "route", "department_name",
                "answered_by_name", "wait_s", "talk_s", "result", "hangup_cause", "call_uuid"]
        w.writerow(cols)
        for r in data["calls"]:
            w.writerow([_csv_safe(r.get(c)) for c in cols])
        return buf.getvalue()

    def stats(self, actor: Actor, tenant_id: int, *, since=None, until=None, employee_id=None,
              department_id=None) -> dict:
        actor.require_tenant(tenant_id)
        employee_id = parse_id(employee_id, "employee_id")
        department_id = parse_id(department_id, "department_id")
        own = None
        if actor.kind == "employee" and actor.role == "limited":
            if employee_id is not None and employee_id != actor.employee_id:
                raise PermissionDenied("you can see only your own statistics")
            own = actor.employee_id
        with self.pool.transaction() as cur:
            tenant = repos.tenant_get(cur, tenant_id)
            if employee_id is not None:
                repos.employee_get(cur, tenant_id, employee_id)
            if department_id is not None:
                repos.department_get(cur, tenant_id, department_id)
            start, end, d0, d1 = self._range(tenant.timezone, since, until)
            raw = web_repo.call_stats(cur, tenant_id, since=start, until=end, tz=tenant.timezone, own_employee_id=own,
                                      employee_id=employee_id, department_id=department_id)
        totals = {r: 0 for r in RESULTS}
        wait_sum = 0.0
        max_wait = 0.0
        talk = 0.0
        for r in raw["by_result"]:
            totals[r["result"]] = r["n"]
            wait_sum += float(r["avg_wait"]) * r["n"]
            max_wait = max(max_wait, float(r["max_wait"]))
            talk += float(r["talk"])
        n = sum(totals.values())
        hours = [{r: 0 for r in RESULTS} | {"hour": h} for h in range(24)]
        for r in raw["by_hour"]:
            hours[r["hour"]][r["result"]] = r["n"]
        days: dict[date, dict] = {}
        d = d0
        while d <= d1:
            days[d] = {r: 0 for r in RESULTS} | {"day": d}
            d += timedelta(days=1)
        for r in raw["by_day"]:
            if r["day"] in days:
                days[r["day"]][r["result"]] = r["n"]
        buckets = [0] * 8
        for r in raw["wait_buckets"]:
            buckets[min(int(r["bucket"] or 0), 7)] += r["n"]
        return {
            "since": d0, "until": d1, "scope": "own" if own is not None else "company",
            "employee_id": own if own is not None else employee_id, "department_id": department_id,
            "total": n, "by_result": totals,
            "avg_wait_s": round(wait_sum / n, 1) if n else 0.0, "max_wait_s": round(max_wait, 1),
            "talk_s": round(talk, 1),
            "by_hour": hours, "by_day": list(days.values()),
            "wait_histogram": [{"label": lbl, "n": buckets[i]} for i, lbl in enumerate(
                ["0", "0-10", "10-20", "20-30", "30-40", "40-50", "50-60", "60+"])][1:],
            "by_employee": [_floats(r) for r in raw["by_employee"]] if own is None else
            [_floats(r) for r in raw["by_employee"] if r["employee_id"] == own],
            "by_department": [_floats(r) for r in raw["by_department"]],
        }

    # -- voicemail -----------------------------------------------------------------------------
    def voicemails(self, actor: Actor, tenant_id: int) -> list[dict]:
        actor.require_tenant(tenant_id)
        own = None if actor.is_admin_of(tenant_id) else actor.employee_id
        with self.pool.transaction() as cur:
            return [_floats(r) for r in web_repo.voicemail_list(cur, tenant_id, own_employee_id=own)]

    def _visible_voicemail(self, cur, actor: Actor, tenant_id: int, voicemail_id: int) -> dict:
        vm = web_repo.voicemail_get(cur, tenant_id, voicemail_id)
        if not actor.is_admin_of(tenant_id):
            mine = vm["employee_id"] == actor.employee_id or (
                vm["department_id"] is not None
                and vm["department_id"] in web_repo.employee_departments(cur, actor.employee_id))
            if not mine:
                raise PermissionDenied("this voicemail is addressed to someone else")
        return vm

    def voicemail(self, actor: Actor, tenant_id: int, voicemail_id: int) -> dict:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            return _floats(self._visible_voicemail(cur, actor, tenant_id, voicemail_id))

    def voicemail_audio(self, actor: Actor, tenant_id: int, voicemail_id: int) -> tuple[dict, bytes]:
        actor.require_tenant(tenant_id)
        with self.pool.transaction() as cur:
            vm = self._visible_voicemail(cur, actor, tenant_id, voicemail_id)
            audio = web_repo.voicemail_audio(cur, tenant_id, voicemail_id)
            web_repo.voicemail_mark_heard(cur, tenant_id, voicemail_id)
        if audio is None:
            try:
                with open(vm["path"], "rb") as f:
                    audio = f.read()
            except OSError:
                from fsd.errors import NotFound

                raise NotFound("the recording is not available") from None
        return vm, audio

    # -- callbacks -----------------------------------------------------------------------------
    def callbacks(self, actor: Actor, tenant_id: int, *, status=None) -> list[dict]:
        actor.require_tenant(tenant_id)
        if status not in (None, "") and status not in CALLBACK_STATUSES:
            raise ValidationError(f"status must be one of: {', '.join(CALLBACK_STATUSES)}", field="status")
        own = None if actor.is_admin_of(tenant_id) else actor.employee_id
        with self.pool.transaction() as cur:
            return web_repo.callback_list(cur, tenant_id, status=status or None, own_employee_id=own)

    def cancel_callback(self, actor: Actor, tenant_id: int, callback_id: int) -> None:
        actor.require_admin(tenant_id)
        with self.change(actor, tenant_id=tenant_id, action="cancel", entity="callback") as ch:
            res = web_repo.callback_cancel(ch.cur, tenant_id, callback_id)
            if not res:
                raise ValidationError("only a pending callback can be cancelled", field="status")
            ch.entity_id = callback_id

    # -- letters -------------------------------------------------------------------------------
    def letters(self, actor: Actor, tenant_id: int) -> list[dict]:
        actor.require_admin(tenant_id)
        with self.pool.transaction() as cur:
            return web_repo.email_list(cur, tenant_id)

    def retry_letter(self, actor: Actor, tenant_id: int, email_id: int) -> None:
        actor.require_admin(tenant_id)
        with self.change(actor, tenant_id=tenant_id, action="retry", entity="email") as ch:
            web_repo.email_get(ch.cur, tenant_id, email_id)
            web_repo.email_retry_now(ch.cur, tenant_id, email_id)
            ch.entity_id = email_id


def _floats(row: dict) -> dict:
    from decimal import Decimal

    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in row.items()}


def _csv_safe(v) -> str:
    """CSV cell; values starting with = + - @ are prefixed with ' so spreadsheets do not run them."""
    if v is None:
        return ""
    text = v.isoformat() if isinstance(v, datetime) else str(v)
    if text[:1] in ("=", "+", "-", "@") and not _is_number(text):
        text = "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
