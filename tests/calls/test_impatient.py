"""The impatient-caller offer: timing, each choice, and a member answering during the offer."""

from __future__ import annotations

import pytest

from fsd.sim import Answer, NoAnswer
from tests.calls.harness import Node, World, call, phone, tmpdir
from tests.calls.harness import history_row as _row


@pytest.fixture
def node(pool):
    n = Node(pool=pool, storage_dir=tmpdir(), hostname="simA", node="n1", callbacks=False)
    yield n
    n.stop()


def _setup(pool, node, behaviour, ring_timeout=120, threshold=20):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201", email="anna@example.com")
    dept = w.department("Sales", [a], ring_timeout=ring_timeout, impatient_enabled=True,
                        impatient_threshold=threshold)
    num = w.number(dest_kind="department", dest_department_id=dept.id, is_main=True)
    p = phone(node, w, a, behaviour)
    return w, a, dept, num, p


def _executes(node, uuid, app, name="CHANNEL_EXECUTE"):
    return [e.event for e in node.switch.log if e.kind == "event" and e.event.name == name
            and e.event.uuid == uuid and e.event.get("Application") == app]


def _choices(node, choice):
    return node.metrics.impatient_choices.labels(choice)._value.get()


@pytest.fixture
def slow_node(pool):
    # the timing assertion is in simulated seconds: a slower scale keeps it meaningful on a busy machine
    n = Node(pool=pool, storage_dir=tmpdir(), hostname="simA", node="n1", callbacks=False, scale=0.04)
    yield n
    n.stop()


def test_offer_starts_at_threshold_and_stay_keeps_ringing(pool, slow_node):
    node = slow_node
    w, a, dept, num, p = _setup(pool, node, NoAnswer(), ring_timeout=60)
    ch = call(node, num.did, prompt_digits=["2"], record_seconds=1.0)
    row = _row(w, ch.uuid)
    ringback = _executes(node, ch.uuid, "endless_playback")
    offer = _executes(node, ch.uuid, "play_and_get_digits")
    assert len(offer) == 1  # offered once
    waited = (int(offer[0].get("Event-Date-Timestamp")) - int(ringback[0].get("Event-Date-Timestamp"))) / 1e6
    assert 19.8 <= waited <= 20.8  # never early; late by no more than scheduling noise
    assert offer[0].get("Application-Data").split()[5].endswith("impatient_offer.wav")
    # "stay": the ring-back resumed, and the member kept ringing until the 60 s timeout
    assert len(ringback) >= 2
    assert row["result"] == "voicemail"
    leg = node.switch.channel(p.calls[0])
    assert (leg.times["Channel-Hangup-Time"] - leg.created_us) / 1e6 == pytest.approx(60, abs=3)
    assert _choices(node, "stay") == 1
    assert "offer:stay" in row["route"]


def test_choice_callback_records_request_and_hangs_up(pool, node):
    w, a, dept, num, p = _setup(pool, node, NoAnswer())
    ch = call(node, num.did, caller="79161112233", prompt_digits=["1"])
    row = _row(w, ch.uuid)
    assert row["result"] == "callback_requested"
    cbs = w.rows("SELECT * FROM callbacks WHERE origin_call_uuid = %s", (ch.uuid,))
    assert len(cbs) == 1
    cb = cbs[0]
    assert cb["caller"] == "79161112233" and cb["department_id"] == dept.id and cb["status"] == "pending"
    assert cb["position"] == 1 and cb["number_id"] == num.id
    played = [e.get("Application-Data") for e in _executes(node, ch.uuid, "playback")]
    assert any(x.endswith("callback_confirm.wav") for x in played)
    assert ch.hungup.is_set()
    # members stopped ringing at once
    leg = node.switch.channel(p.calls[0])
    assert (leg.times["Channel-Hangup-Time"] - leg.created_us) / 1e6 < 30
    assert _choices(node, "callback") == 1


def test_choice_voicemail(pool, node):
    w, a, dept, num, p = _setup(pool, node, NoAnswer())
    ch = call(node, num.did, prompt_digits=["3"], record_seconds=2.0)
    row = _row(w, ch.uuid)
    assert row["result"] == "voicemail"
    vm = w.rows("SELECT * FROM voicemails WHERE call_uuid = %s", (ch.uuid,))
    assert len(vm) == 1 and vm[0]["department_id"] == dept.id
    assert _choices(node, "voicemail") == 1


def test_no_input_means_stay(pool, node):
    w, a, dept, num, p = _setup(pool, node, NoAnswer(), ring_timeout=70)
    ch = call(node, num.did, prompt_digits=[""], record_seconds=1.0)
    row = _row(w, ch.uuid)
    assert row["result"] == "voicemail"
    assert "offer:stay" in row["route"]
    assert _choices(node, "none") == 1


def test_member_answering_during_offer_breaks_prompt_and_bridges(pool, node):
    w, a, dept, num, p = _setup(pool, node, Answer(after=22))
    ch = call(node, num.did, prompt_digits=[""], hangup_after=60)
    row = _row(w, ch.uuid)
    assert row["result"] == "answered" and row["answered_by"] == a.id
    offer = _executes(node, ch.uuid, "play_and_get_digits")
    done = _executes(node, ch.uuid, "play_and_get_digits", "CHANNEL_EXECUTE_COMPLETE")
    assert len(offer) == 1 and len(done) == 1
    # the offer was cut short when the member answered (22 s), well before its own timeout
    assert (int(done[0].get("Event-Date-Timestamp")) - int(offer[0].get("Event-Date-Timestamp"))) / 1e6 < 5
    leg = node.switch.channel(p.calls[0])
    assert leg.times["Channel-Answered-Time"] > 0
    assert _choices(node, "answered_during_offer") == 1
