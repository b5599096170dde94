"""The demo company «Ромашка»: employees, departments (one per strategy), numbers, IVR, schedule.

Loaded through the service layer, exactly as an operator and an admin would; idempotent (a company
that already exists is left as it is).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fsd.errors import NotFound
from fsd.services import Actor, Services

log = logging.getLogger(__name__)

DOMAIN = "romashka.demo.local"

EMPLOYEES = [
    # name, role, position, mobile, forwarding
    ("Иванов Пётр", "admin", "Директор", "+79161234501", "off"),
    ("Смирнова Анна", "user", "Менеджер по продажам", "+79161234502", "off"),
    ("Кузнецов Алексей", "user", "Менеджер по продажам", "+79161234503", "delayed"),
    ("Попова Мария", "user", "Менеджер по продажам", None, "off"),
    ("Васильев Дмитрий", "user", "Инженер поддержки", None, "off"),
    ("Соколова Елена", "user", "Инженер поддержки", "+79161234506", "off"),
    ("Михайлов Сергей", "user", "Инженер поддержки", None, "off"),
    ("Новикова Ольга", "limited", "Бухгалтер", None, "off"),
    ("Фёдоров Андрей", "limited", "Бухгалтер", "+79161234509", "instant"),
    ("Морозова Татьяна", "user", "Юрист", None, "off"),
    ("Волков Николай", "user", "Менеджер по продажам", None, "off"),
    ("Алексеева Ирина", "user", "Офис-менеджер", None, "off"),
]


@dataclass
class DemoCompany:
    tenant_id: int
    domain: str
    admin_login: str
    passwords: dict[str, str] = field(default_factory=dict)  # login → password (demo only)
    extensions: dict[str, str] = field(default_factory=dict)  # login → extension
    dids: list[str] = field(default_factory=list)


def load(services: Services) -> DemoCompany | None:
    """Create the demo company; None when it already exists."""
    sys_ = Actor.system("demo")
    try:
        services.tenants.by_domain(sys_, DOMAIN)
        return None
    except NotFound:
        pass
    t = services.tenants.create(sys_, name="Ромашка", domain=DOMAIN, max_users=20, timezone="Europe/Moscow")
    demo = DemoCompany(tenant_id=t.id, domain=DOMAIN, admin_login="")
    logins = []
    for name, role, position, mobile, fwd in EMPLOYEES:
        c = services.employees.create(sys_, t.id, name=name, role=role, position=position, mobile=mobile,
                                      forward_mode=fwd, forward_delay=10,
                                      email=f"{len(logins) + 1}@romashka.demo.local")
        demo.passwords[c.employee.login] = c.password
        demo.extensions[c.employee.login] = c.employee.extension
        logins.append(c.employee.login)
        if role == "admin" and not demo.admin_login:
            demo.admin_login = c.employee.login
    # open every day 07:00-23:00 (so the demo lives on any day), closed on 1 January
    services.tenants.set_schedule(sys_, t.id, intervals=[(d, "07:00", "23:00") for d in range(7)],
                                  exceptions=[{"day": "2027-01-01", "closed": True, "note": "Новый год"}])
    sales = services.departments.create(sys_, t.id, name="Отдел продаж", extension="300", strategy="simultaneous",
                                        members=[logins[1], logins[2], logins[3], logins[10]], ring_timeout=40,
                                        impatient_enabled=True, impatient_threshold=20,
                                        no_answer_action="voicemail")
    support = services.departments.create(sys_, t.id, name="Техподдержка", extension="310", strategy="in_order",
                                          members=[logins[4], logins[5], logins[6]], step_delay=10,
                                          ring_timeout=45, no_answer_action="transfer_department",
                                          no_answer_department_id=sales.id)
    accounting = services.departments.create(sys_, t.id, name="Бухгалтерия", extension="320", strategy="evenly",
                                             members=[logins[7], logins[8]], step_delay=10, ring_timeout=30,
                                             no_answer_action="forward_external",
                                             no_answer_number="+79161234501")
    services.departments.create(sys_, t.id, name="Юристы", extension="330", strategy="cascade",
                                members=[logins[9], logins[0]], step_delay=8, ring_timeout=30)
    menu = services.ivr.save(sys_, t.id, None, name="Главное меню", timeout_s=5, max_repeats=2,
                             fallback_kind="department", fallback_department_id=sales.id,
                             items=[{"digit": "1", "action": "department", "department_id": sales.id},
                                    {"digit": "2", "action": "department", "department_id": support.id},
                                    {"digit": "3", "action": "department", "department_id": accounting.id},
                                    {"digit": "9", "action": "dial_extension"},
                                    {"digit": "0", "action": "voicemail"}])
    n1 = services.numbers.create(sys_, t.id, did="+74951234567", name="Основной", dest_kind="ivr",
                                 dest_ivr_id=menu.id, mode="always")
    n2 = services.numbers.create(sys_, t.id, did="+74957654321", name="Продажи", dest_kind="department",
                                 dest_department_id=sales.id, mode="schedule", offhours_action="voicemail")
    demo.dids = [n1.did, n2.did]
    log.info("demo_loaded tenant=%s employees=%s", t.id, len(logins))
    return demo
