"""The `fsd` command line. gevent's monkey-patching and psycogreen come first, before anything else."""

from gevent import monkey

monkey.patch_all()

import psycogreen.gevent  # noqa: E402

psycogreen.gevent.patch_psycopg()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from datetime import date, datetime  # noqa: E402
from typing import Any  # noqa: E402

from fsd import config as config_mod  # noqa: E402
from fsd.errors import ConfigError, FsdError, NotFound, PermissionDenied, StoreError, ValidationError  # noqa: E402

log = logging.getLogger("fsd.cli")

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _json_default(o: Any):
    if isinstance(o, datetime | date):
        return o.isoformat()
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if isinstance(o, bytes | memoryview):
        return None
    return str(o)


def out(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=_json_default, indent=None))


def _employee_dict(e) -> dict:
    return e.public()


def _row(obj) -> dict:
    d = dataclasses.asdict(obj)
    for k in ("password_hash", "sip_a1_hash", "password", "audio"):
        d.pop(k, None)
    return d


def _table(rows: list[dict], cols: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, "") if r.get(c) is not None else "")) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(str(r.get(c) if r.get(c) is not None else "").ljust(widths[c]) for c in cols))


# -- plumbing ---------------------------------------------------------------------------------
def load_config(args) -> config_mod.Config:
    overrides = dict(kv.split("=", 1) for kv in (args.set or []) if "=" in kv)
    bad = [kv for kv in (args.set or []) if "=" not in kv]
    if bad:
        raise ConfigError(f"--set {bad[0]!r} must be section.key=value")
    if getattr(args, "database_url", None):
        overrides["database.dsn"] = args.database_url
    if getattr(args, "log_format", None):
        overrides["log.format"] = args.log_format
    if getattr(args, "trace_esl", False):
        overrides["log.trace_esl"] = "true"
    return config_mod.load(path=args.config, overrides=overrides)


def make_services(cfg: config_mod.Config):
    from fsd.services import MailSettings, Services
    from fsd.store.pool import Pool

    pool = Pool(dsn=cfg.database.dsn, minconn=0, maxconn=2, statement_timeout_ms=cfg.database.statement_timeout_ms)
    mail = MailSettings(cabinet_url=cfg.http.public_url, softphone_url=cfg.calls.softphone_url,
                        sip_server=cfg.calls.sip_server)
    return Services(pool=pool, mail=mail)


def _tenant_id(svc, actor, domain: str) -> int:
    return svc.tenants.by_domain(actor, domain).id


def _fields(args, names: list[str]) -> dict:
    values = {}
    for n in names:
        v = getattr(args, n, None)
        if v is not None:
            values[n] = v
    return values


# -- commands ---------------------------------------------------------------------------------
def cmd_db_migrate(args, cfg) -> int:
    from fsd.store.migrate import migrate

    applied = migrate(dsn=cfg.database.dsn)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(map(str, applied))}" if applied else
                                                   " (up to date)"))
    return EXIT_OK


def cmd_config_check(args, cfg) -> int:
    print(json.dumps(cfg.masked(), indent=2, ensure_ascii=False, default=str))
    return EXIT_OK


def cmd_tenant(args, cfg) -> int:
    from fsd.services import Actor

    svc = make_services(cfg)
    actor = Actor.system("cli")
    if args.action == "create":
        t = svc.tenants.create(actor, name=args.name, domain=args.domain, max_users=args.max_users,
                               timezone=args.timezone, language=args.language)
        out(_row(t))
    elif args.action == "list":
        rows = [_row(t) for t in svc.tenants.list(actor)]
        out(rows) if args.json else _table(rows, ["id", "name", "domain", "timezone", "max_users", "enabled"])
    elif args.action == "show":
        t = svc.tenants.by_domain(actor, args.domain)
        usage = svc.tenants.usage(actor, t.id)
        sched = svc.tenants.schedule(actor, t.id)
        d = {**_row(t), "users": usage.users, "usage": usage.label, "schedule": _row(sched)}
        out(d) if args.json else print("\n".join(f"{k}: {v}" for k, v in d.items()))
    elif args.action == "update":
        t = svc.tenants.by_domain(actor, args.domain)
        t = svc.tenants.update(actor, t.id, **_fields(args, ["name", "timezone", "max_users", "language"]))
        out(_row(t))
    elif args.action == "delete":
        t = svc.tenants.by_domain(actor, args.domain)
        svc.tenants.delete(actor, t.id)
        out({"deleted": t.id})
    elif args.action == "schedule":
        t = svc.tenants.by_domain(actor, args.domain)
        intervals = []
        for spec in args.interval or []:
            # "0-4 09:00-18:00" or "5 10:00-14:00"
            try:
                days, hours = spec.split()
                start, end = hours.split("-")
                lo, _, hi = days.partition("-")
                for d in range(int(lo), int(hi or lo) + 1):
                    intervals.append((d, start, end))
            except ValueError:
                raise ValidationError(f"interval {spec!r} must look like '0-4 09:00-18:00'",
                                      field="interval") from None
        exceptions = [{"day": d, "closed": True} for d in (args.closed or [])]
        s = svc.tenants.set_schedule(actor, t.id, intervals=intervals, exceptions=exceptions)
        out(_row(s))
    return EXIT_OK


EMPLOYEE_FIELDS = ["name", "login", "extension", "role", "position", "email", "mobile", "forward_mode",
                   "forward_delay"]


def cmd_employee(args, cfg) -> int:
    from fsd.services import Actor

    svc = make_services(cfg)
    actor = Actor.system("cli")
    tid = _tenant_id(svc, actor, args.tenant)
    if args.action == "create":
        c = svc.employees.create(actor, tid, **_fields(args, EMPLOYEE_FIELDS), password=args.password)
        out({**_employee_dict(c.employee), "password": c.password, "letter_queued": c.letter_queued})
    elif args.action == "list":
        rows = [_employee_dict(e) for e in svc.employees.list(actor, tid)]
        if args.json:
            out(rows)
        else:
            _table(rows, ["id", "extension", "login", "name", "role", "position", "email", "mobile", "forward_mode"])
            print(svc.tenants.usage(actor, tid).label + " users")
    elif args.action == "show":
        e = svc.employees.find(actor, tid, args.ref)
        d = _employee_dict(e)
        out(d) if args.json else print("\n".join(f"{k}: {v}" for k, v in d.items()))
    elif args.action == "update":
        e = svc.employees.find(actor, tid, args.ref)
        changes = _fields(args, EMPLOYEE_FIELDS)
        if args.disable:
            changes["enabled"] = False
        if args.enable:
            changes["enabled"] = True
        if args.password:
            changes["password"] = args.password
        out(_employee_dict(svc.employees.update(actor, tid, e.id, **changes)))
    elif args.action == "delete":
        e = svc.employees.find(actor, tid, args.ref)
        svc.employees.delete(actor, tid, e.id)
        out({"deleted": e.id})
    elif args.action == "reset-password":
        e = svc.employees.find(actor, tid, args.ref)
        c = svc.employees.reset_password(actor, tid, e.id, password=args.password, login=args.new_login)
        out({**_employee_dict(c.employee), "password": c.password, "letter_queued": c.letter_queued})
    return EXIT_OK


DEPARTMENT_FIELDS = ["name", "extension", "strategy", "step_delay", "ring_timeout", "no_answer_action",
                     "no_answer_number", "impatient_threshold"]


def _department_changes(args, svc, actor, tid) -> dict:
    ch = _fields(args, DEPARTMENT_FIELDS)
    if args.no_answer_employee:
        ch["no_answer_employee_id"] = svc.employees.find(actor, tid, args.no_answer_employee).id
    if args.no_answer_department:
        ch["no_answer_department_id"] = svc.departments.find(actor, tid, args.no_answer_department).id
    if args.impatient is not None:
        ch["impatient_enabled"] = args.impatient == "on"
    return ch


def cmd_department(args, cfg) -> int:
    from fsd.services import Actor

    svc = make_services(cfg)
    actor = Actor.system("cli")
    tid = _tenant_id(svc, actor, args.tenant)
    members = [m.strip() for m in args.members.split(",") if m.strip()] if getattr(args, "members", None) else None
    if args.action == "create":
        d = svc.departments.create(actor, tid, members=members or [], **_department_changes(args, svc, actor, tid))
        out(_row(d))
    elif args.action == "list":
        rows = [{**_row(d), "members": len(d.members)} for d in svc.departments.list(actor, tid)]
        out(rows) if args.json else _table(rows, ["id", "name", "extension", "strategy", "ring_timeout",
                                                  "no_answer_action", "impatient_enabled", "members"])
    elif args.action == "show":
        d = svc.departments.find(actor, tid, args.ref)
        row = {**_row(d), "member_ids": d.member_ids}
        out(row) if args.json else print("\n".join(f"{k}: {v}" for k, v in row.items()))
    elif args.action == "update":
        d = svc.departments.find(actor, tid, args.ref)
        out(_row(svc.departments.update(actor, tid, d.id, members=members,
                                        **_department_changes(args, svc, actor, tid))))
    elif args.action == "delete":
        d = svc.departments.find(actor, tid, args.ref)
        svc.departments.delete(actor, tid, d.id)
        out({"deleted": d.id})
    return EXIT_OK


NUMBER_FIELDS = ["did", "name", "mode", "dest_kind", "offhours_action", "offhours_number", "offhours_dest_kind"]


def _number_changes(args, svc, actor, tid) -> dict:
    ch = _fields(args, NUMBER_FIELDS)
    for prefix in ("dest", "offhours"):
        dep = getattr(args, f"{prefix}_department", None)
        emp = getattr(args, f"{prefix}_employee", None)
        ivr = getattr(args, f"{prefix}_ivr", None)
        if dep:
            ch[f"{prefix}_department_id"] = svc.departments.find(actor, tid, dep).id
        if emp:
            ch[f"{prefix}_employee_id"] = svc.employees.find(actor, tid, emp).id
        if ivr:
            ch[f"{prefix}_ivr_id"] = int(ivr)
    if args.main:
        ch["is_main"] = True
    return ch


def cmd_number(args, cfg) -> int:
    from fsd.services import Actor

    svc = make_services(cfg)
    actor = Actor.system("cli")
    tid = _tenant_id(svc, actor, args.tenant)
    if args.action == "create":
        out(_row(svc.numbers.create(actor, tid, **_number_changes(args, svc, actor, tid))))
    elif args.action == "list":
        rows = [_row(n) for n in svc.numbers.list(actor, tid)]
        out(rows) if args.json else _table(rows, ["id", "did", "name", "is_main", "mode", "dest_kind",
                                                  "offhours_action"])
    elif args.action == "show":
        n = svc.numbers.find(actor, tid, args.ref)
        row = _row(n)
        out(row) if args.json else print("\n".join(f"{k}: {v}" for k, v in row.items()))
    elif args.action == "update":
        n = svc.numbers.find(actor, tid, args.ref)
        out(_row(svc.numbers.update(actor, tid, n.id, **_number_changes(args, svc, actor, tid))))
    elif args.action == "delete":
        n = svc.numbers.find(actor, tid, args.ref)
        svc.numbers.delete(actor, tid, n.id)
        out({"deleted": n.id})
    return EXIT_OK


def _bool_opt(value: str | None) -> bool | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("true", "yes", "on", "1"):
        return True
    if v in ("false", "no", "off", "0"):
        return False
    raise ValidationError(f"expected true or false, got {value!r}")


def cmd_gateway(args, cfg) -> int:
    from fsd.services import Actor

    svc = make_services(cfg)
    actor = Actor.system("cli")
    if args.action == "list":
        rows = [_row(g) for g in svc.gateways.list(actor)]
        out(rows) if args.json else _table(rows, ["name", "proxy", "username", "register", "caller_id_in_from",
                                                  "enabled"])
        return EXIT_OK
    if args.action == "show":
        row = _row(svc.gateways.get(actor, args.name))
        out(row) if args.json else print("\n".join(f"{k}: {v}" for k, v in row.items()))
        return EXIT_OK
    if args.action == "delete":
        svc.gateways.delete(actor, args.name)
        out({"deleted": args.name})
        return EXIT_OK
    values = {"proxy": args.proxy, "username": args.username, "register": _bool_opt(args.register),
              "caller_id_in_from": _bool_opt(args.caller_id_in_from), "enabled": _bool_opt(args.enabled)}
    if args.password_stdin:
        values["password"] = sys.stdin.readline().rstrip("\r\n")
    values = {k: v for k, v in values.items() if v is not None}
    if args.action == "create":
        if "proxy" not in values:
            raise ValidationError("proxy: required (host or host:port)")
        out(_row(svc.gateways.create(actor, name=args.name, **values)))
    else:
        out(_row(svc.gateways.update(actor, args.name, **values)))
    return EXIT_OK


def cmd_serve(args, cfg) -> int:
    from fsd.app import run

    return run(cfg, config_loader=lambda: load_config(args))


def cmd_sim(args, cfg) -> int:
    from fsd.sim.cli import main as sim_main

    return sim_main(args.sim_args)


def _tenant_crud(sub, name: str, help_: str, ref_help: str, fields, func, extra_update=None):
    """create/list/show/update/delete sub-commands of a per-company resource, all with --tenant;
    returns the resource's sub-command group so more actions can be added."""
    parser = sub.add_parser(name, help=help_)
    actions = parser.add_subparsers(dest="action", required=True)
    out = {a: actions.add_parser(a) for a in ("create", "list", "show", "update", "delete")}
    for action, sp in out.items():
        sp.add_argument("--tenant", required=True, help="company SIP domain")
        if action in ("show", "update", "delete"):
            sp.add_argument("ref", help=ref_help)
        if action in ("list", "show"):
            sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=func)
    fields(out["create"], True)
    fields(out["update"], False)
    if extra_update:
        extra_update(out["update"])
    return actions


# -- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fsd", description="Call-distribution daemon for a hosted virtual PBX.")
    p.add_argument("--config", "-c", help="config file (INI); default $FSD_CONFIG")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a setting")
    p.add_argument("--database-url", help="libpq DSN (default $FSD_DATABASE_URL or the config file)")
    p.add_argument("--log-format", choices=["kv", "json"])
    p.add_argument("--log-level", default=None)
    p.add_argument("--trace-esl", action="store_true", help="log every Event Socket frame")
    sub = p.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="database")
    dbs = db.add_subparsers(dest="action", required=True)
    dbs.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_db_migrate)

    cfgp = sub.add_parser("config", help="configuration")
    cfgs = cfgp.add_subparsers(dest="action", required=True)
    cfgs.add_parser("check", help="validate and print the effective config, secrets masked").set_defaults(
        func=cmd_config_check)

    sub.add_parser("serve", help="run the daemon").set_defaults(func=cmd_serve)
    simp = sub.add_parser("sim", help="run the FreeSWITCH emulator", add_help=False)
    simp.add_argument("sim_args", nargs=argparse.REMAINDER)
    simp.set_defaults(func=cmd_sim, no_config=True)

    # tenants
    t = sub.add_parser("tenant", help="companies")
    ts = t.add_subparsers(dest="action", required=True)
    c = ts.add_parser("create")
    c.add_argument("--name", required=True)
    c.add_argument("--domain", required=True)
    c.add_argument("--max-users", required=True)
    c.add_argument("--timezone", default="Europe/Moscow")
    c.add_argument("--language", default="ru", choices=["ru", "en"])
    ls = ts.add_parser("list")
    ls.add_argument("--json", action="store_true")
    sh = ts.add_parser("show")
    sh.add_argument("domain")
    sh.add_argument("--json", action="store_true")
    up = ts.add_parser("update")
    up.add_argument("domain")
    up.add_argument("--name")
    up.add_argument("--timezone")
    up.add_argument("--max-users")
    up.add_argument("--language", choices=["ru", "en"])
    de = ts.add_parser("delete")
    de.add_argument("domain")
    sc = ts.add_parser("schedule", help="set the weekly schedule, e.g. --interval '0-4 09:00-18:00'")
    sc.add_argument("domain")
    sc.add_argument("--interval", action="append", help="'DAYS HH:MM-HH:MM', days 0=Mon..6=Sun, e.g. '0-4 09:00-18:00'")
    sc.add_argument("--closed", action="append", help="a closed day YYYY-MM-DD (holiday)")
    for sp in (c, ls, sh, up, de, sc):
        sp.set_defaults(func=cmd_tenant)

    # employees
    def emp_fields(sp, create: bool):
        sp.add_argument("--name", required=create)
        sp.add_argument("--login")
        sp.add_argument("--extension")
        sp.add_argument("--password", help="set a password instead of generating one")
        sp.add_argument("--role", choices=["admin", "user", "limited"], default="user" if create else None)
        sp.add_argument("--position")
        sp.add_argument("--email")
        sp.add_argument("--mobile")
        sp.add_argument("--forward", dest="forward_mode", choices=["off", "instant", "delayed"])
        sp.add_argument("--forward-delay", dest="forward_delay")

    def emp_update(sp):
        sp.add_argument("--disable", action="store_true")
        sp.add_argument("--enable", action="store_true")

    employee_actions = _tenant_crud(sub, "employee", "employees (extensions)", "id, login or extension", emp_fields,
                                    cmd_employee, emp_update)
    er = employee_actions.add_parser("reset-password")
    er.add_argument("--tenant", required=True)
    er.add_argument("ref")
    er.add_argument("--password")
    er.add_argument("--new-login")
    er.set_defaults(func=cmd_employee)

    # departments
    def dep_fields(sp, create: bool):
        sp.add_argument("--name", required=create)
        sp.add_argument("--extension")
        sp.add_argument("--strategy", choices=["simultaneous", "evenly", "in_order", "cascade"])
        sp.add_argument("--step-delay", dest="step_delay")
        sp.add_argument("--ring-timeout", dest="ring_timeout")
        sp.add_argument("--members", help="comma-separated logins, extensions or ids, in ring order")
        sp.add_argument("--no-answer", dest="no_answer_action",
                        choices=["voicemail", "forward_external", "transfer_employee", "transfer_department"])
        sp.add_argument("--no-answer-number", dest="no_answer_number")
        sp.add_argument("--no-answer-employee")
        sp.add_argument("--no-answer-department")
        sp.add_argument("--impatient", choices=["on", "off"])
        sp.add_argument("--impatient-threshold", dest="impatient_threshold")

    _tenant_crud(sub, "department", "departments (group call pickup)", "id, name or extension", dep_fields,
                 cmd_department)

    # numbers
    def num_fields(sp, create: bool):
        sp.add_argument("--did", required=create, help="the number, any format (normalised to E.164)")
        sp.add_argument("--name")
        sp.add_argument("--main", action="store_true", help="the company's caller ID number")
        sp.add_argument("--mode", choices=["schedule", "always"])
        sp.add_argument("--dest", dest="dest_kind", choices=["department", "employee", "ivr", "voicemail"])
        sp.add_argument("--dest-department")
        sp.add_argument("--dest-employee")
        sp.add_argument("--dest-ivr")
        sp.add_argument("--offhours", dest="offhours_action",
                        choices=["voicemail", "message_hangup", "forward", "destination"])
        sp.add_argument("--offhours-number", dest="offhours_number")
        sp.add_argument("--offhours-dest", dest="offhours_dest_kind", choices=["department", "employee", "ivr",
                                                                              "voicemail"])
        sp.add_argument("--offhours-department")
        sp.add_argument("--offhours-employee")
        sp.add_argument("--offhours-ivr")

    _tenant_crud(sub, "number", "company numbers (DIDs) and their routing", "id or number", num_fields, cmd_number)

    # trunk gateways (the operator's; served to FreeSWITCH's external profile)
    g = sub.add_parser("gateway", help="trunk gateways of the external SIP profile")
    gs = g.add_subparsers(dest="action", required=True)
    gl = gs.add_parser("list")
    gl.add_argument("--json", action="store_true")
    for action in ("show", "delete"):
        sp = gs.add_parser(action)
        sp.add_argument("name")
        if action == "show":
            sp.add_argument("--json", action="store_true")
    for action in ("create", "update"):
        sp = gs.add_parser(action)
        sp.add_argument("name")
        sp.add_argument("--proxy", help="host[:port] of the provider's SIP server")
        sp.add_argument("--username")
        sp.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input (never from the command line)")
        sp.add_argument("--register", metavar="true|false")
        sp.add_argument("--caller-id-in-from", metavar="true|false")
        sp.add_argument("--enabled", metavar="true|false")
    g.set_defaults(func=cmd_gateway)
    return p


def setup_logging(cfg: config_mod.Config | None, level: str | None = None) -> None:
    try:
        from fsd.logs import setup
    except ImportError:  # pragma: no cover
        logging.basicConfig(level=logging.INFO)
        return
    trace = bool(cfg and cfg.log.trace_esl)
    setup(level=level or (cfg.log.level if cfg else "INFO"), fmt=cfg.log.format if cfg else "kv", trace_esl=trace)
    if trace:
        from fsd.esl.connection import set_wire_trace
        from fsd.logs import esl_wire_logger

        set_wire_trace(lambda conn, direction, data: esl_wire_logger(direction, data, conn=conn))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sim"]:
        from fsd.sim.cli import main as sim_main

        return sim_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args)
        setup_logging(cfg, args.log_level or ("WARNING" if args.command not in ("serve",) else None))
        return args.func(args, cfg)
    except (ValidationError, ConfigError) as e:
        print(f"fsd: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (NotFound, PermissionDenied) as e:
        print(f"fsd: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except FsdError as e:  # Conflict and the rest: rule broken → usage error; store down → failure
        print(f"fsd: error: {e}", file=sys.stderr)
        return EXIT_FAIL if isinstance(e, StoreError) else EXIT_USAGE
