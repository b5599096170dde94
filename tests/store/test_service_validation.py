"""Department, number and IVR validation through the services: error messages, fields, targets kept or cleared,
references checked, and nothing written by a rejected change."""

import pytest

from fsd.errors import NotFound, ValidationError
from fsd.services import Actor, Services
from fsd.store import repos

SYS = Actor.system("test")


@pytest.fixture
def co(pool):
    """The services, and a company (tenant id) with two employees."""
    svc = Services(pool=pool)
    t = svc.tenants.create(SYS, name="Acme", domain="acme.example", max_users=10)
    a = svc.employees.create(SYS, t.id, name="Anna Ivanova", extension="201").employee
    b = svc.employees.create(SYS, t.id, name="Boris Petrov", extension="202").employee
    return svc, t.id, a, b


def _rejects(fn, message: str, field: str, exc=ValidationError):
    with pytest.raises(exc) as ei:
        fn()
    assert str(ei.value) == message
    if exc is ValidationError:
        assert ei.value.field == field


def _audits(pool) -> int:
    with pool.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM audit_log")
        return cur.fetchone()["n"]


def test_department_field_errors(co):
    svc, tid, a, _b = co
    create = svc.departments.create
    _rejects(lambda: create(SYS, tid, name="S", colour="red"), "unknown department field colour", "colour")
    _rejects(lambda: create(SYS, tid, strategy="in_order"), "name is required", "name")
    _rejects(lambda: create(SYS, tid, name="S", impatient_enabled="maybe"),
             "impatient_enabled must be true or false", "impatient_enabled")
    _rejects(lambda: create(SYS, tid, name="S", voicemail_prompt_id="x"),
             "voicemail_prompt_id must be an id", "voicemail_prompt_id")
    _rejects(lambda: create(SYS, tid, name="S", step_delay=0),
             "step_delay must be a whole number of seconds from 1 to 600", "step_delay")
    _rejects(lambda: create(SYS, tid, name="S", no_answer_action="forward_external"),
             "forwarding on no answer needs an external number", "no_answer_number")
    _rejects(lambda: create(SYS, tid, name="S", no_answer_action="transfer_employee"),
             "transfer on no answer needs an employee", "no_answer_employee_id")
    _rejects(lambda: create(SYS, tid, name="S", no_answer_action="transfer_department"),
             "transfer on no answer needs a department", "no_answer_department_id")
    _rejects(lambda: create(SYS, tid, name="S", no_answer_action="transfer_employee", no_answer_employee_id=99999),
             "employee not found", "", exc=NotFound)
    _rejects(lambda: create(SYS, tid, name="S", no_answer_action="transfer_department",
                            no_answer_department_id=99999), "department not found", "", exc=NotFound)
    _rejects(lambda: create(SYS, tid, name="S", impatient_prompt_id=99999), "prompt not found", "", exc=NotFound)
    _rejects(lambda: create(SYS, tid, name="S", members=[a.id, a.login]),
             f"employee {a.login} is listed twice", "members")
    assert svc.departments.list(SYS, tid) == []


def test_department_targets_follow_the_action(co, pool):
    svc, tid, a, _b = co
    other = svc.departments.create(SYS, tid, name="Other")
    dep = svc.departments.create(SYS, tid, name="Sales", members=[a.id], impatient_enabled="yes",
                                 no_answer_action="forward_external", no_answer_number="8 495 123-45-67",
                                 no_answer_employee_id=a.id, no_answer_department_id=other.id)
    # only the chosen action's target is kept
    assert (dep.no_answer_number, dep.no_answer_employee_id, dep.no_answer_department_id) == (
        "+74951234567", None, None)
    assert dep.impatient_enabled is True
    dep = svc.departments.update(SYS, tid, dep.id, no_answer_action="transfer_employee", no_answer_employee_id=a.id)
    assert (dep.no_answer_number, dep.no_answer_employee_id, dep.no_answer_department_id) == (None, a.id, None)
    dep = svc.departments.update(SYS, tid, dep.id, no_answer_action="transfer_department",
                                 no_answer_department_id=str(other.id))
    assert (dep.no_answer_number, dep.no_answer_employee_id, dep.no_answer_department_id) == (None, None, other.id)
    before = _audits(pool)
    _rejects(lambda: svc.departments.update(SYS, tid, dep.id, no_answer_department_id=dep.id),
             "a department cannot transfer to itself", "no_answer_department_id")
    _rejects(lambda: svc.departments.update(SYS, tid, dep.id, no_answer_action="transfer_employee"),
             "transfer on no answer needs an employee", "no_answer_employee_id")
    assert _audits(pool) == before
    dep = svc.departments.update(SYS, tid, dep.id, no_answer_action="voicemail", no_answer_department_id=0)
    assert (dep.no_answer_number, dep.no_answer_employee_id, dep.no_answer_department_id) == (None, None, None)
    assert dep.member_ids == [a.id]  # members=None leaves them


def test_number_field_errors(co):
    svc, tid, a, _b = co
    create = svc.numbers.create
    did = "+74951110000"
    _rejects(lambda: create(SYS, tid, did=did, colour="red"), "unknown number field colour", "colour")
    _rejects(lambda: create(SYS, tid, dest_kind="voicemail"), "number is required", "did")
    _rejects(lambda: create(SYS, tid, did=did, is_main="perhaps"), "is_main must be true or false", "is_main")
    _rejects(lambda: create(SYS, tid, did=did, mode="never"), "mode must be one of: schedule, always", "mode")
    _rejects(lambda: create(SYS, tid, did=did, dest_kind="fax"),
             "dest_kind must be one of: department, employee, ivr, voicemail", "dest_kind")
    _rejects(lambda: create(SYS, tid, did=did, offhours_action="x"),
             "offhours_action must be one of: voicemail, message_hangup, forward, destination", "offhours_action")
    _rejects(lambda: create(SYS, tid, did=did, offhours_dest_kind="x"),
             "offhours_dest_kind must be one of: department, employee, ivr, voicemail", "offhours_dest_kind")
    _rejects(lambda: create(SYS, tid, did=did, dest_employee_id="abc"),
             "dest_employee_id must be an id", "dest_employee_id")
    for kind in ("department", "employee", "ivr"):
        _rejects(lambda kind=kind: create(SYS, tid, did=did, dest_kind=kind),
                 f"destination {kind} is required", f"dest_{kind}_id")
    _rejects(lambda: create(SYS, tid, did=did, offhours_action="forward"),
             "out-of-hours forwarding needs an external number", "offhours_number")
    _rejects(lambda: create(SYS, tid, did=did, offhours_action="destination"),
             "out-of-hours destination is required", "offhours_dest_kind")
    for kind in ("department", "employee", "ivr"):
        _rejects(lambda kind=kind: create(SYS, tid, did=did, offhours_action="destination",
                                          offhours_dest_kind=kind),
                 f"out-of-hours {kind} is required", f"offhours_{kind}_id")
    for col, message in (("dest_department_id", "department not found"), ("dest_employee_id", "employee not found"),
                         ("dest_ivr_id", "IVR menu not found")):
        kind = col.split("_")[1]
        _rejects(lambda col=col, kind=kind: create(SYS, tid, did=did, dest_kind=kind, **{col: 99999}),
                 message, "", exc=NotFound)
        _rejects(lambda col=col, kind=kind: create(SYS, tid, did=did, offhours_action="destination",
                                                   offhours_dest_kind=kind, **{"offhours_" + col[5:]: 99999}),
                 message, "", exc=NotFound)
    for col in ("offhours_prompt_id", "greeting_prompt_id"):
        _rejects(lambda col=col: create(SYS, tid, did=did, **{col: 99999}), "prompt not found", "", exc=NotFound)
    assert svc.numbers.list(SYS, tid) == []


def test_number_targets_follow_the_kind_and_action(co):
    svc, tid, a, b = co
    dep = svc.departments.create(SYS, tid, name="Sales", members=[a.id])
    menu = svc.ivr.save(SYS, tid, None, name="Main")
    num = svc.numbers.create(SYS, tid, did="+74951110000", dest_kind="employee", dest_employee_id=a.id,
                             dest_department_id=dep.id, dest_ivr_id=menu.id, mode="schedule",
                             offhours_action="destination", offhours_dest_kind="department",
                             offhours_department_id=dep.id, offhours_employee_id=b.id, offhours_ivr_id=menu.id,
                             offhours_number="+79001112233")
    assert (num.dest_department_id, num.dest_employee_id, num.dest_ivr_id) == (None, a.id, None)
    assert num.offhours_dest_kind == "department" and num.offhours_number is None
    assert (num.offhours_department_id, num.offhours_employee_id, num.offhours_ivr_id) == (dep.id, None, None)
    num = svc.numbers.update(SYS, tid, num.id, dest_kind="ivr", dest_ivr_id=menu.id, offhours_action="forward",
                             offhours_number="8 900 111-22-33")
    assert (num.dest_department_id, num.dest_employee_id, num.dest_ivr_id) == (None, None, menu.id)
    assert num.offhours_number == "+79001112233" and num.offhours_dest_kind is None
    assert (num.offhours_department_id, num.offhours_employee_id, num.offhours_ivr_id) == (None, None, None)
    num = svc.numbers.update(SYS, tid, num.id, dest_kind="voicemail", offhours_action="voicemail")
    assert (num.dest_department_id, num.dest_employee_id, num.dest_ivr_id) == (None, None, None)
    assert num.offhours_number is None and num.offhours_dest_kind is None
    assert num.is_main  # the first number is the company's caller ID
    second = svc.numbers.create(SYS, tid, did="+74951110001")
    assert not second.is_main
    second = svc.numbers.update(SYS, tid, second.id, is_main="1")
    assert second.is_main and not svc.numbers.get(SYS, tid, num.id).is_main


def test_ivr_field_and_item_errors(co):
    svc, tid, a, _b = co
    save = svc.ivr.save
    _rejects(lambda: save(SYS, tid, None, name="M", colour="red"), "unknown IVR field colour", "colour")
    _rejects(lambda: save(SYS, tid, None, timeout_s=5), "name is required", "name")
    _rejects(lambda: save(SYS, tid, None, name="M", timeout_s=0),
             "timeout_s must be a whole number of seconds from 1 to 60", "timeout_s")
    _rejects(lambda: save(SYS, tid, None, name="M", fallback_kind="dial_extension"),
             "fallback_kind must be one of: department, employee, voicemail, menu, hangup", "fallback_kind")
    _rejects(lambda: save(SYS, tid, None, name="M", prompt_id="p"), "prompt_id must be an id", "prompt_id")
    for kind in ("department", "employee", "menu"):
        _rejects(lambda kind=kind: save(SYS, tid, None, name="M", fallback_kind=kind),
                 f"fallback {kind} is required", f"fallback_{kind}_id")
    _rejects(lambda: save(SYS, tid, None, name="M", fallback_kind="menu", fallback_menu_id=99999),
             "IVR menu not found", "", exc=NotFound)
    _rejects(lambda: save(SYS, tid, None, name="M", items=[{"digit": "12", "action": "hangup"}]),
             "an IVR key must be one of 0-9, * or #", "items")
    _rejects(lambda: save(SYS, tid, None, name="M", items=[{"digit": "1", "action": "hangup"},
                                                           {"digit": "1", "action": "voicemail"}]),
             "key 1 is used twice", "items")
    _rejects(lambda: save(SYS, tid, None, name="M", items=[{"digit": "#", "action": "fax"}]),
             "items must be one of: department, employee, dial_extension, voicemail, menu, hangup", "items")
    for action, what in (("department", "a department"), ("employee", "an employee"), ("menu", "a menu")):
        _rejects(lambda action=action: save(SYS, tid, None, name="M", items=[{"digit": "*", "action": action}]),
                 f"key *: choose {what}", "items")
    _rejects(lambda: save(SYS, tid, None, name="M", items=[{"digit": "2", "action": "employee", "employee_id": 99999}]),
             "employee not found", "", exc=NotFound)
    assert svc.ivr.list(SYS, tid) == []
    menu = save(SYS, tid, None, name="M", fallback_kind="employee", fallback_employee_id=a.id,
                fallback_department_id=5, items=[{"digit": "0", "action": "employee", "employee_id": a.id,
                                                  "department_id": 7}])
    assert (menu.fallback_department_id, menu.fallback_employee_id, menu.fallback_menu_id) == (None, a.id, None)
    assert menu.items[0].department_id is None and menu.items[0].employee_id == a.id
    _rejects(lambda: save(SYS, tid, menu.id, fallback_kind="menu", fallback_menu_id=menu.id),
             "a menu cannot fall back to itself", "fallback_menu_id")
    menu = save(SYS, tid, menu.id, fallback_kind="hangup")
    assert (menu.fallback_department_id, menu.fallback_employee_id, menu.fallback_menu_id) == (None, None, None)
    assert len(menu.items) == 1  # items=None leaves them


def test_audit_and_notify_of_each_change(co, pool, monkeypatch):
    svc, tid, a, b = co
    sent = []
    real_notify = repos.notify

    def notify(cur, payload):
        sent.append(dict(payload))
        real_notify(cur, payload)

    monkeypatch.setattr(repos, "notify", notify)
    with pool.transaction() as cur:
        cur.execute("SELECT max(id) AS n FROM audit_log")
        first = cur.fetchone()["n"]
    dep = svc.departments.create(SYS, tid, name="Sales", members=[a.id], ring_timeout="30")
    svc.departments.update(SYS, tid, dep.id, strategy="in_order")
    num = svc.numbers.create(SYS, tid, did="+74951110000", dest_kind="department", dest_department_id=dep.id)
    svc.numbers.update(SYS, tid, num.id, name="Main line")
    menu = svc.ivr.save(SYS, tid, None, name="Main", items=[{"digit": "1", "action": "hangup"}])
    svc.ivr.save(SYS, tid, menu.id, timeout_s=7)
    svc.ivr.delete(SYS, tid, menu.id)
    svc.numbers.delete(SYS, tid, num.id)
    svc.departments.delete(SYS, tid, dep.id)
    with pool.transaction() as cur:
        cur.execute("SELECT tenant_id, actor, action, entity, entity_id, details FROM audit_log WHERE id > %s"
                    " ORDER BY id", (first,))
        audit = [dict(r) for r in cur.fetchall()]
    d, n, m = str(dep.id), str(num.id), str(menu.id)
    assert [(r["action"], r["entity"], r["entity_id"], r["details"]) for r in audit] == [
        ("create", "department", d, {"name": "Sales", "ring_timeout": 30, "members": [a.id]}),
        ("update", "department", d, {"strategy": "in_order", "members": [a.id]}),
        ("create", "number", n, {"did": "+74951110000", "dest_kind": "department", "dest_department_id": dep.id}),
        ("update", "number", n, {"name": "Main line"}),
        ("create", "ivr", m, {"name": "Main", "items": 1}),
        ("update", "ivr", m, {"timeout_s": 7, "items": 1}),
        ("delete", "ivr", m, {"name": "Main"}),
        ("delete", "number", n, {"did": "+74951110000"}),
        ("delete", "department", d, {"name": "Sales"}),
    ]
    assert {(r["tenant_id"], r["actor"]) for r in audit} == {(tid, "system:test")}
    dom = "acme.example"
    assert sent == [
        {"entity": "department", "op": "create", "tenant_id": tid, "id": dep.id, "domain": dom},
        {"entity": "department", "op": "update", "tenant_id": tid, "id": dep.id, "domain": dom},
        {"entity": "number", "op": "create", "tenant_id": tid, "id": num.id, "domain": dom, "did": "+74951110000"},
        {"entity": "number", "op": "update", "tenant_id": tid, "id": num.id, "domain": dom, "did": "+74951110000"},
        {"entity": "ivr", "op": "create", "tenant_id": tid, "id": menu.id, "domain": dom},
        {"entity": "ivr", "op": "update", "tenant_id": tid, "id": menu.id, "domain": dom},
        {"entity": "ivr", "op": "delete", "tenant_id": tid, "id": menu.id},
        {"entity": "number", "op": "delete", "tenant_id": tid, "id": num.id, "did": "+74951110000"},
        {"entity": "department", "op": "delete", "tenant_id": tid, "id": dep.id},
    ]


def test_a_new_main_number_takes_over_from_the_old_one(pool):
    from fsd.services import Actor, Services

    svc, sys_ = Services(pool=pool), Actor.system("test")
    t = svc.tenants.create(sys_, name="Main Co", domain="main.example.ru", max_users=3)
    first = svc.numbers.create(sys_, t.id, did="+74950000001")
    assert first.is_main
    second = svc.numbers.create(sys_, t.id, did="+74950000002", is_main=True)
    assert second.is_main
    by_id = {n.id: n for n in svc.numbers.list(sys_, t.id)}
    assert not by_id[first.id].is_main and by_id[second.id].is_main
    third = svc.numbers.create(sys_, t.id, did="+74950000003")
    assert not third.is_main and svc.numbers.get(sys_, t.id, second.id).is_main
