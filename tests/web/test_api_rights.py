"""The rights matrix over every /api/v1 endpoint: 3 roles + operator + anonymous, and another
company's objects → 404 (still there for their owner). Driven by the route table the server registers."""

from __future__ import annotations

import io
import re

import pytest

from fsd.errors import ValidationError
from fsd.web import api_routes  # noqa: F401  (fills the table)
from fsd.web import schema as S
from fsd.web.api import PREFIX, ROUTES
from fsd.web.api_routes import ADMIN
from tests.web.conftest import OPERATOR_TOKEN, build_world, seed_objects, wav_bytes

PARAM_OBJECT = {"employee_id": "employee", "department_id": "department", "menu_id": "menu", "number_id": "number",
                "prompt_id": "prompt", "voicemail_id": "voicemail", "callback_id": "callback", "letter_id": "letter",
                "token_id": "token"}

BODIES = {
    "company_update": {"name": "Рога и копыта 2"},
    "employees_create": {"name": "Новый Сотрудник", "email": "new@example.com"},
    "employees_update": {"position": "Начальник"},
    "employees_password": {},
    "departments_create": {"name": "Support", "strategy": "cascade"},
    "departments_update": {"strategy": "in_order", "step_delay": 10},
    "numbers_update": {"mode": "always"},
    "ivr_create": {"name": "Second menu", "items": [{"digit": "2", "action": "voicemail"}]},
    "ivr_update": {"timeout_s": 7},
    "schedule_put": {"intervals": [{"weekday": 0, "start": "09:00", "end": "18:00"}],
                     "exceptions": [{"day": "2026-01-01", "closed": True, "note": "New Year"}]},
    "tokens_create": {"name": "integration"},
    "tenants_create": {"name": "New Co", "domain": "new.example.com", "max_users": 3},
    "tenants_update": {"max_users": 20},
    "tenant_numbers_create": {"did": "+74950009999"},
    "gateways_create": {"name": "trunk2", "proxy": "sip.provider.ru:5060"},
    "gateways_update": {"enabled": False},
}
# objects some routes must address so that the call succeeds for the admin
OVERRIDE_OBJECT = {"departments_delete": {"department_id": "department_free"}}


def _path(rt, world, ids, *, other_ids=None):
    def sub(m):
        name = m.group(2)
        if name == "tenant_id":  # deleting a company: the other one (the roles still need theirs)
            return str(world.other.id if rt.handler.__name__ == "tenants_delete" else world.tenant.id)
        if name == "name":
            return "goodbye"
        if name == "gateway":
            return "trunk"
        key = OVERRIDE_OBJECT.get(rt.handler.__name__, {}).get(name, PARAM_OBJECT[name])
        return str((other_ids or ids)[key])

    return PREFIX + re.sub(r"<(?:(\w+):)?(\w+)>", sub, rt.path)


def _call(client, rt, path, headers):
    name = rt.handler.__name__
    if rt.body_kind == "multipart":
        data = {"name": "uploaded greeting", "kind": "greeting",
                "file": (io.BytesIO(wav_bytes()), "greeting.wav")}
        return client.open(path, method=rt.method, data=data, headers=headers, content_type="multipart/form-data")
    kw = {}
    if rt.body is not None:
        kw["json"] = BODIES.get(name, {})
    return client.open(path, method=rt.method, headers=headers, **kw)


def _expected(rt, role: str) -> int | str:
    name = rt.handler.__name__
    if role == "operator":
        return "ok" if rt.auth == "operator" else 403
    if rt.auth == "operator":
        return 403
    if role == "admin":
        return "ok"
    if rt.rights == ADMIN or rt.rights.startswith("admin;"):
        return 403  # the target is not their own
    if name == "tokens_delete":
        return 404  # someone else's token is invisible
    if name in ("voicemails_get", "voicemails_audio"):
        return 403  # addressed to the admin
    return "ok"


def _check_route(world, objs, client, tokens, rt) -> None:
    path = _path(rt, world, objs.ids)

    r = _call(client, rt, path, {})
    assert r.status_code == 401, (path, r.status_code)
    assert r.get_json()["error"]["message"]

    if rt.auth == "company" and "<id:" in rt.path:  # another company's object: not found, and untouched
        other_path = _path(rt, world, objs.ids, other_ids=objs.other)
        r = _call(client, rt, other_path, {"Authorization": f"Bearer {tokens['admin']}"})
        assert r.status_code == 404, (other_path, r.status_code, r.get_data(as_text=True)[:300])
        if rt.method == "GET":
            r = client.get(other_path, headers={"Authorization": f"Bearer {tokens['other']}"})
            assert r.status_code == 200, (other_path, r.status_code)

    for role in ("operator", "user", "limited", "admin"):  # admin last: it may delete the object
        token = OPERATOR_TOKEN if role == "operator" else tokens[role]
        r = _call(client, rt, path, {"Authorization": f"Bearer {token}"})
        want = _expected(rt, role)
        if want == "ok":
            assert r.status_code == rt.status, (role, rt.method, path, r.status_code, r.get_data(as_text=True)[:500])
            if rt.produces == "application/json" and rt.status != 204:
                assert r.is_json
                assert rt.response is not None, f"{rt.handler.__name__} documents no response schema"
                try:
                    S.check(rt.response, r.get_json(), "")
                except ValidationError as e:
                    raise AssertionError(f"{role} {rt.method} {path}: response breaks its schema: {e}") from e
        else:
            assert r.status_code == want, (role, rt.method, path, r.status_code, r.get_data(as_text=True)[:500])
            assert set(r.get_json()["error"]) == {"message", "field"}


def _setup(pool):
    world = build_world(pool)
    objs = seed_objects(world)
    tokens = {r: world.token(r) for r in ("admin", "user", "limited")}
    tokens["other"] = world.token("admin", tenant="other")
    return world, objs, world.app.test_client(), tokens


READS = [r for r in ROUTES if r.method == "GET"]
WRITES = [r for r in ROUTES if r.method != "GET"]


def test_rights_matrix_of_every_read(pool):
    """Reads change nothing, so they share one database; every failure is reported at once."""
    world, objs, client, tokens = _setup(pool)
    failures = []
    for rt in READS:
        try:
            _check_route(world, objs, client, tokens, rt)
        except AssertionError as e:
            failures.append(f"{rt.method} {rt.path}: {e}")
    assert not failures, "\n".join(failures)
    assert len(READS) >= 25


@pytest.mark.parametrize("rt", WRITES, ids=[f"{r.method} {r.path}" for r in WRITES])
def test_rights_matrix_of_each_write(pool, rt):
    world, objs, client, tokens = _setup(pool)
    _check_route(world, objs, client, tokens, rt)
