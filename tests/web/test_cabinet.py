"""The cabinet pages: sign-in, rights, the Add employee flow, departments, numbers, statistics, and
security (CSRF, XSS, SQL injection, rate limiting)."""

from __future__ import annotations

import html
import io
import re

from fsd.domain import rules
from fsd.services import Actor
from tests.web.conftest import build_world, csrf_from, make_config, seed_objects, wav_bytes


def _post(client, url, data, *, get_url=None, **kw):
    page = client.get(get_url or url)
    data = {"csrf_token": csrf_from(page.get_data(as_text=True)), **data}
    return client.post(url, data=data, **kw)


def _text(r) -> str:
    return html.unescape(r.get_data(as_text=True))


# -- sign-in ---------------------------------------------------------------------------------------
def test_sign_in_is_russian_by_default_and_english_on_request(world):
    c = world.app.test_client()
    assert "Вход" in _text(c.get("/login"))
    r = c.get("/login?lang=en")
    assert "Sign in" in _text(r)
    assert "fsd_lang=en" in r.headers.get("Set-Cookie", "")
    assert "Sign in" in _text(c.get("/login"))  # the cookie keeps English


def test_pages_need_sign_in(world):
    c = world.app.test_client()
    r = c.get("/employees")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_wrong_password_is_refused_with_a_clear_message(world):
    c = world.app.test_client()
    emp, _ = world.people["admin"]
    r = _post(c, "/login", {"login": f"{emp.login}@{world.tenant.domain}", "password": "Wrong-pass-1"})
    assert r.status_code == 401
    assert "Неверный логин или пароль" in _text(r)
    r = _post(c, "/login", {"login": "no-at-sign", "password": "x"})
    assert r.status_code == 401 and "логин@домен" in _text(r)


def test_failed_sign_ins_are_rate_limited_per_login(world):
    c = world.app.test_client()
    emp, pw = world.people["user"]
    login = f"{emp.login}@{world.tenant.domain}"
    for _ in range(5):
        assert _post(c, "/login", {"login": login, "password": "Wrong-pass-1"}).status_code == 401
    r = _post(c, "/login", {"login": login, "password": pw})  # even the right password waits now
    assert r.status_code == 429
    assert "Слишком много неудачных попыток" in _text(r)
    # another login from the same address is not yet blocked (the per-IP limit is higher)
    other, opw = world.people["admin"]
    assert _post(c, "/login", {"login": f"{other.login}@{world.tenant.domain}", "password": opw}).status_code == 302


def test_sign_out_ends_the_session(world):
    c = world.client("admin")
    assert c.get("/employees").status_code == 200
    r = _post(c, "/logout", {}, get_url="/employees")
    assert r.status_code == 302
    assert c.get("/employees").status_code == 302


def test_deleted_employee_is_signed_out_at_once(world):
    c = world.client("limited")
    emp = world.people["limited"][0]
    world.services.employees.delete(Actor.system(), world.tenant.id, emp.id)
    assert c.get("/employees").status_code == 302


# -- employees -------------------------------------------------------------------------------------
def test_employees_page_shows_n_of_m_users(world):
    r = world.client("user").get("/employees")
    assert r.status_code == 200
    assert re.search(r'id="usage">\s*3 из 10 пользователей', r.get_data(as_text=True))
    assert "Добавить сотрудника" not in _text(r)  # only admins add
    assert "Добавить сотрудника" in _text(world.client("admin").get("/employees"))


def test_admin_adds_employee_and_sees_credentials_once(world):
    c = world.client("admin")
    page = c.get("/employees/new")
    text = _text(page)
    for label in ("Имя сотрудника", "Логин", "Пароль", "Создать новый пароль", "Должность", "Права в системе",
                  "Внутренний номер", "E-mail", "Моб. телефон", "Переадресация"):
        assert label in text
    r = c.post("/employees/new", data={
        "csrf_token": csrf_from(page.get_data(as_text=True)), "name": "Анна Смирнова", "login": "",
        "password": "", "position": "Менеджер", "role": "user", "extension": "", "email": "anna@example.com",
        "mobile": "8 912 345-67-89", "forward_mode": "delayed", "forward_delay": "20", "enabled": "y"})
    assert r.status_code == 200, _text(r)[:2000]
    body = r.get_data(as_text=True)
    login = re.search(r'id="c-login">([^<]+)<', body).group(1)
    password = html.unescape(re.search(r'id="c-password">([^<]+)<', body).group(1))
    ext = re.search(r'id="c-extension">([^<]+)<', body).group(1)
    assert login == "asmirnova" or login.startswith("a")
    assert ext.isdigit() and not ext.startswith("0")
    assert "anna@example.com" in body
    emp = world.services.employees.find(Actor.system(), world.tenant.id, login)
    assert emp.mobile == "+79123456789" and emp.forward_mode == "delayed" and emp.forward_delay == 20
    assert rules.verify_password(emp.password_hash, password)
    assert password not in _text(c.get(f"/employees/{emp.id}"))  # never shown again
    with world.services.pool.transaction() as cur:
        cur.execute("SELECT recipient, body FROM email_outbox WHERE recipient = 'anna@example.com'")
        letter = cur.fetchone()
    assert password in letter["body"] and ext in letter["body"]
    # the new employee can sign in with it
    c2 = world.app.test_client()
    assert _post(c2, "/login", {"login": f"{login}@{world.tenant.domain}", "password": password}).status_code == 302


def test_suggest_endpoint_gives_login_from_name(world):
    c = world.client("admin")
    d = c.get("/api/v1/employees/suggest?name=Пётр Иванов").get_json()
    assert d["login"].startswith("p") and "ivanov" in d["login"]
    assert d["extension"].isdigit()
    rules.validate_password(d["password"])
    assert world.client("user").get("/api/v1/employees/suggest?name=x").status_code == 403


def test_bad_extension_gets_the_rule_in_russian(world):
    c = world.client("admin")
    for ext, needle in (("112", "экстренной или справочной"), ("012", "не может начинаться с 0"),
                        ("12a", "только из цифр")):
        r = _post(c, "/employees/new", {"name": "Тест Тестов", "extension": ext, "role": "user",
                                        "forward_mode": "off", "enabled": "y"})
        assert r.status_code == 400
        assert needle in _text(r), ext
    assert len(world.services.employees.list(Actor.system(), world.tenant.id)) == 3


def test_tariff_limit_is_a_clear_message(pool):
    world = build_world(pool)
    world.services.tenants.update(Actor.system(), world.tenant.id, max_users=3)
    r = _post(world.client("admin"), "/employees/new", {"name": "Лишний", "role": "user", "forward_mode": "off"})
    assert r.status_code == 400
    assert "Достигнут лимит тарифа: 3 из 3" in _text(r)


def test_user_cannot_add_or_edit_others_but_edits_own_profile(world):
    c = world.client("user")
    assert c.get("/employees/new").status_code == 403
    admin = world.people["admin"][0]
    assert c.get(f"/employees/{admin.id}").status_code == 403
    me = world.people["user"][0]
    r = _post(c, f"/employees/{me.id}", {"name": me.name, "position": "Бухгалтер", "role": "admin",
                                         "forward_mode": "off"})
    assert r.status_code == 302
    emp = world.services.employees.get(Actor.system(), world.tenant.id, me.id)
    assert emp.position == "Бухгалтер" and emp.role == "user"  # rights are not self-service


def test_csrf_token_is_required(world):
    c = world.client("admin")
    r = c.post("/employees/new", data={"name": "Без Токена", "role": "user", "forward_mode": "off"})
    assert r.status_code == 400
    assert len(world.services.employees.list(Actor.system(), world.tenant.id)) == 3
    # session-authenticated API writes need the token in a header
    r = c.post("/api/v1/tokens", json={"name": "x"})
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "csrf_token"
    token = csrf_from(c.get("/tokens").get_data(as_text=True))
    r = c.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRFToken": token})
    assert r.status_code == 201


def test_xss_payloads_are_rendered_inert(world):
    c = world.client("admin")
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    tok = {"Authorization": f"Bearer {world.token('admin')}"}
    emp = c.post("/api/v1/employees", json={"name": evil, "position": evil}, headers=tok).get_json()["employee"]
    dep = c.post("/api/v1/departments", json={"name": evil, "members": [emp["id"]]}, headers=tok).get_json()
    number = world.services.numbers.create(Actor.system(), world.tenant.id, did="+74951112233",
                                           dest_kind="department", dest_department_id=dep["id"])
    for path in ("/employees", f"/employees/{emp['id']}", "/departments", f"/departments/{dep['id']}",
                 f"/numbers/{number.id}", "/audit", "/history", "/stats"):
        body = c.get(path).get_data(as_text=True)
        assert "<script>alert" not in body and "<img src=x" not in body, path
    assert "&lt;script&gt;" in c.get("/employees").get_data(as_text=True)
    svg = c.get(f"/numbers/{number.id}/scheme.svg").get_data(as_text=True)
    assert "<script" not in svg and "&lt;script&gt;" in svg


def test_sql_injection_strings_are_stored_literally(world):
    tok = {"Authorization": f"Bearer {world.token('admin')}"}
    c = world.app.test_client()
    name = "Robert'); DROP TABLE employees;--"
    r = c.post("/api/v1/employees", json={"name": name, "position": "' OR '1'='1"}, headers=tok)
    assert r.status_code == 201
    got = c.get(f"/api/v1/employees/{r.get_json()['employee']['id']}", headers=tok).get_json()
    assert got["name"] == name and got["position"] == "' OR '1'='1"
    assert len(c.get("/api/v1/employees", headers=tok).get_json()) == 4
    r = c.get("/api/v1/calls?employee_id=1%20OR%201=1", headers=tok)
    assert r.status_code == 400 and r.get_json()["error"]["field"] == "employee_id"
    r = c.get("/api/v1/calls?result=answered'%20OR%20'1'='1", headers=tok)
    assert r.status_code == 400
    r = world.client("admin").get("/history?since=2026-01-01'--")
    assert r.status_code == 400


# -- departments and numbers -----------------------------------------------------------------------
def test_department_save_applies_members_order_and_impatient_option(world):
    c = world.client("admin")
    a, u, lim = (world.people[r][0] for r in ("admin", "user", "limited"))
    r = _post(c, "/departments/new", {
        "name": "Продажи", "extension": "300", "strategy": "in_order", "step_delay": "10", "ring_timeout": "40",
        "no_answer_action": "forward_external", "no_answer_number": "+7 916 123-45-67",
        "impatient_enabled": "on", "impatient_threshold": "25", "impatient_offer_callback": "on",
        "members": [str(lim.id), str(a.id)]})
    assert r.status_code == 302, _text(r)[:3000]
    dep = world.services.departments.find(Actor.system(), world.tenant.id, "Продажи")
    assert dep.member_ids == [lim.id, a.id]
    assert (dep.strategy, dep.step_delay, dep.ring_timeout) == ("in_order", 10, 40)
    assert dep.no_answer_number == "+79161234567"
    assert dep.impatient_enabled and dep.impatient_threshold == 25
    assert dep.impatient_offer_callback and not dep.impatient_offer_voicemail
    # a bad value changes nothing (one Save = one transaction)
    r = _post(c, f"/departments/{dep.id}", {"name": "Продажи", "strategy": "cascade", "step_delay": "10",
                                            "ring_timeout": "40", "no_answer_action": "transfer_employee",
                                            "impatient_threshold": "25", "members": [str(u.id)]})
    assert r.status_code == 400 and "выберите сотрудника" in _text(r)
    again = world.services.departments.get(Actor.system(), world.tenant.id, dep.id)
    assert again.strategy == "in_order" and again.member_ids == [lim.id, a.id]
    assert "Продажи" in _text(c.get("/audit"))
    assert world.client("user").get("/audit").status_code == 403
    r = _post(world.client("user"), f"/departments/{dep.id}", {"name": "Hacked"}, get_url="/departments")
    assert r.status_code == 403


def test_number_routing_greeting_upload_and_scheme(world):
    objs = seed_objects(world)
    c = world.client("admin")
    num_id = objs.ids["number"]
    page = c.get(f"/numbers/{num_id}")
    data = {"csrf_token": csrf_from(page.get_data(as_text=True)), "name": "Основной", "mode": "schedule",
            "dest_kind": "department", "dest_department_id": str(objs.ids["department"]),
            "offhours_action": "voicemail", "greeting_file": (io.BytesIO(wav_bytes(0.5, 44100)), "hello.wav")}
    r = c.post(f"/numbers/{num_id}", data=data, content_type="multipart/form-data")
    assert r.status_code == 302, _text(r)[:3000]
    num = world.services.numbers.get(Actor.system(), world.tenant.id, num_id)
    assert num.mode == "schedule" and num.greeting_prompt_id
    p = world.app.extensions["fsd"].prompts.get(Actor.system(), world.tenant.id, num.greeting_prompt_id)
    assert p.sample_rate == 8000
    audio = c.get(f"/api/v1/prompts/{p.id}/audio").data
    import wave

    with wave.open(io.BytesIO(audio)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    text = _text(c.get(f"/numbers/{num_id}"))
    for needle in ("Company schedule", "Greeting", "Department Sales", "out of hours", "Voicemail"):
        assert needle in text
    # a file that is not audio is refused with a clear message, nothing changes
    data = {"csrf_token": csrf_from(page.get_data(as_text=True)), "mode": "always", "dest_kind": "department",
            "dest_department_id": str(objs.ids["department"]), "offhours_action": "voicemail",
            "greeting_file": (io.BytesIO(b"this is not audio at all"), "greeting.wav")}
    r = c.post(f"/numbers/{num_id}", data=data, content_type="multipart/form-data")
    assert r.status_code == 400 and "не является аудиозаписью" in _text(r)
    assert world.services.numbers.get(Actor.system(), world.tenant.id, num_id).mode == "schedule"


def test_schedule_page_saves_intervals_and_holidays(world):
    c = world.client("admin")
    r = _post(c, "/schedule", {"day_0": "09:00-13:00, 14:00-18:00", "day_4": "09:00-17:00",
                               "exceptions": "2026-01-01 closed Новый год\n2026-12-31 10:00-15:00 короткий"})
    assert r.status_code == 302, _text(r)[:2000]
    s = world.services.tenants.schedule(Actor.system(), world.tenant.id)
    assert [(i.weekday, i.start_minute, i.end_minute) for i in s.intervals] == [(0, 540, 780), (0, 840, 1080),
                                                                                   (4, 540, 1020)]
    assert [(e.day.isoformat(), e.closed) for e in s.exceptions] == [("2026-01-01", True), ("2026-12-31", False)]
    r = _post(c, "/schedule", {"day_0": "18:00-09:00"})
    assert r.status_code == 400 and "Интервал должен заканчиваться позже" in _text(r)


# -- history, statistics, voicemail ----------------------------------------------------------------
def test_statistics_rights(world):
    objs = seed_objects(world)
    admin = world.people["admin"][0]
    lim = world.client("limited")
    r = lim.get(f"/stats?employee_id={admin.id}")
    assert r.status_code == 403 and "только своя статистика" in _text(r)
    r = lim.get("/stats")
    assert r.status_code == 200 and "Ваша статистика" in _text(r)
    assert re.search(r'id="stat-total">0<', r.get_data(as_text=True))  # the limited user answered nothing
    r = world.client("user").get("/stats")
    assert "Статистика компании" in _text(r)
    assert re.search(r'id="stat-total">4<', r.get_data(as_text=True))
    r = world.client("admin").get(f"/stats?employee_id={admin.id}")
    assert re.search(r'id="stat-answered">2<', r.get_data(as_text=True))
    assert "<svg" in r.get_data(as_text=True)
    # history: admin sees all calls, the others only their own
    assert "id=\"total\">4<" in world.client("admin").get("/history").get_data(as_text=True)
    assert "id=\"total\">0<" in world.client("user").get("/history").get_data(as_text=True)
    csv_text = world.client("admin").get("/api/v1/calls.csv").get_data(as_text=True)
    assert csv_text.count("\n") == 5 and "answered" in csv_text
    _ = objs


def test_voicemail_playback_and_rights(world):
    objs = seed_objects(world)
    vm = objs.ids["voicemail"]
    r = world.client("admin").get("/voicemail")
    assert f"/api/v1/voicemails/{vm}/audio" in r.get_data(as_text=True)
    audio = world.client("admin").get(f"/api/v1/voicemails/{vm}/audio")
    assert audio.status_code == 200 and audio.data[:4] == b"RIFF"
    assert world.client("limited").get(f"/api/v1/voicemails/{vm}/audio").status_code == 403
    assert f"/api/v1/voicemails/{vm}/audio" not in world.client("limited").get("/voicemail").get_data(as_text=True)


def test_callbacks_and_letters_pages(world):
    objs = seed_objects(world)
    c = world.client("admin")
    assert "+79161234567" in _text(c.get("/callbacks"))
    r = _post(c, f"/callbacks/{objs.ids['callback']}/cancel", {}, get_url="/callbacks")
    assert r.status_code == 302
    assert "отменён" in _text(c.get("/callbacks"))
    assert "target@example.com" in _text(c.get("/letters"))
    assert world.client("user").get("/letters").status_code == 403


def test_failed_letter_is_shown_on_the_employees_page(pool):
    world = build_world(pool, config=make_config())
    with world.services.pool.transaction() as cur:
        cur.execute("INSERT INTO email_outbox (tenant_id, kind, recipient, subject, body, status, attempts, "
                    "last_error) VALUES (%s, 'credentials', 'lost@example.com', 's', 'b', 'failed', 10, "
                    "'ConnectionRefusedError')", (world.tenant.id,))
    text = _text(world.client("admin").get("/employees"))
    assert "Письма, которые не удалось отправить" in text and "lost@example.com" in text
    assert "lost@example.com" not in _text(world.client("user").get("/employees"))


def test_database_down_is_503_not_a_crash(world):
    c = world.client("admin")
    tok = world.token("admin")
    world.services.pool.close()
    assert c.get("/employees").status_code == 503
    r = world.app.test_client().get("/api/v1/employees", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 503 and "database" in r.get_json()["error"]["message"]
    r = _post(world.app.test_client(), "/login", {"login": "a@b.example.com", "password": "x"}, get_url="/login")
    assert r.status_code == 503


def test_ivr_editor_saves_keys_and_fallback(world):
    objs = seed_objects(world)
    c = world.client("admin")
    dep, emp = objs.ids["department"], objs.ids["employee"]
    # digits are laid out 1..9, 0, *, # → index 0 is key 1, index 9 is key 0
    r = _post(c, "/ivr/new", {"name": "Главное меню", "timeout_s": "6", "max_repeats": "2", "ext_digits": "3",
                              "fallback_kind": "department", "fallback_target": f"department:{dep}",
                              "action_0": "department", "target_0": f"department:{dep}",
                              "action_1": "employee", "target_1": f"employee:{emp}",
                              "action_2": "dial_extension", "action_9": "voicemail"})
    assert r.status_code == 302, _text(r)[:2000]
    menu = [m for m in world.services.ivr.list(Actor.system(), world.tenant.id) if m.name == "Главное меню"][0]
    assert {(i.digit, i.action) for i in menu.items} == {("1", "department"), ("2", "employee"),
                                                         ("3", "dial_extension"), ("0", "voicemail")}
    assert menu.fallback_kind == "department" and menu.fallback_department_id == dep and menu.timeout_s == 6
    r = _post(c, f"/ivr/{menu.id}", {"name": "Главное меню", "timeout_s": "6", "max_repeats": "2", "ext_digits": "3",
                                     "fallback_kind": "voicemail", "action_0": "menu"})
    assert r.status_code == 400 and "Клавиша 1: выберите цель" in _text(r), re.findall(r'class="err"[^<]*<', _text(r))
    assert world.client("user").post(f"/ivr/{menu.id}/delete").status_code in (400, 403)


def test_prompt_upload_page_and_bad_file(world):
    c = world.client("admin")
    page = c.get("/prompts")
    assert "voicemail_greeting" in _text(page)  # the standard prompts are listed
    token = csrf_from(page.get_data(as_text=True))
    r = c.post("/prompts", data={"csrf_token": token, "name": "Приветствие", "kind": "greeting",
                                 "file": (io.BytesIO(wav_bytes(0.4, 22050)), "hello.wav")},
               content_type="multipart/form-data")
    assert r.status_code == 302
    [p] = [p for p in world.app.extensions["fsd"].prompts.list(Actor.system(), world.tenant.id) if p.tenant_id]
    assert p.name == "Приветствие" and p.sample_rate == 8000 and 300 <= p.duration_ms <= 500
    r = c.post("/prompts", data={"csrf_token": token, "name": "Вирус", "kind": "custom",
                                 "file": (io.BytesIO(b"MZ\x90\x00"), "setup.exe")},
               content_type="multipart/form-data")
    assert r.status_code == 400 and "Неподдерживаемый тип файла" in _text(r)
    r = world.client("user").post("/prompts", data={"csrf_token": token, "name": "x"})
    assert r.status_code in (400, 403)  # (the user's session has its own CSRF token)
    assert len([p for p in world.app.extensions["fsd"].prompts.list(Actor.system(), world.tenant.id)
                if p.tenant_id]) == 1


def test_token_page_shows_the_token_once_and_it_works(world):
    c = world.client("limited")
    r = _post(c, "/tokens", {"name": "мой скрипт"})
    token = re.search(r'id="new-token">([^<]+)<', r.get_data(as_text=True)).group(1)
    me = world.app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert me["employee"]["id"] == world.people["limited"][0].id
    assert token not in c.get("/tokens").get_data(as_text=True)
