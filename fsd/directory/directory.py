"""The directory FreeSWITCH's mod_xml_curl asks: PostgreSQL → jinja2 → pre-rendered bytes, cached.

* Every answer is a whole document, rendered once and kept as bytes in a per-process cache keyed by
  (domain, lookup name): a user looked up by login and by extension shares one entry.
* A change made through the service layer (NOTIFY, `on_change`) evicts what it touches and asks every
  FreeSWITCH to drop its own copy (`flush(user, domain)` → `xml_flush_cache id USER DOMAIN`, for the
  login and the extension, old and new, since FreeSWITCH caches under the name it was asked for).
* Unknown names are cached briefly (negative_ttl_s) so a REGISTER flood for random users does not
  reach PostgreSQL for each request; creating the user evicts its negative entry at once.
* The database is asked in a separate greenlet (one per key at a time), waited for only until the
  request's deadline; a late answer still fills the cache. While PostgreSQL fails or is slow, a circuit
  breaker stops asking it (backoff, then one trial): known users are answered from the last good data
  (result "stale"), unknown ones are "not found" (result "error"). It closes by itself on success.
* When the change listener reconnected (changes may have been missed) `on_reconnect` marks every entry
  stale: it is re-read on its next use, and still served if PostgreSQL is down.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import gevent

from fsd.directory import request as rq
from fsd.directory.render import Renderer
from fsd.errors import FsdError, StoreError
from fsd.store import directory_repo as repo

log = logging.getLogger(__name__)

FOUND = "found"
NOT_FOUND = "not_found"
STALE = "stale"
ERROR = "error"


class DatabaseUnavailable(FsdError):
    """PostgreSQL failed, was too slow for the deadline, or the breaker is open."""


@dataclass(slots=True)
class Entry:
    body: bytes | None  # None: known not to exist
    at: float  # monotonic time it was read
    gen: int  # cache generation it belongs to (bumped by on_reconnect)
    domain: str
    names: tuple[str, ...]  # the lookup names it is stored under
    tenant_id: int | None = None
    employee_id: int | None = None
    expires: float = 0.0  # negative entries only


class Directory:
    def __init__(self, *, pool, metrics=None, flush: Callable[[str, str], None] | None = None,
                 renderer: Renderer | None = None, max_age_s: float = 300.0, negative_ttl_s: float = 2.0,
                 max_entries: int = 200_000, db_timeout_s: float = 5.0, backoff: tuple[float, float] = (0.5, 5.0),
                 gateways_profile: str = "external", deadline_margin_s: float = 0.05):
        self.pool = pool
        self.metrics = metrics
        self.flush = flush
        self.renderer = renderer or Renderer()
        self.not_found = self.renderer.not_found
        self.max_age_s = max_age_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self.db_timeout_s = db_timeout_s
        self.backoff = backoff
        self.gateways_profile = gateways_profile
        self.deadline_margin_s = deadline_margin_s
        self._cache: dict[tuple[str, str], Entry] = {}
        self._by_domain: dict[str, set[tuple[str, str]]] = {}
        self._tenant_domain: dict[int, str] = {}
        self._gen = 0
        self._epoch = 0  # bumped by every eviction: a read that started before it is not stored
        self._inflight: dict[object, gevent.Greenlet] = {}
        self._last_good: dict[str, bytes] = {}  # non-cached documents (gateways) for when the DB is down
        # circuit breaker
        self._retry_at = 0.0
        self._delay = backoff[0]
        self.db_ok = True
        self.db_failures = 0

    # ------------------------------------------------------------------ answering
    def lookup(self, req: rq.DirectoryRequest, *, deadline: float | None = None) -> tuple[bytes, str]:
        """The document for a parsed request and its result (found, not_found, stale, error).
        `deadline` is a time.monotonic() value; the database is not waited for past it."""
        if deadline is None:
            deadline = time.monotonic() + self.db_timeout_s
        kind = req.kind
        if kind == rq.USER:
            return self._cached_lookup(req.domain, req.user, deadline)
        if kind == rq.DOMAIN or kind == rq.NETWORK_LIST:
            return self._cached_lookup(req.domain, "", deadline)
        if kind == rq.GROUP:
            return self._cached_lookup(req.domain, "group:" + req.group, deadline)
        if kind == rq.GATEWAYS:
            return self._gateways(req.profile, deadline)
        return self.not_found, NOT_FOUND

    def answers_now(self, req: rq.DirectoryRequest) -> bool:
        """Whether lookup(req) answers from the cache (or without a document) right away, never waiting for
        PostgreSQL: the fast lane answers such requests without a greenlet of their own."""
        kind = req.kind
        if kind == rq.USER:
            key = (req.domain, req.user)
        elif kind == rq.DOMAIN or kind == rq.NETWORK_LIST:
            key = (req.domain, "")
        elif kind == rq.GROUP:
            key = (req.domain, "group:" + req.group)
        else:
            return kind != rq.GATEWAYS
        e = self._cache.get(key)
        if e is None or e.gen != self._gen:
            return False
        if e.body is not None:
            return time.monotonic() - e.at < self.max_age_s
        return time.monotonic() < e.expires

    def _cached_lookup(self, domain: str, name: str, deadline: float) -> tuple[bytes, str]:
        key = (domain, name)
        e = self._cache.get(key)
        now = time.monotonic()
        if e is not None and e.gen == self._gen:
            if e.body is not None:
                if now - e.at < self.max_age_s:
                    return e.body, FOUND
            elif now < e.expires:
                return self.not_found, NOT_FOUND
        try:
            fresh = self._db(key, lambda: self._load(domain, name), deadline)
        except DatabaseUnavailable:
            if e is not None and e.body is not None:
                return e.body, STALE
            return self.not_found, ERROR
        if fresh.body is None:
            return self.not_found, NOT_FOUND
        return fresh.body, FOUND

    def _load(self, domain: str, name: str) -> Entry:
        """Read and render one document (runs in its own greenlet); store it unless a change came meanwhile."""
        epoch = self._epoch
        gen = self._gen
        with self.pool.transaction() as cur:
            if name == "":
                d = repo.domain(cur, domain)
                body = self.renderer.domain(d) if d else None
                names, tenant_id, employee_id = ("",), (d.tenant_id if d else None), None
            elif name.startswith("group:"):
                g = repo.group(cur, domain, name[6:])
                body = self.renderer.group(g, name[6:]) if g else None
                names, tenant_id, employee_id = (name,), (g.domain.tenant_id if g else None), None
            else:
                u = repo.user(cur, domain, name)
                if u is None:
                    body, names, tenant_id, employee_id = None, (name,), None, None
                else:
                    body = self.renderer.user(u)
                    names, tenant_id, employee_id = (u.login, u.extension), u.tenant_id, u.employee_id
                    if name not in names:  # e.g. asked in another case
                        names = (*names, name)
        now = time.monotonic()
        entry = Entry(body=body, at=now, gen=gen, domain=domain, names=names, tenant_id=tenant_id,
                      employee_id=employee_id, expires=now + self.negative_ttl_s)
        if epoch == self._epoch and gen == self._gen:
            self._store(entry)
        return entry

    def _store(self, entry: Entry) -> None:
        if len(self._cache) >= self.max_entries:
            self._evict_oldest(max(1, self.max_entries // 10))
        keys = self._by_domain.setdefault(entry.domain, set())
        for n in entry.names:
            old = self._cache.get((entry.domain, n))
            if old is not None and old is not entry:
                self._drop(old)
            self._cache[(entry.domain, n)] = entry
            keys.add((entry.domain, n))
        if entry.tenant_id is not None:
            self._tenant_domain[entry.tenant_id] = entry.domain

    def _drop(self, entry: Entry) -> None:
        keys = self._by_domain.get(entry.domain)
        for n in entry.names:
            k = (entry.domain, n)
            if self._cache.get(k) is entry:
                del self._cache[k]
                if keys is not None:
                    keys.discard(k)

    def _evict_oldest(self, n: int) -> None:
        for k in list(self._cache)[:n]:  # dicts keep insertion order
            e = self._cache.get(k)
            if e is not None:
                self._drop(e)

    # ------------------------------------------------------------------ gateways
    def _gateways(self, profile: str, deadline: float) -> tuple[bytes, str]:
        with_gateways = profile == self.gateways_profile
        cache_key = "gateways" if with_gateways else "domains"

        def load():
            with self.pool.transaction() as cur:
                domains = repo.domains(cur)
                gws = repo.gateways(cur) if with_gateways else []
            body = self.renderer.gateways(domains, gws)
            self._last_good[cache_key] = body
            return body

        try:
            return self._db(("purpose", cache_key), load, deadline), FOUND
        except DatabaseUnavailable:
            body = self._last_good.get(cache_key)
            return (body, STALE) if body is not None else (self.not_found, ERROR)

    # ------------------------------------------------------------------ database access
    def _db(self, key, fn: Callable, deadline: float):
        """fn() in a greenlet shared by every request for `key`, waited for until `deadline`."""
        g = self._inflight.get(key)
        if g is None:
            now = time.monotonic()
            if now < self._retry_at:
                raise DatabaseUnavailable("database unavailable (breaker open)")
            if not self.db_ok:  # half-open: this one request tries, the others keep answering from cache
                self._retry_at = now + self._delay
            g = gevent.spawn(self._run_db, fn)
            self._inflight[key] = g
            g.link(lambda done, key=key: self._inflight.get(key) is done and self._inflight.pop(key))
        remaining = deadline - self.deadline_margin_s - time.monotonic()
        if remaining <= 0:
            raise DatabaseUnavailable("no time left before the deadline")
        try:
            return g.get(timeout=remaining)
        except gevent.Timeout:
            self._db_slow()
            raise DatabaseUnavailable("database too slow for the deadline") from None
        except StoreError as e:
            raise DatabaseUnavailable(str(e)) from e

    def _run_db(self, fn: Callable):
        try:
            with gevent.Timeout(self.db_timeout_s, StoreError(f"database gave no answer in {self.db_timeout_s}s")):
                result = fn()
        except StoreError as e:
            self._db_failed(e)
            raise
        self._db_succeeded()
        return result

    def _db_failed(self, e: Exception) -> None:
        self.db_failures += 1
        if self.metrics is not None:
            self.metrics.db_errors.labels("directory").inc()
        if self.db_ok:
            log.warning("directory_db_down error=%s retry_in=%.1f", e, self._delay)
        self.db_ok = False
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, self.backoff[1])

    def _db_slow(self) -> None:
        # The read goes on in its greenlet (and fills the cache if it succeeds); until it ends or the
        # backoff passes, other requests answer from the cache instead of waiting too.
        self._retry_at = max(self._retry_at, time.monotonic() + self.backoff[0])

    def _db_succeeded(self) -> None:
        if not self.db_ok:
            log.info("directory_db_up")
        self.db_ok = True
        self._retry_at = 0.0
        self._delay = self.backoff[0]

    # ------------------------------------------------------------------ warm-up
    def warm(self, *, limit: int | None = None) -> int:
        """Load and render every directory user (so they register even if PostgreSQL goes down before
        their first lookup). Returns the number of users cached (0 if the database is unreachable)."""
        epoch, gen = self._epoch, self._gen
        try:
            with self.pool.transaction() as cur:
                users = repo.users_all(cur, limit=limit)
        except StoreError as e:
            log.warning("directory_warm_failed error=%s", e)
            return 0
        n = 0
        for u in users:
            if epoch != self._epoch or gen != self._gen:
                break
            body = self.renderer.user(u)
            self._store(Entry(body=body, at=time.monotonic(), gen=gen, domain=u.domain,
                              names=(u.login, u.extension), tenant_id=u.tenant_id, employee_id=u.employee_id))
            n += 1
            if n % 500 == 0:
                gevent.sleep(0)
        log.info("directory_warmed users=%s", n)
        return n

    # ------------------------------------------------------------------ invalidation
    def on_reconnect(self) -> None:
        """The change listener lost its connection: changes may have been missed."""
        self._gen += 1
        self._epoch += 1
        log.info("directory_cache_marked_stale entries=%s", len(self._cache))

    def clear(self) -> int:
        n = len(self._cache)
        self._cache.clear()
        self._by_domain.clear()
        self._epoch += 1
        return n

    def on_change(self, payload: dict) -> None:
        """A NOTIFY from the service layer of any fsd process (fsd.services.base.Service.change)."""
        entity = payload.get("entity")
        domain = (payload.get("domain") or "").lower()
        tenant_id = payload.get("tenant_id")
        if not domain and tenant_id is not None:
            domain = self._tenant_domain.get(tenant_id, "")
        if entity == "employee":
            names = {str(payload[k]).lower() for k in ("login", "old_login", "extension", "old_extension")
                     if payload.get(k)}
            evicted = self._evict_names(domain, names, employee_id=payload.get("id"))
            evicted += self._evict_groups(domain)
            self._count_evictions(evicted)
            if domain:
                self._flush_async([(n, domain) for n in sorted(names)])
        elif entity in ("tenant", "number"):
            # the domain itself, or every user's outbound caller id (the main number) changed
            if tenant_id is None and entity == "tenant":
                tenant_id = payload.get("id")
            cached = self._cached_names(domain) if domain else []
            self._count_evictions(self._evict_domain(domain) if domain else 0)
            if self.flush is not None:
                gevent.spawn(self._flush_tenant, tenant_id, domain, cached)
        elif entity == "department":
            self._count_evictions(self._evict_groups(domain))

    def _count_evictions(self, n: int) -> None:
        if n and self.metrics is not None:
            self.metrics.directory_cache_evictions.inc(n)

    def _evict_names(self, domain: str, names: set[str], *, employee_id=None) -> int:
        self._epoch += 1
        victims = {id(e): e for n in names if (e := self._cache.get((domain, n))) is not None}
        if employee_id is not None:
            for k in list(self._by_domain.get(domain, ())):
                e = self._cache.get(k)
                if e is not None and e.employee_id == employee_id:
                    victims[id(e)] = e
        for e in victims.values():
            self._drop(e)
        return len(victims)

    def _evict_groups(self, domain: str) -> int:
        self._epoch += 1
        victims = [self._cache[k] for k in list(self._by_domain.get(domain, ()))
                   if k[1].startswith("group:") and k in self._cache]
        for e in victims:
            self._drop(e)
        return len(victims)

    def _evict_domain(self, domain: str) -> int:
        self._epoch += 1
        victims = {id(e): e for k in list(self._by_domain.get(domain, ())) if (e := self._cache.get(k)) is not None}
        for e in victims.values():
            self._drop(e)
        self._by_domain.pop(domain, None)
        return len(victims)

    def _cached_names(self, domain: str) -> list[tuple[str, str]]:
        return sorted((k[1], domain) for k in self._by_domain.get(domain, ()) if k[1] and ":" not in k[1])

    # ------------------------------------------------------------------ FreeSWITCH cache flush
    def _flush_tenant(self, tenant_id, domain: str, cached: list[tuple[str, str]]) -> None:
        """Flush every user of a company: those in the database (it may have other users cached in
        FreeSWITCH than this process served) and those this process had cached (a deleted company)."""
        pairs = set(cached)
        if tenant_id is not None:
            try:
                with self.pool.transaction() as cur:
                    db_domain, names = repo.tenant_names(cur, int(tenant_id))
                domain = db_domain or domain
                if domain:
                    pairs.update((n, domain) for login, ext in names for n in (login, ext))
            except StoreError as e:
                log.warning("directory_flush_list_failed tenant=%s error=%s", tenant_id, e)
        self._flush_now(sorted(pairs))

    def _flush_async(self, pairs: list[tuple[str, str]]) -> None:
        if self.flush is not None and pairs:
            gevent.spawn(self._flush_now, pairs)

    def _flush_now(self, pairs: list[tuple[str, str]]) -> None:
        if self.flush is None:
            return
        for user, domain in pairs:
            if not user or not domain or any(c.isspace() or ord(c) < 32 for c in user + domain):
                log.warning("directory_flush_skipped reason=unsafe_name")  # never splice odd text into a command
                continue
            result = "ok"
            try:
                self.flush(user, domain)
            except Exception as e:  # noqa: BLE001 - one switch failing must not stop the others
                result = "error"
                log.warning("directory_flush_failed user=%s domain=%s error=%s", user, domain, e)
            if self.metrics is not None:
                self.metrics.directory_flushes.labels(result).inc()

    # ------------------------------------------------------------------ introspection
    def cached(self, domain: str, name: str) -> bool:
        e = self._cache.get((domain.lower(), name.lower()))
        return e is not None and e.body is not None

    def __len__(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        for g in list(self._inflight.values()):
            with contextlib.suppress(Exception):
                g.kill(block=False)
