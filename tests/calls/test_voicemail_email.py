"""Voicemail end to end: the caller records a message, fsd stores it and the letter with the recording
attached arrives at a real SMTP server (aiosmtpd in a subprocess) through fsd's mail worker."""

from __future__ import annotations

import pytest

from fsd.config import SmtpConfig
from fsd.mailer import Mailer
from fsd.sim import NoAnswer
from tests.calls.harness import World, call, phone
from tests.helpers import wait_for
from tests.smtp_server import SmtpSink


@pytest.fixture
def smtp(tmp_path):
    sink = SmtpSink(str(tmp_path))
    sink.start()
    yield sink
    sink.stop()


def test_voicemail_letter_with_recording_reaches_the_smtp_server(pool, node, smtp):
    w = World(pool, language="ru", timezone="Europe/Moscow")
    a = w.employee("Анна Иванова", "201", email="anna@example.com")
    dept = w.department("Продажи", [a], ring_timeout=10, no_answer_action="voicemail")
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    phone(node, w, a, NoAnswer())
    ch = call(node, num.did, record_seconds=3.0)
    wait_for(lambda: w.rows("SELECT 1 FROM email_outbox WHERE kind = 'voicemail'"), timeout=15,
             message="voicemail letter queued")
    mailer = Mailer(pool=pool, smtp=SmtpConfig(host="127.0.0.1", port=smtp.port, sender="pbx@example.com"),
                    poll_interval_s=0.05)
    mailer.start()
    try:
        msgs = smtp.wait_messages(2)  # the credentials letter of the new employee, and the voicemail
    finally:
        mailer.stop()
    (msg,) = [m for m in msgs if list(m.iter_attachments())]
    assert msg["To"] == "anna@example.com"
    assert "голосовое сообщение" in msg["Subject"].lower() and "79161234567" in msg["Subject"]
    body = msg.get_body(preferencelist=("plain",)).get_content()
    assert "Анна Иванова" in body and "Продажи" in body and "3 с" in body
    (att,) = list(msg.iter_attachments())
    audio = att.get_content()
    vm = w.rows("SELECT audio FROM voicemails WHERE call_uuid = %s", (ch.uuid,))[0]
    assert audio == bytes(vm["audio"]) and audio[:4] == b"RIFF"
