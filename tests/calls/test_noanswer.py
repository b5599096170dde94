"""No answer within the department's timeout: voicemail, forward to an external number, transfer."""

from __future__ import annotations

import os

import pytest

from fsd.prompts import wav_info
from fsd.sim import Answer, NoAnswer
from tests.calls.harness import ADMIN, World, call, phone
from tests.calls.harness import history_row as _row


def test_no_answer_goes_to_voicemail_with_file_row_and_email(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201", email="anna@example.com")
    b = w.employee("Boris Petrov", "202", email="boris@example.com")
    dept = w.department("Sales", [a, b], ring_timeout=10, no_answer_action="voicemail")
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    phone(node, w, a, NoAnswer())
    phone(node, w, b, NoAnswer())
    ch = call(node, num.did, record_seconds=4.0)
    row = _row(w, ch.uuid)
    assert row["result"] == "voicemail"
    assert row["department_id"] == dept.id
    assert "no_answer:voicemail" in row["route"]
    vm = w.rows("SELECT * FROM voicemails WHERE call_uuid = %s", (ch.uuid,))
    assert len(vm) == 1
    v = vm[0]
    assert v["department_id"] == dept.id and v["caller"] == "79161234567"
    assert os.path.exists(v["path"])
    assert wav_info(v["path"])[3] == pytest.approx(4.0, abs=0.5)
    assert float(v["duration_s"]) == pytest.approx(4.0, abs=0.5)
    assert bytes(v["audio"]) == open(v["path"], "rb").read()
    mails = w.rows("SELECT recipient, kind, attachment FROM email_outbox WHERE kind = 'voicemail' ORDER BY recipient")
    assert [m["recipient"] for m in mails] == ["anna@example.com", "boris@example.com"]
    assert all(bytes(m["attachment"]) == bytes(v["audio"]) for m in mails)
    # the caller heard the greeting and the beep before the recording
    played = [e.event.get("Application-Data") for e in node.switch.log
              if e.kind == "event" and e.event.name == "CHANNEL_EXECUTE" and e.event.uuid == ch.uuid
              and e.event.get("Application") == "playback"]
    assert any(p.endswith("voicemail_greeting.wav") for p in played)
    assert any(p.endswith("voicemail_beep.wav") for p in played)
    assert node.metrics.voicemails._value.get() == 1


def test_no_answer_forwards_to_external_number(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a], ring_timeout=10, no_answer_action="forward_external",
                        no_answer_number="+79035550101")
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    phone(node, w, a, NoAnswer())
    mob = node.trunk.endpoint_for("79035550101")
    mob.behaviour = Answer(after=3)
    mob.hangup_after = 15
    ch = call(node, num.did)
    row = _row(w, ch.uuid)
    assert row["result"] == "answered"
    assert "no_answer:forward_external" in row["route"] and "forward_answered" in row["route"]
    assert len(mob.calls) == 1
    assert float(row["talk_s"]) == pytest.approx(15, abs=5), dict(row)


def test_forward_unanswered_in_30s_goes_to_voicemail(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a], ring_timeout=10, no_answer_action="forward_external",
                        no_answer_number="+79035550102")
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    phone(node, w, a, NoAnswer())
    mob = node.trunk.endpoint_for("79035550102")
    mob.behaviour = NoAnswer()
    ch = call(node, num.did, record_seconds=2.0)
    row = _row(w, ch.uuid)
    assert row["result"] == "voicemail"
    leg = node.switch.channel(mob.calls[0])
    rang = (leg.times["Channel-Hangup-Time"] - leg.created_us) / 1e6
    assert rang == pytest.approx(30, abs=2)
    assert w.rows("SELECT count(*) AS n FROM voicemails WHERE call_uuid = %s", (ch.uuid,))[0]["n"] == 1


def test_no_answer_transfers_to_employee_and_department_with_loop_guard(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    b = w.employee("Boris Petrov", "202")
    c = w.employee("Clara Smirnova", "203")
    d1 = w.department("First", [a], ring_timeout=10)
    d2 = w.department("Second", [b], ring_timeout=10, no_answer_action="transfer_department",
                      no_answer_department_id=d1.id)
    w.svc.departments.update(ADMIN, w.tid, d1.id, no_answer_action="transfer_department", no_answer_department_id=d2.id)
    num = w.number(dest_kind="department", dest_department_id=d1.id)
    phone(node, w, a, NoAnswer())
    phone(node, w, b, NoAnswer())
    ch = call(node, num.did, record_seconds=1.0)
    row = _row(w, ch.uuid)
    # d1 -> d2 -> (d1 again is a loop) -> d2's voicemail
    assert row["result"] == "voicemail"
    assert "loop_guard" in row["route"]
    assert w.rows("SELECT department_id FROM voicemails WHERE call_uuid = %s", (ch.uuid,))[0]["department_id"] == d2.id

    d3 = w.department("Third", [a], ring_timeout=10, no_answer_action="transfer_employee", no_answer_employee_id=c.id)
    num3 = w.number(dest_kind="department", dest_department_id=d3.id)
    pc = phone(node, w, c, Answer(after=2))
    ch3 = call(node, num3.did, hangup_after=40)
    row3 = _row(w, ch3.uuid)
    assert row3["result"] == "answered" and row3["answered_by"] == c.id
    assert len(pc.calls) == 1
