"""Scenario files for `fsd sim --scenario FILE` (YAML or JSON).

    switch:                       # Switch(...) keywords; outbound_target may be "host:port"
      hostname: sim1
      esl_port: 8021
      password: ClueCon
      outbound_target: 127.0.0.1:8084
      time_scale: 1.0
      fallback: ["playback:tone_stream://%(500,0,300)", "hangup"]
    phones:
      - {user: "1001", domain: 127.0.0.1, password: "1234", behaviour: {answer: {after: 2}}, hangup_after: 30}
      - {user: "1002", behaviour: busy}
      - {user: "1003", behaviour: unregistered}
    gateways:
      - {name: pstn_trunk, behaviour: answer, numbers: {"200": busy}, reachable: true}
    traffic:                      # generators of inbound PSTN calls
      - did: "74950000001"
        calls_per_second: 0.5
        count: 10                 # optional: stop after this many calls
        caller: "7916{seq:07d}"   # str.format with seq=1,2,...
        caller_name: PSTN Caller
        script: {hangup_after: 60, prompt_digits: ["1"], dtmf: [[2.5, "1"]], record_seconds: 3}
    calls:                        # single calls at a simulated time offset
      - {at: 1.0, did: "74950000001", caller: "79161234567"}
    run_for: 120                  # simulated seconds, then stop (default: until interrupted)

Behaviours: answer | busy | noanswer | unregistered | reject, optionally with arguments
({answer: {after: 2}}, {answer: 2}, {reject: {cause: CALL_REJECTED}}).
"""

from __future__ import annotations

import json
import logging
import os

import gevent

from fsd.errors import ConfigError
from fsd.sim.endpoints import CallerScript, Gateway, Phone, behaviour_from_spec
from fsd.sim.switch import Switch

log = logging.getLogger(__name__)

SWITCH_KEYS = {
    "hostname",
    "esl_host",
    "esl_port",
    "password",
    "outbound_target",
    "xml_curl_url",
    "xml_curl_credentials",
    "core_uuid",
    "time_scale",
    "ipv4",
    "ipv6",
    "domain",
    "heartbeat_interval",
    "fallback",
    "missing_file_duration",
    "dialplan",
    "global_vars",
    "keep_events",
}


def load_scenario(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"scenario file not found: {path}")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError("scenario must be a mapping")
    return data


def _script(spec: dict | None) -> CallerScript:
    spec = dict(spec or {})
    if "dtmf" in spec:
        spec["dtmf"] = [tuple(x) for x in spec["dtmf"]]
    return CallerScript(**spec)


def build_switch(scenario: dict, **overrides) -> Switch:
    cfg = dict(scenario.get("switch") or {})
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(cfg) - SWITCH_KEYS
    if unknown:
        raise ConfigError(f"unknown switch settings: {', '.join(sorted(unknown))}")
    target = cfg.get("outbound_target")
    if isinstance(target, str):
        host, _, port = target.rpartition(":")
        cfg["outbound_target"] = (host or "127.0.0.1", int(port))
    if isinstance(cfg.get("xml_curl_credentials"), str):
        cfg["xml_curl_credentials"] = tuple(cfg["xml_curl_credentials"].split(":", 1))
    cfg.setdefault("keep_events", 20000)
    sw = Switch(**cfg)
    for p in scenario.get("phones") or []:
        p = dict(p)
        behaviour = behaviour_from_spec(p.pop("behaviour", None))
        dtmf = [tuple(x) for x in p.pop("dtmf", [])]
        phone = Phone(
            str(p.pop("user")),
            str(p.pop("domain", sw.domain)),
            str(p.pop("password", "1234")),
            behaviour,
            p.pop("hangup_after", None),
            dtmf,
            **p,
        )
        sw.add_phone(phone)
    for g in scenario.get("gateways") or []:
        g = dict(g)
        name = g.pop("name")
        behaviour = behaviour_from_spec(g.pop("behaviour", None))
        if "dtmf" in g:
            g["dtmf"] = [tuple(x) for x in g["dtmf"]]
        sw.add_gateway(Gateway(name, behaviour=behaviour, **g))
    return sw


class ScenarioRunner:
    """Starts the switch, registers the phones and runs the traffic generators."""

    def __init__(self, *, scenario: dict, switch: Switch):
        self.scenario = scenario
        self.switch = switch
        self.greenlets: list[gevent.Greenlet] = []
        self.calls = []

    def start(self) -> None:
        self.switch.start()
        for gen in self.scenario.get("traffic") or []:
            self.greenlets.append(gevent.spawn(self._traffic, dict(gen)))
        for call in self.scenario.get("calls") or []:
            self.greenlets.append(gevent.spawn(self._one_call, dict(call)))

    def _place(self, spec: dict, seq: int):
        caller = str(spec.get("caller", "79160000000")).format(seq=seq)
        ch = self.switch.incoming_call(
            did=str(spec["did"]),
            caller=caller,
            caller_name=spec.get("caller_name", ""),
            script=_script(spec.get("script")),
            context=spec.get("context", "public" if spec.get("profile", "external") == "external" else "default"),
            profile=spec.get("profile", "external"),
        )
        self.calls.append(ch)
        log.info("sim_call_placed did=%s caller=%s uuid=%s", spec["did"], caller, ch.uuid)
        return ch

    def _one_call(self, spec: dict) -> None:
        self.switch.clock.sleep(float(spec.pop("at", 0.0)))
        self._place(spec, 1)

    def _traffic(self, spec: dict) -> None:
        cps = float(spec.get("calls_per_second", 1.0))
        count = spec.get("count")
        interval = 1.0 / cps if cps > 0 else 0
        seq = 0
        self.switch.clock.sleep(float(spec.get("start_after", 0.0)))
        while count is None or seq < int(count):
            seq += 1
            self._place(spec, seq)
            self.switch.clock.sleep(interval)

    def run(self) -> None:
        run_for = self.scenario.get("run_for")
        if run_for is None:
            gevent.wait()
        else:
            self.switch.clock.sleep(float(run_for))

    def stop(self) -> None:
        for g in self.greenlets:
            g.kill(block=False)
        self.switch.stop()
