"""API behaviour beyond the rights matrix: validation messages, conflicts, tokens, the operator,
and the OpenAPI document matching the registered routes."""

from __future__ import annotations

import re

from fsd.domain import rules
from fsd.errors import ValidationError
from fsd.services import Actor
from tests.web.conftest import OPERATOR_TOKEN


def _h(token):
    return {"Authorization": f"Bearer {token}"}


def test_openapi_document_lists_exactly_the_registered_api_routes(world):
    doc = world.app.test_client().get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ms in doc["paths"].items() for m in ms}
    registered = set()
    for rule in world.app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/") and rule.endpoint != "api_openapi":
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            registered |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == registered
    op = doc["paths"]["/api/v1/employees"]["post"]
    assert "name" in op["requestBody"]["content"]["application/json"]["schema"]["required"]
    assert {"201", "400", "401", "403", "404", "409"} <= set(op["responses"])


def test_validation_errors_carry_the_service_message_and_field(world):
    c = world.app.test_client()
    h = _h(world.token("admin"))
    try:
        rules.validate_extension("112")
    except ValidationError as e:
        expected = str(e)
    r = c.post("/api/v1/employees", json={"name": "Иван", "extension": "112"}, headers=h)
    assert r.status_code == 400
    assert r.get_json() == {"error": {"message": expected, "field": "extension"}}
    r = c.post("/api/v1/employees", json={"name": "Иван", "extension": "012"}, headers=h)
    assert r.get_json()["error"] == {"message": "extension must not start with 0", "field": "extension"}
    r = c.post("/api/v1/employees", json={"name": "Иван", "bogus": 1}, headers=h)
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "bogus"
    r = c.post("/api/v1/employees", json={"name": ["not", "a", "string"]}, headers=h)
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "name"
    r = c.post("/api/v1/employees", data="{not json", headers={**h, "Content-Type": "application/json"})
    assert r.status_code == 400
    r = c.post("/api/v1/employees", json={"name": "X", "mobile": "12"}, headers=h)
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "mobile"
    r = c.post("/api/v1/departments", json={"name": "D", "no_answer_action": "forward_external"}, headers=h)
    assert r.get_json()["error"] == {"message": "forwarding on no answer needs an external number",
                                     "field": "no_answer_number"}


def test_conflicts_are_409(world):
    c = world.app.test_client()
    h = _h(world.token("admin"))
    admin = world.people["admin"][0]
    r = c.post("/api/v1/employees", json={"name": "Двойник", "login": admin.login}, headers=h)
    assert r.status_code == 409 and r.get_json()["error"]["field"] == "login"
    assert c.post("/api/v1/departments", json={"name": "Отдел"}, headers=h).status_code == 201
    assert c.post("/api/v1/departments", json={"name": "Отдел"}, headers=h).status_code == 409
    r = c.post("/api/v1/employees", json={"name": "Занятой", "extension": admin.extension}, headers=h)
    assert r.status_code == 400 and "already used by an employee" in r.get_json()["error"]["message"]


def test_tokens_are_stored_hashed_and_can_be_revoked(world):
    c = world.app.test_client()
    token = world.token("user")
    assert c.get("/api/v1/me", headers=_h(token)).get_json()["employee"]["role"] == "user"
    with world.services.pool.transaction() as cur:
        cur.execute("SELECT token_hash FROM api_tokens")
        hashes = [r["token_hash"] for r in cur.fetchall()]
    assert token not in hashes and all(len(x) == 64 for x in hashes)
    [info] = c.get("/api/v1/tokens", headers=_h(token)).get_json()
    assert "token_hash" not in info
    assert c.delete(f"/api/v1/tokens/{info['id']}", headers=_h(token)).status_code == 204
    assert c.get("/api/v1/me", headers=_h(token)).status_code == 401
    assert c.get("/api/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401


def test_operator_creates_a_company_with_a_number_and_the_admin_routes_it(world):
    c = world.app.test_client()
    op = _h(OPERATOR_TOKEN)
    t = c.post("/api/v1/tenants", json={"name": "Новая", "domain": "new.example.com", "max_users": 2}, headers=op)
    assert t.status_code == 201
    tid = t.get_json()["id"]
    n = c.post(f"/api/v1/tenants/{tid}/numbers", json={"did": "8 (495) 765-43-21"}, headers=op)
    assert n.status_code == 201 and n.get_json()["did"] == "+74957654321" and n.get_json()["is_main"]
    assert c.get("/api/v1/employees", headers=op).status_code == 403  # the operator is not a company user
    assert c.get(f"/api/v1/tenants/{tid}", headers=op).get_json()["label"] == "0 of 2"
    # the company admin cannot connect numbers, but routes them
    h = _h(world.token("admin"))
    assert c.post(f"/api/v1/tenants/{world.tenant.id}/numbers", json={"did": "+74950000001"},
                  headers=h).status_code == 403
    assert c.get("/api/v1/tenants", headers=h).status_code == 403


def test_department_members_order_and_scheme_through_the_api(world):
    c = world.app.test_client()
    h = _h(world.token("admin"))
    ids = [world.people[r][0].id for r in ("limited", "admin", "user")]
    dep = c.post("/api/v1/departments", json={"name": "Поддержка", "strategy": "cascade", "members": ids,
                                             "impatient_enabled": True, "impatient_threshold": 20},
                 headers=h).get_json()
    assert dep["member_ids"] == ids
    n = world.services.numbers.create(Actor.system(), world.tenant.id, did="+74959998877")
    r = c.patch(f"/api/v1/numbers/{n.id}", json={"dest_kind": "department", "dest_department_id": dep["id"]},
                headers=h)
    assert r.status_code == 200
    g = c.get(f"/api/v1/numbers/{n.id}/scheme", headers=h).get_json()
    kinds = {node["kind"] for node in g["nodes"]}
    assert {"number", "department", "offer", "callback", "voicemail"} <= kinds
    svg = c.get(f"/api/v1/numbers/{n.id}/scheme.svg", headers=h)
    assert svg.mimetype == "image/svg+xml" and b"Department" in svg.data


def test_stats_scope_by_role(world):
    c = world.app.test_client()
    admin = world.people["admin"][0]
    st_user = c.get("/api/v1/stats", headers=_h(world.token("user"))).get_json()
    assert st_user["scope"] == "company"
    lim = _h(world.token("limited"))
    assert c.get("/api/v1/stats", headers=lim).get_json()["scope"] == "own"
    r = c.get(f"/api/v1/stats?employee_id={admin.id}", headers=lim)
    assert r.status_code == 403
    assert c.get("/api/v1/stats?since=2026-02-01&until=2026-01-01", headers=lim).status_code == 400


def test_operator_manages_trunk_gateways_and_the_password_never_comes_back(world):
    c = world.app.test_client()
    op = _h(OPERATOR_TOKEN)
    r = c.post("/api/v1/gateways", json={"name": "trunk", "proxy": "sip.provider.ru:5060", "username": "7495",
                                         "password": "s3cret!", "register": True}, headers=op)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["password_set"] is True and "password" not in r.get_json()
    assert "s3cret" not in c.get("/api/v1/gateways", headers=op).get_data(as_text=True)
    p = c.patch("/api/v1/gateways/trunk", json={"enabled": False}, headers=op)
    assert p.status_code == 200 and p.get_json()["enabled"] is False
    bad = c.patch("/api/v1/gateways/trunk", json={"proxy": "host:0"}, headers=op)
    assert bad.status_code == 400 and "port" in bad.get_json()["error"]["message"]
    dup = c.post("/api/v1/gateways", json={"name": "trunk", "proxy": "10.0.0.1"}, headers=op)
    assert dup.status_code == 409
    # a company admin may not see or touch the operator's trunk
    h = _h(world.token("admin"))
    assert c.get("/api/v1/gateways", headers=h).status_code == 403
    assert c.delete("/api/v1/gateways/trunk", headers=h).status_code == 403
    assert c.delete("/api/v1/gateways/trunk", headers=op).status_code == 204
    assert c.get("/api/v1/gateways/trunk", headers=op).status_code == 404
