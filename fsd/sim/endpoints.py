"""Scripted far ends: registered phones, numbers behind a gateway, and PSTN callers.

Behaviours (what a called endpoint does when the switch rings it):
  Answer(after=2.0, ring=True)   rings (CHANNEL_PROGRESS) then answers `after` simulated seconds later
  Busy(after=0.0)                rejects with USER_BUSY (SIP 486)
  Reject(cause="CALL_REJECTED")  rejects with another cause (e.g. "NORMAL_TEMPORARY_FAILURE" for a 503)
  NoAnswer(ring=True)            rings until the caller gives up (leg_timeout → NO_ANSWER)
  Unregistered()                 user/ dials fail with USER_NOT_REGISTERED and no channel is created
"""

from __future__ import annotations

import logging

import gevent

from fsd.sim import clock as clock_mod
from fsd.sim import variables

log = logging.getLogger(__name__)


class Behaviour:
    ring = True

    def __repr__(self):
        return f"{type(self).__name__}({self.__dict__})"


class Answer(Behaviour):
    def __init__(self, *, after: float = 2.0, ring: bool = True, early_media: bool = False):
        self.after = after
        self.ring = ring
        self.early_media = early_media


class Busy(Behaviour):
    def __init__(self, *, after: float = 0.0):
        self.after = after
        self.ring = False


class Reject(Behaviour):
    def __init__(self, *, cause: str = "CALL_REJECTED", after: float = 0.0):
        self.cause = cause
        self.after = after
        self.ring = False


class NoAnswer(Behaviour):
    def __init__(self, *, ring: bool = True):
        self.ring = ring


class Unregistered(Behaviour):
    ring = False


def behaviour_from_spec(spec) -> Behaviour:
    """Build a behaviour from a scenario-file value: "answer", {"answer": 2.0}, {"busy": {}}, ..."""
    if isinstance(spec, Behaviour):
        return spec
    if spec is None:
        return Answer()
    if isinstance(spec, str):
        spec = {spec: {}}
    ((kind, args),) = spec.items()
    kind = kind.lower().replace("_", "")
    if not isinstance(args, dict):
        args = {"after": float(args)} if kind in ("answer", "busy", "reject") else {}
    cls = {"answer": Answer, "busy": Busy, "reject": Reject, "noanswer": NoAnswer, "unregistered": Unregistered}[kind]
    return cls(**args)


class Endpoint:
    """Something the switch can ring. Subclasses: Phone, GatewayNumber."""

    def __init__(self, *, behaviour: Behaviour | None = None, hangup_after: float | None = None, dtmf=None,
                 talk_after_bridge: float | None = None):
        self.behaviour = behaviour or Answer()
        self.hangup_after = hangup_after  # seconds after its answer
        # seconds after the leg is bridged (a person who talks that long once connected; a leg never bridged
        # is not hung up by it)
        self.talk_after_bridge = talk_after_bridge
        self.dtmf = list(dtmf or [])  # [(seconds_after_answer, "digits"), ...]
        self.calls: list[str] = []  # uuids of legs that rang this endpoint

    def _ring(self, leg, clock) -> None:
        """The INVITE reached this endpoint: its behaviour plays 10 ms (simulated) later (_drive)."""
        self.calls.append(leg.uuid)
        # a greenlet started later rather than one waiting with a timeout (which costs an exception)
        clock_mod.spawn_later(clock.real(0.01), self._drive, leg, clock)

    def _drive(self, leg, clock) -> None:
        """Greenlet: play the behaviour on an outgoing leg until answered or failed."""
        b = self.behaviour
        if leg.hungup.is_set():
            return
        if not isinstance(b, (NoAnswer,)) or b.ring:
            leg.profile["Network-Addr"] = "127.0.0.1"
        contact_user = getattr(self, "user", None) or getattr(self, "number", "")
        if isinstance(b, Answer):
            variables.sip_reply(leg, contact_user=contact_user, port=leg.endpoint_port, to_tag=leg.uuid[-12:])
            if b.ring:
                leg.ring_ready()
            if b.early_media:
                leg.pre_answer()
            if leg.hungup.wait(clock.real(max(0.0, b.after - 0.01))):
                return
            leg.answer()
        elif isinstance(b, Busy):
            if leg.hungup.wait(clock.real(b.after)):
                return
            variables.failed_invite(leg, "USER_BUSY", *variables.SIP_STATUS["USER_BUSY"])
            leg.hangup("USER_BUSY")
        elif isinstance(b, Reject):
            if leg.hungup.wait(clock.real(b.after)):
                return
            status, phrase = variables.SIP_STATUS.get(b.cause, ("603", "Decline"))
            variables.failed_invite(leg, b.cause, status, phrase)
            leg.hangup(b.cause)
        elif isinstance(b, NoAnswer):
            if b.ring:
                variables.sip_reply(leg, contact_user=contact_user, port=leg.endpoint_port, to_tag=leg.uuid[-12:])
                leg.ring_ready()
        elif isinstance(b, Unregistered):
            leg.hangup("USER_NOT_REGISTERED")

    def _on_answer(self, leg) -> None:
        clock = leg.clock
        if self.hangup_after is not None:

            def _hang():
                if not leg.hungup.wait(clock.real(self.hangup_after)):
                    leg.hangup("NORMAL_CLEARING", remote=True)

            clock_mod.spawn(_hang)
        if self.talk_after_bridge is not None:
            talk = self.talk_after_bridge

            def _talk():
                gevent.wait([leg.bridged, leg.hungup], count=1)
                if leg.bridged.is_set() and not leg.hungup.wait(clock.real(talk)):
                    leg.hangup("NORMAL_CLEARING", remote=True)

            clock_mod.spawn(_talk)
        for at, digits in self.dtmf:

            def _press(at=at, digits=digits):
                if not leg.hungup.wait(clock.real(at)):
                    leg.send_dtmf(digits)

            clock_mod.spawn(_press)


class Phone(Endpoint):
    """A SIP phone in the switch's directory. `registered` controls whether user/ dials reach it."""

    def __init__(
        self,
        user: str,
        domain: str = "127.0.0.1",
        password: str = "1234",  # noqa: S107 - the default of the captures' users
        behaviour: Behaviour | None = None,
        hangup_after: float | None = None,
        dtmf=None,
        *,
        register: bool = True,
        port: int | None = None,
        user_agent: str = "fsd-sim-phone",
        variables: dict | None = None,
        talk_after_bridge: float | None = None,
    ):
        super().__init__(behaviour=behaviour, hangup_after=hangup_after, dtmf=dtmf,
                         talk_after_bridge=talk_after_bridge)
        self.user = user
        self.domain = domain
        self.password = password
        self.register_on_add = register and not isinstance(self.behaviour, Unregistered)
        self.registered = False
        self.port = port
        self.user_agent = user_agent
        self.variables = dict(variables or {})
        self.call_id = None
        self.registered_at = 0.0
        self.number_alias: str | None = None

    @property
    def key(self) -> str:
        return f"{self.user}@{self.domain}"


class GatewayNumber(Endpoint):
    def __init__(self, number: str, **kw):
        super().__init__(**kw)
        self.number = number


class Gateway:
    """A SIP trunk: `sofia/gateway/NAME/NUMBER`. `numbers` maps a number to its behaviour (or an
    Endpoint); other numbers use `behaviour`. `reachable=False` fails every call at once with
    NORMAL_TEMPORARY_FAILURE (the ICMP port-unreachable case of the captures)."""

    def __init__(
        self,
        name: str,
        *,
        behaviour: Behaviour | None = None,
        numbers: dict | None = None,
        hangup_after: float | None = None,
        dtmf=None,
        reachable: bool = True,
        proxy: str = "127.0.0.1:5090",
        username: str | None = None,
    ):
        self.name = name
        self.proxy = proxy
        self.username = username or name
        self.behaviour = behaviour or Answer()
        self.hangup_after = hangup_after
        self.dtmf = list(dtmf or [])
        self.reachable = reachable
        self.numbers: dict[str, Endpoint] = {}
        for num, b in (numbers or {}).items():
            self.numbers[num] = b if isinstance(b, Endpoint) else GatewayNumber(num, behaviour=behaviour_from_spec(b))

    def endpoint_for(self, number: str) -> Endpoint:
        ep = self.numbers.get(number)
        if ep is None:
            ep = GatewayNumber(number, behaviour=self.behaviour, hangup_after=self.hangup_after, dtmf=self.dtmf)
            self.numbers[number] = ep
        return ep


class CallerScript:
    """What a simulated inbound caller does.

    hangup_after:   hang up this many simulated seconds after the call arrived (None = never)
    dtmf:           [(seconds_after_answer, "digits"), ...] pressed at fixed times
    prompt_digits:  digits sent during successive play_and_get_digits/read prompts, one entry per
                    prompt, `prompt_delay` seconds after the prompt starts (this breaks the prompt)
    record_seconds: how long the caller speaks when recorded (None = until the recording's limit)
    """

    def __init__(
        self,
        *,
        hangup_after: float | None = None,
        dtmf=None,
        prompt_digits=None,
        prompt_delay: float = 0.5,
        record_seconds: float | None = 2.0,
        dtmf_via: str = "rfc2833",
    ):
        self.dtmf_via = dtmf_via
        self.hangup_after = hangup_after
        self.dtmf = list(dtmf or [])
        self.prompt_digits = list(prompt_digits or [])
        self.prompt_delay = prompt_delay
        self.record_seconds = record_seconds

    def _on_start(self, channel) -> None:
        clock = channel.clock
        if self.hangup_after is not None:

            def _hang():
                if not channel.hungup.is_set():
                    channel.hangup("NORMAL_CLEARING", remote=True)

            # a greenlet started later rather than one waiting with a timeout (which costs an exception)
            clock_mod.spawn_later(clock.real(self.hangup_after), _hang)

    def _on_answer(self, channel) -> None:
        clock = channel.clock
        for at, digits in self.dtmf:

            def _press(at=at, digits=digits):
                if not channel.hungup.wait(clock.real(at)):
                    channel.send_dtmf(digits, via=self.dtmf_via)

            clock_mod.spawn(_press)

    def _on_prompt(self, channel) -> None:
        if not self.prompt_digits:
            return
        digits = self.prompt_digits.pop(0)
        if not digits:
            return
        clock = channel.clock

        def _press():
            if not channel.hungup.wait(clock.real(self.prompt_delay)):
                channel.send_dtmf(digits, via=self.dtmf_via)

        clock_mod.spawn(_press)
