"""A finished call's stopped member legs: the member is released when FreeSWITCH reports the leg gone.
The usual case needs no greenlet (the leg's CHANNEL_HANGUP releases it); only when that report does not
come does the checking greenlet start, ask the switch (uuid_exists) and release the member."""

from __future__ import annotations

from fsd.calls import call as call_mod
from fsd.sim import Answer, NoAnswer
from tests.calls.harness import World, call, phone
from tests.helpers import wait_for


def _count_checkers(monkeypatch) -> list:
    started = []
    real = call_mod.Call._release_stragglers

    def counting(self, *a, **kw):
        started.append(self.uuid)
        return real(self, *a, **kw)

    monkeypatch.setattr(call_mod.Call, "_release_stragglers", counting)
    return started


def test_a_stopped_leg_reported_gone_releases_its_member_without_the_checking_greenlet(node, pool, monkeypatch):
    started = _count_checkers(monkeypatch)
    w = World(pool)
    m = w.employee("Maria Ivanova", "201")
    dept = w.department("Sales", [m], ring_timeout=600)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    p = phone(node, w, m, NoAnswer())
    c = call(node, num.did)
    wait_for(lambda: p.calls, timeout=5, message="Maria's phone rings")
    node.switch.channel(c.uuid).hangup("NORMAL_CLEARING", remote=True)  # the caller gives up
    leg = node.switch.channel(p.calls[0])
    wait_for(lambda: leg.hungup.is_set(), timeout=5, message="fsd stops Maria's leg")
    wait_for(lambda: m.id not in node.driver.board.reserved and not w.rows("SELECT 1 FROM reservations"),
             timeout=5, message="Maria released")
    link = next(iter(node.driver.links.values()))
    wait_for(lambda: not link.owners, timeout=5, message="the finished call's legs disowned")
    # well past the first check (one simulated second): nothing was left to check
    node.switch.clock.sleep(3)
    assert started == []


def test_a_member_leg_whose_hangup_is_lost_is_checked_and_its_member_released(node, pool, monkeypatch):
    """After a conversation the member's leg ends with the caller; its CHANNEL_HANGUP is lost (and the
    originate's job ended long before): the checking greenlet asks the switch and releases the member."""
    started = _count_checkers(monkeypatch)
    w = World(pool)
    m = w.employee("Maria Ivanova", "201")
    dept = w.department("Sales", [m], ring_timeout=600)
    num = w.number(dest_kind="department", dest_department_id=dept.id)
    p = phone(node, w, m, Answer(after=1))
    link = next(iter(node.driver.links.values()))
    lost = []
    real_on_event = link._on_event

    def losing(ev):  # the switch link drops the member leg's CHANNEL_HANGUP (a lost event)
        if ev.name == "CHANNEL_HANGUP" and p.calls and ev.uuid == p.calls[0]:
            lost.append(ev.uuid)
            return
        real_on_event(ev)

    for sub in node.client.dispatcher.subscriptions():
        if getattr(sub.handler, "__self__", None) is link:
            monkeypatch.setattr(sub, "handler", losing)
    c = call(node, num.did, hangup_after=10)  # the caller talks, then hangs up
    wait_for(lambda: p.calls, timeout=5, message="Maria's phone rings")
    wait_for(lambda: w.history(c.uuid), timeout=10, message="the call ends and is recorded")
    assert w.history(c.uuid)["answered_by"] == m.id
    leg = node.switch.channel(p.calls[0])
    wait_for(lambda: leg.hungup.is_set() and lost, timeout=5, message="leg over, its hangup lost")
    wait_for(lambda: started, timeout=5, message="the checking greenlet starts")
    wait_for(lambda: m.id not in node.driver.board.reserved and not w.rows("SELECT 1 FROM reservations"),
             timeout=10, message="Maria released after uuid_exists said the leg is gone")
    wait_for(lambda: not link.owners, timeout=5, message="the finished call's legs disowned")


class _SilentLink:
    """A switch link whose uuid_kill replies never come (the switch stopped answering, socket open)."""

    def __init__(self):
        self.sent = []

    def api_nowait(self, cmd, callback, *, timeout=None):
        self.sent.append((cmd, callback, timeout))


def test_a_kill_without_a_reply_lets_the_leg_be_killed_again_after_its_timeout():
    from types import SimpleNamespace

    from fsd.errors import ESLTimeout

    link = _SilentLink()
    owner = SimpleNamespace(link=link)
    leg = call_mod.Leg(uuid="leg-1", member_id=1, target="user/201@x")
    call_mod.Call._kill(owner, leg)
    call_mod.Call._kill(owner, leg)  # one kill at a time per leg
    assert len(link.sent) == 1 and leg.killing
    cmd, callback, timeout = link.sent[0]
    assert cmd == "uuid_kill leg-1 ORIGINATOR_CANCEL" and timeout == 5.0  # bounded, as the blocking api was
    callback(ESLTimeout("no reply to uuid_kill within 5.0s"))  # what the inbound client calls it with then
    assert not leg.killing
    call_mod.Call._kill(owner, leg)  # the stopped-leg checks may kill it again
    assert len(link.sent) == 2
