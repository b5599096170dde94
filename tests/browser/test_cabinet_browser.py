"""The cabinet in real headless Chromium against fsd's gevent HTTP server, with a real SMTP server."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from fsd import config as fsd_config
from fsd.domain import rules
from fsd.mailer import Mailer
from fsd.services import Actor
from fsd.web.server import Dispatcher, HttpServer
from tests.helpers import wait_for
from tests.web.conftest import build_world, make_config

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def driver():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("chromium / chromedriver not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="fsd-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={profile}", "--window-size=1400,1000"):
        opts.add_argument(flag)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.implicitly_wait(0)
    try:
        yield d
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def site(pool, smtp):
    cfg = fsd_config.replace(make_config(), smtp={"host": "127.0.0.1", "port": smtp.port, "retry_interval_s": 1})
    mailer = Mailer(pool=pool, smtp=cfg.smtp, poll_interval_s=0.2)
    world = build_world(pool, config=cfg, mailer=mailer)
    server = HttpServer(host="127.0.0.1", port=0, app=Dispatcher(default=world.app))
    server.start()
    mailer.start()
    try:
        yield world, f"http://127.0.0.1:{server.port}"
    finally:
        mailer.stop()
        server.stop()


def _wait(driver, predicate, timeout=10.0, message="browser condition"):
    return wait_for(lambda: predicate(driver), timeout=timeout, interval=0.05, message=message)


def _by(driver, css):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def _sign_in(driver, base, login, password):
    driver.get(base + "/login")
    _by(driver, "#login").send_keys(login)
    _by(driver, "#password").send_keys(password)
    _by(driver, "#signin").click()
    _wait(driver, lambda d: "/login" not in d.current_url, message="sign-in redirect")


def test_admin_and_limited_user_in_a_real_browser(driver, site, smtp):
    from selenium.webdriver.support.ui import Select

    world, base = site
    admin, admin_pw = world.people["admin"]
    _sign_in(driver, base, f"{admin.login}@{world.tenant.domain}", admin_pw)
    assert "3 из 10 пользователей" in _by(driver, "#usage").text

    # -- add an employee: login suggested from the name, "Create new password", one-time credentials
    _by(driver, "#add-employee").click()
    _wait(driver, lambda d: "/employees/new" in d.current_url)
    first_pw = _by(driver, "#password").get_attribute("value")
    _by(driver, "#name").send_keys("Анна Смирнова")
    expected_login = rules.suggest_login("Анна Смирнова", {e.login for e, _ in world.people.values()})
    _wait(driver, lambda d: _by(d, "#login").get_attribute("value") == expected_login, message="login suggestion")
    _by(driver, "#new-password").click()
    _wait(driver, lambda d: _by(d, "#password").get_attribute("value") not in ("", first_pw),
          message="new password")
    _by(driver, "#email").send_keys("anna@example.com")
    _by(driver, "#save").click()
    _wait(driver, lambda d: d.find_elements("css selector", "#c-password"), message="credentials page")
    login = _by(driver, "#c-login").text
    password = _by(driver, "#c-password").text
    extension = _by(driver, "#c-extension").text
    assert login == expected_login and extension.isdigit() and len(password) >= 8
    [msg] = smtp.wait_messages(1)
    body = msg.get_content()
    assert msg["To"] == "anna@example.com"
    assert login in body and password in body and extension in body and world.tenant.domain in body

    # -- a department with the impatient-callers option
    driver.get(base + "/departments/new")
    _by(driver, "#name").send_keys("Продажи")
    Select(_by(driver, "#strategy")).select_by_value("in_order")
    anna = world.services.employees.find(Actor.system(), world.tenant.id, login)
    _by(driver, f"#member_{anna.id}").click()
    _by(driver, f"#member_{admin.id}").click()
    # move Anna above the admin with the arrow
    row = _by(driver, f'tr.member-row[data-id="{anna.id}"]')
    for _ in range(5):
        ids = [r.get_attribute("data-id") for r in driver.find_elements("css selector", "tr.member-row")]
        if ids.index(str(anna.id)) < ids.index(str(admin.id)):
            break
        row.find_element("css selector", "button.up").click()
    _by(driver, "#impatient_enabled").click()
    thr = _by(driver, "#impatient_threshold")
    thr.clear()
    thr.send_keys("25")
    _by(driver, "#save").click()
    _wait(driver, lambda d: "ok=1" in d.current_url, message="department saved")
    dep = world.services.departments.find(Actor.system(), world.tenant.id, "Продажи")
    assert dep.impatient_enabled and dep.impatient_threshold == 25 and dep.strategy == "in_order"
    assert dep.member_ids == [anna.id, admin.id]

    # -- route a number to it and see the scheme
    num = world.services.numbers.create(Actor.system(), world.tenant.id, did="+74951234567")
    driver.get(f"{base}/numbers/{num.id}")
    Select(_by(driver, "#dest_kind")).select_by_value("department")
    Select(_by(driver, "#dest_department_id")).select_by_value(str(dep.id))
    _by(driver, "#save").click()
    _wait(driver, lambda d: "ok=1" in d.current_url, message="number saved")
    scheme = _by(driver, "#scheme").text
    assert "Department Продажи" in scheme and "Impatient-caller offer" in scheme and "+74951234567" in scheme

    # -- a limited user cannot reach others' statistics
    _by(driver, "#logout").click()
    _wait(driver, lambda d: "/login" in d.current_url)
    lim, lim_pw = world.people["limited"]
    _sign_in(driver, base, f"{lim.login}@{world.tenant.domain}", lim_pw)
    driver.get(f"{base}/stats?employee_id={admin.id}")
    assert "403" in _by(driver, "#error-title").text
    driver.get(f"{base}/stats")
    assert "Ваша статистика" in driver.page_source
    driver.get(f"{base}/audit")
    assert "403" in _by(driver, "#error-title").text
