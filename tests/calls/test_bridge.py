"""A member's leg that ends between its answer and the bridge (uuid_bridge refused): the caller keeps waiting."""

from __future__ import annotations

from fsd.sim import Answer, Phone
from tests.calls.harness import World, call
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


def test_refused_bridge_of_the_only_member_leaves_the_caller_queued(pool, node):
    w = World(pool)
    a = w.employee("Anna Ivanova", "201")
    dept = w.department("Sales", [a], strategy="simultaneous", ring_timeout=15, no_answer_action="voicemail")
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    pa = node.switch.add_phone(DropsFirstAnswer(a.extension, w.domain, behaviour=Answer(after=1)))
    ch = call(node, num.did, hangup_after=100, record_seconds=1.0)
    wait_for(lambda: pa.calls and node.switch.channel(pa.calls[0]).hungup.is_set(), message="A dropped")
    # the caller is in the queue again: the socket_resume fsd cleared before the bridge is back
    wait_for(lambda: ch.get_var("socket_resume") == "true", message="socket_resume restored")
    row = _row(w, ch.uuid)
    assert row["result"] == "voicemail", row["route"]
    assert row["route"].split(">")[2:4] == ["bridge_failed", "no_answer:voicemail"]
    assert node.metrics.calls_abandoned.labels(str(w.tid), str(dept.id))._value.get() == 0
