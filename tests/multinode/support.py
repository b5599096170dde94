"""Shared pieces of the multi-node tests: the overlap checker (was a member offered two calls at once?),
a TCP proxy that can hold fsd's commands to a switch, and one fsd call driver on one emulated switch."""

from __future__ import annotations

from dataclasses import dataclass

import gevent
import gevent.event
from prometheus_client import CollectorRegistry

from fsd.calls import CallDriver
from fsd.config import CallsConfig
from fsd.esl.inbound import InboundClient
from fsd.esl.outbound import OutboundServer
from fsd.metrics import Metrics
from tests.calls.harness import tmpdir
from tests.faults.support import TcpProxy


# -- the overlap checker -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Leg:
    """One leg a switch sent to a member's phone: offered from its creation to its hangup (µs of the
    switches' shared simulated clock; None = still up)."""

    switch: str
    uuid: str
    start_us: int
    end_us: int | None
    call: str  # fsd_queue_call: the caller's channel the leg was offered for
    cause: str
    answered: bool

    def brief(self) -> tuple:
        end = "up" if self.end_us is None else self.end_us
        return (self.switch, self.uuid[:8], self.start_us, end, self.call[:8], self.cause, self.answered)


def member_legs(switches, user: str, domain: str) -> list[Leg]:
    """Every leg any of ``switches`` sent to user@domain, in order of creation."""
    legs = []
    for s in switches:
        p = s.phones.get(f"{user}@{domain}")
        for u in (p.calls if p else []):
            ch = s.channel(u)
            if ch is None:
                continue
            legs.append(Leg(switch=s.hostname, uuid=u, start_us=ch.times["Channel-Created-Time"],
                            end_us=ch.times["Channel-Hangup-Time"] or None, call=ch.get_var("fsd_queue_call") or "",
                            cause=ch.hangup_cause or "", answered=bool(ch.times["Channel-Answered-Time"])))
    legs.sort(key=lambda leg: (leg.start_us, leg.switch, leg.uuid))
    return legs


def _event_seq(switch, name: str, uuid: str) -> int | None:
    for ev in switch.events:
        if ev.name == name and ev.uuid == uuid:
            return ev.seq
    return None


def ended_before(first: Leg, second: Leg, switches) -> bool:
    """Did ``first`` end before ``second`` started? Strictly earlier on the shared clock; at the same
    instant only when both are on one switch and its event order says so (CHANNEL_HANGUP of the first
    fired before CHANNEL_CREATE of the second). Otherwise (same instant on two switches, or the events no
    longer kept) they count as overlapping."""
    if first.end_us is None:
        return False
    if first.end_us != second.start_us:
        return first.end_us < second.start_us
    if first.switch != second.switch:
        return False
    sw = next(s for s in switches if s.hostname == first.switch)
    hung, created = _event_seq(sw, "CHANNEL_HANGUP", first.uuid), _event_seq(sw, "CHANNEL_CREATE", second.uuid)
    return hung is not None and created is not None and hung < created


def overlapping_offers(switches, user: str, domain: str) -> list[tuple[Leg, Leg]]:
    """Pairs of legs to user@domain, on any of ``switches``, that were up at the same time. A member is
    offered one call at a time: every such pair is a fault (legs of two calls, or two legs of one call
    to the same phone)."""
    legs = member_legs(switches, user, domain)
    out = []
    for i, b in enumerate(legs):
        for a in legs[:i]:
            if not ended_before(a, b, switches):
                out.append((a, b))
    return out


# -- a switch connection whose commands can be held -------------------------------------------------------
class HoldingProxy(TcpProxy):
    """A TCP proxy whose client→server direction can be held (`held` clear: bytes queued, not forwarded):
    fsd's commands to the switch lag, as they do on a loaded machine, while events still flow back."""

    def __init__(self, port: int):
        self.held = self.gate = gevent.event.Event()
        self.held.set()
        super().__init__(port)


class SwitchNode:
    """fsd's call driver and outbound server on one emulated switch, its inbound ESL through `esl_port`."""

    def __init__(self, *, pool, switch, esl_port: int, node: str):
        self.switch = switch
        self.server = OutboundServer(host="127.0.0.1", port=0, handler=lambda s: self.driver.handle(s))
        self.server.start()
        switch.outbound_target = ("127.0.0.1", self.server.port)
        self.client = InboundClient(host="127.0.0.1", port=esl_port, password="ClueCon", name=switch.hostname,
                                    command_timeout=30)
        self.client.connect(timeout=5)
        self.driver = CallDriver(pool=pool, switches={switch.hostname: self.client},
                                 config=CallsConfig(storage_dir=tmpdir()),
                                 metrics=Metrics(registry=CollectorRegistry()), clock=switch.clock, node=node,
                                 callbacks=False, history_flush_s=0.1)
        self.driver.start()

    def stop(self):
        self.server.stop(timeout=2)
        self.driver.drain(2)
        self.driver.stop()
        self.client.stop()
