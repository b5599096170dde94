"""Waiting callers per department, the impatient-caller offer, and a deadline heap.

Pure data structures: no I/O, no clock reads. Times are monotonic floats (seconds) passed in.

Impatient offer («Для нетерпеливых клиентов», spec §3): when enabled, a caller who has waited
``threshold_s`` (default 20 s) hears an apology and the offer. The driver collects one digit:

- ``1`` -> callback (the caller leaves the line; the request keeps the place in line),
- ``2`` -> stay on the line,
- ``3`` -> voicemail (the caller leaves the line),
- no input (timeout) -> stay,
- any other digit -> invalid, treated as stay.

After "stay" (by choice, timeout or invalid digit) the offer is **not** repeated by default: the
caller has answered it, and repeating the apology every 20 s is what makes callers hang up. Set
``reoffer_after_s`` to re-offer that many seconds after each answered offer. Members keep ringing
during the offer; when one answers the driver calls :meth:`WaitingQueue.leave`, which cancels any
pending offer.
"""

from __future__ import annotations

import heapq
import itertools
from bisect import bisect_left
from collections.abc import Hashable
from dataclasses import dataclass

from fsd.errors import Conflict, ValidationError

CALLBACK = "callback"
STAY = "stay"
VOICEMAIL = "voicemail"


@dataclass(frozen=True, kw_only=True)
class Due:
    key: Hashable
    at: float
    payload: object = None


class Timers:
    """A deadline heap: ``schedule`` keyed timers, ``due(now)`` pops every timer with ``at <= now``
    in deadline order (ties in scheduling order). Re-scheduling a key replaces its timer;
    ``cancel`` is O(1) (lazy deletion); ``schedule``/``due`` are O(log n)."""

    def __init__(self):
        self._heap: list = []
        self._live: dict = {}  # key -> token
        self._seq = itertools.count()

    def schedule(self, key: Hashable, at: float, payload: object = None) -> None:
        token = next(self._seq)
        self._live[key] = token
        heapq.heappush(self._heap, (at, token, key, payload))
        if len(self._heap) > 2 * len(self._live) + 64:
            self._heap = [e for e in self._heap if self._live.get(e[2]) == e[1]]
            heapq.heapify(self._heap)

    def cancel(self, key: Hashable) -> bool:
        return self._live.pop(key, None) is not None

    def __contains__(self, key: Hashable) -> bool:
        return key in self._live

    def __len__(self) -> int:
        return len(self._live)

    def _drop_stale(self):
        heap = self._heap
        while heap and self._live.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)

    def next_deadline(self) -> float | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[Due]:
        out = []
        while True:
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                return out
            at, _token, key, payload = heapq.heappop(self._heap)
            del self._live[key]
            out.append(Due(key=key, at=at, payload=payload))


@dataclass(frozen=True, kw_only=True)
class ImpatientConfig:
    enabled: bool = False
    threshold_s: float = 20.0
    prompt: str | None = None
    reoffer_after_s: float | None = None

    def __post_init__(self):
        if self.threshold_s <= 0:
            raise ValidationError("impatient threshold must be > 0", field="threshold_s")
        if self.reoffer_after_s is not None and self.reoffer_after_s <= 0:
            raise ValidationError("re-offer interval must be > 0", field="reoffer_after_s")


@dataclass(frozen=True, kw_only=True)
class Waiter:
    call_id: Hashable
    entered_at: float
    seq: int


@dataclass(frozen=True, kw_only=True)
class OfferDue:
    """Play the impatient offer to ``call_id`` now (it has waited ``waited_s``)."""

    call_id: Hashable
    at: float
    waited_s: float


@dataclass(frozen=True, kw_only=True)
class OfferOutcome:
    """The caller's answer to the offer. ``choice`` is callback | stay | voicemail; ``invalid`` is
    True when an unknown digit was pressed. For callback/voicemail the caller has left the queue;
    ``position``/``entered_at`` are its place in line at that moment (kept by the callback)."""

    call_id: Hashable
    choice: str
    invalid: bool
    position: int | None
    entered_at: float


def offer_choice(digits: str | None) -> tuple[str, bool]:
    """``(choice, invalid)`` for the digits collected after the offer prompt."""
    d = (digits or "")[:1]
    if d == "1":
        return CALLBACK, False
    if d == "3":
        return VOICEMAIL, False
    if d in ("", "2"):
        return STAY, False
    return STAY, True


class WaitingQueue:
    """FIFO of the callers waiting for one department, with place in line and offer timers.

    ``enter``/``leave``/``position`` are O(log n) (+ a memmove on leave); ``due_offers`` pops
    only the callers whose offer is due.
    """

    def __init__(self, *, department_id: Hashable, impatient: ImpatientConfig | None = None):
        self.department_id = department_id
        self.impatient = impatient or ImpatientConfig()
        self._waiters: dict = {}  # call_id -> Waiter
        self._seqs: list[int] = []  # sorted seqs of waiting callers
        self._by_seq: dict = {}  # seq -> call_id
        self._seq = itertools.count()
        self._timers = Timers()

    def __len__(self) -> int:
        return len(self._waiters)

    def __contains__(self, call_id: Hashable) -> bool:
        return call_id in self._waiters

    def enter(self, call_id: Hashable, now: float) -> int:
        """Put a caller at the end of the line at ``now``; returns its 1-based position. If the
        impatient offer is enabled it becomes due at exactly ``now + threshold_s``."""
        if call_id in self._waiters:
            raise Conflict(f"call {call_id!r} is already waiting")
        seq = next(self._seq)
        self._waiters[call_id] = Waiter(call_id=call_id, entered_at=now, seq=seq)
        self._seqs.append(seq)
        self._by_seq[seq] = call_id
        if self.impatient.enabled:
            self._timers.schedule(call_id, now + self.impatient.threshold_s)
        return len(self._seqs)

    def leave(self, call_id: Hashable) -> Waiter | None:
        """Remove a caller (answered, hung up, chose callback/voicemail); cancels its offer."""
        w = self._waiters.pop(call_id, None)
        if w is None:
            return None
        i = bisect_left(self._seqs, w.seq)
        del self._seqs[i]
        del self._by_seq[w.seq]
        self._timers.cancel(call_id)
        return w

    def position(self, call_id: Hashable) -> int | None:
        """1-based place in line, or None if not waiting."""
        w = self._waiters.get(call_id)
        if w is None:
            return None
        return bisect_left(self._seqs, w.seq) + 1

    def head(self) -> Hashable | None:
        """The caller waiting longest (first in line)."""
        return self._by_seq[self._seqs[0]] if self._seqs else None

    def callers(self) -> list:
        """Waiting call ids, first in line first."""
        return [self._by_seq[s] for s in self._seqs]

    def waiter(self, call_id: Hashable) -> Waiter | None:
        return self._waiters.get(call_id)

    def longest_wait(self, now: float) -> float:
        """Seconds the first caller in line has waited at ``now``; 0.0 if nobody waits."""
        if not self._seqs:
            return 0.0
        return max(0.0, now - self._waiters[self.head()].entered_at)

    def next_deadline(self) -> float | None:
        """When the next offer is due (for the driver's timer), or None."""
        return self._timers.next_deadline()

    def due_offers(self, now: float) -> list[OfferDue]:
        """Offers due at or before ``now``, earliest first; each is returned once."""
        out = []
        for due in self._timers.due(now):
            w = self._waiters[due.key]
            out.append(OfferDue(call_id=due.key, at=due.at, waited_s=due.at - w.entered_at))
        return out

    def offer_result(self, call_id: Hashable, digits: str | None, now: float) -> OfferOutcome:
        """Apply the caller's answer to the offer (see module doc). Callback and voicemail take the
        caller out of the line; stay keeps it (and schedules a re-offer only if configured)."""
        w = self._waiters.get(call_id)
        if w is None:
            raise Conflict(f"call {call_id!r} is not waiting")
        choice, invalid = offer_choice(digits)
        position = self.position(call_id)
        if choice in (CALLBACK, VOICEMAIL):
            self.leave(call_id)
        elif self.impatient.enabled and self.impatient.reoffer_after_s is not None:
            self._timers.schedule(call_id, now + self.impatient.reoffer_after_s)
        return OfferOutcome(call_id=call_id, choice=choice, invalid=invalid, position=position, entered_at=w.entered_at)
