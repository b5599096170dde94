"""A member's leg that ends between its answer and the bridge (uuid_bridge refused): the caller keeps waiting."""

from __future__ import annotations

from fsd.sim import Answer, Phone
from tests.calls.harness import World, call, originated_at
from tests.calls.harness import history_row as _row
from tests.helpers import wait_for


class DropsFirstAnswer(Phone):
    """Answers, and on its first leg hangs up at once: the leg is gone before fsd can bridge it (a member
    who picks up and drops, or fsd held up for longer than the member stayed on the line)."""

    def _on_answer(self, leg):
        self.hangup_after = 0.0 if leg.uuid == self.calls[0] else None
        super()._on_answer(leg)


def test_refused_bridge_keeps_the_caller_and_the_next_member_answers(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    b = w.employee("Boris Petrov", "202")
    dept = w.department("Sales", [a, b], strategy="simultaneous", ring_timeout=60)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    pa = node.switch.add_phone(DropsFirstAnswer(a.extension, w.domain, behaviour=Answer(after=1)))
    pb = node.switch.add_phone(Phone(b.extension, w.domain, behaviour=Answer(after=4)))
    ch = call(node, num.did, hangup_after=100)
    # B's leg rang on while A's bridge was refused, and it is B's leg the caller is bridged to
    leg_b = wait_for(lambda: pb.calls and (leg := node.switch.channel(pb.calls[0])).bridged_to is ch and leg,
                     message="caller bridged to B")
    leg_b.hangup("NORMAL_CLEARING", remote=True)
    row = _row(w, ch.uuid)
    assert row["result"] == "answered", row["route"]
    assert row["answered_by"] == b.id
    assert row["route"].split(">")[2:] == ["bridge_failed", f"answered:{b.id}:desk"]
    assert len(pa.calls) == 1 and len(pb.calls) == 1
    wait_for(lambda: not w.rows("SELECT * FROM reservations"), message="reservations released")


def test_refused_bridge_of_the_only_member_offers_the_call_to_them_again(pool, node):
    """The lone member answered but could not be bridged: the caller stays queued (socket_resume back) and
    the member, who is free, is rung again after the planner's retry delay and answers."""
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a], strategy="simultaneous", ring_timeout=30, no_answer_action="voicemail")
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    pa = node.switch.add_phone(DropsFirstAnswer(a.extension, w.domain, behaviour=Answer(after=1)))
    ch = call(node, num.did, hangup_after=100, record_seconds=1.0)
    wait_for(lambda: pa.calls and node.switch.channel(pa.calls[0]).hungup.is_set(), message="A dropped")
    leg2 = wait_for(lambda: len(pa.calls) > 1 and (leg := node.switch.channel(pa.calls[1])).bridged_to is ch and leg,
                    message="caller bridged to A's second leg")
    leg2.hangup("NORMAL_CLEARING", remote=True)
    row = _row(w, ch.uuid)
    assert row["result"] == "answered", row["route"]
    assert row["answered_by"] == a.id
    assert row["route"].split(">")[2:] == ["bridge_failed", f"answered:{a.id}:desk"]
    assert len(pa.calls) == 2
    # while A was offered the call again the caller was back in the queue: the socket_resume fsd cleared
    # before the refused bridge was restored, and cleared again before the second one
    resume = [e.text.split()[-1] for e in node.switch.log
              if e.kind == "api" and e.text.startswith(f"uuid_setvar {ch.uuid} socket_resume ")]
    assert resume == ["false", "true", "false"], resume
    # offered again only after the retry delay (5 simulated seconds from the refusal, which followed the
    # first originate by the 1 s the phone took to answer)
    assert originated_at(node, pa.calls[1]) - originated_at(node, pa.calls[0]) >= 5.0
    assert node.metrics.calls_abandoned.labels(str(w.tid), str(dept.id))._value.get() == 0
    wait_for(lambda: not w.rows("SELECT * FROM reservations"), message="reservations released")


class DropsEveryAnswer(Phone):
    """Answers and hangs up at once, every time: no bridge to it ever succeeds."""

    def _on_answer(self, leg):
        self.hangup_after = 0.0
        super()._on_answer(leg)


def test_member_whose_bridge_always_fails_is_retried_at_most_once_per_delay_until_the_timeout(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a], strategy="simultaneous", ring_timeout=16, no_answer_action="voicemail")
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    pa = node.switch.add_phone(DropsEveryAnswer(a.extension, w.domain, behaviour=Answer(after=1)))
    ch = call(node, num.did, hangup_after=100, record_seconds=1.0)
    row = _row(w, ch.uuid)
    assert row["result"] == "voicemail", row["route"]
    assert "no_answer:voicemail" in row["route"].split(">"), row["route"]
    offers = [originated_at(node, leg) for leg in pa.calls]
    # offered at about 0, 6 and 12 (1 s to answer + 5 s retry delay); never sooner than the delay apart,
    # none at or after the ring timeout
    assert 2 <= len(offers) <= 3, offers
    assert all(b - a >= 5.0 for a, b in zip(offers, offers[1:], strict=False)), offers
