"""GatewaySync's command sequences per change (a scripted stand-in for the ESL client; the end-to-end path
through the emulator is in test_gateway_sync_sim.py)."""

from fsd.errors import ESLTimeout
from fsd.esl.inbound import ApiResult
from fsd.trunk import GatewaySync


class FakeSwitch:
    """Answers like mod_sofia: killgw marks a gateway for deletion; it disappears after `linger` status polls."""

    def __init__(self, name="sw", gateways=(), linger=2, connected=True, fail=False):
        self.name, self.connected, self.fail = name, connected, fail
        self.gateways = set(gateways)
        self.dying: dict[str, int] = {}
        self.linger = linger
        self.sent: list[str] = []

    def api(self, cmd, *, timeout=None):
        self.sent.append(cmd)
        if self.fail:
            raise ESLTimeout("no reply")
        w = cmd.split()
        if w[:2] == ["sofia", "profile"] and w[3] == "killgw":
            if w[4] not in self.gateways:
                return ApiResult("-ERR no such gateway.\n")
            self.dying[w[4]] = self.linger
            return ApiResult("+OK gateway marked for deletion.\n")
        if w[:2] == ["sofia", "profile"] and w[3] == "startgw":
            if w[4] in self.gateways:
                return ApiResult(f"Reload XML [Success]\n-ERR cannot add gateway {w[4]} for profile {w[2]}\n")
            self.gateways.add(w[4])
            return ApiResult(f"Reload XML [Success]\n+OK start gateway {w[4]} complete\n")
        if w[:3] == ["sofia", "status", "gateway"]:
            n = w[3]
            if n in self.dying:
                self.dying[n] -= 1
                if self.dying[n] < 0:
                    del self.dying[n]
                    self.gateways.discard(n)
            return ApiResult("Name    \ttrunk\n" if n in self.gateways else "Invalid Gateway!\n")
        return ApiResult("-ERR Usage\n")


def sync(*switches, **kw):
    return GatewaySync(switches={s.name: s for s in switches}, poll_s=0.001, **kw)


def test_create_starts_the_gateway_on_every_connected_switch():
    a, b, down = FakeSwitch(name="a"), FakeSwitch(name="b"), FakeSwitch(name="c", connected=False)
    s = sync(a, b, down)
    s.on_change({"entity": "gateway", "op": "create", "name": "trunk"})
    s.join(timeout=5)
    assert a.sent == b.sent == ["sofia profile external startgw trunk"]
    assert down.sent == [] and s.applied == 2 and s.failures == 0


def test_update_kills_waits_until_gone_then_starts():
    sw = FakeSwitch(gateways={"trunk"}, linger=3)
    s = sync(sw)
    s.on_change({"entity": "gateway", "op": "update", "name": "trunk"})
    s.join(timeout=5)
    assert sw.sent[0] == "sofia profile external killgw trunk"
    assert sw.sent[1:-1] == ["sofia status gateway trunk"] * 4
    assert sw.sent[-1] == "sofia profile external startgw trunk"
    assert sw.gateways == {"trunk"} and s.applied == 1


def test_update_of_a_disabled_gateway_and_delete():
    sw = FakeSwitch(gateways={"trunk"}, linger=0)
    s = sync(sw)
    s.on_change({"entity": "gateway", "op": "delete", "name": "trunk"})
    s.join(timeout=5)
    assert sw.sent == ["sofia profile external killgw trunk", "sofia status gateway trunk"]
    assert sw.gateways == set()
    # the switch never had it (e.g. it was disabled): killgw says so, nothing to wait for
    sw.sent.clear()
    s.on_change({"entity": "gateway", "op": "delete", "name": "trunk"})
    s.join(timeout=5)
    assert sw.sent == ["sofia profile external killgw trunk"] and s.failures == 0


def test_gateway_that_never_goes_away_and_a_silent_switch_are_counted_not_raised():
    stuck = FakeSwitch(name="stuck", gateways={"trunk"}, linger=10**9)
    silent = FakeSwitch(name="silent", fail=True)
    s = sync(stuck, silent, gone_timeout_s=0.05)
    s.on_change({"entity": "gateway", "op": "update", "name": "trunk"})
    s.join(timeout=5)
    assert s.failures == 2 and s.applied == 0
    assert not any("startgw" in c for c in stuck.sent)


def test_other_entities_and_bad_names_are_ignored():
    sw = FakeSwitch()
    s = sync(sw)
    s.on_change({"entity": "employee", "op": "update", "id": 1})
    s.on_change({"entity": "gateway", "op": "update", "name": "x; shutdown"})
    s.join(timeout=5)
    assert sw.sent == []
