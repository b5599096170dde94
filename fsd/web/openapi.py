"""The OpenAPI 3 document, generated from the same route table the server registers."""

from __future__ import annotations

import re

import fsd

ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "message": {"type": "string"}, "field": {"type": "string", "nullable": True}}, "required": ["message"]}},
    "required": ["error"]}
_ERRORS = {"400": "Invalid input (the message names the rule, `field` the input)",
           "401": "Not signed in / bad token", "403": "Not allowed for your rights",
           "404": "Not found (or another company's)", "409": "Conflicts with existing data",
           "503": "Database unavailable"}


def _param_schema(conv: str) -> dict:
    return {"type": "integer", "minimum": 0, "maximum": 10**18 - 1} if conv == "id" else {"type": "string"}


def document(routes, *, prefix: str, server: str = "") -> dict:
    paths: dict = {}
    for rt in routes:
        p = prefix + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rt.path)
        params = [{"name": name, "in": "path", "required": True, "schema": _param_schema(conv or "string")}
                  for conv, name in re.findall(r"<(?:(\w+):)?(\w+)>", rt.path)]
        params += [{"name": n, "in": "query", "required": False, "schema": s} for n, s in rt.query.items()]
        ok: dict = {"description": "OK"}
        if rt.status != 204:
            ok["content"] = {rt.produces: {"schema": ({"type": "string", "format": "binary"}
                                                      if rt.produces != "application/json"
                                                      else rt.response or {})}}
        op = {
            "operationId": rt.handler.__name__, "summary": rt.summary, "tags": [rt.tag],
            "description": f"Rights: {rt.rights}.",
            "parameters": params,
            "responses": {str(rt.status): ok, **{c: {"description": d, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}} for c, d in _ERRORS.items()}},
            "security": ([{"operatorToken": []}] if rt.auth == "operator"
                         else [{"apiToken": []}, {"session": []}]),
        }
        if rt.body is not None:
            ctype = "application/json" if rt.body_kind == "json" else "multipart/form-data"
            op["requestBody"] = {"required": rt.body.get("required") is not None,
                                 "content": {ctype: {"schema": rt.body}}}
        paths.setdefault(p, {})[rt.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "fsd virtual PBX API", "version": fsd.__version__,
                 "description": "Company resources act on the company of the authenticated employee; another "
                                "company's objects are 404. Session-authenticated writes need X-CSRFToken."},
        "servers": [{"url": server}] if server else [],
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "apiToken": {"type": "http", "scheme": "bearer", "description": "An employee's API token"},
                "operatorToken": {"type": "http", "scheme": "bearer", "description": "http.operator_token"},
                "session": {"type": "apiKey", "in": "cookie", "name": "fsd_session"},
            },
        },
    }
