"""Numbers: schedule in/out of hours, greeting instead of ring-back, IVR paths."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from fsd.prompts import default_prompt_path
from fsd.sim import Answer, NoAnswer
from fsd.store import repos
from tests.calls.harness import ADMIN, Node, World, call, phone, tmpdir
from tests.calls.harness import history_row as _row


@pytest.fixture
def node(pool):
    n = Node(pool=pool, storage_dir=tmpdir(), hostname="simA", node="n1", callbacks=False)
    yield n
    n.stop()


def _apps(node, uuid, app):
    return [e.event.get("Application-Data") for e in node.switch.log if e.kind == "event"
            and e.event.name == "CHANNEL_EXECUTE" and e.event.uuid == uuid and e.event.get("Application") == app]


ALL_WEEK = [(d, "00:00", "24:00") for d in range(7)]


def _closed_now(world):
    today = datetime.now(UTC).date()
    days = [{"day": (today + timedelta(days=i)).isoformat(), "closed": True} for i in (-1, 0, 1)]
    world.svc.tenants.set_schedule(ADMIN, world.tid, intervals=ALL_WEEK, exceptions=days)


def _prompt(world, name="Our greeting", src="ringback_greeting"):
    audio = open(default_prompt_path(src, "en"), "rb").read()
    with world.pool.transaction() as cur:
        return repos.prompt_insert(cur, tenant_id=world.tid, name=name, kind="greeting", language="en",
                                   filename=f"{name}.wav", sample_rate=8000, duration_ms=3900,
                                   size_bytes=len(audio), sha256=hashlib.sha256(audio).hexdigest(), audio=audio)


def test_in_hours_rings_department_with_uploaded_greeting(pool, node):
    w = World(pool)
    w.svc.tenants.set_schedule(ADMIN, w.tid, intervals=ALL_WEEK)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a])
    greet = _prompt(w)
    num = w.number(dest_kind="department", dest_department_id=dept.id, mode="schedule",
                   greeting_prompt_id=greet.id)
    phone(node, w, a, Answer(after=4))
    ch = call(node, num.did, hangup_after=20)
    row = _row(w, ch.uuid)
    assert row["result"] == "answered" and row["route"].startswith("in_hours>greeting")
    played = _apps(node, ch.uuid, "endless_playback")
    assert played and played[0].endswith(f"{greet.sha256}.wav")  # the greeting instead of the ring-back tone


def test_out_of_hours_message_and_hangup(pool, node):
    w = World(pool)
    _closed_now(w)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a])
    num = w.number(dest_kind="department", dest_department_id=dept.id, mode="schedule",
                   offhours_action="message_hangup")
    pa = phone(node, w, a, Answer(after=1))
    ch = call(node, num.did)
    row = _row(w, ch.uuid)
    assert row["route"].startswith("out_of_hours>message>hangup")
    assert row["result"] == "missed"
    assert any(p.endswith("offhours.wav") for p in _apps(node, ch.uuid, "playback"))
    assert ch.hungup.is_set() and not pa.calls


def test_out_of_hours_voicemail_and_forward(pool, node):
    w = World(pool)
    _closed_now(w)
    boss = w.employee("Olga Boss", "200", role="admin", email="boss@example.com")
    dept = w.department("Sales", [boss])
    num = w.number(dest_kind="department", dest_department_id=dept.id, mode="schedule")
    ch = call(node, num.did, record_seconds=2)
    row = _row(w, ch.uuid)
    assert row["result"] == "voicemail" and "voicemail:company" in row["route"]
    assert w.rows("SELECT recipient FROM email_outbox WHERE kind = 'voicemail'")[0]["recipient"] == "boss@example.com"

    num2 = w.number(dest_kind="department", dest_department_id=dept.id, mode="schedule",
                    offhours_action="forward", offhours_number="+79035550199")
    ep = node.trunk.endpoint_for("79035550199")
    ep.behaviour, ep.hangup_after = Answer(after=2), 10
    ch2 = call(node, num2.did)
    row2 = _row(w, ch2.uuid)
    assert row2["result"] == "answered" and "forward_answered" in row2["route"]
    assert len(ep.calls) == 1


def _menu(w, dept, emp):
    return w.svc.ivr.save(ADMIN, w.tid, None, name="Main", timeout_s=3, max_repeats=1, ext_digits=3,
                          fallback_kind="hangup",
                          items=[{"digit": "1", "action": "department", "department_id": dept.id},
                                 {"digit": "2", "action": "employee", "employee_id": emp.id},
                                 {"digit": "3", "action": "dial_extension"},
                                 {"digit": "0", "action": "voicemail"}])


def ivr_world(pool, node):
    """Anna in department Sales (key 1), Boris (key 2), dial-by-extension (3), voicemail (0) behind an IVR number;
    both answer after 2 s. Returns (world, anna, boris, dept, menu, number, anna's phone, boris's phone)."""
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    b = w.employee("Boris Petrov", "202")
    dept = w.department("Sales", [a])
    menu = _menu(w, dept, b)
    num = w.number(dest_kind="ivr", dest_ivr_id=menu.id)
    return w, a, b, dept, menu, num, phone(node, w, a, Answer(after=2)), phone(node, w, b, Answer(after=2))


def test_ivr_paths(pool, node):
    w, a, b, dept, menu, num, pa, pb = ivr_world(pool, node)

    ch = call(node, num.did, prompt_digits=["1"], hangup_after=30)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == a.id and f"ivr:{menu.id}>ivr_input:1>department:{dept.id}" in row["route"]
    assert any(p.split()[5].endswith("ivr_sample.wav") for p in _apps(node, ch.uuid, "play_and_get_digits"))

    # an invalid key, then 2 -> the employee
    ch = call(node, num.did, prompt_digits=["9", "2"], hangup_after=30)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == b.id and "ivr_input:9>ivr_input:2>employee" in row["route"]
    assert any(p.endswith("invalid_choice.wav") for p in _apps(node, ch.uuid, "playback"))

    # dial by extension
    ch = call(node, num.did, prompt_digits=["3", "202"], hangup_after=30)
    row = _row(w, ch.uuid)
    assert row["answered_by"] == b.id and "ivr_input:202" in row["route"]
    assert len(pb.calls) == 2 and len(pa.calls) == 1

    # no input at all: replayed max_repeats times, then the fallback (hang up)
    ch = call(node, num.did)
    row = _row(w, ch.uuid)
    assert "ivr_fallback>message>hangup" in row["route"] and row["result"] == "missed"
    assert len(_apps(node, ch.uuid, "play_and_get_digits")) == 2

    # 0 -> voicemail
    ch = call(node, num.did, prompt_digits=["0"], record_seconds=1)
    row = _row(w, ch.uuid)
    assert row["result"] == "voicemail"


def test_employee_destination_no_answer_goes_to_employee_voicemail(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201", email="anna@example.com")
    num = w.number(dest_kind="employee", dest_employee_id=a.id)
    pa = phone(node, w, a, NoAnswer())
    ch = call(node, num.did, record_seconds=1)
    row = _row(w, ch.uuid)
    assert row["result"] == "voicemail" and row["employee_id"] == a.id
    assert w.rows("SELECT employee_id FROM voicemails WHERE call_uuid = %s", (ch.uuid,))[0]["employee_id"] == a.id
    assert len(pa.calls) == 1
