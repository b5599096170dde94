"""Callback requests ("call me back"): a pure state machine plus the dispatch decision.

States: ``pending`` -> ``in_progress`` -> ``completed`` | ``failed`` | ``cancelled``; a failed
attempt with attempts left goes back to ``pending``. Every request ends in one of the three final
states. Times are aware datetimes (requests are persisted and bound to the company schedule).

Rules (spec §3): attempts default 3, interval default 300 s, only within the company schedule:
the next attempt is placed at ``next_open(schedule, failure_time + interval)``; a request made out
of hours waits for the next opening. :func:`due_callbacks` only dispatches while the schedule is
open, in place-in-line order per department (``queued_at`` — when the caller entered the line —
then ``position``, then request time and id), one free member per request. It is the caller's job
to give live callers who entered the line earlier priority over a callback (compare ``queued_at``
with the waiting queue's entries).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from fsd.errors import Conflict, ValidationError
from fsd.routing.schedule import Schedule, is_open, next_open

PENDING = "pending"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
STATES = (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)
FINAL_STATES = frozenset({COMPLETED, FAILED, CANCELLED})


@dataclass(frozen=True, kw_only=True)
class CallbackPolicy:
    max_attempts: int = 3
    retry_interval_s: float = 300.0

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValidationError("callback attempts must be >= 1", field="max_attempts")
        if self.retry_interval_s < 0:
            raise ValidationError("callback interval must be >= 0", field="retry_interval_s")


@dataclass(frozen=True, kw_only=True)
class CallbackRequest:
    request_id: Hashable
    department_id: Hashable
    caller_number: str
    company_number: str | None
    requested_at: datetime
    queued_at: datetime
    position: int
    status: str = PENDING
    attempts: int = 0
    max_attempts: int = 3
    retry_interval_s: float = 300.0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    finished_at: datetime | None = None

    def __post_init__(self):
        if self.status not in STATES:
            raise ValidationError(f"callback status must be one of {STATES}", field="status")

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATES


@dataclass(frozen=True, kw_only=True)
class CallbackDispatch:
    """Start ``request`` now with ``member_id``: ring the member first, then dial the customer."""

    request: CallbackRequest
    member_id: Hashable


def new_callback(
    *,
    request_id: Hashable,
    department_id: Hashable,
    caller_number: str,
    company_number: str | None,
    now: datetime,
    schedule: Schedule,
    queued_at: datetime | None = None,
    position: int = 0,
    policy: CallbackPolicy | None = None,
) -> CallbackRequest:
    """A pending request created at ``now``; the first attempt is due at once if the company is
    open, else at the next opening. If the schedule never opens (within the schedule horizon) the
    request is ``failed`` at once with ``last_error='schedule_closed'``."""
    if not caller_number:
        raise ValidationError("callback needs the caller's number", field="caller_number")
    policy = policy or CallbackPolicy()
    req = CallbackRequest(
        request_id=request_id,
        department_id=department_id,
        caller_number=caller_number,
        company_number=company_number,
        requested_at=now,
        queued_at=queued_at or now,
        position=position,
        max_attempts=policy.max_attempts,
        retry_interval_s=policy.retry_interval_s,
    )
    at = next_open(schedule, now)
    if at is None:
        return replace(req, status=FAILED, last_error="schedule_closed", finished_at=now)
    return replace(req, next_attempt_at=at)


def _need(req: CallbackRequest, *states: str) -> None:
    if req.status not in states:
        raise Conflict(f"callback {req.request_id!r} is {req.status}, expected {' or '.join(states)}")


def start_attempt(req: CallbackRequest, now: datetime) -> CallbackRequest:
    """pending -> in_progress (one more attempt). Conflict unless pending and due at ``now``."""
    _need(req, PENDING)
    if req.next_attempt_at is None or req.next_attempt_at > now:
        raise Conflict(f"callback {req.request_id!r} is not due before {req.next_attempt_at}")
    return replace(req, status=IN_PROGRESS, attempts=req.attempts + 1, next_attempt_at=None)


def complete(req: CallbackRequest, now: datetime) -> CallbackRequest:
    """in_progress -> completed (member and customer were bridged)."""
    _need(req, IN_PROGRESS)
    return replace(req, status=COMPLETED, finished_at=now, last_error=None)


def attempt_failed(req: CallbackRequest, now: datetime, *, schedule: Schedule, reason: str) -> CallbackRequest:
    """in_progress -> pending with the next attempt ``retry_interval_s`` later (moved to the next
    opening if that is out of hours), or -> failed when the attempts are used up."""
    _need(req, IN_PROGRESS)
    if req.attempts >= req.max_attempts:
        return replace(req, status=FAILED, finished_at=now, last_error=reason)
    at = next_open(schedule, now + timedelta(seconds=req.retry_interval_s))
    if at is None:
        return replace(req, status=FAILED, finished_at=now, last_error=reason)
    return replace(req, status=PENDING, next_attempt_at=at, last_error=reason)


def cancel(req: CallbackRequest, now: datetime, *, reason: str = "cancelled") -> CallbackRequest:
    """pending|in_progress -> cancelled (by the admin, or the customer called again)."""
    _need(req, PENDING, IN_PROGRESS)
    return replace(req, status=CANCELLED, finished_at=now, last_error=reason, next_attempt_at=None)


def due_callbacks(
    requests: Iterable[CallbackRequest],
    free_members: Mapping[Hashable, Sequence[Hashable]],
    now: datetime,
    *,
    schedule: Schedule,
) -> list[CallbackDispatch]:
    """Which pending requests to start now, each with the member to ring first.

    ``free_members`` maps department id -> its free members in preference order (e.g. from
    :meth:`fsd.queue.strategy.Dispatcher.free_members` or repeated picks). Nothing is dispatched
    while the company is closed. Per department the due requests are served in place-in-line
    order and each free member is used once (a member in two departments is used at most once).
    """
    if not is_open(schedule, now):
        return []
    by_dept: dict = {}
    for r in requests:
        if r.status == PENDING and r.next_attempt_at is not None and r.next_attempt_at <= now:
            by_dept.setdefault(r.department_id, []).append(r)
    used: set = set()
    out = []
    for dept in sorted(by_dept, key=lambda d: min(_line_key(r) for r in by_dept[d])):
        members = [m for m in free_members.get(dept, ()) if m not in used]
        reqs = sorted(by_dept[dept], key=_line_key)
        for req, member in zip(reqs, members, strict=False):
            used.add(member)
            out.append(CallbackDispatch(request=req, member_id=member))
    return out


def _line_key(r: CallbackRequest):
    return (r.queued_at, r.position, r.requested_at, str(r.request_id))
