"""The last good routing configuration of each tenant, in memory.

A call never waits for the database when the configuration is known: snapshots are loaded on first
use and again after a change notification (LISTEN/NOTIFY -> :meth:`SnapshotCache.on_change`). If
the database is unreachable the previous snapshot keeps serving calls (spec §9).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import gevent.lock

from fsd import prompts as fprompts
from fsd.calls import adapters
from fsd.errors import FsdError, StoreError
from fsd.store import calls_repo
from fsd.store import models as m

log = logging.getLogger(__name__)


@dataclass
class TenantSnapshot:
    tenant: m.Tenant
    schedule: object  # fsd.routing.schedule.Schedule
    employees: dict[int, m.Employee]
    departments: dict[int, m.Department]
    numbers: dict[str, m.Number]
    menus: dict[int, m.IvrMenu]
    prompt_paths: dict[int, str]
    uploaded: dict[str, str]
    gateway: str | None
    prompts_dir: str
    by_extension: dict[str, int] = field(default_factory=dict)
    by_login: dict[str, int] = field(default_factory=dict)
    dept_by_extension: dict[str, int] = field(default_factory=dict)
    member_cache: dict = field(default_factory=dict)  # (id, registered, busy, last call) -> strategy Member
    _prompts: dict = field(default_factory=dict, repr=False)  # name -> resolved path (a snapshot never changes)

    def __post_init__(self):
        for e in self.employees.values():
            self.by_extension[e.extension] = e.id
            self.by_login[e.login] = e.id
        for d in self.departments.values():
            if d.extension:
                self.dept_by_extension[d.extension] = d.id

    @property
    def tenant_id(self) -> int:
        return self.tenant.id

    @property
    def domain(self) -> str:
        return self.tenant.domain

    @property
    def language(self) -> str:
        return self.tenant.language

    @property
    def main_number(self) -> str | None:
        mains = [n for n in self.numbers.values() if n.is_main]
        if mains:
            return mains[0].did
        return min((n.did for n in self.numbers.values()), default=None)

    def prompt_path(self, prompt_id: int | None) -> str | None:
        if prompt_id is None:
            return None
        return self.prompt_paths.get(prompt_id)

    def prompt(self, name: str) -> str:
        """A standard prompt in the company's language (a company upload of that name wins)."""
        path = self._prompts.get(name)
        if path is None:
            path = self._prompts[name] = fprompts.resolve_prompt(name, self.language, self.uploaded,
                                                                 prompts_dir=self.prompts_dir)
        return path

    def employee_by_user(self, user: str) -> m.Employee | None:
        eid = self.by_extension.get(user) or self.by_login.get((user or "").lower())
        return self.employees.get(eid) if eid else None

    def extension_known(self, ext: str) -> bool:
        return ext in self.by_extension or ext in self.dept_by_extension


class SnapshotCache:
    def __init__(self, *, pool, storage_dir: str, prompts_dir: str | None = None, gate=None):
        from fsd.calls.dbgate import DbGate

        self.pool = pool
        self.gate = gate or DbGate()
        self.storage_dir = storage_dir
        self.prompts_dir = prompts_dir or str(fprompts.DEFAULT_PROMPTS_DIR)
        self._snaps: dict[int, TenantSnapshot] = {}
        self._stale: set[int] = set()
        self._all_stale = False
        self._did: dict[str, int] = {}
        self._domain: dict[str, int] = {}
        self._locks: dict[int, gevent.lock.Semaphore] = {}
        self.reload_errors = 0

    # -- change notifications --------------------------------------------------------------------
    def on_change(self, payload: dict | None) -> None:
        tid = (payload or {}).get("tenant_id")
        if isinstance(tid, int):
            self._stale.add(tid)
            if (payload or {}).get("entity") in ("number", "tenant"):
                self._did = {k: v for k, v in self._did.items() if v != tid}
        else:
            self._all_stale = True
            self._did.clear()

    def invalidate_all(self) -> None:
        self.on_change(None)

    # -- lookups ---------------------------------------------------------------------------------
    def by_did(self, dialled: str) -> tuple[TenantSnapshot, m.Number] | None:
        cands = adapters.did_candidates(dialled)
        tid = next((self._did[c] for c in cands if c in self._did), None)
        found = None
        if tid is None:
            if not self.gate.ok():
                found = self._did_from_snapshots(cands)
            else:
                try:
                    with self.pool.transaction() as cur:
                        found = calls_repo.tenant_id_by_did(cur, cands)
                except StoreError as e:
                    self.gate.failed(e)
                    log.warning("calls_did_lookup_failed did=%s error=%s", dialled, e)
                    found = self._did_from_snapshots(cands)
            if found is None:
                return None
            tid = found[0]
        snap = self.get(tid)
        for c in cands:
            if c in snap.numbers:
                return snap, snap.numbers[c]
        if found is not None and self.gate.ok():
            # The database knows the number but our snapshot does not (a missed notification).
            self._stale.add(tid)
            snap = self.get(tid)
            for c in cands:
                if c in snap.numbers:
                    return snap, snap.numbers[c]
        return None

    def _did_from_snapshots(self, cands):
        for snap in self._snaps.values():
            for c in cands:
                if c in snap.numbers:
                    return snap.tenant_id, c
        return None

    def by_domain(self, domain: str) -> TenantSnapshot | None:
        domain = (domain or "").strip().lower()
        tid = self._domain.get(domain)
        if tid is None:
            if not self.gate.ok():
                return None
            try:
                with self.pool.transaction() as cur:
                    tid = calls_repo.tenant_id_by_domain(cur, domain)
            except StoreError as e:
                self.gate.failed(e)
                log.warning("calls_domain_lookup_failed domain=%s error=%s", domain, e)
                return None
            if tid is None:
                return None
        return self.get(tid)

    def get(self, tenant_id: int) -> TenantSnapshot:
        snap = self._snaps.get(tenant_id)
        if snap is not None and not self._all_stale and tenant_id not in self._stale:
            return snap
        lock = self._locks.setdefault(tenant_id, gevent.lock.Semaphore())
        with lock:
            snap = self._snaps.get(tenant_id)
            if snap is not None and not self._all_stale and tenant_id not in self._stale:
                return snap
            if snap is not None and not self.gate.ok():
                return snap  # the database is known to be down: the last good snapshot serves
            self._stale.discard(tenant_id)
            try:
                fresh = self._load(tenant_id)
                self.gate.succeeded()
            except (StoreError, FsdError) as e:
                self.reload_errors += 1
                if isinstance(e, StoreError):
                    self.gate.failed(e)
                if snap is None:
                    raise
                self._stale.add(tenant_id)
                log.warning("calls_config_reload_failed tenant=%s error=%s using=last_good", tenant_id, e)
                return snap
            if self._all_stale:
                self._stale.update(t for t in self._snaps if t != tenant_id)
                self._all_stale = False
            self._snaps[tenant_id] = fresh
            self._did = {k: v for k, v in self._did.items() if v != tenant_id}
            for did in fresh.numbers:
                self._did[did] = tenant_id
            self._domain[fresh.domain] = tenant_id
            return fresh

    def snapshots(self) -> list[TenantSnapshot]:
        return list(self._snaps.values())

    # -- loading ---------------------------------------------------------------------------------
    def _load(self, tenant_id: int) -> TenantSnapshot:
        with self.pool.transaction() as cur:
            b = calls_repo.load_tenant_bundle(cur, tenant_id)
            paths, uploaded = self._materialise(cur, b["prompts"])
        gw = next((g.name for g in b["gateways"] if g.enabled), None)
        return TenantSnapshot(
            tenant=b["tenant"],
            schedule=adapters.schedule(b["schedule"]),
            employees={e.id: e for e in b["employees"]},
            departments={d.id: d for d in b["departments"]},
            numbers={n.did: n for n in b["numbers"]},
            menus={mm.id: mm for mm in b["menus"]},
            prompt_paths=paths,
            uploaded=uploaded,
            gateway=gw,
            prompts_dir=self.prompts_dir,
        )

    def _materialise(self, cur, prompts: list[m.Prompt]) -> tuple[dict[int, str], dict[str, str]]:
        """Uploaded audio lives in the database; FreeSWITCH plays files: write each once, by hash."""
        folder = os.path.join(self.storage_dir, "prompts")
        paths: dict[int, str] = {}
        uploaded: dict[str, str] = {}
        for p in prompts:
            ext = os.path.splitext(p.filename)[1] or ".wav"
            path = os.path.join(folder, f"{p.sha256}{ext}")
            if not os.path.exists(path):
                audio = calls_repo.prompt_audio(cur, p.id)
                if audio is None:
                    continue
                os.makedirs(folder, exist_ok=True)
                tmp = f"{path}.tmp{os.getpid()}"
                with open(tmp, "wb") as f:
                    f.write(audio)
                os.replace(tmp, path)
            paths[p.id] = path
            if p.tenant_id is not None:
                uploaded[p.name] = path
        return paths, uploaded
