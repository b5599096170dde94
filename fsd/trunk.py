"""Keeps every connected FreeSWITCH's trunk gateways in step with the gateways table.

sofia loads gateways from the directory (purpose=gateways) only when the external profile starts. A change made
through fsd (GatewayService → NOTIFY entity "gateway") is applied to each connected switch the way mod_sofia
allows it (src/mod/endpoints/mod_sofia/mod_sofia.c, `sofia profile <p> killgw|startgw`):

* created  → ``startgw NAME`` (the profile fetches the gateways document from fsd and adds that one);
* changed  → ``killgw NAME``, wait until ``sofia status gateway NAME`` answers "Invalid Gateway!" (killgw only
  marks it for deletion; the profile's worker removes it a moment later, and startgw skips a gateway that still
  exists), then ``startgw NAME`` unless it was disabled;
* deleted  → ``killgw NAME``.

Each switch is handled in its own greenlet so a slow or absent switch delays nobody; failures are logged and
counted, never raised into the NOTIFY listener.
"""

from __future__ import annotations

import logging
import re
import time

import gevent

from fsd.errors import FsdError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")


class GatewaySync:
    def __init__(self, *, switches: dict, profile: str = "external", gone_timeout_s: float = 15.0,
                 poll_s: float = 0.25, command_timeout_s: float = 5.0):
        self.switches = switches
        self.profile = profile
        self.gone_timeout_s = gone_timeout_s
        self.poll_s = poll_s
        self.command_timeout_s = command_timeout_s
        self.applied = 0
        self.failures = 0
        self._jobs: list[gevent.Greenlet] = []

    def on_change(self, payload: dict) -> None:
        if payload.get("entity") != "gateway":
            return
        name = str(payload.get("name") or payload.get("id") or "")
        op = payload.get("op")
        if not _NAME.match(name) or op not in ("create", "update", "delete"):
            log.warning("gateway_sync_ignored op=%s name=%r", op, name)
            return
        self._jobs = [j for j in self._jobs if not j.dead]
        for client in list(self.switches.values()):
            if client.connected:
                self._jobs.append(gevent.spawn(self._apply, client, op, name))

    def join(self, timeout: float | None = None) -> None:
        gevent.joinall(self._jobs, timeout=timeout)

    def stop(self) -> None:
        gevent.killall(self._jobs, block=False)

    # -- per switch ------------------------------------------------------------------------------
    def _api(self, client, cmd: str) -> str:
        return client.api(cmd, timeout=self.command_timeout_s).body

    def _apply(self, client, op: str, name: str) -> None:
        p = self.profile
        try:
            if op in ("update", "delete"):
                out = self._api(client, f"sofia profile {p} killgw {name}")
                if "+OK" in out:
                    self._wait_gone(client, name)
                elif "no such gateway" not in out:
                    raise GatewaySyncError(f"killgw answered {out.strip()!r}")
            if op in ("create", "update"):
                out = self._api(client, f"sofia profile {p} startgw {name}")
                if "+OK" not in out and not (op == "update" and "cannot add gateway" in out):
                    # an update that disabled the gateway: the directory no longer lists it, nothing to start
                    raise GatewaySyncError(f"startgw answered {out.strip()!r}")
            self.applied += 1
            log.info("gateway_synced switch=%s op=%s gateway=%s", client.name, op, name)
        except (FsdError, gevent.Timeout) as e:
            self.failures += 1
            log.warning("gateway_sync_failed switch=%s op=%s gateway=%s error=%s", client.name, op, name,
                        e if isinstance(e, GatewaySyncError) else type(e).__name__)

    def _wait_gone(self, client, name: str) -> None:
        deadline = time.monotonic() + self.gone_timeout_s
        while True:
            if "Invalid Gateway" in self._api(client, f"sofia status gateway {name}"):
                return
            if time.monotonic() >= deadline:
                raise GatewaySyncError(f"gateway {name} still present {self.gone_timeout_s:g} s after killgw")
            gevent.sleep(self.poll_s)


class GatewaySyncError(FsdError):
    """FreeSWITCH did not accept a gateway change."""
