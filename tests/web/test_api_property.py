"""A property-based run over the OpenAPI document (our own small generator; schemathesis is not used):
random operations with schema-shaped and arbitrary inputs never get a 5xx, and every status the
server answers is one the document lists. Bounded to a few hundred requests."""

from __future__ import annotations

import io
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsd.web import schema as S
from tests.web.conftest import OPERATOR_TOKEN, build_world, seed_objects

WILD = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=12), c, max_size=3),
    max_leaves=6,
)
NASTY_TEXT = st.sampled_from(["", " ", "\x00", "'; DROP TABLE employees;--", "<script>x</script>", "0", "112",
                              "9" * 40, "ё" * 300, "2026-02-30", "9999-12-31", "0001-01-01", "+7 916 123-45-67",
                              "a@b.c", "../../etc/passwd", "%00", "NaN"])


def from_schema(s: dict):
    t = s.get("type")
    if "enum" in s:
        base = st.sampled_from(s["enum"]) | NASTY_TEXT
    elif t == "string":
        base = st.text(max_size=min(int(s.get("maxLength", 40)), 40)) | NASTY_TEXT
    elif t == "integer":
        lo, hi = s.get("minimum", -(2**63)), s.get("maximum", 2**63)
        base = st.integers(min_value=lo, max_value=hi) | st.integers(min_value=-(2**64), max_value=2**64)
    elif t == "boolean":
        base = st.booleans()
    elif t == "array":
        base = st.lists(from_schema(s["items"]), max_size=4)
    elif t == "object":
        props = s.get("properties", {})
        req = set(s.get("required", ()))
        base = st.fixed_dictionaries({k: from_schema(v) for k, v in props.items() if k in req},
                                     optional={k: from_schema(v) for k, v in props.items() if k not in req})
    else:
        base = WILD
    if s.get("nullable"):
        base = base | st.none()
    return base


def _ops(doc):
    out = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            out.append((method.upper(), path, op))
    return out


def test_no_5xx_and_only_documented_statuses(pool):
    world = build_world(pool)
    objs = seed_objects(world)
    client = world.app.test_client()
    doc = client.get("/api/v1/openapi.json").get_json()
    ops = _ops(doc)
    tokens = [OPERATOR_TOKEN, world.token("admin"), world.token("user"), world.token("limited")]
    known_ids = sorted(set(objs.ids.values()) | set(objs.other.values()) | {0, 1, 2, 10**18 - 1})
    seen: set = set()

    @settings(max_examples=350, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        method, path, op = data.draw(st.sampled_from(ops), label="operation")
        url = path
        for p in op["parameters"]:
            if p["in"] == "path":
                if p["schema"]["type"] == "integer":
                    v = data.draw(st.sampled_from(known_ids) | st.integers(0, 10**18 - 1), label=p["name"])
                else:
                    v = data.draw(st.sampled_from(["goodbye", "nope"]) | st.text(
                        alphabet=st.characters(blacklist_characters="/?#%"), min_size=1, max_size=10),
                        label=p["name"])
                url = url.replace("{" + p["name"] + "}", str(v))
        query = {}
        for p in op["parameters"]:
            if p["in"] == "query" and data.draw(st.booleans(), label="use " + p["name"]):
                v = data.draw(from_schema(p["schema"]) | NASTY_TEXT, label=p["name"])
                query[p["name"]] = "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
        headers = {"Authorization": "Bearer " + data.draw(st.sampled_from(tokens), label="token")}
        kw: dict = {"query_string": query, "headers": headers}
        body = op.get("requestBody")
        if body and "application/json" in body["content"]:
            schema = body["content"]["application/json"]["schema"]
            if data.draw(st.integers(0, 4), label="wild?") == 0:
                kw["data"] = data.draw(st.binary(max_size=30) | WILD.map(repr), label="raw body")
                kw["content_type"] = "application/json"
            else:
                kw["json"] = data.draw(from_schema(schema) | WILD, label="body")
        elif body:
            kw["data"] = {"name": data.draw(st.text(max_size=20), label="name"),
                          "kind": data.draw(st.sampled_from(["custom", "bogus"]), label="kind"),
                          "file": (io.BytesIO(data.draw(st.binary(max_size=200), label="file")),
                                   data.draw(st.sampled_from(["a.wav", "a.mp3", "a.exe", "noext"]), label="fn"))}
            kw["content_type"] = "multipart/form-data"
        r = client.open(url, method=method, **kw)
        seen.add((method, path))
        assert r.status_code < 500, (method, url, kw, r.status_code, r.get_data(as_text=True)[:300])
        documented = set(op["responses"]) | ({"404"} if re.search(r"\{", path) else set())
        assert str(r.status_code) in documented, (method, url, r.status_code, r.get_data(as_text=True)[:300])
        if r.status_code >= 400:
            assert set(r.get_json()["error"]) == {"message", "field"}
        else:
            content = op["responses"][str(r.status_code)].get("content", {})
            if "application/json" in content:
                S.check(content["application/json"]["schema"], r.get_json(), "")  # the answer has its documented shape

    run()
    assert len(seen) >= len(ops) * 0.8  # the run reached (nearly) every operation
