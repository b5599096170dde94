"""/api/v1: JSON for every cabinet resource, described by one route table from which both the Flask
routes and the OpenAPI 3 document (/api/v1/openapi.json) are generated, so they cannot drift.

Authentication: `Authorization: Bearer <token>` — the operator token from the config (tenants), or
an employee's API token (acts with that employee's rights); or the cabinet session cookie, in which
case writes need the CSRF token in the `X-CSRFToken` header. Errors are
`{"error": {"message": ..., "field": ...}}` with 400/401/403/404/409 (429 for throttled sign-in).
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Response, current_app, g, jsonify, request, session
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter

from fsd.errors import Conflict, FsdError, NotFound, PermissionDenied, StoreError, ValidationError
from fsd.services import Actor
from fsd.services.auth import SignInFailed, TooManyAttempts
from fsd.services.departments import FIELDS as DEPARTMENT_FIELDS
from fsd.services.media import KINDS as PROMPT_KINDS
from fsd.services.numbers import IVR_ACTIONS, IVR_FALLBACKS, NUMBER_FIELDS
from fsd.web import schema as S

log = logging.getLogger(__name__)
PREFIX = "/api/v1"


class Unauthorized(FsdError):
    pass


class IdConverter(BaseConverter):
    """A database id: 1..18 digits (never overflows a bigint)."""

    regex = r"[0-9]{1,18}"

    def to_python(self, value):
        return int(value)

    def to_url(self, value):
        return str(value)


# -- the route table -----------------------------------------------------------------------------
@dataclass
class Route:
    method: str
    path: str  # Flask rule under PREFIX, e.g. "/employees/<id:employee_id>"
    handler: Callable
    summary: str
    tag: str
    auth: str = "company"  # company | operator | public
    rights: str = "any employee"
    query: dict[str, dict] = field(default_factory=dict)
    body: dict | None = None
    body_kind: str = "json"  # json | multipart
    status: int = 200
    produces: str = "application/json"
    response: dict | None = None

    @property
    def endpoint(self) -> str:
        return "api_" + self.handler.__name__


ROUTES: list[Route] = []


def route(method: str, path: str, *, summary: str, tag: str, **kw):
    def deco(fn):
        ROUTES.append(Route(method=method, path=path, handler=fn, summary=summary, tag=tag, **kw))
        return fn

    return deco


@dataclass
class Req:
    actor: Actor
    via: str
    body: Any
    query: dict

    @property
    def tid(self) -> int:
        if self.actor.tenant_id is None:
            raise PermissionDenied("this endpoint is for company users (use an employee's API token)")
        return self.actor.tenant_id

    @property
    def ctx(self):
        return current_app.extensions["fsd"]


def _ctx():
    return current_app.extensions["fsd"]


# -- auth ----------------------------------------------------------------------------------------
def _authenticate(rt: Route) -> tuple[Actor | None, str]:
    ctx = _ctx()
    authz = request.headers.get("Authorization", "")
    if authz:
        scheme, _, token = authz.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("use Authorization: Bearer <token>")
        op = ctx.config.http.operator_token
        if op and hmac.compare_digest(token.encode(), op.encode()):
            return Actor.operator(), "operator"
        actor = ctx.tokens.authenticate(token)
        if actor is None:
            raise Unauthorized("invalid or revoked API token")
        return actor, "token"
    from fsd.web.cabinet import load_session

    sess = load_session()
    if sess is not None:
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            current_app.extensions["fsd_csrf"].protect()
        return sess.actor, "session"
    if rt.auth == "public":
        return None, "none"
    raise Unauthorized("sign in or send an API token")


def _error(status: int, message: str, field: str | None = None, headers=None):
    resp = jsonify({"error": {"message": message, "field": field}})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def error_response(e: Exception):
    if isinstance(e, ValidationError):
        return _error(400, e.message, e.field)
    if isinstance(e, Unauthorized | SignInFailed):
        return _error(401, str(e), None, {"WWW-Authenticate": 'Bearer realm="fsd"'})
    if isinstance(e, PermissionDenied):
        return _error(403, str(e))
    if isinstance(e, NotFound):
        return _error(404, str(e) or "not found")
    if isinstance(e, Conflict):
        return _error(409, str(e), getattr(e, "field", None))
    if isinstance(e, TooManyAttempts):
        return _error(429, str(e), None, {"Retry-After": str(e.retry_after)})
    if isinstance(e, StoreError):
        log.warning("api_store_error error=%s", e)
        return _error(503, "the database is unavailable, try again later")
    log.exception("api_unexpected_error")
    return _error(500, "internal error")


def _view(rt: Route):
    def view(**kwargs):
        try:
            actor, via = _authenticate(rt)
            if rt.auth == "operator" and (actor is None or not actor.privileged):
                raise PermissionDenied("this action is for the operator only")
            if rt.auth == "company" and actor is not None and actor.kind != "employee":
                raise PermissionDenied("this endpoint is for company users (use an employee's API token)")
            query = {}
            for name, sch in rt.query.items():
                if name in request.args:
                    query[name] = S.coerce_query(sch, request.args.get(name), name)
            body = None
            if rt.body is not None:
                if rt.body_kind == "json":
                    body = request.get_json(silent=True)
                    if body is None:
                        if request.get_data(cache=True):
                            raise ValidationError("the request body must be JSON", field=None)
                        body = {}
                    S.check(rt.body, body, "")
                else:
                    body = dict(request.form)
                    S.check(rt.body, {**body, **({"file": "x"} if "file" in request.files else {})}, "")
            g.api_actor = actor
            out = rt.handler(Req(actor=actor, via=via, body=body, query=query), **kwargs)
        except ValidationError as e:
            return error_response(e)
        except CSRFError:
            return _error(400, "CSRF token missing or invalid (send X-CSRFToken)", "csrf_token")
        except HTTPException as e:  # body too large, malformed form
            return _error(e.code or 400, e.description or e.name)
        except FsdError as e:
            return error_response(e)
        if isinstance(out, Response):
            return out
        status = rt.status
        if isinstance(out, tuple):
            out, status = out
        if out is None:
            return Response(status=204)
        resp = jsonify(out)
        resp.status_code = status
        return resp

    view.__name__ = rt.endpoint
    return view


def register(app, csrf) -> None:
    app.url_map.converters["id"] = IdConverter
    from fsd.web import api_routes  # noqa: F401  (fills ROUTES)

    for rt in ROUTES:
        view = _view(rt)
        csrf.exempt(view)
        app.add_url_rule(PREFIX + rt.path, endpoint=rt.endpoint, view_func=view, methods=[rt.method])

    @app.get(PREFIX + "/openapi.json", endpoint="api_openapi")
    def openapi():
        from fsd.web.openapi import document

        return jsonify(document(ROUTES, prefix=PREFIX, server=_ctx().config.http.public_url))

    csrf.exempt(openapi)

    @app.errorhandler(404)
    def _nf(e):
        if request.path.startswith(PREFIX + "/") or request.path == PREFIX:
            return _error(404, "not found")
        from fsd.web.cabinet import error_page

        return error_page(404)

    @app.errorhandler(405)
    def _na(e):
        if request.path.startswith(PREFIX + "/"):
            return _error(405, "method not allowed")
        return e

    @app.errorhandler(413)
    def _too_big(e):
        if request.path.startswith(PREFIX + "/"):
            return _error(413, "the request body is too large")
        from fsd.web.cabinet import error_page

        return error_page(413)


def openapi_path(path: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path)


__all__ = ["DEPARTMENT_FIELDS", "IVR_ACTIONS", "IVR_FALLBACKS", "NUMBER_FIELDS", "PROMPT_KINDS", "ROUTES", "Req",
           "Route", "register", "route", "session"]
