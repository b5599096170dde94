"""Rows as frozen dataclasses. The store returns these; nothing above it sees a cursor row."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


def from_row(cls, row: dict[str, Any] | None):
    if row is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in row.items() if k in names})


@dataclass(frozen=True)
class Tenant:
    id: int
    name: str
    domain: str
    timezone: str
    max_users: int
    language: str = "ru"
    enabled: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ScheduleInterval:
    weekday: int
    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class ScheduleException:
    day: date
    closed: bool
    start_minute: int | None = None
    end_minute: int | None = None
    note: str = ""


@dataclass(frozen=True)
class Schedule:
    tenant_id: int
    timezone: str
    intervals: tuple[ScheduleInterval, ...] = ()
    exceptions: tuple[ScheduleException, ...] = ()


@dataclass(frozen=True)
class Employee:
    id: int
    tenant_id: int
    name: str
    login: str
    password_hash: str = field(repr=False)
    sip_a1_hash: str = field(repr=False)
    position: str
    role: str
    extension: str
    email: str | None
    mobile: str | None
    forward_mode: str
    forward_delay: int
    enabled: bool = True
    last_call_ended_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        """The employee without secrets (for APIs and CLI output)."""
        d = dataclasses.asdict(self)
        d.pop("password_hash")
        d.pop("sip_a1_hash")
        return d


@dataclass(frozen=True)
class DepartmentMember:
    employee_id: int
    position: int


@dataclass(frozen=True)
class Department:
    id: int
    tenant_id: int
    name: str
    extension: str | None
    strategy: str
    step_delay: int
    ring_timeout: int
    no_answer_action: str
    no_answer_number: str | None
    no_answer_employee_id: int | None
    no_answer_department_id: int | None
    voicemail_prompt_id: int | None
    impatient_enabled: bool
    impatient_threshold: int
    impatient_offer_callback: bool
    impatient_offer_voicemail: bool
    impatient_prompt_id: int | None
    members: tuple[DepartmentMember, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def member_ids(self) -> list[int]:
        return [m.employee_id for m in sorted(self.members, key=lambda m: m.position)]


@dataclass(frozen=True)
class IvrItem:
    digit: str
    action: str
    department_id: int | None = None
    employee_id: int | None = None
    submenu_id: int | None = None


@dataclass(frozen=True)
class IvrMenu:
    id: int
    tenant_id: int
    name: str
    prompt_id: int | None
    invalid_prompt_id: int | None
    timeout_s: int
    max_repeats: int
    ext_digits: int
    fallback_kind: str
    fallback_department_id: int | None
    fallback_employee_id: int | None
    fallback_menu_id: int | None
    items: tuple[IvrItem, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Number:
    id: int
    tenant_id: int
    did: str
    name: str
    is_main: bool
    mode: str
    dest_kind: str
    dest_department_id: int | None
    dest_employee_id: int | None
    dest_ivr_id: int | None
    offhours_action: str
    offhours_number: str | None
    offhours_dest_kind: str | None
    offhours_department_id: int | None
    offhours_employee_id: int | None
    offhours_ivr_id: int | None
    offhours_prompt_id: int | None
    greeting_prompt_id: int | None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Prompt:
    id: int
    tenant_id: int | None
    name: str
    kind: str
    language: str
    filename: str
    sample_rate: int
    duration_ms: int
    size_bytes: int
    sha256: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    tenant_id: int | None
    actor: str
    action: str
    entity: str
    entity_id: str
    details: dict
    at: datetime


@dataclass(frozen=True)
class Gateway:
    id: int
    name: str
    proxy: str
    username: str
    password: str = field(repr=False)
    register: bool = False
    caller_id_in_from: bool = True
    enabled: bool = True
