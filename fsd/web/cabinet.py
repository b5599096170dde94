"""The personal cabinet («Личный кабинет»): server-rendered pages over the services.

Rights are enforced by the services on every call (the pages only hide what a role cannot use);
a PermissionDenied becomes a 403 page, another company's object a 404 page.
"""

from __future__ import annotations

import functools
import logging
from datetime import date

from flask import Blueprint, Response, current_app, g, redirect, render_template, request, session, url_for
from markupsafe import Markup

from fsd.domain.rules import FORWARD_MODES, NO_ANSWER_ACTIONS, ROLES, STRATEGIES
from fsd.errors import Conflict, NotFound, PermissionDenied, StoreError, ValidationError
from fsd.services.auth import SignInFailed, TooManyAttempts
from fsd.services.history import CALLBACK_STATUSES, RESULTS
from fsd.services.media import KINDS as PROMPT_KINDS
from fsd.services.numbers import DEST_KINDS, IVR_ACTIONS, IVR_FALLBACKS, MODES, OFFHOURS_ACTIONS
from fsd.web import charts, i18n
from fsd.web.forms import EmployeeForm, LoginForm, TokenForm

log = logging.getLogger(__name__)
bp = Blueprint("cab", __name__)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _ctx():
    return current_app.extensions["fsd"]


def load_session():
    """The signed-in employee's current state (re-read each request: a role change or deletion applies
    at once), or None."""
    if "fsd_session" in g:
        return g.fsd_session
    sess = None
    tid, eid = session.get("tid"), session.get("eid")
    if isinstance(tid, int) and isinstance(eid, int):
        sess = _ctx().auth.session(tid, eid)
        if sess is None:
            session.clear()
    g.fsd_session = sess
    if sess is not None:
        g.tz = sess.tenant.timezone
    return sess


def _t(text: str) -> str:
    return i18n.gettext(text, getattr(g, "lang", "ru"))


def _msg(e) -> str:
    return i18n.translate_message(str(e), getattr(g, "lang", "ru"))


def error_page(status: int, message: str | None = None):
    titles = {403: "Forbidden", 404: "Not found", 400: "Wrong request", 413: "Wrong request", 429: "Too many requests",
              503: "Error"}
    return render_template("error.html", status=status, title=_t(titles.get(status, "Error")),
                           message=message), status


def page(fn):
    """A signed-in page: redirects to sign-in, maps service errors to 403/404 pages."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        sess = load_session()
        if sess is None:
            return redirect(url_for("cab.login", next=request.full_path.rstrip("?")))
        g.session = sess
        g.actor = sess.actor
        g.tid = sess.tenant.id
        try:
            return fn(*args, **kwargs)
        except PermissionDenied as e:
            return error_page(403, _msg(e))
        except NotFound:
            return error_page(404)
        except StoreError:
            return error_page(503, "database unavailable")

    return wrapper


def _is_admin() -> bool:
    return g.actor.is_admin_of(g.tid)


def _require_admin() -> None:
    if not _is_admin():
        raise PermissionDenied("this action needs administrator rights")


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("cab.employees")


def _form_dict(*names) -> dict:
    return {n: request.form.get(n, "") for n in names}


def _opt(v):
    return v if v not in ("", None) else None


# -- sign-in -------------------------------------------------------------------------------------
@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    error = None
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                sess = _ctx().auth.sign_in(form.login.data, form.password.data, ip=request.remote_addr or "")
            except (SignInFailed, ValidationError) as e:
                error, status = _msg(e), 401
            except TooManyAttempts as e:
                error, status = _msg(e), 429
            else:
                session.clear()
                session["tid"], session["eid"] = sess.tenant.id, sess.employee.id
                session.permanent = False
                return redirect(_safe_next(request.args.get("next")))
        else:
            error, status = _msg("sign in as login@domain"), 400
    return render_template("login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("cab.login"))


@bp.get("/")
def index():
    return redirect(url_for("cab.employees"))


@bp.get("/lang/<code>")
def set_lang(code):
    resp = redirect(_safe_next(request.args.get("next")))
    if code in i18n.LANGS:
        resp.set_cookie("fsd_lang", code, max_age=365 * 86400, samesite="Lax", httponly=True)
    return resp


# -- employees -----------------------------------------------------------------------------------
def _employee_page_data():
    ctx = _ctx()
    usage = ctx.services.tenants.usage(g.actor, g.tid)
    letters = [x for x in ctx.history.letters(g.actor, g.tid) if x["status"] != "sent"] if _is_admin() else []
    return usage, letters


@bp.get("/employees")
@page
def employees():
    usage, letters = _employee_page_data()
    emps = _ctx().services.employees.list(g.actor, g.tid)
    return render_template("employees.html", employees=emps, usage=usage, letters=letters, saved=request.args.get("ok"))


def _apply_error(form, e: ValidationError | Conflict) -> str:
    fld = getattr(e, "field", None)
    msg = _msg(e)
    if fld and hasattr(form, fld):
        getattr(form, fld).errors = list(getattr(form, fld).errors or []) + [msg]
    return msg


@bp.route("/employees/new", methods=["GET", "POST"])
@page
def employee_new():
    _require_admin()
    ctx = _ctx()
    form = EmployeeForm()
    error = None
    usage, _ = _employee_page_data()
    if request.method == "GET":
        sug = ctx.services.employees.suggest(g.actor, g.tid, "")
        form.extension.data = sug["extension"]
        form.password.data = sug["password"]
    elif form.validate_on_submit():
        d = form.data
        try:
            c = ctx.services.employees.create(
                g.actor, g.tid, name=d["name"], login=_opt(d["login"]), extension=_opt(d["extension"]),
                password=_opt(d["password"]), role=d["role"], position=d["position"] or "", email=_opt(d["email"]),
                mobile=_opt(d["mobile"]), forward_mode=d["forward_mode"], forward_delay=d["forward_delay"],
                enabled=bool(d["enabled"]))
        except (ValidationError, Conflict) as e:
            error = _apply_error(form, e)
        else:
            if c.letter_queued:
                ctx.letter_queued()
            return render_template("employee_created.html", created=c, usage=ctx.services.tenants.usage(g.actor, g.tid))
    else:
        error = _t("Wrong request")
    return render_template("employee_form.html", form=form, error=error, employee=None, usage=usage,
                           roles=ROLES, modes=FORWARD_MODES), 400 if error else 200


@bp.route("/employees/<int:employee_id>", methods=["GET", "POST"])
@page
def employee_edit(employee_id):
    ctx = _ctx()
    emp = ctx.services.employees.get(g.actor, g.tid, employee_id)
    own = emp.id == g.actor.employee_id
    if not (_is_admin() or own):
        raise PermissionDenied("you can edit only your own profile")
    form = EmployeeForm(obj=emp) if request.method == "GET" else EmployeeForm()
    if request.method == "GET":
        form.password.data = ""
    error = None
    if request.method == "POST":
        if form.validate_on_submit():
            d = form.data
            changes = {"name": d["name"], "position": d["position"] or "", "email": d["email"] or "",
                       "mobile": d["mobile"] or "", "forward_mode": d["forward_mode"],
                       "forward_delay": d["forward_delay"]}
            if _is_admin():
                changes.update(login=d["login"] or None, extension=d["extension"] or None, role=d["role"])
                if not own:
                    changes["enabled"] = bool(d["enabled"])
            if d["password"]:
                changes["password"] = d["password"]
            try:
                ctx.services.employees.update(g.actor, g.tid, employee_id, **changes)
            except (ValidationError, Conflict) as e:
                error = _apply_error(form, e)
            else:
                return redirect(url_for("cab.employees", ok=1))
        else:
            error = _t("Wrong request")
    return render_template("employee_form.html", form=form, error=error, employee=emp, usage=None, roles=ROLES,
                           modes=FORWARD_MODES, own=own), 400 if error else 200


@bp.post("/employees/<int:employee_id>/password")
@page
def employee_password(employee_id):
    ctx = _ctx()
    c = ctx.services.employees.reset_password(g.actor, g.tid, employee_id)
    if c.letter_queued:
        ctx.letter_queued()
    return render_template("employee_created.html", created=c, reset=True, usage=None)


@bp.post("/employees/<int:employee_id>/delete")
@page
def employee_delete(employee_id):
    try:
        _ctx().services.employees.delete(g.actor, g.tid, employee_id)
    except (ValidationError, Conflict) as e:
        return error_page(400, _msg(e))
    return redirect(url_for("cab.employees", ok=1))


@bp.get("/profile")
@page
def profile():
    return redirect(url_for("cab.employee_edit", employee_id=g.actor.employee_id))


# -- departments ---------------------------------------------------------------------------------
@bp.get("/departments")
@page
def departments():
    ctx = _ctx()
    deps = ctx.services.departments.list(g.actor, g.tid)
    names = {e.id: e.name for e in ctx.services.employees.list(g.actor, g.tid)}
    return render_template("departments.html", departments=deps, names=names, saved=request.args.get("ok"))


def _department_form_values() -> tuple[dict, list]:
    f = request.form
    values = {k: f.get(k, "") for k in ("name", "extension", "strategy", "step_delay", "ring_timeout",
                                        "no_answer_action", "no_answer_number", "no_answer_employee_id",
                                        "no_answer_department_id", "voicemail_prompt_id", "impatient_threshold")}
    for k in ("impatient_enabled", "impatient_offer_callback", "impatient_offer_voicemail"):
        values[k] = k in f
    values["extension"] = values["extension"] or None
    values["no_answer_number"] = values["no_answer_number"] or None
    members = [m for m in f.getlist("members") if m]
    return values, members


@bp.route("/departments/new", methods=["GET", "POST"])
@bp.route("/departments/<int:department_id>", methods=["GET", "POST"])
@page
def department_edit(department_id=None):
    ctx = _ctx()
    dep = ctx.services.departments.get(g.actor, g.tid, department_id) if department_id else None
    if request.method == "POST" or department_id is None:
        _require_admin()
    error = field = None
    values: dict = {}
    members: list = list(dep.member_ids) if dep else []
    if request.method == "POST":
        values, members = _department_form_values()
        try:
            saved = ctx.services.departments.save(g.actor, g.tid, department_id, members=members, **values)
        except (ValidationError, Conflict) as e:
            error, field = _msg(e), getattr(e, "field", None)
            members = [int(m) for m in members if str(m).isdigit()]
        else:
            return redirect(url_for("cab.department_edit", department_id=saved.id, ok=1))
    emps = ctx.services.employees.list(g.actor, g.tid)
    by_id = {e.id: e for e in emps}
    ordered = [by_id[i] for i in members if i in by_id] + [e for e in emps if e.id not in members]
    return render_template(
        "department_form.html", dep=dep, v=values, error=error, field=field, ordered=ordered,
        member_set=set(members), employees=emps,
        departments=[d for d in ctx.services.departments.list(g.actor, g.tid) if not dep or d.id != dep.id],
        prompts=[p for p in ctx.prompts.list(g.actor, g.tid) if p.tenant_id is not None],
        strategies=STRATEGIES, actions=NO_ANSWER_ACTIONS, saved=request.args.get("ok"), admin=_is_admin(),
    ), 400 if error else 200


@bp.post("/departments/<int:department_id>/delete")
@page
def department_delete(department_id):
    try:
        _ctx().services.departments.delete(g.actor, g.tid, department_id)
    except (ValidationError, Conflict) as e:
        return error_page(400, _msg(e))
    return redirect(url_for("cab.departments", ok=1))


# -- numbers -------------------------------------------------------------------------------------
def _lookups():
    ctx = _ctx()
    return {
        "employees": ctx.services.employees.list(g.actor, g.tid),
        "departments": ctx.services.departments.list(g.actor, g.tid),
        "menus": ctx.services.ivr.list(g.actor, g.tid),
        "prompts": [p for p in ctx.prompts.list(g.actor, g.tid) if p.tenant_id is not None],
    }


@bp.get("/numbers")
@page
def numbers():
    nums = _ctx().services.numbers.list(g.actor, g.tid)
    return render_template("numbers.html", numbers=nums, **_lookups())


NUMBER_FORM = ("name", "mode", "dest_kind", "dest_department_id", "dest_employee_id", "dest_ivr_id",
               "offhours_action", "offhours_number", "offhours_dest_kind", "offhours_department_id",
               "offhours_employee_id", "offhours_ivr_id", "offhours_prompt_id", "greeting_prompt_id")


@bp.route("/numbers/<int:number_id>", methods=["GET", "POST"])
@page
def number_edit(number_id):
    ctx = _ctx()
    num = ctx.services.numbers.get(g.actor, g.tid, number_id)
    error = field = None
    v: dict = {}
    if request.method == "POST":
        _require_admin()
        v = _form_dict(*NUMBER_FORM)
        v["offhours_number"] = v["offhours_number"] or None
        v["offhours_dest_kind"] = v["offhours_dest_kind"] or None
        try:
            upload = request.files.get("greeting_file")
            if upload and upload.filename:
                p = ctx.prompts.upload(g.actor, g.tid, name=f"greeting {num.did} {upload.filename}"[:100],
                                       kind="greeting", data=upload.read(), filename=upload.filename)
                v["greeting_prompt_id"] = p.id
            ctx.services.numbers.update(g.actor, g.tid, number_id, **v)
        except (ValidationError, Conflict) as e:
            error, field = _msg(e), getattr(e, "field", None)
        else:
            return redirect(url_for("cab.number_edit", number_id=number_id, ok=1))
    svg = ctx.scheme.svg(g.actor, g.tid, number_id)
    # render_svg escapes every label itself, so the drawing can be inlined as markup
    svg = Markup(svg.split("?>", 1)[1] if svg.startswith("<?xml") else svg)  # noqa: S704
    return render_template("number_form.html", num=num, v=v, error=error, field=field, modes=MODES, scheme_svg=svg,
                           dest_kinds=DEST_KINDS, offhours=OFFHOURS_ACTIONS, saved=request.args.get("ok"),
                           admin=_is_admin(), **_lookups()), 400 if error else 200


@bp.get("/numbers/<int:number_id>/scheme.svg")
@page
def number_scheme(number_id):
    return Response(_ctx().scheme.svg(g.actor, g.tid, number_id), mimetype="image/svg+xml")


# -- IVR -----------------------------------------------------------------------------------------
@bp.get("/ivr")
@page
def ivr_list():
    return render_template("ivr.html", **_lookups())


DIGITS = list("1234567890*#")


@bp.route("/ivr/new", methods=["GET", "POST"])
@bp.route("/ivr/<int:menu_id>", methods=["GET", "POST"])
@page
def ivr_edit(menu_id=None):
    ctx = _ctx()
    menu = ctx.services.ivr.get(g.actor, g.tid, menu_id) if menu_id else None
    if request.method == "POST" or menu_id is None:
        _require_admin()
    error = None
    if request.method == "POST":
        f = request.form
        fields = {k: f.get(k, "") for k in ("name", "prompt_id", "invalid_prompt_id", "timeout_s", "max_repeats",
                                            "ext_digits", "fallback_kind")}
        fb_target = f.get("fallback_target", "")
        for kind, col in (("department", "fallback_department_id"), ("employee", "fallback_employee_id"),
                          ("menu", "fallback_menu_id")):
            fields[col] = fb_target.split(":", 1)[1] if fb_target.startswith(kind + ":") else None
        items = []
        for i, d in enumerate(DIGITS):
            action = f.get(f"action_{i}", "")
            if not action:
                continue
            target = f.get(f"target_{i}", "")
            item = {"digit": d, "action": action}
            for kind, col in (("department", "department_id"), ("employee", "employee_id"), ("menu", "submenu_id")):
                if target.startswith(kind + ":"):
                    item[col] = target.split(":", 1)[1]
            items.append(item)
        try:
            saved = ctx.services.ivr.save(g.actor, g.tid, menu_id, items=items, **fields)
        except (ValidationError, Conflict) as e:
            error = _msg(e)
        else:
            return redirect(url_for("cab.ivr_edit", menu_id=saved.id, ok=1))
    by_digit = {it.digit: it for it in (menu.items if menu else ())}
    return render_template("ivr_form.html", menu=menu, by_digit=by_digit, digits=DIGITS, actions=IVR_ACTIONS,
                           fallbacks=IVR_FALLBACKS, error=error, saved=request.args.get("ok"), admin=_is_admin(),
                           **_lookups()), 400 if error else 200


@bp.post("/ivr/<int:menu_id>/delete")
@page
def ivr_delete(menu_id):
    try:
        _ctx().services.ivr.delete(g.actor, g.tid, menu_id)
    except (ValidationError, Conflict) as e:
        return error_page(400, _msg(e))
    return redirect(url_for("cab.ivr_list"))


# -- schedule ------------------------------------------------------------------------------------
def _hm(m):
    return "" if m is None else f"{m // 60:02d}:{m % 60:02d}"


@bp.route("/schedule", methods=["GET", "POST"])
@page
def schedule():
    ctx = _ctx()
    error = None
    if request.method == "POST":
        _require_admin()
        intervals, exceptions = [], []
        try:
            for wd in range(7):
                for part in [p.strip() for p in request.form.get(f"day_{wd}", "").split(",") if p.strip()]:
                    start, sep, end = part.partition("-")
                    if not sep:
                        raise ValidationError(f"time {part!r} must be HH:MM", field="schedule")
                    intervals.append({"weekday": wd, "start": start.strip(), "end": end.strip()})
            for line in request.form.get("exceptions", "").splitlines():
                bits = line.split(None, 2)
                if not bits:
                    continue
                day = bits[0]
                rest = bits[1] if len(bits) > 1 else "closed"
                note = bits[2] if len(bits) > 2 else ""
                if rest.lower() == "closed":
                    exceptions.append({"day": day, "closed": True, "note": note})
                else:
                    start, sep, end = rest.partition("-")
                    if not sep:
                        raise ValidationError(f"time {rest!r} must be HH:MM", field="schedule")
                    exceptions.append({"day": day, "closed": False, "start": start, "end": end, "note": note})
            ctx.services.tenants.set_schedule(g.actor, g.tid, intervals=intervals, exceptions=exceptions)
        except (ValidationError, Conflict) as e:
            error = _msg(e)
        else:
            return redirect(url_for("cab.schedule", ok=1))
    s = ctx.services.tenants.schedule(g.actor, g.tid)
    days = {wd: ", ".join(f"{_hm(i.start_minute)}-{_hm(i.end_minute)}" for i in s.intervals if i.weekday == wd)
            for wd in range(7)}
    exc = "\n".join(f"{e.day.isoformat()} " + ("closed" if e.closed else f"{_hm(e.start_minute)}-{_hm(e.end_minute)}")
                    + (f" {e.note}" if e.note else "") for e in s.exceptions)
    if request.method == "POST":
        days = {wd: request.form.get(f"day_{wd}", "") for wd in range(7)}
        exc = request.form.get("exceptions", "")
    return render_template("schedule.html", days=days, exc=exc, weekdays=WEEKDAYS, tz=s.timezone, error=error,
                           saved=request.args.get("ok"), admin=_is_admin()), 400 if error else 200


# -- prompts -------------------------------------------------------------------------------------
@bp.route("/prompts", methods=["GET", "POST"])
@page
def prompts():
    ctx = _ctx()
    error = None
    if request.method == "POST":
        _require_admin()
        f = request.files.get("file")
        try:
            ctx.prompts.upload(g.actor, g.tid, name=request.form.get("name", ""),
                               kind=request.form.get("kind", "custom"), data=f.read() if f else b"",
                               filename=(f.filename if f else "") or "")
        except (ValidationError, Conflict) as e:
            error = _msg(e)
        else:
            return redirect(url_for("cab.prompts", ok=1))
    t = ctx.services.tenants.get(g.actor, g.tid)
    return render_template("prompts.html", uploaded=[p for p in ctx.prompts.list(g.actor, g.tid) if p.tenant_id],
                           standard=ctx.prompts.defaults(t.language), kinds=PROMPT_KINDS, error=error,
                           std_lang=t.language, saved=request.args.get("ok"), admin=_is_admin()), 400 if error else 200


@bp.post("/prompts/<int:prompt_id>/delete")
@page
def prompt_delete(prompt_id):
    try:
        _ctx().prompts.delete(g.actor, g.tid, prompt_id)
    except (ValidationError, Conflict) as e:
        return error_page(400, _msg(e))
    return redirect(url_for("cab.prompts"))


# -- history and statistics ----------------------------------------------------------------------
def _filters(*names) -> dict:
    return {n: request.args.get(n) or None for n in names}


@bp.get("/history")
@page
def history():
    ctx = _ctx()
    flt = _filters("since", "until", "employee_id", "department_id", "result")
    error = None
    try:
        data = ctx.history.calls(g.actor, g.tid, **flt)
    except ValidationError as e:
        error, data = _msg(e), {"calls": [], "total": 0, "own_only": not _is_admin(), "since": "", "until": ""}
    return render_template("history.html", data=data, flt=flt, results=RESULTS, error=error, admin=_is_admin(),
                           **_lookups()), 400 if error else 200


@bp.get("/stats")
@page
def stats():
    ctx = _ctx()
    flt = _filters("since", "until", "employee_id", "department_id")
    error = None
    try:
        st = ctx.history.stats(g.actor, g.tid, **flt)
    except ValidationError as e:
        return error_page(400, _msg(e))
    main = [r for r in ("answered", "missed", "abandoned", "voicemail")]
    other = [r for r in RESULTS if r not in main]

    def series(rows):
        out = [(_t(r), charts.COLORS[r], [row[r] for row in rows]) for r in main]
        out.append((_t("callback_requested"), charts.COLORS["callback_requested"],
                    [sum(row[r] for r in other) for row in rows]))
        return out

    hour_chart = charts.stacked_bars([f"{h:02d}" for h in range(24)], series(st["by_hour"]), title=_t("Calls per hour"))
    day_chart = charts.stacked_bars([d["day"].strftime("%d.%m") for d in st["by_day"]], series(st["by_day"]),
                                    title=_t("Calls per day"))
    wait_chart = charts.stacked_bars([w["label"] for w in st["wait_histogram"]],
                                     [(_t("Calls"), "#2563eb", [w["n"] for w in st["wait_histogram"]])],
                                     title=_t("Wait time, s"), width=420)
    emp_chart = charts.stacked_bars([r["name"] for r in st["by_employee"]],
                                    [(_t("Answered"), charts.COLORS["answered"],
                                      [r["answered"] for r in st["by_employee"]])],
                                    title=_t("By employee")) if st["by_employee"] else ""
    dep_chart = charts.stacked_bars([r["name"] for r in st["by_department"]],
                                    [(_t(k.capitalize()), charts.COLORS[k], [r[k] for r in st["by_department"]])
                                     for k in ("answered", "missed", "abandoned")],
                                    title=_t("By department")) if st["by_department"] else ""
    return render_template("stats.html", st=st, flt=flt, error=error, hour_chart=hour_chart, day_chart=day_chart,
                           wait_chart=wait_chart, emp_chart=emp_chart, dep_chart=dep_chart, results=RESULTS,
                           limited=g.actor.role == "limited",
                           **_lookups())


# -- voicemail, callbacks, audit, tokens, letters ------------------------------------------------
@bp.get("/voicemail")
@page
def voicemail():
    return render_template("voicemail.html", items=_ctx().history.voicemails(g.actor, g.tid))


@bp.get("/callbacks")
@page
def callbacks():
    status = request.args.get("status") or None
    try:
        items = _ctx().history.callbacks(g.actor, g.tid, status=status)
    except ValidationError as e:
        return error_page(400, _msg(e))
    return render_template("callbacks.html", items=items, status=status, statuses=CALLBACK_STATUSES,
                           admin=_is_admin())


@bp.post("/callbacks/<int:callback_id>/cancel")
@page
def callback_cancel(callback_id):
    try:
        _ctx().history.cancel_callback(g.actor, g.tid, callback_id)
    except ValidationError as e:
        return error_page(400, _msg(e))
    return redirect(url_for("cab.callbacks"))


@bp.get("/audit")
@page
def audit():
    return render_template("audit.html", items=_ctx().services.tenants.audit_log(g.actor, g.tid, limit=500))


@bp.route("/tokens", methods=["GET", "POST"])
@page
def tokens():
    ctx = _ctx()
    form = TokenForm()
    new = None
    if request.method == "POST" and form.validate_on_submit():
        new = ctx.tokens.create(g.actor, g.tid, name=form.name.data or "")
    return render_template("tokens.html", form=form, new=new, items=ctx.tokens.list(g.actor, g.tid))


@bp.post("/tokens/<int:token_id>/delete")
@page
def token_delete(token_id):
    _ctx().tokens.revoke(g.actor, g.tid, token_id)
    return redirect(url_for("cab.tokens"))


@bp.get("/letters")
@page
def letters():
    return render_template("letters.html", items=_ctx().history.letters(g.actor, g.tid))


@bp.post("/letters/<int:letter_id>/retry")
@page
def letter_retry(letter_id):
    ctx = _ctx()
    ctx.history.retry_letter(g.actor, g.tid, letter_id)
    ctx.letter_queued()
    return redirect(request.referrer if (request.referrer or "").startswith(ctx.config.http.public_url)
                    else url_for("cab.letters"))


def register(app) -> None:
    from flask_wtf.csrf import CSRFError

    app.register_blueprint(bp)

    @app.before_request
    def _no_nul():
        values = [v for vs in request.args.listvalues() for v in vs]
        if request.method == "POST" and request.mimetype != "application/json":
            values += [v for vs in request.form.listvalues() for v in vs]
        for v in values:
            if "\x00" in v:
                if request.path.startswith("/api/"):
                    from fsd.web.api import _error

                    return _error(400, "text must not contain NUL characters")
                return error_page(400, "text must not contain NUL characters")
        return None

    @app.errorhandler(StoreError)
    def _store(e):
        log.warning("web_store_error path=%s error=%s", request.path, e)
        if request.path.startswith("/api/"):
            from fsd.web.api import _error

            return _error(503, "the database is unavailable, try again later")
        return render_template("error.html", status=503, title=_t("Error"),
                               message="database unavailable", me=None), 503

    @app.errorhandler(CSRFError)
    def _csrf(e):
        if request.path.startswith("/api/"):
            from fsd.web.api import _error

            return _error(400, "CSRF token missing or invalid (send X-CSRFToken)", "csrf_token")
        return error_page(400, _t("The page expired, please try again."))

    @app.template_global()
    def today() -> str:
        return date.today().isoformat()

