"""The CLI end to end, as subprocesses against a real private PostgreSQL."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fsd(dsn, *args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSD_")}
    env["FSD_DATABASE_URL"] = dsn
    r = subprocess.run([sys.executable, "-m", "fsd", *args], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"fsd {args} exited {r.returncode}: {r.stderr}")
    return r


@pytest.fixture
def company(db_dsn):
    fsd(db_dsn, "tenant", "create", "--name", "Ромашка", "--domain", "romashka.test", "--max-users", "3")
    return db_dsn


def test_migrate_is_idempotent(db_dsn):
    r = fsd(db_dsn, "db", "migrate")
    assert "up to date" in r.stdout


def test_employee_create_prints_credentials(company):
    r = fsd(company, "employee", "create", "--tenant", "romashka.test", "--name", "Иванов Пётр",
            "--mobile", "8 912 345 67 89", "--forward", "instant")
    d = json.loads(r.stdout)
    assert d["login"] == "ivanov.petr" and d["extension"] == "200" and len(d["password"]) >= 12
    assert d["mobile"] == "+79123456789" and d["forward_mode"] == "instant"
    assert "password_hash" not in d and "sip_a1_hash" not in d
    listed = json.loads(fsd(company, "employee", "list", "--tenant", "romashka.test", "--json").stdout)
    assert [e["login"] for e in listed] == ["ivanov.petr"]
    shown = json.loads(fsd(company, "employee", "show", "--tenant", "romashka.test", "200", "--json").stdout)
    assert shown["id"] == d["id"]
    upd = json.loads(fsd(company, "employee", "update", "--tenant", "romashka.test", "ivanov.petr",
                         "--position", "Менеджер").stdout)
    assert upd["position"] == "Менеджер"
    rp = json.loads(fsd(company, "employee", "reset-password", "--tenant", "romashka.test", "200").stdout)
    assert rp["password"] != d["password"]
    fsd(company, "employee", "delete", "--tenant", "romashka.test", "200")
    assert json.loads(fsd(company, "employee", "list", "--tenant", "romashka.test", "--json").stdout) == []


@pytest.mark.parametrize("ext,message", [
    ("112", "extension 112 is reserved for emergency and service numbers"),
    ("0123", "must not start with 0"),
    ("12a", "digits only"),
])
def test_bad_extension_exit_2_and_nothing_written(company, ext, message):
    r = fsd(company, "employee", "create", "--tenant", "romashka.test", "--name", "X", "--extension", ext,
            check=False)
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert json.loads(fsd(company, "employee", "list", "--tenant", "romashka.test", "--json").stdout) == []


def test_tariff_cap_cli(company):
    for i in range(3):
        fsd(company, "employee", "create", "--tenant", "romashka.test", "--name", f"User{i}")
    r = fsd(company, "employee", "create", "--tenant", "romashka.test", "--name", "Extra", check=False)
    assert r.returncode == 2 and "tariff limit reached" in r.stderr


def test_department_and_number(company):
    a = json.loads(fsd(company, "employee", "create", "--tenant", "romashka.test", "--name", "Анна").stdout)
    b = json.loads(fsd(company, "employee", "create", "--tenant", "romashka.test", "--name", "Борис").stdout)
    dep = json.loads(fsd(company, "department", "create", "--tenant", "romashka.test", "--name", "Продажи",
                         "--strategy", "cascade", "--members", f"{b['login']},{a['extension']}",
                         "--extension", "300", "--impatient", "on").stdout)
    assert dep["strategy"] == "cascade" and dep["impatient_enabled"]
    shown = json.loads(fsd(company, "department", "show", "--tenant", "romashka.test", "Продажи", "--json").stdout)
    assert shown["member_ids"] == [b["id"], a["id"]]
    r = fsd(company, "department", "create", "--tenant", "romashka.test", "--name", "Dup", "--extension",
            a["extension"], check=False)
    assert r.returncode == 2 and "already used by an employee" in r.stderr
    num = json.loads(fsd(company, "number", "create", "--tenant", "romashka.test", "--did", "8 495 111 22 33",
                         "--dest", "department", "--dest-department", "Продажи", "--mode", "schedule").stdout)
    assert num["did"] == "+74951112233" and num["dest_department_id"] == dep["id"] and num["is_main"]
    listed = json.loads(fsd(company, "number", "list", "--tenant", "romashka.test", "--json").stdout)
    assert len(listed) == 1


def test_config_check_masks_secrets(db_dsn):
    r = fsd(db_dsn, "--set", "esl.password=TopSecret1", "config", "check")
    assert "TopSecret1" not in r.stdout and "********" in r.stdout
    r = fsd(db_dsn, "--set", "http.port=99999", "config", "check", check=False)
    assert r.returncode == 2 and "http.port" in r.stderr


def test_gateway_crud_reads_the_password_from_stdin(db_dsn):
    r = subprocess.run([sys.executable, "-m", "fsd", "gateway", "create", "trunk", "--proxy", "sip.provider.ru:5060",
                        "--username", "7495", "--password-stdin", "--register", "true"],
                       input="s3cret!\n", capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env={**{k: v for k, v in os.environ.items() if not k.startswith("FSD_")},
                            "FSD_DATABASE_URL": db_dsn})
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["name"] == "trunk" and d["register"] is True and "password" not in d
    listed = fsd(db_dsn, "gateway", "list").stdout
    assert "trunk" in listed and "sip.provider.ru:5060" in listed and "s3cret" not in listed
    upd = json.loads(fsd(db_dsn, "gateway", "update", "trunk", "--enabled", "false").stdout)
    assert upd["enabled"] is False and upd["proxy"] == "sip.provider.ru:5060"
    bad = fsd(db_dsn, "gateway", "update", "trunk", "--proxy", "host:70000", check=False)
    assert bad.returncode == 2 and "port" in bad.stderr
    assert json.loads(fsd(db_dsn, "gateway", "show", "trunk", "--json").stdout)["proxy"] == "sip.provider.ru:5060"
    fsd(db_dsn, "gateway", "delete", "trunk")
    assert json.loads(fsd(db_dsn, "gateway", "list", "--json").stdout) == []
    missing = fsd(db_dsn, "gateway", "delete", "trunk", check=False)
    assert missing.returncode == 2 and "not found" in missing.stderr
