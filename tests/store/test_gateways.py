"""GatewayService (operator-only trunk gateways) against a real private PostgreSQL."""

import json

import pytest

from fsd.errors import Conflict, NotFound, PermissionDenied, ValidationError
from fsd.services import Actor, Services
from fsd.services.gateways import validate_proxy
from tests.helpers import wait_notifies

SYS = Actor.system("test")


@pytest.fixture
def svc(pool):
    return Services(pool=pool)


def rows(pool, sql, *args):
    with pool.transaction() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def test_create_update_delete_with_audit_and_notify(svc, pool):
    conn = pool.listen_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("LISTEN fsd_config")
        gw = svc.gateways.create(SYS, name="trunk", proxy="sip.provider.ru:5060", username="7495",
                                 password="s3cret!", register=True)
        assert (gw.name, gw.proxy, gw.username, gw.register, gw.enabled) == (
            "trunk", "sip.provider.ru:5060", "7495", True, True)
        gw = svc.gateways.update(SYS, "trunk", proxy="[2001:db8::1]:5080", enabled=False)
        assert gw.proxy == "[2001:db8::1]:5080" and not gw.enabled and gw.password == "s3cret!"
        assert [g.name for g in svc.gateways.list(SYS)] == ["trunk"]
        svc.gateways.delete(SYS, "trunk")
        assert svc.gateways.list(SYS) == []
        got = wait_notifies(conn, 3)
        assert [(p["entity"], p["op"], p["name"], p["tenant_id"]) for p in got] == [
            ("gateway", "create", "trunk", None), ("gateway", "update", "trunk", None),
            ("gateway", "delete", "trunk", None)]
    finally:
        conn.close()
    audit = rows(pool, "SELECT action, entity_id, details FROM audit_log WHERE entity = 'gateway' ORDER BY id")
    assert [(a["action"], a["entity_id"]) for a in audit] == [("create", "trunk"), ("update", "trunk"),
                                                            ("delete", "trunk")]
    assert "s3cret!" not in json.dumps([a["details"] for a in audit], default=str)
    assert audit[0]["details"]["password"] == "***"


def test_operator_only(svc, pool):
    t = svc.tenants.create(SYS, name="Ромашка", domain="romashka.example.ru", max_users=3)
    admin = Actor.employee(tenant_id=t.id, employee_id=1, role="admin", login="a")
    with pytest.raises(PermissionDenied):
        svc.gateways.create(admin, name="trunk", proxy="10.0.0.1")
    with pytest.raises(PermissionDenied):
        svc.gateways.list(admin)
    assert rows(pool, "SELECT * FROM gateways") == []


@pytest.mark.parametrize("kwargs,message", [
    ({"name": "bad name", "proxy": "10.0.0.1"}, "name:"),
    ({"name": "t", "proxy": ""}, "proxy: required"),
    ({"name": "t", "proxy": "sip.provider.ru:99999"}, "port"),
    ({"name": "t", "proxy": "2001:db8::1"}, "IPv6"),
    ({"name": "t", "proxy": "bad_host!.ru"}, "not a host name"),
    ({"name": "t", "proxy": "10.0.0.1", "register": True}, "needs a username and a password"),
    ({"name": "t", "proxy": "10.0.0.1", "password": "with space"}, "password:"),
    ({"name": "t", "proxy": "10.0.0.1", "enabled": "yes"}, "true or false"),
    ({"name": "t", "proxy": "10.0.0.1", "realm": "x"}, "unknown gateway field"),
    # a trailing newline is not "the end" ($ would have let these through)
    ({"name": "trunk\n", "proxy": "10.0.0.1"}, "name:"),
    ({"name": "t", "proxy": "10.0.0.1", "password": "secret\n"}, "password:"),
    ({"name": "t", "proxy": "10.0.0.1", "username": "user\n"}, "username:"),
])
def test_validation_names_the_rule_and_writes_nothing(svc, pool, kwargs, message):
    with pytest.raises(ValidationError, match=message):
        svc.gateways.create(SYS, **kwargs)
    assert rows(pool, "SELECT * FROM gateways") == []
    assert rows(pool, "SELECT * FROM audit_log WHERE entity = 'gateway'") == []


def test_duplicate_and_missing(svc):
    svc.gateways.create(SYS, name="trunk", proxy="10.0.0.1")
    with pytest.raises(Conflict):
        svc.gateways.create(SYS, name="trunk", proxy="10.0.0.2")
    with pytest.raises(NotFound):
        svc.gateways.update(SYS, "nope", proxy="10.0.0.2")
    with pytest.raises(NotFound):
        svc.gateways.delete(SYS, "nope")
    # turning registration on for a gateway without credentials is refused against the stored row
    with pytest.raises(ValidationError, match="needs a username"):
        svc.gateways.update(SYS, "trunk", register=True)


@pytest.mark.parametrize("proxy", ["sip.provider.ru", "sip.provider.ru:5060", "10.1.2.3:5080", "[::1]",
                                   "[2001:db8::5]:5060", "localhost"])
def test_valid_proxies(proxy):
    assert validate_proxy(proxy) == proxy
