"""Start-up recovery after fsd died (kill -9, OOM, power) with calls in flight.

FreeSWITCH keeps what fsd started: member legs fsd originated (``fsd_queue_call=<caller uuid>``)
that were bridged to their caller go on talking; legs still ringing (or answered but never bridged)
are orphans nobody will ever bridge. PostgreSQL keeps the dead process's reservations. On start,
before the call driver (whose MemberBoard drops every reservation of this node), fsd:

1. asks every switch for its live channels (``show channels as json``, then ``uuid_getvar`` of the
   outbound legs' ``fsd_queue_call``, ``bridge_to``, ``dialed_user``, ``dialed_domain``);
2. kills orphan legs (the member's phone stops ringing);
3. keeps the reservation of every member still in a conversation: it is moved to the node name
   ``<node>#recovered`` (so the MemberBoard's start-up clean-up leaves it), and released when the
   conversation ends (CHANNEL_HANGUP of the caller or the leg, and a periodic ``uuid_exists`` check
   in case an event is missed across a reconnect). The inbound connection is filtered (the call driver
   asks only for its own channels' events, fsd/calls/links.py): recovery adds the filter
   ``Unique-ID <uuid>`` for each channel it watches and removes it when done;
4. releases every other reservation of this node (also old ``#recovered`` ones whose call is gone).

A switch that does not answer within ``wait_s`` cannot be checked: reservations whose call may live
there are kept (moved, with a short expiry) rather than risk offering a talking member a second call.

Wiring (composition root, fsd/app.py App.start), after the switches were started and BEFORE the
call driver starts::

    self.recovery = recover(pool=self.pool, switches=self.switches, node=self.config.node.name,
                            wait_s=self.config.esl.connect_timeout_s)
    self.calls.start()
    ...
    # App.stop(): self.recovery.stop()
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import gevent

from fsd.errors import ESLError, FsdError, StoreError
from fsd.store import calls_repo, recovery_repo

log = logging.getLogger(__name__)

ADOPTED_SUFFIX = "#recovered"
TALK_TTL_S = 12 * 3600.0
UNVERIFIED_TTL_S = 300.0
UNSET = ("", "_undef_")


@dataclass
class Adopted:
    employee_id: int
    call_uuid: str  # the caller's channel
    leg_uuid: str | None  # the member's leg (None: kept unverified, the switch was unreachable)
    switch: str | None


@dataclass
class RecoveryReport:
    channels: int = 0
    member_legs: int = 0
    legs_killed: list[str] = field(default_factory=list)
    adopted: list[Adopted] = field(default_factory=list)
    released: int = 0
    switches_down: list[str] = field(default_factory=list)


class Recovery:
    def __init__(self, *, pool, switches: dict, node: str, wait_s: float = 5.0, command_timeout: float = 5.0,
                 poll_s: float = 5.0):
        self.pool = pool
        self.switches = switches
        self.node = node
        self.adopted_node = node + ADOPTED_SUFFIX
        self.wait_s = wait_s
        self.command_timeout = command_timeout
        self.poll_s = poll_s
        self.report = RecoveryReport()
        self.watched: dict[str, list[Adopted]] = {}  # channel uuid (caller or leg) -> adopted reservations
        self._subs: list = []
        self._filtered: set[tuple[str, str]] = set()  # (switch, channel uuid) with a Unique-ID filter of ours
        self._poller: gevent.Greenlet | None = None

    # ------------------------------------------------------------------ one pass at start
    def run(self) -> RecoveryReport:
        rep = self.report
        live: dict[str, str] = {}  # channel uuid -> switch name
        legs = []  # (switch, leg uuid, queue call uuid, answered, bridge_to, employee_id or None)
        checked: list[str] = []
        for name, client in self.switches.items():
            if not client.wait_connected(self.wait_s):
                rep.switches_down.append(name)
                continue
            try:
                rows = self._channels(client)
                for row in rows:
                    live[row["uuid"]] = name
                rep.channels += len(rows)
                for row in rows:
                    if row.get("direction") != "outbound":
                        continue
                    q = self._getvar(client, row["uuid"], "fsd_queue_call")
                    if q is None:
                        continue
                    legs.append((name, row["uuid"], q, row.get("callstate") == "ACTIVE",
                                 self._getvar(client, row["uuid"], "bridge_to"),
                                 (self._getvar(client, row["uuid"], "dialed_user"),
                                  self._getvar(client, row["uuid"], "dialed_domain"))))
                checked.append(name)
            except (ESLError, ValueError, KeyError) as e:
                log.warning("calls_recovery_switch_failed switch=%s error=%s", name, e)
                rep.switches_down.append(name)
        rep.member_legs = len(legs)

        talking: dict[str, list[tuple[str, str, int | None]]] = {}  # call uuid -> [(switch, leg, employee)]
        with self.pool.transaction() as cur:
            for name, leg, q, answered, bridge_to, (user, domain) in legs:
                if answered and bridge_to and q in live:
                    emp = recovery_repo.employee_by_extension(cur, domain, user) if user and domain else None
                    talking.setdefault(q, []).append((name, leg, emp))
                else:
                    self._kill(self.switches[name], leg, "NORMAL_CLEARING" if answered else "ORIGINATOR_CANCEL")
            rows = recovery_repo.reservations_of(cur, [self.node, self.adopted_node])
            for r in rows:
                emp, q = r["employee_id"], r["call_uuid"]
                conv = talking.get(q)
                if conv is not None and any(e in (emp, None) for _n, _l, e in conv):
                    name, leg, _e = next(c for c in conv if c[2] in (emp, None))
                    recovery_repo.adopt(cur, emp, call_uuid=q, from_nodes=[self.node, self.adopted_node],
                                        node=self.adopted_node, ttl_s=TALK_TTL_S)
                    rep.adopted.append(Adopted(employee_id=emp, call_uuid=q, leg_uuid=leg, switch=name))
                elif rep.switches_down and q not in live:
                    # the call may be on a switch we could not ask: keep it a while rather than guess
                    recovery_repo.adopt(cur, emp, call_uuid=q, from_nodes=[self.node, self.adopted_node],
                                        node=self.adopted_node, ttl_s=UNVERIFIED_TTL_S)
                    rep.adopted.append(Adopted(employee_id=emp, call_uuid=q, leg_uuid=None, switch=None))
                else:
                    rep.released += recovery_repo.drop(cur, emp, call_uuid=q)
        for a in rep.adopted:
            if a.leg_uuid is not None:
                self.watched.setdefault(a.call_uuid, []).append(a)
                self.watched.setdefault(a.leg_uuid, []).append(a)
        log.info("calls_recovered node=%s channels=%d member_legs=%d killed=%d kept=%d released=%d "
                 "switches_unchecked=%s", self.node, rep.channels, rep.member_legs, len(rep.legs_killed),
                 len(rep.adopted), rep.released, ",".join(rep.switches_down) or "none")
        return rep

    # ------------------------------------------------------------------ watching kept conversations
    def start(self) -> Recovery:
        if not self.watched:
            return self
        names = {a.switch for lst in self.watched.values() for a in lst}
        for name in names:
            self._subs.append(self.switches[name].subscribe("CHANNEL_HANGUP", self._on_hangup))
        for uuid, lst in list(self.watched.items()):
            self._filter(lst[0].switch, uuid)
        self._poller = gevent.spawn(self._poll_loop)
        return self

    def _filter(self, name: str, uuid: str) -> None:
        """Ask the switch for this channel's events (kept across reconnects by the client)."""
        key = (name, uuid)
        if key in self._filtered:
            return
        self._filtered.add(key)
        try:
            self.switches[name].add_filter("Unique-ID", uuid)
        except ESLError as e:  # the client keeps it and sends it on the next connect; the poll covers meanwhile
            log.warning("calls_recovery_filter_failed switch=%s uuid=%s error=%s", name, uuid, e)

    def _unfilter(self, uuid: str) -> None:
        for key in [k for k in self._filtered if k[1] == uuid]:
            self._filtered.discard(key)
            try:
                self.switches[key[0]].remove_filter("Unique-ID", uuid)
            except ESLError as e:  # a leftover filter only lets that (gone) channel's events through
                log.warning("calls_recovery_unfilter_failed switch=%s uuid=%s error=%s", key[0], uuid, e)

    def stop(self) -> None:
        for s in self._subs:
            try:
                s.unsubscribe()
            except Exception:  # noqa: BLE001, S110 - best effort at shutdown
                pass
        self._subs.clear()
        for _name, uuid in list(self._filtered):
            self._unfilter(uuid)
        if self._poller is not None:
            self._poller.kill(block=False)
            self._poller = None

    @property
    def kept(self) -> int:
        return len({(a.employee_id, a.call_uuid) for lst in self.watched.values() for a in lst})

    def _on_hangup(self, ev) -> None:
        uuid = ev.uuid
        if uuid in self.watched:
            self._end(uuid)

    def _end(self, uuid: str) -> None:
        ended = {uuid}
        for a in self.watched.pop(uuid, []):
            other = a.leg_uuid if uuid == a.call_uuid else a.call_uuid
            ended.add(other)
            rest = [x for x in self.watched.get(other, []) if x is not a]
            if rest:
                self.watched[other] = rest
            else:
                self.watched.pop(other, None)
            try:
                with self.pool.transaction() as cur:
                    recovery_repo.drop(cur, a.employee_id, call_uuid=a.call_uuid)
                    calls_repo.employee_call_ended(cur, a.employee_id, _utcnow())
                log.info("calls_recovered_call_ended call=%s employee=%s", a.call_uuid, a.employee_id)
            except (StoreError, FsdError) as e:
                log.warning("calls_recovered_release_failed call=%s error=%s retry=poll", a.call_uuid, e)
                self.watched.setdefault(uuid, []).append(a)
        if not self.watched:
            self.stop()
            return
        for u in ended:
            if u not in self.watched:
                self._unfilter(u)

    def _poll_loop(self) -> None:
        while self.watched:
            gevent.sleep(self.poll_s)
            for uuid in list(self.watched):
                lst = self.watched.get(uuid) or []
                if not lst:
                    continue
                client = self.switches.get(lst[0].switch)
                if client is None or not client.connected:
                    continue
                try:
                    r = client.api(f"uuid_exists {uuid}", timeout=self.command_timeout)
                except ESLError:
                    continue
                if r.ok and r.text.strip() == "false":
                    self._end(uuid)

    # ------------------------------------------------------------------ ESL helpers
    def _channels(self, client) -> list[dict]:
        r = client.api("show channels as json", timeout=self.command_timeout)
        if not r.ok:
            raise ValueError(f"show channels: {r.text[:200]}")
        data = json.loads(r.text or "{}")
        return list(data.get("rows") or [])

    def _getvar(self, client, uuid: str, var: str) -> str | None:
        r = client.api(f"uuid_getvar {uuid} {var}", timeout=self.command_timeout)
        if not r.ok:
            return None
        v = r.text.strip()
        return None if v in UNSET else v

    def _kill(self, client, uuid: str, cause: str) -> None:
        try:
            client.api(f"uuid_kill {uuid} {cause}", timeout=self.command_timeout)
            self.report.legs_killed.append(uuid)
        except ESLError as e:
            log.warning("calls_recovery_kill_failed leg=%s error=%s", uuid, e)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def recover(*, pool, switches: dict, node: str, wait_s: float = 5.0, command_timeout: float = 5.0,
            poll_s: float = 5.0) -> Recovery:
    """Run start-up recovery once and keep watching the conversations it kept; returns the Recovery
    (``.report`` for what was done, ``.stop()`` at shutdown). Never raises for an unreachable
    database: recovery is then skipped (logged) and the MemberBoard's own clean-up applies."""
    rec = Recovery(pool=pool, switches=switches, node=node, wait_s=wait_s, command_timeout=command_timeout,
                   poll_s=poll_s)
    try:
        rec.run()
    except (StoreError, FsdError) as e:
        log.warning("calls_recovery_failed node=%s error=%s", node, e)
        return rec
    return rec.start()
