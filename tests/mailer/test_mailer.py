"""The SMTP outbox worker against a real SMTP server (aiosmtpd in a subprocess)."""

from __future__ import annotations

import pytest

from fsd import config as fsd_config
from fsd.mailer import Mailer, backoff_s
from fsd.metrics import Metrics
from fsd.services import Actor, MailSettings, Services
from tests.helpers import free_port, wait_for

SYSTEM = Actor.system("test")


@pytest.fixture
def smtp(tmp_path):
    from tests.smtp_server import SmtpSink

    sink = SmtpSink(str(tmp_path))
    sink.start()
    yield sink
    sink.stop()


def _setup(pool, port, **smtp_over):
    services = Services(pool=pool, mail=MailSettings(cabinet_url="http://cab.test", sip_server="sip.test",
                                                     softphone_url="https://soft.test/dl"))
    t = services.tenants.create(SYSTEM, name="Рога и копыта", domain="roga.example.com", max_users=5)
    cfg = fsd_config.SmtpConfig(host="127.0.0.1", port=port, sender="pbx@roga.example.com", timeout_s=5,
                                **{"retry_interval_s": 60, "max_attempts": 3, **smtp_over})
    metrics = Metrics()
    return services, t, Mailer(pool=pool, smtp=cfg, metrics=metrics, poll_interval_s=0.05), metrics


def _outbox(pool):
    with pool.transaction() as cur:
        cur.execute("SELECT status, attempts, last_error FROM email_outbox ORDER BY id")
        return [dict(r) for r in cur.fetchall()]


def test_credentials_letter_arrives_with_everything_the_employee_needs(pool, smtp):
    services, t, mailer, metrics = _setup(pool, smtp.port)
    c = services.employees.create(SYSTEM, t.id, name="Иван Петров", email="ivan@example.com")
    assert c.letter_queued
    assert mailer.send_due() == 1
    [msg] = smtp.wait_messages(1)
    body = msg.get_content()
    assert msg["To"] == "ivan@example.com"
    assert msg["From"] == "pbx@roga.example.com"
    assert "Рога и копыта" in msg["Subject"]
    for needle in (c.employee.login, c.password, c.employee.extension, "roga.example.com", "sip.test",
                   "https://soft.test/dl", "http://cab.test"):
        assert needle in body
    assert _outbox(pool) == [{"status": "sent", "attempts": 1, "last_error": ""}]
    assert metrics.emails.labels("credentials", "sent")._value.get() == 1
    assert mailer.send_due() == 0  # sent once only


def test_rejected_send_is_retried_then_succeeds(pool, smtp):
    services, t, mailer, metrics = _setup(pool, smtp.port, retry_interval_s=0)
    services.employees.create(SYSTEM, t.id, name="Иван Петров", email="ivan@example.com")
    smtp.reject(True)
    assert mailer.send_due() == 0
    [row] = _outbox(pool)
    assert row["status"] == "pending" and row["attempts"] == 1 and "451" in row["last_error"]
    assert metrics.emails.labels("credentials", "retry")._value.get() == 1
    smtp.reject(False)
    assert mailer.send_due() == 1
    assert _outbox(pool)[0]["status"] == "sent"
    assert len(smtp.wait_messages(1)) == 1


def test_unreachable_server_gives_up_after_max_attempts_and_is_marked_failed(pool):
    services, t, mailer, metrics = _setup(pool, free_port(), retry_interval_s=0, max_attempts=2)
    services.employees.create(SYSTEM, t.id, name="Иван Петров", email="ivan@example.com")
    mailer.send_due()
    assert _outbox(pool)[0]["status"] == "pending"
    mailer.send_due()
    [row] = _outbox(pool)
    assert row["status"] == "failed" and row["attempts"] == 2
    assert "ConnectionRefused" in row["last_error"]
    assert metrics.emails.labels("credentials", "failed")._value.get() == 1
    assert mailer.send_due() == 0  # failed letters wait for an explicit retry


def test_backoff_doubles_and_is_capped():
    assert [backoff_s(n, 60) for n in (1, 2, 3)] == [60, 120, 240]
    assert backoff_s(30, 60) == 3600


def test_worker_loop_sends_when_woken(pool, smtp):
    services, t, mailer, _ = _setup(pool, smtp.port)
    mailer.poll_interval_s = 30  # only the wake-up can make it send in time
    mailer.start()
    try:
        wait_for(lambda: mailer._wake.is_set() is False, timeout=5)
        services.employees.create(SYSTEM, t.id, name="Анна Смирнова", email="anna@example.com")
        mailer.wake()
        [msg] = smtp.wait_messages(1)
        assert msg["To"] == "anna@example.com"
    finally:
        mailer.stop()
