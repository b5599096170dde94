import random

import pytest

from fsd.errors import Conflict, ValidationError
from fsd.queue.waiting import (
    CALLBACK,
    STAY,
    VOICEMAIL,
    ImpatientConfig,
    OfferDue,
    Timers,
    WaitingQueue,
    offer_choice,
)


def test_timers_order_replace_cancel():
    t = Timers()
    t.schedule("a", 5.0, "pa")
    t.schedule("b", 3.0)
    t.schedule("c", 5.0)
    t.schedule("d", 9.0)
    t.schedule("b", 4.0)  # replaces the timer of b
    assert t.cancel("d") and not t.cancel("d")
    assert t.next_deadline() == 4.0
    assert t.due(3.9) == []
    due = t.due(5.0)
    assert [(d.key, d.at) for d in due] == [("b", 4.0), ("a", 5.0), ("c", 5.0)]
    assert due[1].payload == "pa"
    assert len(t) == 0 and t.next_deadline() is None and t.due(100) == []


def test_timers_many_cancellations_stay_compact():
    t = Timers()
    for i in range(10_000):
        t.schedule(i % 10, float(i))
    assert len(t) == 10
    assert len(t._heap) < 200
    assert [d.key for d in t.due(1e9)] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_fifo_positions_enter_leave_longest_wait():
    q = WaitingQueue(department_id=1)
    assert q.longest_wait(100.0) == 0.0 and q.head() is None
    assert q.enter("a", 10.0) == 1
    assert q.enter("b", 11.0) == 2
    assert q.enter("c", 12.5) == 3
    with pytest.raises(Conflict):
        q.enter("b", 13.0)
    assert q.position("c") == 3
    assert q.longest_wait(20.0) == 10.0
    assert q.leave("a").entered_at == 10.0
    assert q.leave("a") is None
    assert q.position("c") == 2 and q.position("b") == 1 and q.position("zzz") is None
    assert q.head() == "b" and q.longest_wait(20.0) == 9.0
    assert q.callers() == ["b", "c"] and len(q) == 2 and "c" in q


def test_positions_match_list_under_random_churn():
    rnd = random.Random(1)
    q = WaitingQueue(department_id=1)
    model = []
    for i in range(2000):
        if model and rnd.random() < 0.45:
            cid = rnd.choice(model)
            model.remove(cid)
            q.leave(cid)
        else:
            model.append(i)
            assert q.enter(i, float(i)) == len(model)
        if model:
            probe = rnd.choice(model)
            assert q.position(probe) == model.index(probe) + 1
    assert q.callers() == model


def test_offer_choice_digits():
    assert offer_choice("1") == (CALLBACK, False)
    assert offer_choice("2") == (STAY, False)
    assert offer_choice("3") == (VOICEMAIL, False)
    assert offer_choice("") == (STAY, False)
    assert offer_choice(None) == (STAY, False)
    assert offer_choice("7") == (STAY, True)
    assert offer_choice("*") == (STAY, True)


def test_500_callers_each_get_offer_exactly_at_enqueue_plus_threshold():
    rnd = random.Random(42)
    q = WaitingQueue(department_id="sales", impatient=ImpatientConfig(enabled=True, threshold_s=20))
    entered = {}
    t = 0.0
    for i in range(500):
        t += rnd.choice([0.0, 0.013, 0.25, 1.0])
        entered[i] = t
        q.enter(i, t)
    # Driver ticks at irregular instants; every offer must carry its exact due time, once.
    got = {}
    now = 0.0
    while now < t + 25:
        now += rnd.choice([0.1, 0.7, 3.0])
        for offer in q.due_offers(now):
            assert offer.call_id not in got
            assert offer.at <= now
            got[offer.call_id] = offer
    assert set(got) == set(entered)
    for cid, offer in got.items():
        assert offer.at == entered[cid] + 20
        assert offer.waited_s == pytest.approx(20)
    assert q.next_deadline() is None and len(q) == 500


def test_offer_ticks_exactly_at_deadline_and_not_before():
    q = WaitingQueue(department_id=1, impatient=ImpatientConfig(enabled=True, threshold_s=20))
    q.enter("a", 100.0)
    assert q.due_offers(119.999) == []
    assert q.next_deadline() == 120.0
    assert q.due_offers(120.0) == [OfferDue(call_id="a", at=120.0, waited_s=20.0)]


def test_answered_or_hung_up_caller_gets_no_offer():
    q = WaitingQueue(department_id=1, impatient=ImpatientConfig(enabled=True))
    q.enter("a", 0.0)
    q.enter("b", 1.0)
    q.leave("a")  # a member answered
    assert [o.call_id for o in q.due_offers(100.0)] == ["b"]


def test_disabled_offer_never_due():
    q = WaitingQueue(department_id=1)
    q.enter("a", 0.0)
    assert q.due_offers(1e6) == [] and q.next_deadline() is None


def test_offer_results():
    q = WaitingQueue(department_id=1, impatient=ImpatientConfig(enabled=True))
    for i, cid in enumerate("abcde"):
        q.enter(cid, float(i))
    q.due_offers(30.0)
    out = q.offer_result("b", "1", 30.0)
    assert (out.choice, out.invalid, out.position, out.entered_at) == (CALLBACK, False, 2, 1.0)
    assert "b" not in q
    out = q.offer_result("c", "3", 30.0)
    assert out.choice == VOICEMAIL and out.position == 2 and "c" not in q
    assert q.offer_result("a", "2", 30.0).choice == STAY and "a" in q
    out = q.offer_result("d", "9", 30.0)
    assert (out.choice, out.invalid) == (STAY, True) and "d" in q
    assert q.offer_result("e", "", 30.0).choice == STAY
    # no re-offer by default
    assert q.due_offers(1e6) == []
    with pytest.raises(Conflict):
        q.offer_result("b", "1", 31.0)


def test_reoffer_when_configured():
    q = WaitingQueue(department_id=1, impatient=ImpatientConfig(enabled=True, threshold_s=20, reoffer_after_s=60))
    q.enter("a", 0.0)
    assert [o.at for o in q.due_offers(20.0)] == [20.0]
    q.offer_result("a", "", 28.0)  # timed out after the prompt
    assert q.due_offers(87.9) == []
    assert [(o.at, o.waited_s) for o in q.due_offers(88.0)] == [(88.0, 88.0)]


def test_impatient_config_validation():
    with pytest.raises(ValidationError):
        ImpatientConfig(threshold_s=0)
    with pytest.raises(ValidationError):
        ImpatientConfig(reoffer_after_s=-1)
