"""fsd.sim: an emulator of FreeSWITCH 1.10 as seen over the event socket (inbound and outbound),
with scripted phones, gateways and callers. It imports nothing from fsd but fsd.errors."""

from fsd.sim.clock import Clock
from fsd.sim.endpoints import Answer, Busy, CallerScript, Gateway, NoAnswer, Phone, Reject, Unregistered
from fsd.sim.switch import Switch

__all__ = [
    "Answer",
    "Busy",
    "CallerScript",
    "Clock",
    "Gateway",
    "NoAnswer",
    "Phone",
    "Reject",
    "Switch",
    "Unregistered",
]
