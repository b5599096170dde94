"""The /api/v1 endpoints (registered in fsd.web.api's route table)."""

from __future__ import annotations

import dataclasses

from flask import Response

from fsd.domain import rules
from fsd.domain.rules import FORWARD_MODES, NO_ANSWER_ACTIONS, ROLES, STRATEGIES
from fsd.services.gateways import Gateway
from fsd.services.history import API_MODELS, CALLBACK_STATUSES, RESULTS
from fsd.services.media import KINDS as PROMPT_KINDS
from fsd.services.numbers import DEST_KINDS, IVR_ACTIONS, IVR_FALLBACKS, MODES, OFFHOURS_ACTIONS
from fsd.web import schema as S
from fsd.web.api import Req, route

ADMIN = "admin of the company"
ANY = "any employee of the company (own data for user/limited where noted)"

# -- shared schemas ------------------------------------------------------------------------------
EMPLOYEE_FIELDS = {
    "name": S.string(200), "login": S.nullable(S.string(100)), "extension": S.nullable(S.string(20)),
    "password": S.nullable(S.string(200)), "role": S.enum(ROLES), "position": S.nullable(S.string(300)),
    "email": S.nullable(S.string(300)), "mobile": S.nullable(S.string(100)),
    "forward_mode": S.enum(FORWARD_MODES), "forward_delay": S.nullable(S.integer(-10**6, 10**6)),
    "enabled": S.boolean(),
}
EMPLOYEE_CREATE = S.obj(EMPLOYEE_FIELDS, required=["name"])
EMPLOYEE_UPDATE = S.obj(EMPLOYEE_FIELDS)
PASSWORD_RESET = S.obj({"password": S.nullable(S.string(200)), "login": S.nullable(S.string(100)),
                        "send_letter": S.boolean()})
OPT_ID = S.nullable(S.ident())
DEPARTMENT_PROPS = {
    "name": S.string(200), "extension": S.nullable(S.string(20)), "strategy": S.enum(STRATEGIES),
    "step_delay": S.integer(-10**6, 10**6), "ring_timeout": S.integer(-10**6, 10**6),
    "no_answer_action": S.enum(NO_ANSWER_ACTIONS), "no_answer_number": S.nullable(S.string(100)),
    "no_answer_employee_id": OPT_ID, "no_answer_department_id": OPT_ID, "voicemail_prompt_id": OPT_ID,
    "impatient_enabled": S.boolean(), "impatient_threshold": S.integer(-10**6, 10**6),
    "impatient_offer_callback": S.boolean(), "impatient_offer_voicemail": S.boolean(), "impatient_prompt_id": OPT_ID,
    "members": S.array(S.ident(), 1000),
}
DEPARTMENT_CREATE = S.obj(DEPARTMENT_PROPS, required=["name"])
DEPARTMENT_UPDATE = S.obj(DEPARTMENT_PROPS)
NUMBER_PROPS = {
    "name": S.string(100), "is_main": S.boolean(), "mode": S.enum(MODES), "dest_kind": S.enum(DEST_KINDS),
    "dest_department_id": OPT_ID, "dest_employee_id": OPT_ID, "dest_ivr_id": OPT_ID,
    "offhours_action": S.enum(OFFHOURS_ACTIONS), "offhours_number": S.nullable(S.string(100)),
    "offhours_dest_kind": S.nullable(S.enum(DEST_KINDS)), "offhours_department_id": OPT_ID,
    "offhours_employee_id": OPT_ID, "offhours_ivr_id": OPT_ID, "offhours_prompt_id": OPT_ID,
    "greeting_prompt_id": OPT_ID,
}
NUMBER_UPDATE = S.obj(NUMBER_PROPS)
NUMBER_CREATE = S.obj({"did": S.string(100), **NUMBER_PROPS}, required=["did"])
IVR_ITEM = S.obj({"digit": S.string(1), "action": S.enum(IVR_ACTIONS), "department_id": OPT_ID,
                  "employee_id": OPT_ID, "submenu_id": OPT_ID}, required=["digit", "action"])
IVR_PROPS = {
    "name": S.string(200), "prompt_id": OPT_ID, "invalid_prompt_id": OPT_ID, "timeout_s": S.integer(-10**6, 10**6),
    "max_repeats": S.integer(-10**6, 10**6), "ext_digits": S.integer(-10**6, 10**6),
    "fallback_kind": S.enum(IVR_FALLBACKS), "fallback_department_id": OPT_ID, "fallback_employee_id": OPT_ID,
    "fallback_menu_id": OPT_ID, "items": S.array(IVR_ITEM, 12),
}
IVR_CREATE = S.obj(IVR_PROPS, required=["name"])
IVR_UPDATE = S.obj(IVR_PROPS)
SCHEDULE = S.obj({
    "intervals": S.array(S.obj({"weekday": S.integer(-100, 100), "start": S.string(10), "end": S.string(10)},
                               required=["weekday", "start", "end"]), 100),
    "exceptions": S.array(S.obj({"day": S.string(20), "closed": S.boolean(), "start": S.nullable(S.string(10)),
                                 "end": S.nullable(S.string(10)), "note": S.string(200)}, required=["day"]), 400),
}, required=["intervals"])
TENANT_CREATE = S.obj({"name": S.string(300), "domain": S.string(300), "max_users": S.integer(-10**6, 10**7),
                       "timezone": S.string(100), "language": S.enum(("ru", "en"))},
                      required=["name", "domain", "max_users"])
TENANT_UPDATE = S.obj({"name": S.string(300), "max_users": S.integer(-10**6, 10**7), "timezone": S.string(100),
                       "language": S.enum(("ru", "en")), "enabled": S.boolean()})
COMPANY_UPDATE = S.obj({"name": S.string(300), "timezone": S.string(100), "language": S.enum(("ru", "en"))})
TOKEN_CREATE = S.obj({"name": S.string(100)})
PROMPT_UPLOAD = S.obj({"name": S.string(200), "kind": S.enum(PROMPT_KINDS), "language": S.enum(("ru", "en")),
                       "file": {"type": "string", "format": "binary", "maxLength": 10**9}},
                      required=["name", "file"])
DATE = S.string(20, format="date")
PERIOD = {"since": DATE, "until": DATE, "employee_id": S.ident(), "department_id": S.ident()}


Department, DepartmentMember, Employee, IvrItem, IvrMenu, Number, Prompt, Tenant = API_MODELS
EMPLOYEE = S.model(Employee, drop=("password_hash", "sip_a1_hash"))
CREATED = S.obj({"employee": EMPLOYEE, "password": S.string(200), "letter_queued": S.boolean()},
                required=["employee", "password", "letter_queued"])
DEPARTMENT = S.model(Department, items={"members": S.model(DepartmentMember)},
                     extra={"member_ids": S.list_of(S.integer())})
NUMBER = S.model(Number)
MENU = S.model(IvrMenu, items={"items": S.model(IvrItem)})
TENANT = S.model(Tenant)
PROMPT = S.model(Prompt)
USAGE = {"type": "object", "properties": {"tenant": TENANT, "users": S.integer(), "label": S.string()},
         "required": ["tenant", "users", "label"]}
HM = S.nullable(S.string(5))
SCHEDULE_OUT = {"type": "object", "required": ["timezone", "intervals", "exceptions"], "properties": {
    "timezone": S.string(), "intervals": S.list_of({"type": "object", "properties": {
        "weekday": S.integer(), "start": HM, "end": HM}}),
    "exceptions": S.list_of({"type": "object", "properties": {"day": S.string(), "closed": S.boolean(),
                                                              "start": HM, "end": HM, "note": S.string()}})}}
TOKEN_INFO = {"type": "object", "required": ["id", "name", "employee_id", "created_at"], "properties": {
    "id": S.integer(), "tenant_id": S.integer(), "employee_id": S.integer(), "name": S.string(),
    "created_at": S.string(), "last_used_at": S.nullable(S.string())}}
GRAPH = {"type": "object", "required": ["root", "nodes", "edges"], "properties": {
    "root": S.string(), "nodes": S.list_of({"type": "object", "required": ["id", "kind", "label"], "properties": {
        "id": S.string(), "kind": S.string(), "label": S.string(), "details": S.list_of(S.string())}}),
    "edges": S.list_of({"type": "object", "required": ["source", "target", "label"], "properties": {
        "source": S.string(), "target": S.string(), "label": S.string()}})}}
CALLS = {"type": "object", "required": ["calls", "total", "since", "until", "own_only"], "properties": {
    "calls": S.list_of({"type": "object"}), "total": S.integer(), "since": S.string(), "until": S.string(),
    "own_only": S.boolean()}}
STATS = {"type": "object", "required": ["since", "until", "scope", "total", "by_result", "by_hour", "by_day",
                                        "by_employee", "by_department", "avg_wait_s", "wait_histogram"],
         "properties": {"scope": S.enum(("company", "own")), "total": S.integer(), "avg_wait_s": S.number(),
                        "by_result": {"type": "object"}, "by_hour": S.list_of({"type": "object"}),
                        "by_day": S.list_of({"type": "object"}), "by_employee": S.list_of({"type": "object"}),
                        "by_department": S.list_of({"type": "object"}),
                        "wait_histogram": S.list_of({"type": "object"})}}
COMPANY = {"type": "object", "required": ["tenant", "users", "max_users", "label"],
           "properties": {"tenant": TENANT, "users": S.integer(), "max_users": S.integer(), "label": S.string()}}
SUGGESTION = S.obj({"login": S.string(), "extension": S.string(), "password": S.string()},
                   required=["login", "extension", "password"])
PROMPTS = {"type": "object", "required": ["uploaded", "standard"], "properties": {
    "uploaded": S.list_of(PROMPT),
    "standard": S.list_of({"type": "object", "required": ["name", "language", "duration_ms"]})}}
NEW_TOKEN = {**TOKEN_INFO, "required": [*TOKEN_INFO["required"], "token"],
             "properties": {**TOKEN_INFO["properties"], "token": S.string()}}
ROWS = S.list_of({"type": "object", "required": ["id"], "properties": {"id": S.integer()}})


def _dep(d) -> dict:
    out = dataclasses.asdict(d)
    out["member_ids"] = d.member_ids
    return out


def _clean(body: dict) -> dict:
    return {k: v for k, v in (body or {}).items()}


# -- me / company --------------------------------------------------------------------------------
@route("GET", "/me", summary="Who is signed in", tag="company", rights=ANY,
       response=S.obj({"employee": EMPLOYEE, "via": S.string()}, required=["employee", "via"]))
def me(r: Req):
    emp = r.ctx.services.employees.get(r.actor, r.tid, r.actor.employee_id)
    return {"employee": emp.public(), "via": r.via}


@route("GET", "/company", summary="The company and its tariff usage (N of M users)", tag="company", rights=ANY,
       response=COMPANY)
def company_get(r: Req):
    u = r.ctx.services.tenants.usage(r.actor, r.tid)
    return {"tenant": u.tenant, "users": u.users, "max_users": u.tenant.max_users, "label": u.label}


@route("PATCH", "/company", summary="Change the company name, time zone or language", tag="company",
       rights=ADMIN, body=COMPANY_UPDATE,
       response=TENANT)
def company_update(r: Req):
    return r.ctx.services.tenants.update(r.actor, r.tid, **_clean(r.body))


# -- employees -----------------------------------------------------------------------------------
@route("GET", "/employees", summary="List employees", tag="employees", rights=ANY,
       response=S.list_of(EMPLOYEE))
def employees_list(r: Req):
    return [e.public() for e in r.ctx.services.employees.list(r.actor, r.tid)]


@route("GET", "/employees/suggest", summary="Login, extension and password suggested for a new employee",
       tag="employees", rights=ADMIN, query={"name": S.string(200)},
       response=SUGGESTION)
def employees_suggest(r: Req):
    return r.ctx.services.employees.suggest(r.actor, r.tid, r.query.get("name") or "")


@route("GET", "/passwords/new", summary="A freshly generated strong password (for the \"Create new password\" "
       "button)", tag="employees", rights=ANY,
       response=S.obj({"password": S.string()}, required=["password"]))
def passwords_new(r: Req):
    r.ctx.services.tenants.get(r.actor, r.tid)
    return {"password": rules.generate_password()}


@route("POST", "/employees", summary="Create an employee (the password is returned once; the letter is queued)",
       tag="employees", rights=ADMIN, body=EMPLOYEE_CREATE, status=201,
       response=CREATED)
def employees_create(r: Req):
    c = r.ctx.services.employees.create(r.actor, r.tid, **_clean(r.body))
    if c.letter_queued:
        r.ctx.letter_queued()
    return {"employee": c.employee.public(), "password": c.password, "letter_queued": c.letter_queued}, 201


@route("GET", "/employees/<id:employee_id>", summary="One employee", tag="employees", rights=ANY,
       response=EMPLOYEE)
def employees_get(r: Req, employee_id: int):
    return r.ctx.services.employees.get(r.actor, r.tid, employee_id).public()


@route("PATCH", "/employees/<id:employee_id>", summary="Change an employee (users and limited users: own profile "
       "only, not login/extension/role)", tag="employees", rights="admin; others their own profile",
       body=EMPLOYEE_UPDATE,
       response=EMPLOYEE)
def employees_update(r: Req, employee_id: int):
    return r.ctx.services.employees.update(r.actor, r.tid, employee_id, **_clean(r.body)).public()


@route("DELETE", "/employees/<id:employee_id>", summary="Delete an employee", tag="employees", rights=ADMIN,
       status=204)
def employees_delete(r: Req, employee_id: int):
    r.ctx.services.employees.delete(r.actor, r.tid, employee_id)


@route("POST", "/employees/<id:employee_id>/password", summary="Set a new password (generated unless given); "
       "returned once and sent by e-mail", tag="employees", rights="admin; others their own",
       body=PASSWORD_RESET,
       response=CREATED)
def employees_password(r: Req, employee_id: int):
    b = _clean(r.body)
    c = r.ctx.services.employees.reset_password(r.actor, r.tid, employee_id, password=b.get("password"),
                                                login=b.get("login"), send_letter=b.get("send_letter", True))
    if c.letter_queued:
        r.ctx.letter_queued()
    return {"employee": c.employee.public(), "password": c.password, "letter_queued": c.letter_queued}


# -- departments ---------------------------------------------------------------------------------
@route("GET", "/departments", summary="List departments", tag="departments", rights=ANY,
       response=S.list_of(DEPARTMENT))
def departments_list(r: Req):
    return [_dep(d) for d in r.ctx.services.departments.list(r.actor, r.tid)]


@route("POST", "/departments", summary="Create a department with its members (one atomic save)",
       tag="departments", rights=ADMIN, body=DEPARTMENT_CREATE, status=201,
       response=DEPARTMENT)
def departments_create(r: Req):
    b = _clean(r.body)
    members = b.pop("members", [])
    return _dep(r.ctx.services.departments.create(r.actor, r.tid, members=members, **b)), 201


@route("GET", "/departments/<id:department_id>", summary="One department", tag="departments", rights=ANY,
       response=DEPARTMENT)
def departments_get(r: Req, department_id: int):
    return _dep(r.ctx.services.departments.get(r.actor, r.tid, department_id))


@route("PATCH", "/departments/<id:department_id>", summary="Change a department; `members` replaces the ordered "
       "member list (one atomic save)", tag="departments", rights=ADMIN, body=DEPARTMENT_UPDATE,
       response=DEPARTMENT)
def departments_update(r: Req, department_id: int):
    b = _clean(r.body)
    members = b.pop("members", None)
    return _dep(r.ctx.services.departments.update(r.actor, r.tid, department_id, members=members, **b))


@route("DELETE", "/departments/<id:department_id>", summary="Delete a department", tag="departments",
       rights=ADMIN, status=204)
def departments_delete(r: Req, department_id: int):
    r.ctx.services.departments.delete(r.actor, r.tid, department_id)


# -- numbers -------------------------------------------------------------------------------------
@route("GET", "/numbers", summary="The company's numbers (DIDs) and their routing", tag="numbers", rights=ANY,
       response=S.list_of(NUMBER))
def numbers_list(r: Req):
    return r.ctx.services.numbers.list(r.actor, r.tid)


@route("GET", "/numbers/<id:number_id>", summary="One number", tag="numbers", rights=ANY,
       response=NUMBER)
def numbers_get(r: Req, number_id: int):
    return r.ctx.services.numbers.get(r.actor, r.tid, number_id)


@route("PATCH", "/numbers/<id:number_id>", summary="Route a number: mode, destination, out-of-hours, greeting",
       tag="numbers", rights=ADMIN, body=NUMBER_UPDATE,
       response=NUMBER)
def numbers_update(r: Req, number_id: int):
    return r.ctx.services.numbers.update(r.actor, r.tid, number_id, **_clean(r.body))


@route("GET", "/numbers/<id:number_id>/scheme", summary="The call-flow graph of a number (nodes and edges)",
       tag="numbers", rights=ANY,
       response=GRAPH)
def numbers_scheme(r: Req, number_id: int):
    gr = r.ctx.scheme.graph(r.actor, r.tid, number_id)
    return {"root": gr.root, "nodes": [dataclasses.asdict(n) for n in gr.nodes],
            "edges": [dataclasses.asdict(e) for e in gr.edges]}


@route("GET", "/numbers/<id:number_id>/scheme.svg", summary="The call-flow scheme of a number as SVG",
       tag="numbers", rights=ANY, produces="image/svg+xml")
def numbers_scheme_svg(r: Req, number_id: int):
    return Response(r.ctx.scheme.svg(r.actor, r.tid, number_id), mimetype="image/svg+xml")


# -- IVR -----------------------------------------------------------------------------------------
@route("GET", "/ivr", summary="List IVR menus", tag="ivr", rights=ANY,
       response=S.list_of(MENU))
def ivr_list(r: Req):
    return r.ctx.services.ivr.list(r.actor, r.tid)


@route("POST", "/ivr", summary="Create an IVR menu with its keys", tag="ivr", rights=ADMIN, body=IVR_CREATE,
       status=201,
       response=MENU)
def ivr_create(r: Req):
    b = _clean(r.body)
    items = b.pop("items", None)
    return r.ctx.services.ivr.save(r.actor, r.tid, None, items=items, **b), 201


@route("GET", "/ivr/<id:menu_id>", summary="One IVR menu", tag="ivr", rights=ANY,
       response=MENU)
def ivr_get(r: Req, menu_id: int):
    return r.ctx.services.ivr.get(r.actor, r.tid, menu_id)


@route("PATCH", "/ivr/<id:menu_id>", summary="Change an IVR menu; `items` replaces its keys", tag="ivr",
       rights=ADMIN, body=IVR_UPDATE,
       response=MENU)
def ivr_update(r: Req, menu_id: int):
    b = _clean(r.body)
    items = b.pop("items", None)
    return r.ctx.services.ivr.save(r.actor, r.tid, menu_id, items=items, **b)


@route("DELETE", "/ivr/<id:menu_id>", summary="Delete an IVR menu", tag="ivr", rights=ADMIN, status=204)
def ivr_delete(r: Req, menu_id: int):
    r.ctx.services.ivr.delete(r.actor, r.tid, menu_id)


# -- schedule ------------------------------------------------------------------------------------
def _schedule(s) -> dict:
    def hm(m):
        return None if m is None else f"{m // 60:02d}:{m % 60:02d}"

    return {"timezone": s.timezone,
            "intervals": [{"weekday": i.weekday, "start": hm(i.start_minute), "end": hm(i.end_minute)}
                          for i in s.intervals],
            "exceptions": [{"day": e.day, "closed": e.closed, "start": hm(e.start_minute), "end": hm(e.end_minute),
                            "note": e.note} for e in s.exceptions]}


@route("GET", "/schedule", summary="The company's working hours and holidays", tag="schedule", rights=ANY,
       response=SCHEDULE_OUT)
def schedule_get(r: Req):
    return _schedule(r.ctx.services.tenants.schedule(r.actor, r.tid))


@route("PUT", "/schedule", summary="Replace the working hours and holidays", tag="schedule", rights=ADMIN,
       body=SCHEDULE,
       response=SCHEDULE_OUT)
def schedule_put(r: Req):
    b = r.body
    return _schedule(r.ctx.services.tenants.set_schedule(r.actor, r.tid, intervals=b.get("intervals", []),
                                                         exceptions=b.get("exceptions", [])))


# -- prompts -------------------------------------------------------------------------------------
@route("GET", "/prompts", summary="Standard and uploaded voice prompts", tag="prompts", rights=ANY,
       response=PROMPTS)
def prompts_list(r: Req):
    t = r.ctx.services.tenants.get(r.actor, r.tid)
    return {"uploaded": [p for p in r.ctx.prompts.list(r.actor, r.tid) if p.tenant_id is not None],
            "standard": [dataclasses.asdict(p) for p in r.ctx.prompts.defaults(t.language)]}


@route("POST", "/prompts", summary="Upload a prompt (any audio sox reads; stored as 8 kHz mono WAV)",
       tag="prompts", rights=ADMIN, body=PROMPT_UPLOAD, body_kind="multipart", status=201,
       response=PROMPT)
def prompts_upload(r: Req):
    from flask import request

    f = request.files.get("file")
    data = f.read() if f else b""
    return r.ctx.prompts.upload(r.actor, r.tid, name=r.body.get("name", ""), kind=r.body.get("kind") or "custom",
                                language=r.body.get("language") or "ru", data=data,
                                filename=(f.filename if f else "") or ""), 201


@route("GET", "/prompts/<id:prompt_id>/audio", summary="The audio of an uploaded prompt (WAV)", tag="prompts",
       rights=ANY, produces="audio/wav")
def prompts_audio(r: Req, prompt_id: int):
    p, audio = r.ctx.prompts.audio(r.actor, r.tid, prompt_id)
    return Response(audio, mimetype="audio/wav")


@route("GET", "/prompts/standard/<name>/audio", summary="The audio of a standard prompt (WAV)", tag="prompts",
       rights=ANY, produces="audio/wav", query={"lang": S.enum(("ru", "en"))})
def prompts_standard_audio(r: Req, name: str):
    r.ctx.services.tenants.get(r.actor, r.tid)
    return Response(r.ctx.prompts.default_audio(name, r.query.get("lang") or "ru"), mimetype="audio/wav")


@route("DELETE", "/prompts/<id:prompt_id>", summary="Delete an uploaded prompt", tag="prompts", rights=ADMIN,
       status=204)
def prompts_delete(r: Req, prompt_id: int):
    r.ctx.prompts.delete(r.actor, r.tid, prompt_id)


# -- history and statistics ----------------------------------------------------------------------
CALL_QUERY = {**PERIOD, "result": S.enum(RESULTS), "limit": S.integer(1, 10000), "offset": S.integer(0, 10**9)}


@route("GET", "/calls", summary="Call history with filters (admin: everybody; others: own calls)", tag="history",
       rights="admin: all calls; user and limited: own calls", query=CALL_QUERY,
       response=CALLS)
def calls_list(r: Req):
    return r.ctx.history.calls(r.actor, r.tid, **r.query)


@route("GET", "/calls.csv", summary="Call history as CSV (same filters and rights)", tag="history",
       rights="admin: all calls; user and limited: own calls", query=PERIOD | {"result": S.enum(RESULTS)},
       produces="text/csv")
def calls_csv(r: Req):
    text = r.ctx.history.calls_csv(r.actor, r.tid, **r.query)
    return Response("\ufeff" + text, mimetype="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="calls.csv"'})


@route("GET", "/stats", summary="Call statistics (admin and user: company; limited: own only)", tag="history",
       rights="admin and user: company; limited: own only", query=PERIOD,
       response=STATS)
def stats(r: Req):
    return r.ctx.history.stats(r.actor, r.tid, **r.query)


# -- voicemail and callbacks ---------------------------------------------------------------------
@route("GET", "/voicemails", summary="Voicemail messages (admin: all; others: own and their departments')",
       tag="voicemail", rights=ANY,
       response=ROWS)
def voicemails_list(r: Req):
    return r.ctx.history.voicemails(r.actor, r.tid)


@route("GET", "/voicemails/<id:voicemail_id>", summary="One voicemail message", tag="voicemail", rights=ANY,
       response={"type": "object", "required": ["id", "caller", "duration_s"]})
def voicemails_get(r: Req, voicemail_id: int):
    return r.ctx.history.voicemail(r.actor, r.tid, voicemail_id)


@route("GET", "/voicemails/<id:voicemail_id>/audio", summary="The recording (WAV)", tag="voicemail", rights=ANY,
       produces="audio/wav")
def voicemails_audio(r: Req, voicemail_id: int):
    vm, audio = r.ctx.history.voicemail_audio(r.actor, r.tid, voicemail_id)
    return Response(audio, mimetype="audio/wav")


@route("GET", "/callbacks", summary="Callback requests with status and attempts", tag="callbacks", rights=ANY,
       query={"status": S.enum(CALLBACK_STATUSES)},
       response=ROWS)
def callbacks_list(r: Req):
    return r.ctx.history.callbacks(r.actor, r.tid, **r.query)


@route("POST", "/callbacks/<id:callback_id>/cancel", summary="Cancel a pending callback", tag="callbacks",
       rights=ADMIN, status=204)
def callbacks_cancel(r: Req, callback_id: int):
    r.ctx.history.cancel_callback(r.actor, r.tid, callback_id)


# -- audit, letters, tokens ----------------------------------------------------------------------
@route("GET", "/audit", summary="The audit log of the company", tag="audit", rights=ADMIN,
       query={"limit": S.integer(1, 1000)},
       response=ROWS)
def audit(r: Req):
    return r.ctx.services.tenants.audit_log(r.actor, r.tid, limit=r.query.get("limit", 200))


@route("GET", "/letters", summary="Letters sent or queued (credentials, voicemail) and their status",
       tag="audit", rights=ADMIN,
       response=ROWS)
def letters(r: Req):
    return r.ctx.history.letters(r.actor, r.tid)


@route("POST", "/letters/<id:letter_id>/retry", summary="Send a failed letter again now", tag="audit",
       rights=ADMIN, status=204)
def letters_retry(r: Req, letter_id: int):
    r.ctx.history.retry_letter(r.actor, r.tid, letter_id)
    r.ctx.letter_queued()


@route("GET", "/tokens", summary="API tokens (admin: all of the company; others: own)", tag="tokens", rights=ANY,
       response=S.list_of(TOKEN_INFO))
def tokens_list(r: Req):
    return r.ctx.tokens.list(r.actor, r.tid)


@route("POST", "/tokens", summary="Create an API token acting with your rights (returned once)", tag="tokens",
       rights=ANY, body=TOKEN_CREATE, status=201,
       response=NEW_TOKEN)
def tokens_create(r: Req):
    t = r.ctx.tokens.create(r.actor, r.tid, name=(r.body or {}).get("name", ""))
    return {"token": t.token, **t.info}, 201


@route("DELETE", "/tokens/<id:token_id>", summary="Revoke an API token", tag="tokens",
       rights="admin: any; others: own", status=204)
def tokens_delete(r: Req, token_id: int):
    r.ctx.tokens.revoke(r.actor, r.tid, token_id)


# -- operator: tenants and their numbers ---------------------------------------------------------
@route("GET", "/tenants", summary="All companies", tag="operator", auth="operator", rights="operator",
       response=S.list_of(TENANT))
def tenants_list(r: Req):
    return r.ctx.services.tenants.list(r.actor)


@route("POST", "/tenants", summary="Create a company", tag="operator", auth="operator", rights="operator",
       body=TENANT_CREATE, status=201,
       response=TENANT)
def tenants_create(r: Req):
    return r.ctx.services.tenants.create(r.actor, **_clean(r.body)), 201


@route("GET", "/tenants/<id:tenant_id>", summary="One company with its usage", tag="operator", auth="operator",
       rights="operator",
       response=USAGE)
def tenants_get(r: Req, tenant_id: int):
    u = r.ctx.services.tenants.usage(r.actor, tenant_id)
    return {"tenant": u.tenant, "users": u.users, "label": u.label}


@route("PATCH", "/tenants/<id:tenant_id>", summary="Change a company (tariff, enabled, ...)", tag="operator",
       auth="operator", rights="operator", body=TENANT_UPDATE,
       response=TENANT)
def tenants_update(r: Req, tenant_id: int):
    return r.ctx.services.tenants.update(r.actor, tenant_id, **_clean(r.body))


@route("DELETE", "/tenants/<id:tenant_id>", summary="Delete a company and all its data", tag="operator",
       auth="operator", rights="operator", status=204)
def tenants_delete(r: Req, tenant_id: int):
    r.ctx.services.tenants.delete(r.actor, tenant_id)


@route("GET", "/tenants/<id:tenant_id>/numbers", summary="A company's numbers", tag="operator", auth="operator",
       rights="operator",
       response=S.list_of(NUMBER))
def tenant_numbers_list(r: Req, tenant_id: int):
    r.ctx.services.tenants.get(r.actor, tenant_id)
    return r.ctx.services.numbers.list(r.actor, tenant_id)


@route("POST", "/tenants/<id:tenant_id>/numbers", summary="Connect a number (DID) to a company", tag="operator",
       auth="operator", rights="operator", body=NUMBER_CREATE, status=201,
       response=NUMBER)
def tenant_numbers_create(r: Req, tenant_id: int):
    r.ctx.services.tenants.get(r.actor, tenant_id)
    return r.ctx.services.numbers.create(r.actor, tenant_id, **_clean(r.body)), 201


@route("DELETE", "/tenants/<id:tenant_id>/numbers/<id:number_id>", summary="Disconnect a number", tag="operator",
       auth="operator", rights="operator", status=204)
def tenant_numbers_delete(r: Req, tenant_id: int, number_id: int):
    r.ctx.services.numbers.delete(r.actor, tenant_id, number_id)


# -- operator: trunk gateways ---------------------------------------------------------------------
GATEWAY = S.model(Gateway, drop=("password",), extra={"password_set": S.boolean()})
_GATEWAY_PROPS = {"proxy": S.string(300), "username": S.string(128), "password": S.string(128),
                  "register": S.boolean(), "caller_id_in_from": S.boolean(), "enabled": S.boolean()}
GATEWAY_CREATE = S.obj({"name": S.string(64), **_GATEWAY_PROPS}, required=["name", "proxy"])
GATEWAY_UPDATE = S.obj(_GATEWAY_PROPS)


def _gateway(g) -> dict:
    out = dataclasses.asdict(g)
    out["password_set"] = bool(out.pop("password"))
    return out


@route("GET", "/gateways", summary="Trunk gateways of the external SIP profile", tag="operator", auth="operator",
       rights="operator", response=S.list_of(GATEWAY))
def gateways_list(r: Req):
    return [_gateway(g) for g in r.ctx.services.gateways.list(r.actor)]


@route("POST", "/gateways", summary="Add a trunk gateway (every connected FreeSWITCH starts it)", tag="operator",
       auth="operator", rights="operator", body=GATEWAY_CREATE, status=201, response=GATEWAY)
def gateways_create(r: Req):
    return _gateway(r.ctx.services.gateways.create(r.actor, **_clean(r.body))), 201


@route("GET", "/gateways/<gateway>", summary="One trunk gateway (the password is never returned)", tag="operator",
       auth="operator", rights="operator", response=GATEWAY)
def gateways_get(r: Req, gateway: str):
    return _gateway(r.ctx.services.gateways.get(r.actor, gateway))


@route("PATCH", "/gateways/<gateway>", summary="Change a trunk gateway (FreeSWITCH drops and restarts it)",
       tag="operator", auth="operator", rights="operator", body=GATEWAY_UPDATE, response=GATEWAY)
def gateways_update(r: Req, gateway: str):
    return _gateway(r.ctx.services.gateways.update(r.actor, gateway, **_clean(r.body)))


@route("DELETE", "/gateways/<gateway>", summary="Remove a trunk gateway", tag="operator", auth="operator",
       rights="operator", status=204)
def gateways_delete(r: Req, gateway: str):
    r.ctx.services.gateways.delete(r.actor, gateway)
