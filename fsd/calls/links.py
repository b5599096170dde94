"""One FreeSWITCH node as the call driver uses it: its inbound ESL client, and the routing of that
node's channel events to the call that owns the channel (member legs we originated).

The inbound connection asks FreeSWITCH only for what the driver uses (ESL filters, OR'ed): the channels
this link originated - every originate string fsd builds carries ``SwitchLink.marker``
(``fsd_link=<tag>``, a token of this link) and the filter ``variable_fsd_link <tag>`` picks their events -,
the sofia registration events, and BACKGROUND_JOB (InboundClient adds it). A caller's channel carries no
marker: its CHANNEL_ANSWER and CHANNEL_HANGUP (4-8 KB each) are no longer serialized and sent to fsd.
Others on the same client add their own filters (recovery: the Unique-ID of each channel it watches).
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from collections.abc import Callable

from fsd.errors import ESLError

log = logging.getLogger(__name__)

LEG_EVENTS = ("CHANNEL_ANSWER", "CHANNEL_HANGUP")
REG_EVENTS = ("sofia::register", "sofia::unregister", "sofia::expire")
MARKER_VAR = "fsd_link"  # the channel variable that marks the channels a link originated


class SwitchLink:
    def __init__(self, *, name: str, client, on_registration: Callable | None = None, tag: str | None = None):
        self.name = name
        self.client = client
        # the marker's value: unique to this link (an fsd process restarted, or another node on the same switch,
        # has its own: the events of channels it did not originate are not ours to route)
        self.tag = tag or uuidlib.uuid4().hex[:12]
        self.hostname: str | None = None
        self.owners: dict[str, Callable] = {}  # channel uuid -> handler(event)
        self.on_registration = on_registration
        self._attached = False
        self.events_routed = 0

    def attach(self) -> None:
        if self._attached:
            return
        self._attached = True
        # One handler for every event keeps a channel's ANSWER and HANGUP in order. Inline: it only hands
        # the event to its call (a queue put) or the member board, so the reader calls it directly.
        self.client.subscribe("*", self._on_event, inline=True)
        # the filters before the event names: the leg events are asked for already filtered
        for header, value in self.filters():
            self.client.add_filter(header, value)
        self.client.add_events(*LEG_EVENTS, *(f"CUSTOM {s}" for s in REG_EVENTS))

    @property
    def marker(self) -> str:
        """``name=value`` for the originate strings: the channels that carry it are this link's."""
        return f"{MARKER_VAR}={self.tag}"

    def filters(self) -> list[tuple[str, str]]:
        """The ESL filters of what the driver uses: its own channels and the registration events."""
        return [(f"variable_{MARKER_VAR}", self.tag), *(("Event-Subclass", s) for s in REG_EVENTS)]

    def resolve_hostname(self) -> str | None:
        if self.hostname is None and self.client.connected:
            try:
                r = self.client.api("hostname", timeout=2.0)
                if r.ok:
                    self.hostname = r.text.strip()
            except ESLError as e:
                log.debug("calls_hostname_failed switch=%s error=%s", self.name, e)
        return self.hostname

    def own(self, uuid: str, handler: Callable) -> None:
        self.owners[uuid] = handler

    def disown(self, uuid: str) -> None:
        self.owners.pop(uuid, None)

    def _on_event(self, ev) -> None:
        name = ev.name
        if name == "CUSTOM":
            sub = ev.subclass
            if sub in REG_EVENTS and self.on_registration is not None:
                user = ev.get("username") or ev.get("from-user") or ev.get("to-user")
                domain = ev.get("realm") or ev.get("from-host") or ev.get("to-host")
                self.on_registration(user, domain, sub == "sofia::register")
            return
        uuid = ev.uuid
        if not uuid:
            return
        h = self.owners.get(uuid)
        if h is not None:
            self.events_routed += 1
            h(ev)

    # -- commands ----------------------------------------------------------------------------------
    def api(self, cmd: str, timeout: float = 5.0):
        return self.client.api(cmd, timeout=timeout)

    def api_many(self, cmds: list[str], timeout: float = 5.0):
        return self.client.api_many(cmds, timeout=timeout)

    def api_nowait(self, cmd: str, callback: Callable, *, timeout: float | None = None) -> None:
        self.client.api_nowait(cmd, callback, timeout=timeout)

    def bgapi_nowait(self, cmd: str, *, job_timeout: float, reply_timeout: float = 5.0):
        return self.client.bgapi_nowait(cmd, job_timeout=job_timeout, reply_timeout=reply_timeout)

    def bgapi(self, cmd: str, *, job_uuid: str | None = None, timeout: float = 5.0):
        return self.client.bgapi(cmd, timeout=timeout, job_uuid=job_uuid)
