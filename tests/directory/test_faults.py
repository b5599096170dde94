"""PostgreSQL down or hanging: known users keep registering from the last good data, unknown ones are not
found, every answer comes within the deadline, and the directory recovers by itself."""

from __future__ import annotations

import re
import time

import pytest

from fsd.services import Actor
from fsd.sim.endpoints import Phone
from fsd.store.pool import Pool
from tests.directory import captures
from tests.directory.conftest import DOMAIN, Stack, counter, form, post
from tests.directory.proxy import PgProxy
from tests.helpers import wait_for

PW = "Secret-pass-11"


@pytest.fixture(params=["pywsgi", "lane"])
def server(request):
    """The WSGI path, and FastLaneServer (whose accept loop must never wait for the database)."""
    return request.param


@pytest.fixture
def proxied(db_dsn):
    proxy = PgProxy(target_port=int(re.search(r"\bport=(\d+)", db_dsn).group(1))).start()
    p = Pool(dsn=proxy.dsn(db_dsn), minconn=0, maxconn=4, connect_timeout_s=1, checkout_timeout_s=1)
    yield proxy, p
    proxy.restore()
    p.close()
    proxy.stop()


def _create(services, tenant, name, login, ext):
    return services.employees.create(Actor.system(), tenant.id, name=name, login=login, extension=ext, password=PW)


def _register(sw, user) -> bool:
    sw.flush_directory_cache("")  # as a restarted FreeSWITCH: nothing cached, the request reaches fsd
    return sw.register(Phone(user, DOMAIN, PW, register=False))


def test_database_down_then_back(proxied, db_dsn, services, tenant, server):
    proxy, broken_pool = proxied
    _create(services, tenant, "Ivan", "ivan", "201")
    _create(services, tenant, "Anna", "anna", "202")
    # max_age_s=0: every lookup re-reads PostgreSQL, so each one below meets the outage
    s = Stack(pool=broken_pool, dsn=db_dsn, server=server, max_age_s=0.0, backoff=(0.05, 0.2))
    try:
        sw = s.new_switch()
        assert _register(sw, "ivan") is True
        proxy.cut()
        assert _register(sw, "ivan") is True  # from the last good document
        assert _register(sw, "anna") is False  # never read: no data to answer with
        assert _register(sw, "nobody") is False
        assert s.directory.db_ok is False
        assert counter(s.metrics, "sip_auth", "stale") >= 1
        assert counter(s.metrics, "sip_auth", "error") >= 1
        assert s.metrics.registry.get_sample_value("fsd_db_errors_total", {"operation": "directory"}) >= 1
        # a change made meanwhile (through another fsd's working database link) is heard and applied later
        _create(services, tenant, "Late", "late", "230")
        wait_for(lambda: ("late", DOMAIN) in s.flushed, 10, message="NOTIFY of the new employee")
        assert _register(sw, "late") is False
        proxy.restore()
        wait_for(lambda: _register(sw, "late"), 10, message="recovery")
        assert s.directory.db_ok is True
        assert _register(sw, "anna") is True
        assert _register(sw, "nobody") is False
    finally:
        s.stop()


def test_gateways_answered_from_last_good_data_while_down(proxied, db_dsn, services, tenant, server):
    proxy, broken_pool = proxied
    s = Stack(pool=broken_pool, dsn=db_dsn, server=server, listen=False, backoff=(0.05, 0.2))
    try:
        body = captures.request_body("xmlcurl-01-directory-gateways")
        _, _, good = post(s.port, body)
        assert DOMAIN in [d.get("name") for d in captures.xml(good).iter("domain")]
        proxy.cut()
        status, _, doc = post(s.port, body)
        assert status == 200 and doc == good
        assert counter(s.metrics, "gateways", "stale") == 1
    finally:
        s.stop()


def test_hanging_database_never_delays_an_answer_past_the_deadline(proxied, db_dsn, services, tenant, server):
    proxy, broken_pool = proxied
    _create(services, tenant, "Ivan", "ivan", "201")
    db_timeout = 3.0
    s = Stack(pool=broken_pool, dsn=db_dsn, server=server, listen=False, max_age_s=0.0, db_timeout_s=db_timeout,
              backoff=(0.05, 0.2), app_kwargs={"deadline_ms": 300})
    try:
        _, _, good = post(s.port, form(action="sip_auth", key="id", user="ivan", domain=DOMAIN))
        assert captures.xml(good).find(".//user").get("id") == "ivan"
        proxy.hold()
        for user, expected, result in (("ivan", good, "stale"), ("nobody", s.directory.not_found, "error"),
                                       ("anna", s.directory.not_found, "error")):
            before = counter(s.metrics, "sip_auth", result)
            t0 = time.monotonic()
            status, _, doc = post(s.port, form(action="sip_auth", key="id", user=user, domain=DOMAIN))
            elapsed = time.monotonic() - t0
            assert status == 200 and doc == expected, user
            assert counter(s.metrics, "sip_auth", result) == before + 1, user
            assert elapsed < db_timeout, f"{user}: answered after {elapsed:.2f}s, i.e. waited for the database"
        _create(services, tenant, "Anna", "anna", "202")
        proxy.restore()

        def anna_found():
            _, _, doc = post(s.port, form(action="sip_auth", key="id", user="anna", domain=DOMAIN))
            return doc != s.directory.not_found

        wait_for(anna_found, 15, message="recovery after the hang")
    finally:
        s.stop()


def test_warmed_users_register_although_never_looked_up_before_the_outage(proxied, db_dsn, services, tenant, server):
    proxy, broken_pool = proxied
    _create(services, tenant, "Ivan", "ivan", "201")
    _create(services, tenant, "Anna", "anna", "202")
    s = Stack(pool=broken_pool, dsn=db_dsn, server=server, listen=False, backoff=(0.05, 0.2))
    try:
        assert s.directory.warm() == 2
        proxy.cut()
        sw = s.new_switch()
        assert _register(sw, "anna") is True
        assert _register(sw, "ivan") is True
        assert _register(sw, "nobody") is False
        assert s.directory.warm() == 0  # still down: nothing lost, nothing raised
        assert s.directory.cached(DOMAIN, "anna")
    finally:
        s.stop()
