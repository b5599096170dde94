"""Fixtures for the cabinet and API: an app over a fresh database with two companies and the three
roles, a Flask test client per role, API tokens, and a real SMTP server in a subprocess."""

from __future__ import annotations

import dataclasses
import re

import pytest

from fsd import config as fsd_config
from fsd.metrics import Metrics
from fsd.services import Actor, MailSettings, Services

SYSTEM = Actor.system("test")
OPERATOR_TOKEN = "op-token-for-tests-0123456789"


@dataclasses.dataclass
class World:
    services: Services
    config: object
    app: object
    metrics: Metrics
    tenant: object
    other: object
    people: dict  # role -> (employee, password)
    other_admin: tuple

    def client(self, role: str | None = None, *, tenant: str = "main"):
        c = self.app.test_client()
        if role is not None:
            emp, pw = self.people[role] if tenant == "main" else self.other_admin
            dom = self.tenant.domain if tenant == "main" else self.other.domain
            r = c.get("/login")
            token = csrf_from(r.get_data(as_text=True))
            r = c.post("/login", data={"login": f"{emp.login}@{dom}", "password": pw, "csrf_token": token})
            assert r.status_code == 302, r.get_data(as_text=True)[:2000]
        return c

    def token(self, role: str, *, tenant: str = "main") -> str:
        emp = self.people[role][0] if tenant == "main" else self.other_admin[0]
        actor = Actor.employee(tenant_id=emp.tenant_id, employee_id=emp.id, role=emp.role, login=emp.login)
        return self.app.extensions["fsd"].tokens.create(actor, emp.tenant_id, name=f"t-{role}").token


def csrf_from(html: str) -> str:
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html)
    assert m, "no csrf token in page"
    return m.group(1)


def make_config(**http):
    cfg = fsd_config.Config()
    return fsd_config.replace(cfg, http={"secret_key": "test-secret", "operator_token": OPERATOR_TOKEN,
                                         "login_attempts_per_minute": 5, **http})


def build_world(pool, *, config=None, mailer=None) -> World:
    from fsd.web.app import create_app

    cfg = config or make_config()
    services = Services(pool=pool, mail=MailSettings(cabinet_url="http://cabinet.test", sip_server="sip.test"))
    metrics = Metrics()
    app = create_app(services=services, config=cfg, metrics=metrics, mailer=mailer)
    app.config["TESTING"] = True
    t = services.tenants.create(SYSTEM, name="Рога и копыта", domain="roga.example.com", max_users=10)
    o = services.tenants.create(SYSTEM, name="Other Co", domain="other.example.com", max_users=5)
    people = {}
    for role, name in (("admin", "Иван Петров"), ("user", "Мария Сидорова"), ("limited", "Олег Орлов")):
        c = services.employees.create(SYSTEM, t.id, name=name, role=role)
        people[role] = (c.employee, c.password)
    oa = services.employees.create(SYSTEM, o.id, name="Other Admin", role="admin")
    return World(services=services, config=cfg, app=app, metrics=metrics, tenant=t, other=o, people=people,
                 other_admin=(oa.employee, oa.password))


@pytest.fixture
def world(pool):
    return build_world(pool)


@pytest.fixture
def smtp(tmp_path):
    from tests.smtp_server import SmtpSink

    sink = SmtpSink(str(tmp_path))
    sink.start()
    yield sink
    sink.stop()


def wav_bytes(seconds: float = 0.3, rate: int = 16000) -> bytes:
    """A short stereo-less 16 kHz sine WAV (the upload path converts it to 8 kHz mono)."""
    import io
    import math
    import struct
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        n = int(seconds * rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(n)))
    return buf.getvalue()


@dataclasses.dataclass
class Objects:
    ids: dict  # name -> id in the main company
    other: dict  # name -> id in the other company


def seed_objects(w: World) -> Objects:
    """Every kind of object in both companies (what the API rights matrix addresses)."""
    from datetime import UTC, datetime, timedelta

    from fsd.store import web_repo

    s = w.services
    ctx = w.app.extensions["fsd"]

    def company(t, admin_emp, members):
        ids = {}
        tgt = s.employees.create(SYSTEM, t.id, name="Target Person", email="target@example.com", role="user")
        ids["employee"] = tgt.employee.id
        dep = s.departments.create(SYSTEM, t.id, name="Sales", members=members)
        ids["department"] = dep.id
        ids["department_free"] = s.departments.create(SYSTEM, t.id, name="Spare").id
        ids["menu"] = s.ivr.save(SYSTEM, t.id, None, name="Main menu",
                                 items=[{"digit": "1", "action": "department", "department_id": dep.id}]).id
        did = "+7495000" + ("1001" if t.id == w.tenant.id else "2002")
        ids["number"] = s.numbers.create(SYSTEM, t.id, did=did, dest_kind="department", dest_department_id=dep.id).id
        ids["prompt"] = ctx.prompts.upload(SYSTEM, t.id, name="hello", data=wav_bytes(), filename="hello.wav").id
        now = datetime.now(UTC)
        with s.pool.transaction() as cur:
            ids["voicemail"] = web_repo.voicemail_insert(cur, tenant_id=t.id, call_uuid=f"vm-{t.id}",
                                                         employee_id=admin_emp.id, caller="+79161234567",
                                                         duration_s=3, path="/nonexistent.wav", size_bytes=10,
                                                         audio=wav_bytes(0.1))
            ids["callback"] = web_repo.callback_insert(cur, tenant_id=t.id, department_id=dep.id,
                                                       caller="+79161234567", position=1)
            for i, res in enumerate(("answered", "missed", "abandoned", "answered")):
                web_repo.call_insert(cur, tenant_id=t.id, call_uuid=f"c-{t.id}-{i}", direction="inbound",
                                     caller="+79161234567", called=did, department_id=dep.id,
                                     answered_by=admin_emp.id if res == "answered" else None,
                                     started_at=now - timedelta(minutes=10 + i), ended_at=now - timedelta(minutes=i),
                                     wait_s=5 + i, talk_s=60 if res == "answered" else 0, result=res)
            cur.execute("SELECT id FROM email_outbox WHERE tenant_id = %s ORDER BY id LIMIT 1", (t.id,))
            ids["letter"] = cur.fetchone()["id"]
        actor = Actor.employee(tenant_id=t.id, employee_id=admin_emp.id, role="admin", login=admin_emp.login)
        ids["token"] = ctx.tokens.create(actor, t.id, name="admin token").info["id"]
        return ids

    s.gateways.create(SYSTEM, name="trunk", proxy="sip.provider.ru", username="7495", password="s3cret")
    main = company(w.tenant, w.people["admin"][0], [w.people["admin"][0].id, w.people["user"][0].id])
    other = company(w.other, w.other_admin[0], [w.other_admin[0].id])
    return Objects(ids=main, other=other)
