"""The emulated FreeSWITCH: event bus, ESL server, directory of phones, gateways and incoming calls.

Several Switch instances can run in one process; each has its own ESL port and Core-UUID.
"""

from __future__ import annotations

import itertools
import logging
import socket
import time
from email.utils import formatdate

import gevent
import gevent.event
import gevent.server
from gevent import socket as gsocket

from fsd.sim import ids, wire
from fsd.sim.api import VERSION, Api, _uptime_text
from fsd.sim.apps import split_app_spec
from fsd.sim.channel import Channel, channel_part, render_plain_into
from fsd.sim.clock import Clock
from fsd.sim.endpoints import CallerScript, Gateway, Phone
from fsd.sim.variables import remote_sdp

log = logging.getLogger(__name__)

_API_CALLING = ("switch_loadable_module.c", "switch_api_execute", "2954")

EVENT_NAMES = {
    "CUSTOM",
    "CLONE",
    "CHANNEL_CREATE",
    "CHANNEL_DESTROY",
    "CHANNEL_STATE",
    "CHANNEL_CALLSTATE",
    "CHANNEL_ANSWER",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HOLD",
    "CHANNEL_UNHOLD",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_OUTGOING",
    "CHANNEL_PARK",
    "CHANNEL_UNPARK",
    "CHANNEL_APPLICATION",
    "CHANNEL_ORIGINATE",
    "CHANNEL_UUID",
    "API",
    "LOG",
    "INBOUND_CHAN",
    "OUTBOUND_CHAN",
    "STARTUP",
    "SHUTDOWN",
    "PUBLISH",
    "UNPUBLISH",
    "TALK",
    "NOTALK",
    "SESSION_CRASH",
    "MODULE_LOAD",
    "MODULE_UNLOAD",
    "DTMF",
    "MESSAGE",
    "PRESENCE_IN",
    "NOTIFY_IN",
    "PRESENCE_OUT",
    "PRESENCE_PROBE",
    "MESSAGE_WAITING",
    "MESSAGE_QUERY",
    "ROSTER",
    "CODEC",
    "BACKGROUND_JOB",
    "DETECTED_SPEECH",
    "DETECTED_TONE",
    "PRIVATE_COMMAND",
    "HEARTBEAT",
    "TRAP",
    "ADD_SCHEDULE",
    "DEL_SCHEDULE",
    "EXE_SCHEDULE",
    "RE_SCHEDULE",
    "RELOADXML",
    "NOTIFY",
    "PHONE_FEATURE",
    "PHONE_FEATURE_SUBSCRIBE",
    "SEND_MESSAGE",
    "RECV_MESSAGE",
    "REQUEST_PARAMS",
    "CHANNEL_DATA",
    "GENERAL",
    "COMMAND",
    "SESSION_HEARTBEAT",
    "CLIENT_DISCONNECTED",
    "SERVER_DISCONNECTED",
    "SEND_INFO",
    "RECV_INFO",
    "RECV_RTCP_MESSAGE",
    "SEND_RTCP_MESSAGE",
    "CALL_SECURE",
    "NAT",
    "RECORD_START",
    "RECORD_STOP",
    "PLAYBACK_START",
    "PLAYBACK_STOP",
    "CALL_UPDATE",
    "FAILURE",
    "SOCKET_DATA",
    "MEDIA_BUG_START",
    "MEDIA_BUG_STOP",
    "CONFERENCE_DATA_QUERY",
    "CONFERENCE_DATA",
    "CALL_SETUP_REQ",
    "CALL_SETUP_RESULT",
    "CALL_DETAIL",
    "DEVICE_STATE",
    "TEXT",
    "SHUTDOWN_REQUESTED",
    "ALL",
}


def _connect_tcp(host: str, port: int, *, timeout: float):
    """socket.create_connection, without the resolver round trip (a thread-pool hop in gevent) when
    `host` is already an IP address."""
    family = None
    for fam in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(fam, host)
        except OSError:
            continue
        family = fam
        break
    if family is None:
        return gsocket.create_connection((host, port), timeout=timeout)
    sock = gsocket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


class Event:
    """One fired event: ordered headers (duplicates allowed) and an optional body.

    Channel events are built lazily: their `headers` list is rendered on first use (a connection that
    wants the event, or a reader of Switch.events) from a snapshot taken when the event was fired, so the
    many events nobody subscribed to cost no formatting. Their event-plain frame is made without the list,
    from memoised blocks (Switch._plain_frame), unless the headers were read or set first."""

    __slots__ = ("name", "subclass", "_headers", "_switch", "_calling", "_tail", "_owner", "_pre", "_before",
                 "_snap", "_vars", "_after", "body", "uuid", "seq", "t", "real", "_frames")

    # A fired event is its own entry in Switch.log (one object less per event): kind "event", conn 0,
    # text = its name, event = itself, real = time.monotonic() when fired, t (simulated time).
    kind = "event"
    conn = 0

    @property
    def text(self) -> str:
        return self.name

    @property
    def event(self) -> Event:
        return self

    def __init__(self, name: str, subclass: str | None = None):
        self.name = name
        self.subclass = subclass
        self._headers: list[tuple[str, str]] | None = []
        # while the headers are not rendered (_headers None): the switch and calling (file, function, line),
        # then either `_tail` (the headers after the common ones, or a function returning them) or, for a
        # channel event, the channel (`_owner`), `_before`, its Channel._snapshot() (`_snap`, `_vars`) and
        # `_after`; `_pre`: headers before the common ones (PRIVATE_COMMAND)
        self._switch = self._calling = self._tail = self._owner = self._before = self._snap = self._after = None
        self._pre = self._vars = None
        self.body: str | None = None
        self.uuid: str | None = None
        self.seq = 0
        self.t = 0.0
        self.real = 0.0
        self._frames: dict[str, bytes] | None = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        h = self._headers
        if h is None:
            h = self._switch._base_headers(self, self._calling)
            if self._pre:
                h[:0] = self._pre
            if self._snap is not None:
                h += self._before
                h += channel_part(self._snap, self._vars)
                h += self._after
            else:
                tail = self._tail
                h += tail() if callable(tail) else tail
            self._headers = h
            self._switch = self._tail = self._owner = self._pre = self._before = self._snap = self._after = None
            self._vars = None
        return h

    @headers.setter
    def headers(self, value: list[tuple[str, str]]) -> None:
        self._headers = value
        self._switch = self._tail = self._owner = self._pre = self._before = self._snap = self._after = None
        self._vars = None

    def get(self, name: str, default=None):
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def header_dict(self) -> dict:
        d = {}
        for k, v in self.headers:
            d.setdefault(k, v)
        return d

    def frame(self, fmt: str) -> bytes:
        frames = self._frames
        if frames is None:
            frames = self._frames = {}
        f = frames.get(fmt)
        if f is None:
            if fmt == "plain" and self._headers is None:
                f = self._switch._plain_frame(self)
            else:
                f = wire.event_frame(fmt, self.headers, self.body)
            frames[fmt] = f
        return f

    def __repr__(self):
        return f"<Event {self.name}{'/' + self.subclass if self.subclass else ''} uuid={self.uuid}>"


_new_event = object.__new__


class LogEntry:
    __slots__ = ("t", "real", "kind", "conn", "text", "event", "headers")

    def __init__(self, t, real, kind, conn, text, event=None, headers=None):
        self.t = t
        self.real = real
        self.kind = kind
        self.conn = conn
        self.text = text
        self.event = event
        self.headers = headers

    def __repr__(self):
        return f"<{self.kind} conn={self.conn} {self.text!r}>"


class Switch:
    """An emulated FreeSWITCH 1.10 instance."""

    EVENT_NAMES = EVENT_NAMES

    def __init__(
        self,
        *,
        hostname: str = "sim1",
        esl_host: str = "127.0.0.1",
        esl_port: int = 0,
        password: str = "ClueCon",  # noqa: S107 - FreeSWITCH's default
        outbound_target: tuple[str, int] | None = None,
        xml_curl_url: str | None = None,
        xml_curl_credentials: tuple[str, str] | None = None,
        core_uuid: str | None = None,
        clock: Clock | None = None,
        time_scale: float = 1.0,
        ipv4: str = "127.0.0.1",
        ipv6: str = "::1",
        domain: str = "127.0.0.1",
        heartbeat_interval: float = 20.0,
        chunking=None,
        fallback=None,
        missing_file_duration: float | None = None,
        dialplan: dict | None = None,
        global_vars: dict | None = None,
        keep_events: int | None = None,
        socket_resume_contexts=("fsd-public", "fsd-internal"),
    ):
        self.hostname = hostname
        self.esl_host = esl_host
        self._esl_port_cfg = esl_port
        self.password = password
        self.outbound_target = tuple(outbound_target) if outbound_target else None
        self.xml_curl_url = xml_curl_url
        self.xml_curl_credentials = xml_curl_credentials
        self.core_uuid = core_uuid or ids.uuid4()
        self.clock = clock or Clock(time_scale=time_scale)
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.domain = domain
        self.heartbeat_interval = heartbeat_interval
        self.chunking = chunking
        self.fallback = [split_app_spec(a) for a in (fallback if fallback is not None else ["hangup:NORMAL_CLEARING"])]
        self.missing_file_duration = missing_file_duration
        self.dialplan = dialplan or {}
        # contexts whose default dialplan runs `set socket_resume=true` before `socket`, as
        # freeswitch-conf/dialplan/fsd.xml does (so losing fsd sends the caller to the fallback)
        self.socket_resume_contexts = frozenset(socket_resume_contexts or ())
        self.global_vars = {
            "hostname": hostname,
            "domain": domain,
            "domain_name": domain,
            "local_ip_v4": ipv4,
            "switch_serial": "sim",
        }
        self.global_vars.update(global_vars or {})
        self.keep_events = keep_events
        self.api = Api(switch=self)
        self.phones: dict[str, Phone] = {}
        self.gateways: dict[str, Gateway] = {}
        self.channels_by_uuid: dict[str, Channel] = {}
        self.all_channels: list[Channel] = []
        self.connections: set = set()
        # event routing: connections that may want any event, and myevents connections by channel uuid
        self._subs_all: list = []
        self._subs_uuid: dict[str, list] = {}
        self._outbound_conns: dict[str, list] = {}  # outbound sockets by the uuid of their channel
        self.log: list[LogEntry | Event] = []
        self.events: list[Event] = []
        self.xmlcurl = None
        self._seq = itertools.count(1)
        self._date_cache = None
        self._heads: dict[tuple, tuple] = {}
        self._callings: dict[tuple, str] = {}
        self._session_ids = itertools.count(1)
        self.sessions_since_start = 0
        self.session_peak = 0
        self._server: gevent.server.StreamServer | None = None
        self._running = gevent.event.Event()
        self._running.set()
        self._state_cond = gevent.event.Event()
        self._heartbeat: gevent.Greenlet | None = None
        self.started_at = self.clock.now()
        if xml_curl_url:
            from fsd.sim.xmlcurl import XmlCurlDirectory

            self.xmlcurl = XmlCurlDirectory(switch=self, url=xml_curl_url, credentials=xml_curl_credentials)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Switch:
        self.started_at = self.clock.now()
        self._server = gevent.server.StreamServer((self.esl_host, self._esl_port_cfg), self._accept)
        self._server.start()
        if self.heartbeat_interval and self.heartbeat_interval > 0:
            self._heartbeat = gevent.spawn(self._heartbeat_loop)
        log.info("sim_started hostname=%s esl_port=%s", self.hostname, self.esl_port)
        return self

    def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.kill()
            self._heartbeat = None
        if self._server is not None:
            self._server.stop(timeout=0)
            self._server = None
        for conn in list(self.connections):
            conn.close(abrupt=True)
        for ch in list(self.channels_by_uuid.values()):
            ch.hangup("SYSTEM_SHUTDOWN")
            ch._hold_released.set()
            ch._holds.clear()
        self._running.set()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def esl_port(self) -> int:
        if self._server is None:
            return self._esl_port_cfg
        return self._server.server_port

    def _accept(self, sock, addr) -> None:
        from fsd.sim.esl import EslConnection

        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = EslConnection(switch=self, sock=sock)
        self.connections.add(conn)
        self._log("connect", conn.id, f"{addr[0]}:{addr[1]}")
        conn.start()
        conn.closed.wait()

    def _connection_closed(self, conn) -> None:
        self.connections.discard(conn)
        self._subscription_changed(conn)
        if conn.outbound and conn.channel is not None:
            conns = self._outbound_conns.get(conn.channel.uuid)
            if conns and conn in conns:
                conns.remove(conn)
                if not conns:
                    del self._outbound_conns[conn.channel.uuid]
        self._log("disconnect", conn.id, "")

    def _subscription_changed(self, conn) -> None:
        """Re-file `conn` in the event routing after a command or its close (see EslConnection.sub_key)."""
        new = conn.sub_key()
        old = conn._sub_key
        if new == old:
            return
        if old is not None:
            lst = self._subs_all if old[0] == "all" else self._subs_uuid.get(old[1])
            if lst is not None and conn in lst:
                lst.remove(conn)
                if old[0] == "uuid" and not lst:
                    del self._subs_uuid[old[1]]
        if new is not None:
            if new[0] == "all":
                self._subs_all.append(conn)
            else:
                self._subs_uuid.setdefault(new[1], []).append(conn)
        conn._sub_key = new

    # ------------------------------------------------------------------ control surface for tests
    def crash(self, *, drop_channels: bool = False) -> None:
        """Drop every ESL connection abruptly (RST-like, no disconnect notice).

        Channels survive by default (as when only mod_event_socket's sockets break): calls controlled
        by an outbound socket see it close and continue with their dialplan fallback. With
        drop_channels=True every channel is also removed silently, without any event (a process crash)."""
        for conn in list(self.connections):
            try:
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            conn.close(abrupt=True)
            if conn.outbound and conn.channel is not None:
                conn._release_channel()
        if drop_channels:
            for ch in list(self.channels_by_uuid.values()):
                if ch._greenlet is not None:
                    ch._greenlet.kill(block=False)
                self.channels_by_uuid.pop(ch.uuid, None)

    def stall(self) -> None:
        """Stop reading from and writing to every ESL socket until resume()."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def channels(self) -> list[dict]:
        """Snapshot of live channels (see Channel.view())."""
        return [ch.view() for ch in self.channels_by_uuid.values()]

    def channel(self, uuid: str) -> Channel | None:
        return self.channels_by_uuid.get(uuid) or next((c for c in self.all_channels if c.uuid == uuid), None)

    def wait_for_channel(self, predicate=None, *, uuid=None, state=None, answer_state=None, timeout=10.0):
        """Block until a channel matches; returns it. `state` may be a Channel-State (CS_*) or call state."""

        def match(ch):
            if uuid is not None and ch.uuid != uuid:
                return False
            if state is not None and state not in (ch.state, ch.call_state):
                return False
            if answer_state is not None and ch.answer_state != answer_state:
                return False
            return predicate(ch) if predicate is not None else True

        deadline = time.monotonic() + timeout
        while True:
            for ch in list(self.all_channels):
                if match(ch):
                    return ch
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no channel matched within {timeout}s")
            self._state_cond.clear()
            self._state_cond.wait(min(left, 0.05))

    def wait_for_event(self, name: str, *, timeout: float = 10.0, since: int = 0, **headers) -> Event:
        """Block until an event named `name` (with the given header values, '_' for '-') was fired."""
        want = {k.replace("_", "-"): v for k, v in headers.items()}
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.events[since:]:
                if ev.name == name and all(ev.get(k) == v for k, v in want.items()):
                    return ev
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {name} event within {timeout}s")
            self._state_cond.clear()
            self._state_cond.wait(0.02)

    def commands(self) -> list[LogEntry]:
        return [e for e in self.log if e.kind == "command"]

    def _log(self, kind, conn, text, headers=None) -> None:
        self.log.append(LogEntry(self.clock.now(), time.monotonic(), kind, conn, text, None, headers))

    # ------------------------------------------------------------------ events
    def format_local(self, t: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))

    def new_event(self, name: str, *, calling=None, subclass: str | None = None) -> Event:
        ev = Event(name, subclass)
        ev.t = self.clock.now()
        ev.seq = next(self._seq)
        ev.headers = self._base_headers(ev, calling)
        return ev

    def new_lazy_event(self, name: str, tail, *, calling=None, subclass: str | None = None) -> Event:
        """An event whose headers are rendered on first use: the common headers, then `tail` (headers, or
        a function returning them), which must only hold values captured now (a snapshot), not live state."""
        ev = Event(name, subclass)
        ev.t = self.clock.now()
        ev.seq = next(self._seq)
        ev._headers = None
        ev._switch = self
        ev._calling = calling
        ev._tail = tail
        return ev

    def new_channel_event(self, name: str, channel, before: tuple, snap: tuple, after: tuple, calling=None,
                          body: str | None = None, variables: dict | None = None) -> Event:
        """A lazy channel event: the common headers, then `before`, the channel headers of `snap` and
        `variables` (channel._snapshot()) and `after`."""
        ev = _new_event(Event)  # every slot is set here
        ev.name = name
        ev.subclass = None
        ev._headers = None
        ev._switch = self
        ev._calling = calling
        ev._tail = None
        ev._owner = channel
        ev._pre = None
        ev._before = before
        ev._snap = snap
        ev._vars = variables
        ev._after = after
        ev.body = body
        ev.uuid = channel.uuid
        ev.seq = next(self._seq)
        ev.t = self.clock.now()
        ev.real = 0.0
        ev._frames = None
        return ev

    def _date_headers(self, now: float) -> tuple[tuple[str, str], tuple[str, str]]:
        """Event-Date-Local and Event-Date-GMT (whole seconds: the strings of one second are reused)."""
        return self._dates(now)[1]

    def _dates(self, now: float) -> tuple:
        """(second, the two date headers, their event-plain lines) for `now`, kept for the current second."""
        sec = int(now)
        cached = self._date_cache
        if cached is None or cached[0] != sec:
            dates = (("Event-Date-Local", self.format_local(now)), ("Event-Date-GMT", formatdate(now, usegmt=True)))
            cached = self._date_cache = (sec, dates, "".join(itertools.starmap(wire._plain_line, dates)))
        return cached

    def _head(self, name: str, subclass: str | None) -> tuple:
        """([Event-Subclass,] Event-Name ... FreeSWITCH-IPv6 headers, their event-plain lines), memoised."""
        key = (name, subclass, self.core_uuid, self.hostname, self.ipv4, self.ipv6)
        head = self._heads.get(key)
        if head is None:
            h = [("Event-Subclass", subclass)] if subclass else []
            h += [
                ("Event-Name", name),
                ("Core-UUID", self.core_uuid),
                ("FreeSWITCH-Hostname", self.hostname),
                ("FreeSWITCH-Switchname", self.hostname),
                ("FreeSWITCH-IPv4", self.ipv4),
                ("FreeSWITCH-IPv6", self.ipv6),
            ]
            if len(self._heads) > 4096:
                self._heads.clear()
            head = self._heads[key] = (tuple(h), "".join(itertools.starmap(wire._plain_line, h)))
        return head

    def _calling_plain(self, calling) -> str:
        text = self._callings.get(calling)
        if text is None:
            if len(self._callings) > 4096:
                self._callings.clear()
            lines = itertools.starmap(wire._plain_line, self._calling_headers(calling))
            text = self._callings[calling] = "".join(lines)
        return text

    @staticmethod
    def _calling_headers(calling) -> list[tuple[str, str]]:
        return [
            ("Event-Calling-File", calling[0]),
            ("Event-Calling-Function", calling[1]),
            ("Event-Calling-Line-Number", calling[2]),
        ]

    def _base_headers(self, ev: Event, calling) -> list[tuple[str, str]]:
        """Event-Name ... Event-Sequence, as switch_event_prep_for_delivery adds them."""
        now = ev.t
        h = list(self._head(ev.name, ev.subclass)[0])
        h += self._dates(now)[1]
        h.append(("Event-Date-Timestamp", str(int(now * 1_000_000))))
        if calling:
            h += self._calling_headers(calling)
        h.append(("Event-Sequence", str(ev.seq)))
        return h

    def _plain_frame(self, ev: Event) -> bytes:
        """The event-plain frame of a lazy event whose headers were not rendered: the same bytes as
        wire.event_frame("plain", ev.headers, ev.body), joined from memoised lines."""
        return wire.plain_frame_parts(self._plain_parts(ev), ev.body)

    def _plain_lines(self, ev: Event) -> str:
        """The event-plain header lines of a lazy event whose headers were not rendered ("".join of
        wire._plain_line over ev.headers)."""
        return "".join(self._plain_parts(ev))

    def _plain_parts(self, ev: Event, before_text: str | None = None) -> list[str]:
        """_plain_lines in parts (joined once, with the frame's own header). `before_text`: event-plain lines
        that come where the `before` headers do (after them)."""
        calling = ev._calling
        now = ev.t
        # Event-Date-Timestamp and Event-Sequence are digits, which URL-encoding leaves as they are
        parts = [self._head(ev.name, ev.subclass)[1], self._dates(now)[2],
                 f"Event-Date-Timestamp: {int(now * 1_000_000)}\n"]
        if ev._pre:
            parts[:0] = itertools.starmap(wire.plain_line, ev._pre)
        if calling:
            parts.append(self._calling_plain(calling))
        parts.append(f"Event-Sequence: {ev.seq}\n")
        if ev._snap is not None:
            if ev._before:
                parts += itertools.starmap(wire.plain_line, ev._before)
            if before_text:
                parts.append(before_text)
            render_plain_into(parts, ev._snap, ev._vars, ev._owner)
            if ev._after:
                parts += itertools.starmap(wire.plain_line, ev._after)
        else:
            tail = ev._tail
            parts += itertools.starmap(wire.plain_line, tail() if callable(tail) else tail)
        return parts

    def fire(self, ev: Event) -> None:
        self.events.append(ev)
        ev.real = time.monotonic()
        self.log.append(ev)  # an Event is its own log entry (kind "event")
        keep = self.keep_events
        if keep and len(self.events) > 2 * keep:  # long runs (the CLI) keep only the recent history
            del self.events[: len(self.events) - keep]
            del self.log[: max(0, len(self.log) - 2 * keep)]
        # only the connections that may want it: the general ones and the myevents ones of its channel
        # (each still applies its own event list and filters in deliver())
        targets = self._subs_all
        if ev.uuid is not None:
            mine = self._subs_uuid.get(ev.uuid)
            if mine:
                targets = targets + mine
        for conn in targets:  # deliver() does not change the subscriptions
            conn.deliver(ev)
        # the frames were queued for the connections that wanted them: the event does not keep them (a later
        # Event.frame() renders them again, the same bytes; a long run no longer keeps every frame it sent)
        ev._frames = None
        self._state_cond.set()

    def fire_api_event(self, cmd: str, arg: str) -> None:
        tail = (("API-Command", cmd), ("API-Command-Argument", arg)) if arg else (("API-Command", cmd),)
        self.fire(self.new_lazy_event("API", tail, calling=_API_CALLING))

    def _heartbeat_loop(self) -> None:
        while True:
            self.clock.sleep(self.heartbeat_interval)
            up = self.clock.now() - self.started_at
            ev = self.new_event("HEARTBEAT", calling=("switch_core.c", "send_heartbeat", "95"))
            ev.headers += [
                ("Event-Info", "System Ready"),
                ("Up-Time", _uptime_text(up)),
                ("FreeSWITCH-Version", VERSION),
                ("Uptime-msec", str(int(up * 1000))),
                ("Session-Count", str(len(self.channels_by_uuid))),
                ("Max-Sessions", "1000"),
                ("Session-Per-Sec", "30"),
                ("Session-Per-Sec-Last", "0"),
                ("Session-Per-Sec-Max", "0"),
                ("Session-Per-Sec-FiveMin", "0"),
                ("Session-Since-Startup", str(self.sessions_since_start)),
                ("Session-Peak-Max", str(self.session_peak)),
                ("Session-Peak-FiveMin", str(self.session_peak)),
                ("Idle-CPU", "99.333333"),
            ]
            self.fire(ev)
            rs = self.new_event("RE_SCHEDULE", calling=("switch_scheduler.c", "switch_scheduler_execute", "73"))
            rs.headers += [
                ("Task-ID", "1"),
                ("Task-Desc", "heartbeat"),
                ("Task-Group", "core"),
                ("Task-Runtime", str(int(self.clock.now() + self.heartbeat_interval))),
            ]
            self.fire(rs)

    # ------------------------------------------------------------------ channel bookkeeping
    def _next_session_id(self) -> int:
        return next(self._session_ids)

    def _register_channel(self, ch: Channel) -> None:
        self.channels_by_uuid[ch.uuid] = ch
        self.all_channels.append(ch)
        self.sessions_since_start += 1
        self.session_peak = max(self.session_peak, len(self.channels_by_uuid))
        self._state_cond.set()

    def _state_changed(self, ch: Channel) -> None:
        self._state_cond.set()

    def _after_hangup_complete(self, ch: Channel) -> None:
        for conn in tuple(self._outbound_conns.get(ch.uuid, ())):
            if conn.channel is ch:
                conn.on_channel_hangup_complete(ch)

    def _destroyed(self, ch: Channel) -> None:
        self.channels_by_uuid.pop(ch.uuid, None)
        keep = self.keep_events
        if keep and len(self.all_channels) > keep:  # long runs keep only recent finished channels
            self.all_channels = [c for c in self.all_channels[-keep:]] + [
                c for c in self.all_channels[:-keep] if not c.destroyed.is_set()
            ]
        self._state_cond.set()

    def lookup_dialplan(self, ch: Channel, dest: str, context: str) -> list[tuple[str, str]]:
        """Apps for `dest` in `context` from Switch(dialplan={context: {dest: [apps]}}); unknown → hangup."""
        ctx = self.dialplan.get(context, {})
        apps = ctx.get(dest)
        if apps is None:
            return [("hangup", "NO_ROUTE_DESTINATION")]
        return [split_app_spec(a) for a in apps]

    # ------------------------------------------------------------------ directory
    def add_phone(self, phone: Phone) -> Phone:
        self.phones[phone.key] = phone
        if phone.register_on_add:
            self.register(phone)
        return phone

    def add_gateway(self, gateway: Gateway) -> Gateway:
        self.gateways[gateway.name] = gateway
        return gateway

    def lookup_user(self, user: str, domain: str, *, action: str | None = "user_call", query: bool = True):
        """A local Phone, or (with xml_curl) the directory's answer; `action` as FreeSWITCH sends it
        (None: a lookup without action, e.g. user_exists); query=False never asks the directory."""
        phone = self.phones.get(f"{user}@{domain}")
        if self.xmlcurl is not None and query and (phone is None or action == "user_call"):
            # with mod_xml_curl the directory is authoritative: every user/ dial asks it (unless cached)
            found = self.xmlcurl.lookup_user(user, domain, action=action)
            if found is None:
                return None
            phone = self.phones.get(f"{user}@{domain}", found)
        return phone

    def flush_directory_cache(self, arg: str) -> int:
        if self.xmlcurl is not None:
            return self.xmlcurl.flush(arg)
        return 0

    def register(self, phone: Phone, *, password: str | None = None) -> bool:
        """Simulate a REGISTER from `phone` (digest checked through xml_curl when configured).
        Fires sofia::pre_register, register_attempt and register (or register_failure)."""
        if phone.key not in self.phones:
            self.phones[phone.key] = phone
        if phone.port is None:
            phone.port = 5100 + (len(self.phones) % 800)
        phone.call_id = phone.call_id or f"{ids.hex_tag(12)}@127.0.0.1"
        contact = f'"" <sip:{phone.user}@127.0.0.1:{phone.port}>'
        base = [
            ("profile-name", "internal"),
            ("from-user", phone.user),
            ("from-host", phone.domain),
        ]
        tail = [
            ("contact", contact),
            ("call-id", phone.call_id),
            ("rpid", "unknown"),
            ("status", "Registered(UDP)"),
            ("expires", "3600"),
            ("to-user", phone.user),
            ("to-host", phone.domain),
            ("network-ip", "127.0.0.1"),
            ("network-port", str(phone.port)),
        ]
        self._custom(
            "sofia::pre_register",
            ("sofia_reg.c", "sofia_reg_handle_register_token", "1810"),
            base + tail + [("user-agent", phone.user_agent)],
        )
        pw = phone.password if password is None else password
        ok = True
        if self.xmlcurl is not None:
            ok = self.xmlcurl.check_register(phone, pw)
        self._custom(
            "sofia::register_attempt",
            ("sofia_reg.c", "sofia_reg_handle_register_token", "1606"),
            base
            + tail
            + [
                ("username", phone.user),
                ("realm", phone.domain),
                ("user-agent", phone.user_agent),
                ("auth-result", "SUCCESS" if ok else "FORBIDDEN"),
            ],
        )
        if not ok:
            self._custom(
                "sofia::register_failure",
                ("sofia_reg.c", "sofia_reg_handle_register_token", "1792"),
                [
                    ("profile-name", "internal"),
                    ("to-user", phone.user),
                    ("to-host", phone.domain),
                    ("network-ip", "127.0.0.1"),
                    ("user-agent", phone.user_agent),
                    ("profile-name", "internal"),
                    ("network-port", str(phone.port)),
                    ("registration-type", "REGISTER"),
                ],
            )
            return False
        phone.registered = True
        extra = [
            ("username", phone.user),
            ("realm", phone.domain),
            ("user-agent", phone.user_agent),
            ("sip_number_alias", phone.number_alias or phone.user),
            ("sip_auth_username", phone.user),
            ("sip_auth_realm", phone.domain),
            ("number_alias", phone.number_alias or phone.user),
            ("user_name", phone.user),
            ("domain_name", phone.domain),
        ] + [(k, str(v)) for k, v in phone.variables.items()]
        self._custom(
            "sofia::register",
            ("sofia_reg.c", "sofia_reg_handle_register_token", "2059"),
            base + [("presence-hosts", f"{phone.domain},{phone.domain}")] + tail + extra,
        )
        phone.registered_at = self.clock.now()
        mq = self.new_event("MESSAGE_QUERY", calling=("sofia_reg.c", "sofia_reg_handle_register_token", "2168"))
        mq.headers += [
            ("Message-Account", f"sip:{phone.user}@{phone.domain}"),
            ("VM-Sofia-Profile", "internal"),
            ("VM-Call-ID", phone.call_id),
        ]
        self.fire(mq)
        mw = self.new_event("MESSAGE_WAITING", calling=("mod_voicemail.c", "actual_message_query_handler", "4026"))
        mw.headers += [
            ("MWI-Messages-Waiting", "no"),
            ("MWI-Message-Account", f"sip:{phone.user}@{phone.domain}"),
            ("Sofia-Profile", "internal"),
            ("Call-ID", phone.call_id),
        ]
        self.fire(mw)
        return True

    def unregister(self, phone: Phone | str) -> None:
        if isinstance(phone, str):
            phone = self.phones[phone]
        if not phone.registered:
            return
        phone.registered = False
        self._custom(
            "sofia::unregister",
            ("sofia_reg.c", "sofia_reg_handle_register_token", "1376"),
            [
                ("profile-name", "internal"),
                ("from-user", phone.user),
                ("from-host", phone.domain),
                ("contact", f'"" <sip:{phone.user}@127.0.0.1:{phone.port}>'),
                ("call-id", phone.call_id or ""),
                ("rpid", "unknown"),
                ("status", "Unregistered(UDP)"),
                ("expires", "0"),
                ("to-user", phone.user),
                ("to-host", phone.domain),
                ("network-ip", "127.0.0.1"),
                ("network-port", str(phone.port)),
                ("username", phone.user),
                ("realm", phone.domain),
                ("user-agent", phone.user_agent),
            ],
        )

    def _custom(self, subclass: str, calling, headers) -> Event:
        ev = self.new_event("CUSTOM", calling=calling, subclass=subclass)
        ev.headers += headers
        self.fire(ev)
        return ev

    # ------------------------------------------------------------------ calls
    def incoming_call(
        self,
        *,
        did: str,
        caller: str,
        caller_name: str = "",
        script: CallerScript | None = None,
        context: str = "public",
        apps=None,
        fallback=None,
        uuid: str | None = None,
        variables: dict | None = None,
        profile: str = "external",
    ) -> Channel:
        """A PSTN call arrives on the external profile for `did` (profile="internal": a call from a
        registered phone, which also gets a presence id and PRESENCE_IN events).

        Dialplan: `apps` if given; else `socket <outbound_target> async full` followed by the fallback
        (Switch(fallback=...) or per call), or only the fallback when no outbound_target is set. In the
        contexts of `socket_resume_contexts` (fsd-public, fsd-internal) `set socket_resume=true` comes first,
        as in freeswitch-conf/dialplan/fsd.xml."""
        script = script or CallerScript()
        port = 5200 + next(self._session_ids) % 700
        name = f"sofia/{profile}/{caller}@127.0.0.1:{port}"
        now_us = self.clock.now_us()
        sip_port = 5080 if profile == "external" else 5060
        call_id = f"{ids.hex_tag(10)}@127.0.0.1"
        full_from = f'"{caller_name}" <sip:{caller}@127.0.0.1:{port}>;tag={ids.hex_tag(12)}'
        sip_vars = [
            ("sip_from_user", caller),
            ("sip_from_port", str(port)),
            ("sip_from_uri", f"{caller}@127.0.0.1:{port}"),
            ("sip_from_host", "127.0.0.1"),
            ("video_media_flow", "disabled"),
            ("audio_media_flow", "disabled"),
            ("text_media_flow", "disabled"),
            ("channel_name", name),
            ("sip_call_id", call_id),
            ("sip_local_network_addr", self.esl_host),
            ("sip_network_ip", "127.0.0.1"),
            ("sip_network_port", str(port)),
            ("sip_invite_stamp", str(now_us)),
            ("sip_received_ip", "127.0.0.1"),
            ("sip_received_port", str(port)),
            ("sip_via_protocol", "udp"),
            ("sip_authorized", "true" if profile == "internal" else ""),
            ("sip_acl_authed_by", "domains" if profile == "internal" else ""),
            ("sip_from_user_stripped", caller),
            ("sip_from_tag", ids.hex_tag(12)),
            ("sofia_profile_name", profile),
            ("sofia_profile_url", f"sip:mod_sofia@{self.esl_host}:{sip_port}"),
            ("recovery_profile_name", profile),
            ("sip_full_via", f"SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{ids.hex_tag(8)}"),
            ("sip_from_display", caller_name),
            ("sip_full_from", full_from),
            ("sip_full_to", f"<sip:{did}@{self.esl_host}:5080>"),
            ("sip_req_user", did),
            ("sip_req_port", "5080"),
            ("sip_req_uri", f"{did}@{self.esl_host}:5080"),
            ("sip_req_host", self.esl_host),
            ("sip_to_user", did),
            ("sip_to_port", "5080"),
            ("sip_to_uri", f"{did}@{self.esl_host}:5080"),
            ("sip_to_host", self.esl_host),
            ("sip_contact_user", caller),
            ("sip_contact_port", str(port)),
            ("sip_contact_uri", f"{caller}@127.0.0.1:{port}"),
            ("sip_contact_host", "127.0.0.1"),
            ("rtp_use_codec_string", "PCMU,PCMA"),
            ("sip_user_agent", "fsd-sim-caller"),
            ("sip_via_host", "127.0.0.1"),
            ("sip_via_port", str(port)),
            ("max_forwards", "70"),
            ("presence_id", f"{caller}@{self.domain}" if profile == "internal" else ""),
            ("switch_r_sdp", remote_sdp("caller", 6300)),
            ("ep_codec_string", "CORE_PCM_MODULE.PCMU@8000h@20i@64000b,CORE_PCM_MODULE.PCMA@8000h@20i@64000b"),
            ("endpoint_disposition", "DELAYED NEGOTIATION"),
        ]
        sip_vars = [(k, v) for k, v in sip_vars if v != ""]
        sip_vars += [(k, str(v)) for k, v in (variables or {}).items()]
        ch = Channel(
            switch=self,
            direction="inbound",
            name=name,
            caller_id_name=caller_name,
            caller_id_number=caller,
            destination_number=did,
            context=context,
            uuid=uuid,
            variables=sip_vars,
            username=caller,
            network_addr="127.0.0.1",
            script=script,
        )
        self._register_channel(ch)
        presence = f"{caller}@{self.domain}" if profile == "internal" else ""
        explicit_apps = apps is not None
        if apps is None:
            fb = [split_app_spec(a) for a in fallback] if fallback is not None else list(self.fallback)
            if self.outbound_target:
                host, port_ = self.outbound_target
                apps = [("socket", f"{host}:{port_} async full")] + fb
                if context in self.socket_resume_contexts:
                    apps.insert(0, ("set", "socket_resume=true"))
            else:
                apps = fb
        else:
            apps = [split_app_spec(a) for a in apps]

        def _boot():
            ch.fire("CHANNEL_STATE")
            ch.presence_id = presence
            ch.set_state("CS_INIT")
            ch.fire("CHANNEL_CREATE")
            ch.state = "CS_ROUTING"
            ch.set_callstate("RINGING")
            ch.fire("CHANNEL_STATE")
            ch.presence("CS_ROUTING", "progressing")
            if dp_match:  # the dialplan extension matched with a capture group
                ch.set_var("DP_MATCH", f"ARRAY::{did}|:{did}")
            ch.set_state("CS_EXECUTE")

        dp_match = not explicit_apps
        ch.state = "CS_NEW"
        ch._apps = []
        script._on_start(ch)
        ch.start([(_boot, ())] + list(apps))
        return ch

    def call_from_phone(
        self,
        phone: Phone | str,
        dest: str,
        *,
        script: CallerScript | None = None,
        context: str = "default",
        apps=None,
        uuid: str | None = None,
    ) -> Channel:
        """A registered phone dials `dest` (an extension, a department or an external number): an
        inbound call on the internal profile, digest-authenticated like FreeSWITCH does for phones
        (user_name, domain_name, sip_auth_* and the user's directory variables are set)."""
        if isinstance(phone, str):
            phone = self.phones[phone if "@" in phone else f"{phone}@{self.domain}"]
        variables = {
            "sip_auth_username": phone.user,
            "sip_auth_realm": phone.domain,
            "number_alias": phone.user,
            "requested_user_name": phone.user,
            "requested_domain_name": phone.domain,
            "user_name": phone.user,
            "domain_name": phone.domain,
        }
        variables.update({k: str(v) for k, v in phone.variables.items()})
        return self.incoming_call(
            did=dest,
            caller=phone.user,
            caller_name=phone.variables.get("effective_caller_id_name", ""),
            script=script,
            context=context,
            apps=apps,
            uuid=uuid,
            profile="internal",
            variables=variables,
        )

    def _outbound_connect(self, ch: Channel, host: str, port: int, *, async_mode: bool, full: bool):
        from fsd.sim.esl import EslConnection

        try:
            sock = _connect_tcp(host, port, timeout=2.0)
        except OSError as e:
            log.info("sim_outbound_refused host=%s port=%s error=%s", host, port, e)
            return None
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = EslConnection(switch=self, sock=sock, channel=ch, async_mode=async_mode, full=full)
        self.connections.add(conn)
        self._outbound_conns.setdefault(ch.uuid, []).append(conn)
        self._log("connect", conn.id, f"outbound {host}:{port} uuid={ch.uuid}")
        conn.start()
        return conn
