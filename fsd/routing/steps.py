"""Plan steps the call driver executes, shared by :mod:`fsd.routing.flow` and
:mod:`fsd.queue.noanswer`. Plain frozen values; the driver runs a plan's steps in order."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

#: Default time an external forward may ring before the caller goes to voicemail (spec §3).
FORWARD_TIMEOUT_S = 30.0


@dataclass(frozen=True, kw_only=True)
class PlayGreetingWhileRinging:
    """Play ``prompt`` to the caller instead of the ring-back tone while the next step rings."""

    prompt: str


@dataclass(frozen=True, kw_only=True)
class PlayMessage:
    """Play ``prompt`` to the end, then go on with the next step."""

    prompt: str


@dataclass(frozen=True, kw_only=True)
class Hangup:
    cause: str = "NORMAL_CLEARING"


@dataclass(frozen=True, kw_only=True)
class RingDepartment:
    """Distribute the call in a department (strategy, queue, impatient offer, no-answer action).
    ``chain`` lists the departments the call was already transferred through (loop guard)."""

    department_id: Hashable
    chain: tuple = ()


@dataclass(frozen=True, kw_only=True)
class RingEmployee:
    employee_id: Hashable


@dataclass(frozen=True, kw_only=True)
class EnterIvr:
    menu_id: Hashable


@dataclass(frozen=True, kw_only=True)
class Voicemail:
    """Record a voicemail into a box. ``box_kind`` is company | department | employee; ``greeting``
    None = the standard pre-loaded greeting."""

    box_kind: str = "company"
    box_id: Hashable | None = None
    greeting: str | None = None


@dataclass(frozen=True, kw_only=True)
class Forward:
    """Bridge to an external ``number``; if it does not answer within ``timeout_s`` (None = no
    limit) run the ``on_no_answer`` steps."""

    number: str
    timeout_s: float | None = FORWARD_TIMEOUT_S
    on_no_answer: tuple = ()
