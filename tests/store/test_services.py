"""Services and repositories against a real private PostgreSQL."""

import json

import psycopg2
import pytest

from fsd.domain import rules
from fsd.errors import Conflict, NotFound, PermissionDenied, ValidationError
from fsd.services import Actor, Services
from tests.helpers import wait_notifies

SYS = Actor.system("test")


@pytest.fixture
def svc(pool):
    return Services(pool=pool)


@pytest.fixture
def tenant(svc):
    return svc.tenants.create(SYS, name="Ромашка", domain="romashka.example.ru", max_users=3)


def count(pool, sql, *args):
    with pool.transaction() as cur:
        cur.execute(sql, args)
        return list(cur.fetchone().values())[0]


def test_create_employee_generates_login_password_extension(svc, tenant, pool):
    created = svc.employees.create(SYS, tenant.id, name="Иванов Пётр", email="petr@example.com",
                                   mobile="8 912 345-67-89", forward_mode="delayed")
    e = created.employee
    assert e.login == "ivanov.petr"
    assert e.extension == "200"
    assert e.mobile == "+79123456789" and e.forward_mode == "delayed" and e.forward_delay == 15
    assert rules.verify_password(e.password_hash, created.password)
    assert e.sip_a1_hash == rules.sip_a1_hash("ivanov.petr", tenant.domain, created.password)
    assert created.password not in json.dumps(e.public(), default=str)
    assert created.letter_queued
    with pool.transaction() as cur:
        cur.execute("SELECT recipient, subject, body FROM email_outbox")
        letter = cur.fetchone()
        cur.execute("SELECT count(*) AS n FROM audit_log WHERE entity = 'employee'")
        assert cur.fetchone()["n"] == 1
        cur.execute("SELECT password_hash FROM employees")
        assert created.password not in cur.fetchone()["password_hash"]
    assert letter["recipient"] == "petr@example.com"
    assert created.password in letter["body"] and "ivanov.petr" in letter["body"] and "200" in letter["body"]
    assert tenant.domain in letter["body"]
    second = svc.employees.create(SYS, tenant.id, name="Иванов Пётр").employee
    assert second.login == "ivanov.petr2" and second.extension == "201"


def test_tariff_cap(svc, tenant, pool):
    for i in range(3):
        svc.employees.create(SYS, tenant.id, name=f"User {i}")
    with pytest.raises(ValidationError, match="tariff limit reached: 3 of 3"):
        svc.employees.create(SYS, tenant.id, name="One Too Many")
    assert count(pool, "SELECT count(*) FROM employees") == 3
    assert svc.tenants.usage(SYS, tenant.id).label == "3 of 3"


def test_tariff_cap_in_schema(svc, tenant, pool):
    for i in range(3):
        svc.employees.create(SYS, tenant.id, name=f"User {i}")
    with pytest.raises(ValidationError, match="tariff"):
        from fsd.store import repos
        with pool.transaction() as cur:
            repos.employee_insert(cur, tenant_id=tenant.id, name="x", login="xx", extension="555" if False else "390",
                                  password_hash="x", sip_a1_hash="0" * 32)


@pytest.mark.parametrize("ext", sorted(rules.RESERVED_EXTENSIONS - {"04"}))
def test_reserved_extension_rejected_by_service(svc, tenant, ext, pool):
    with pytest.raises(ValidationError, match=f"extension {ext} is reserved"):
        svc.employees.create(SYS, tenant.id, name="Test", extension=ext)
    assert count(pool, "SELECT count(*) FROM employees") == 0


def test_extension_unique_across_employees_departments_features(svc, tenant, pool):
    svc.employees.create(SYS, tenant.id, name="A", extension="300")
    with pytest.raises(ValidationError, match="already used by an employee"):
        svc.employees.create(SYS, tenant.id, name="B", extension="300")
    with pytest.raises(ValidationError, match="already used by an employee"):
        svc.departments.create(SYS, tenant.id, name="Sales", extension="300")
    svc.departments.create(SYS, tenant.id, name="Sales", extension="310")
    with pytest.raises(ValidationError, match="already used by a department"):
        svc.employees.create(SYS, tenant.id, name="C", extension="310")
    code = sorted(rules.FEATURE_CODES)[0]
    with pytest.raises(ValidationError):
        svc.employees.create(SYS, tenant.id, name="D", extension=code)
    # auto allocation skips the department number and feature codes
    taken = {e.extension for e in svc.employees.list(SYS, tenant.id)}
    assert "310" not in taken


def test_extension_registry_enforced_by_schema(svc, tenant, pool):
    from fsd.store import repos
    svc.employees.create(SYS, tenant.id, name="A", extension="300")
    with pytest.raises(Conflict), pool.transaction() as cur:
        repos.department_insert(cur, tenant_id=tenant.id, name="Raw", extension="300")


def test_rejected_change_writes_nothing(svc, tenant, pool):
    before = count(pool, "SELECT count(*) FROM audit_log")
    with pytest.raises(ValidationError):
        svc.employees.create(SYS, tenant.id, name="A", mobile="not a phone")
    with pytest.raises(ValidationError):
        svc.departments.create(SYS, tenant.id, name="S", no_answer_action="forward_external")
    assert count(pool, "SELECT count(*) FROM audit_log") == before
    assert count(pool, "SELECT count(*) FROM departments") == 0


def test_department_save_is_atomic_with_members(svc, tenant, pool):
    a = svc.employees.create(SYS, tenant.id, name="Анна").employee
    b = svc.employees.create(SYS, tenant.id, name="Борис").employee
    dep = svc.departments.create(SYS, tenant.id, name="Продажи", strategy="in_order", step_delay=10,
                                 members=[b.login, a.extension], impatient_enabled=True)
    assert dep.member_ids == [b.id, a.id] and dep.impatient_threshold == 20
    with pytest.raises(NotFound):
        svc.departments.update(SYS, tenant.id, dep.id, strategy="cascade", members=[a.id, "nobody"])
    again = svc.departments.get(SYS, tenant.id, dep.id)
    assert again.strategy == "in_order" and again.member_ids == [b.id, a.id]
    dep = svc.departments.update(SYS, tenant.id, dep.id, strategy="cascade", members=[a.id, b.id],
                                 no_answer_action="forward_external", no_answer_number="+7 495 123-45-67")
    assert dep.member_ids == [a.id, b.id] and dep.no_answer_number == "+74951234567"


def test_numbers_and_ivr(svc, tenant):
    dep = svc.departments.create(SYS, tenant.id, name="Support")
    menu = svc.ivr.save(SYS, tenant.id, None, name="Main", items=[
        {"digit": "1", "action": "department", "department_id": dep.id},
        {"digit": "9", "action": "dial_extension"}])
    assert [i.digit for i in menu.items] == ["1", "9"]
    num = svc.numbers.create(SYS, tenant.id, did="8 (495) 111-22-33", dest_kind="ivr", dest_ivr_id=menu.id,
                             mode="schedule", offhours_action="forward", offhours_number="+79001112233")
    assert num.did == "+74951112233" and num.is_main
    with pytest.raises(Conflict):
        svc.numbers.create(SYS, tenant.id, did="+74951112233")
    with pytest.raises(ValidationError, match="destination department is required"):
        svc.numbers.update(SYS, tenant.id, num.id, dest_kind="department")
    other = svc.tenants.create(SYS, name="Other", domain="other.example.ru", max_users=2)
    with pytest.raises(NotFound):
        svc.numbers.update(SYS, other.id, num.id, dest_kind="voicemail")


def test_rights(svc, tenant):
    admin = svc.employees.create(SYS, tenant.id, name="Admin", role="admin").employee
    user = svc.employees.create(SYS, tenant.id, name="User", role="user").employee
    other = svc.tenants.create(SYS, name="Other", domain="other.example.ru", max_users=2)
    as_admin = Actor.employee(tenant_id=tenant.id, employee_id=admin.id, role="admin", login=admin.login)
    as_user = Actor.employee(tenant_id=tenant.id, employee_id=user.id, role="user", login=user.login)
    svc.employees.create(as_admin, tenant.id, name="Third")
    with pytest.raises(PermissionDenied):
        svc.employees.create(as_user, tenant.id, name="Nope")
    with pytest.raises(NotFound):
        svc.employees.list(as_admin, other.id)
    svc.employees.update(as_user, tenant.id, user.id, position="Manager")
    with pytest.raises(PermissionDenied):
        svc.employees.update(as_user, tenant.id, user.id, role="admin")
    with pytest.raises(PermissionDenied):
        svc.employees.update(as_user, tenant.id, admin.id, position="x")
    with pytest.raises(PermissionDenied):
        svc.tenants.create(as_admin, name="X", domain="x.example.ru", max_users=1)


def test_notify_reaches_listeners(svc, tenant, pool):
    conn = pool.listen_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("LISTEN fsd_config")
        e = svc.employees.create(SYS, tenant.id, name="Ann").employee
        svc.employees.reset_password(SYS, tenant.id, e.id)
        got = wait_notifies(conn, 2)
        assert got[0]["entity"] == "employee" and got[0]["login"] == e.login and got[0]["domain"] == tenant.domain
        assert got[1]["op"] == "reset_password"
    finally:
        conn.close()


def test_password_change_updates_sip_digest(svc, tenant):
    e = svc.employees.create(SYS, tenant.id, name="Ann").employee
    r = svc.employees.reset_password(SYS, tenant.id, e.id, password="NewPassw0rd!")
    assert r.employee.sip_a1_hash == rules.sip_a1_hash(e.login, tenant.domain, "NewPassw0rd!")
    assert r.employee.sip_a1_hash != e.sip_a1_hash


def test_schedule_roundtrip(svc, tenant):
    s = svc.tenants.set_schedule(SYS, tenant.id, intervals=[(d, "09:00", "18:00") for d in range(5)],
                                 exceptions=[{"day": "2027-01-01", "closed": True, "note": "Новый год"}])
    assert len(s.intervals) == 5 and s.exceptions[0].closed
    with pytest.raises(ValidationError, match="overlap"):
        svc.tenants.set_schedule(SYS, tenant.id, intervals=[(0, "09:00", "18:00"), (0, "17:00", "19:00")])
    assert len(svc.tenants.schedule(SYS, tenant.id).intervals) == 5


def test_sql_injection_strings_stored_literally(svc, tenant):
    evil = "Robert'); DROP TABLE employees;--"
    e = svc.employees.create(SYS, tenant.id, name=evil).employee
    assert svc.employees.get(SYS, tenant.id, e.id).name == evil


def test_pool_discards_broken_connection(pool):
    with pytest.raises(psycopg2.Error), pool.transaction() as cur:
        cur.execute("SELECT 1/0")
    assert pool.ping()
