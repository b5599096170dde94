"""Cabinet sign-in: login@domain + password, with failed attempts rate-limited per login and per IP."""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass

from fsd.domain import rules
from fsd.errors import FsdError, NotFound, ValidationError
from fsd.services.base import Actor, Service
from fsd.store import repos, web_repo
from fsd.store.models import Employee, Tenant

log = logging.getLogger(__name__)

# verified against when the login is unknown, so a wrong login costs the same time as a wrong password
_DUMMY_HASH = None


class SignInFailed(FsdError):
    """Wrong login or password (deliberately not saying which)."""


class TooManyAttempts(FsdError):
    """Too many failed sign-ins; `retry_after` seconds until the next attempt is accepted."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiter:
    """Sliding one-minute window of failures per key (in this process)."""

    def __init__(self, *, per_minute: int, window_s: float = 60.0, clock=time.monotonic):
        self.per_minute = max(1, int(per_minute))
        self.window_s = window_s
        self.clock = clock
        self._fails: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: float) -> collections.deque:
        q = self._fails.setdefault(key, collections.deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def retry_after(self, key: str) -> int:
        """0 when `key` may try again now, else whole seconds to wait."""
        with self._lock:
            now = self.clock()
            q = self._prune(key, now)
            if len(q) < self.per_minute:
                return 0
            return max(1, int(q[0] + self.window_s - now + 0.999))

    def fail(self, key: str) -> None:
        with self._lock:
            self._prune(key, self.clock()).append(self.clock())
            if len(self._fails) > 100000:  # bound memory under a spray of random logins
                for k in [k for k, q in self._fails.items() if not q][:50000]:
                    del self._fails[k]

    def reset(self, key: str) -> None:
        with self._lock:
            self._fails.pop(key, None)


@dataclass(frozen=True)
class Session:
    actor: Actor
    employee: Employee
    tenant: Tenant


def _actor_of(emp: Employee) -> Actor:
    return Actor.employee(tenant_id=emp.tenant_id, employee_id=emp.id, role=emp.role, login=emp.login)


def split_login(text: str) -> tuple[str, str]:
    """'ivanov@company.example' → ('ivanov', 'company.example')."""
    value = (text or "").strip()
    if value.count("@") != 1:
        raise ValidationError("sign in as login@domain", field="login")
    login, domain = value.split("@")
    if not login or not domain:
        raise ValidationError("sign in as login@domain", field="login")
    return login.lower(), domain.lower()


class AuthService(Service):
    def __init__(self, *, pool, attempts_per_minute: int = 5, clock=time.monotonic):
        super().__init__(pool=pool)
        self.by_login = RateLimiter(per_minute=attempts_per_minute, clock=clock)
        self.by_ip = RateLimiter(per_minute=attempts_per_minute * 4, clock=clock)

    def sign_in(self, login_at_domain: str, password: str, *, ip: str = "") -> Session:
        login, domain = split_login(login_at_domain)
        key_login, key_ip = f"{login}@{domain}", f"ip:{ip}"
        wait = max(self.by_login.retry_after(key_login), self.by_ip.retry_after(key_ip))
        if wait:
            log.warning("signin_throttled login=%s@%s ip=%s", login, domain, ip)
            raise TooManyAttempts(f"too many failed sign-in attempts, try again in {wait} s", retry_after=wait)
        with self.pool.transaction() as cur:
            found = web_repo.employee_for_signin(cur, domain, login)
        ok = False
        if found is None:
            rules.verify_password(_dummy_hash(), password or "")
        else:
            tenant, emp = found
            ok = rules.verify_password(emp.password_hash, password or "") and emp.enabled and tenant.enabled
        if not ok:
            self.by_login.fail(key_login)
            self.by_ip.fail(key_ip)
            log.info("signin_failed login=%s@%s ip=%s", login, domain, ip)
            raise SignInFailed("wrong login or password")
        self.by_login.reset(key_login)
        if rules.needs_rehash(emp.password_hash):
            with self.pool.transaction() as cur:
                web_repo.employee_set_password_hash(cur, emp.id, rules.hash_password(password))
        log.info("signin_ok login=%s@%s ip=%s", login, domain, ip)
        return Session(actor=_actor_of(emp), employee=emp, tenant=tenant)

    def session(self, tenant_id: int, employee_id: int) -> Session | None:
        """The current state of a signed-in employee (None when deleted or disabled: sign out)."""
        try:
            with self.pool.transaction() as cur:
                tenant = repos.tenant_get(cur, tenant_id)
                emp = repos.employee_get(cur, tenant_id, employee_id)
        except NotFound:
            return None
        if not emp.enabled or not tenant.enabled:
            return None
        return Session(actor=_actor_of(emp), employee=emp, tenant=tenant)


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = rules.hash_password("not-a-real-password-1A")
    return _DUMMY_HASH
