"""The callback worker: serves callback requests ("call me back") per department, in place-in-line
order, when a member is free and the company is open.

One attempt: reserve a free member, ring the member first (``user/<ext>``, showing the customer's
number) and play them the announcement, then dial the customer through the trunk with the
company's main number as caller ID, and bridge the two legs. Attempts and interval come from the
request (defaults from the configuration); every request ends completed, failed or cancelled.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from datetime import UTC, datetime

import gevent
import gevent.event
import gevent.queue

from fsd.calls import adapters
from fsd.errors import ESLError, FsdError, StoreError
from fsd.queue import callback as cbq
from fsd.routing.schedule import is_open
from fsd.store import calls_repo

log = logging.getLogger(__name__)

LEG_TIMEOUT_S = 30
MAX_TALK_S = 12 * 3600.0


def _request(row) -> cbq.CallbackRequest:
    return cbq.CallbackRequest(
        request_id=row["id"], department_id=row["department_id"], caller_number=row["caller"],
        company_number=None, requested_at=row["created_at"], queued_at=row["created_at"],
        position=row["position"], status=row["status"], attempts=row["attempts"],
        max_attempts=row["max_attempts"], retry_interval_s=float(row["interval_s"]),
        next_attempt_at=row["next_attempt_at"],
    )


class CallbackWorker:
    def __init__(self, *, driver, poll_s: float = 1.0):
        self.d = driver
        self.poll_s = poll_s
        self._wake = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None
        self.running: dict[int, gevent.Greenlet] = {}
        self.completed = 0
        self.failed = 0

    def start(self) -> None:
        try:
            with self.d.pool.transaction() as cur:
                calls_repo.callbacks_reset_node(cur, self.d.node, self.d.clock.utcnow())
        except StoreError as e:
            log.warning("calls_callbacks_reset_failed error=%s", e)
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait(min(self.poll_s, max(0.01, self.d.clock.real(5.0))))
            self._wake.clear()
            try:
                self.run_once()
            except StoreError as e:
                log.debug("calls_callbacks_poll_failed error=%s", e)
            except Exception:
                log.exception("calls_callbacks_poll_crashed")

    def run_once(self) -> int:
        """Start the attempts that are due now; returns how many were started."""
        now = self.d.clock.utcnow()
        with self.d.pool.transaction() as cur:
            due = calls_repo.callbacks_due(cur, now)
        started = 0
        used: set[int] = set()
        for row in due:
            if row["id"] in self.running:
                continue
            try:
                snap = self.d.cache.get(row["tenant_id"])
            except FsdError:
                continue
            if not is_open(snap.schedule, now):
                continue
            dept = snap.departments.get(row["department_id"])
            if dept is None:
                self._finish(row, "cancelled", "department deleted")
                continue
            q = self.d.queues.get(dept.id)
            if q is not None and len(q):
                continue  # live callers in line are served first
            member = self._free_member(snap, dept, used)
            if member is None:
                continue
            with self.d.pool.transaction() as cur:
                claimed = calls_repo.callback_claim(cur, row["id"], node=self.d.node, now=now)
            if claimed is None:
                continue
            used.add(member)
            started += 1
            self.running[row["id"]] = gevent.spawn(self._attempt, claimed, snap, member)
        return started

    def _free_member(self, snap, dept, used) -> int | None:
        board = self.d.board
        ids = [e for e in dept.member_ids
               if e in snap.employees and snap.employees[e].enabled and e not in used
               and not board.busy(e) and board.is_registered(e)]
        if not ids:
            return None
        if dept.strategy == "evenly":
            def key(e):
                last = board.last_call.get(e)
                if last is None and snap.employees[e].last_call_ended_at is not None:
                    last = snap.employees[e].last_call_ended_at.timestamp()
                return (last is not None, last or 0.0)

            ids.sort(key=key)
        return ids[0]

    # ------------------------------------------------------------------ one attempt
    def _attempt(self, row, snap, member_id: int) -> None:
        cb_uuid = str(uuidlib.uuid4())
        board = self.d.board
        try:
            if not board.reserve(cb_uuid, [member_id]):
                with self.d.pool.transaction() as cur:
                    calls_repo.callback_unclaim(cur, row["id"], now=self.d.clock.utcnow())
                return
            try:
                ok, info = self._call(row, snap, member_id, cb_uuid)
            finally:
                board.release(cb_uuid, [member_id])
            if ok:
                board.call_ended(member_id)
                self._finish(row, "completed", "", member_id=member_id, info=info)
            else:
                self._failed(row, snap, info.get("error", "failed"), info)
        except Exception:
            log.exception("calls_callback_attempt_crashed callback=%s", row["id"])
            try:
                self._failed(row, snap, "internal error", {})
            except Exception:
                log.exception("calls_callback_fail_record_failed callback=%s", row["id"])
        finally:
            self.running.pop(row["id"], None)
            self.wake()

    def _link(self):
        for link in self.d.links.values():
            if link.client.connected:
                return link
        return None

    def _call(self, row, snap, member_id: int, cb_uuid: str) -> tuple[bool, dict]:
        link = self._link()
        clock = self.d.clock
        info: dict = {"started_at": clock.now(), "member": member_id}
        if link is None:
            info["error"] = "no switch connected"
            return False, info
        emp = snap.employees[member_id]
        events: gevent.queue.Queue = gevent.queue.Queue()
        m_uuid = str(uuidlib.uuid4())
        c_uuid = str(uuidlib.uuid4())
        info["uuid"] = c_uuid

        def on_ev(ev):
            if ev.name == "CHANNEL_HANGUP":
                events.put(ev.uuid)

        link.own(m_uuid, on_ev)
        link.own(c_uuid, on_ev)
        try:
            customer = adapters.dial_number(row["caller"])
            main = adapters.dial_number(snap.main_number or "")
            m_cmd = (f"originate {{origination_uuid={m_uuid},originate_timeout={LEG_TIMEOUT_S},"
                     f"origination_caller_id_number={customer},fsd_callback={row['id']},{link.marker},"
                     "hangup_after_bridge=true}"
                     f"user/{emp.extension}@{snap.domain} &park()")
            res = self._job(link, m_cmd)
            if not res.ok:
                info["error"] = f"member: {res.error}"
                if res.error in ("USER_NOT_REGISTERED", "SUBSCRIBER_ABSENT"):
                    self.d.board.set_registered(member_id, False)
                return False, info
            try:
                link.api(f"uuid_broadcast {m_uuid} {snap.prompt('callback_member_announce')} aleg")
            except ESLError:
                pass
            gw = snap.gateway or "trunk"
            c_cmd = (f"originate {{origination_uuid={c_uuid},originate_timeout={LEG_TIMEOUT_S},"
                     f"origination_caller_id_number={main},fsd_callback={row['id']},{link.marker},"
                     "hangup_after_bridge=true}"
                     f"sofia/gateway/{gw}/{customer} &park()")
            res = self._job(link, c_cmd, cancel_if_gone=m_uuid, events=events)
            if not res.ok:
                info["error"] = f"customer: {res.error}"
                self._kill(link, m_uuid)
                return False, info
            r = link.api(f"uuid_bridge {c_uuid} {m_uuid}")
            if not r.ok:
                info["error"] = f"bridge: {r.body.strip()}"
                self._kill(link, m_uuid)
                self._kill(link, c_uuid)
                return False, info
            answered = clock.now()
            info["answered_at"] = answered
            self.d.board.talk(cb_uuid, member_id)
            try:
                events.get(timeout=clock.real(MAX_TALK_S))
            except gevent.queue.Empty:
                pass
            self._kill(link, m_uuid)
            self._kill(link, c_uuid)
            info["talk_s"] = max(0.0, clock.now() - answered)
            return True, info
        finally:
            link.disown(m_uuid)
            link.disown(c_uuid)

    def _job(self, link, cmd, cancel_if_gone: str | None = None, events=None):
        from fsd.esl.inbound import ApiResult

        try:
            job = link.bgapi(cmd)
            return job.get(timeout=self.d.clock.real(LEG_TIMEOUT_S + 15) + 10.0)
        except (ESLError, gevent.Timeout, FsdError) as e:
            return ApiResult(f"-ERR FSD_{type(e).__name__}\n")

    @staticmethod
    def _kill(link, uuid):
        try:
            link.api(f"uuid_kill {uuid}")
        except ESLError:
            pass

    # ------------------------------------------------------------------ outcomes
    def _failed(self, row, snap, reason: str, info: dict) -> None:
        now = self.d.clock.utcnow()
        req = cbq.attempt_failed(_request(row), now, schedule=snap.schedule, reason=reason)
        with self.d.pool.transaction() as cur:
            calls_repo.callback_update(cur, row["id"], status=req.status, now=now,
                                       next_attempt_at=req.next_attempt_at, last_error=reason[:500])
        outcome = "failed" if req.status == cbq.FAILED else "retry"
        self.d.metrics.callbacks.labels(outcome).inc()
        if req.status == cbq.FAILED:
            self.failed += 1
        log.info("calls_callback_attempt_failed callback=%s attempt=%s reason=%s next=%s status=%s", row["id"],
                 row["attempts"], reason, req.next_attempt_at, req.status)
        self._history(row, "callback_failed", info)

    def _finish(self, row, status: str, reason: str, member_id: int | None = None, info: dict | None = None):
        now = self.d.clock.utcnow()
        with self.d.pool.transaction() as cur:
            calls_repo.callback_update(cur, row["id"], status=status, now=now, last_error=reason,
                                       employee_id=member_id)
        self.d.metrics.callbacks.labels(status).inc()
        if status == "completed":
            self.completed += 1
            self._history(row, "callback_completed", info or {})
        log.info("calls_callback_%s callback=%s member=%s", status, row["id"], member_id)

    def _history(self, row, result: str, info: dict) -> None:
        clock = self.d.clock
        start = info.get("started_at", clock.now())
        end = clock.now()
        ans = info.get("answered_at")
        self.d.history.write({
            "tenant_id": row["tenant_id"],
            "call_uuid": info.get("uuid") or str(uuidlib.uuid4()),
            "direction": "callback",
            "caller": row["caller"],
            "caller_name": "",
            "called": row["caller"],
            "number_id": row["number_id"],
            "route": f"callback:{row['id']}:attempt:{row['attempts']}",
            "department_id": row["department_id"],
            "employee_id": info.get("member"),
            "answered_by": info.get("member") if ans else None,
            "started_at": datetime.fromtimestamp(start, UTC),
            "answered_at": datetime.fromtimestamp(ans, UTC) if ans else None,
            "ended_at": datetime.fromtimestamp(max(end, start), UTC),
            "wait_s": round(max(0.0, (ans or end) - start), 3),
            "talk_s": round(info.get("talk_s", 0.0), 3),
            "result": result,
            "hangup_cause": info.get("error", "")[:200],
            "node": self.d.node,
        })
        self.d.metrics.calls_finished.labels("callback", result).inc()
