"""Event-socket connections of the emulator: inbound (clients connect to the switch) and outbound
(the `socket` dialplan app connects to an application). Same command set as mod_event_socket."""

from __future__ import annotations

import itertools
import logging
import re
import socket

import gevent
import gevent.event
import gevent.queue

from fsd.sim import clock as clock_mod
from fsd.sim import ids, wire
from fsd.sim.channel import _profile_plain, _state_block, channel_part

log = logging.getLogger(__name__)

_conn_ids = itertools.count(1)
_BGAPI_CALLING = ("mod_event_socket.c", "api_exec", "1572")

LOG_LEVELS = {"console": 0, "alert": 1, "crit": 2, "err": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}

MYEVENTS = {
    "CHANNEL_ANSWER",
    "CHANNEL_APPLICATION",
    "CHANNEL_BRIDGE",
    "CHANNEL_CREATE",
    "CHANNEL_DATA",
    "CHANNEL_DESTROY",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_ORIGINATE",
    "CHANNEL_UUID",
    "CHANNEL_OUTGOING",
    "CHANNEL_PARK",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_STATE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_UNPARK",
    "DETECTED_SPEECH",
    "DTMF",
    "NOTALK",
    "TALK",
}


# ---------------------------------------------------------------------------------------------- filters
# mod_event_socket checks a listener's filters on every event its event list lets through:
# * the filter's header is looked up in the event by name, in any case (the first header of that name; the
#   event's body for `_body` when no header has that name); a filter whose header the event lacks is skipped;
# * a value may start with a run of `+`, `-` and spaces: the last sign decides (no sign: positive); the spaces
#   and signs are not part of what is compared;
# * a value that starts with `/` (a sign before it makes it a plain value) is a regular expression written
#   /expression/options (options: i caseless, s dot-all) searched in the header; one without its closing `/`
#   or that does not compile matches nothing; any other value is compared with the header ignoring ASCII case;
# * the event is sent when some positive filter matches and no negative one does (a listener with only
#   negative filters gets nothing). BACKGROUND_JOB and every other event are filtered alike.
# The expression is Python's `re` (close to PCRE for what a filter needs, not identical).

_REGEX_OVECTOR_PAIRS = 10  # mod_event_socket's ovector of 30 ints: a match setting group 10 or above counts as none


class Filter:
    """One `filter <header> <value>` of a listener: the header and value as given, and how to match them."""

    __slots__ = ("header", "low", "value", "positive", "text", "regex")

    def __init__(self, header: str, value: str):
        self.header = header
        self.low = header.lower()
        self.value = value
        positive = True
        i = 0
        while i < len(value) and value[i] in "+- ":
            if value[i] != " ":
                positive = value[i] == "+"
            i += 1
        self.positive = positive
        self.text = value[i:]
        self.regex: re.Pattern | None = None
        if value.startswith("/"):
            self.regex = _compile_delimited(value)

    def matches(self, found: str) -> bool:
        if self.value.startswith("/"):
            rx = self.regex
            if rx is None:
                return False
            m = rx.search(found)
            if m is None:
                return False
            if rx.groups >= _REGEX_OVECTOR_PAIRS:
                top = max((g for g in range(1, rx.groups + 1) if m.start(g) != -1), default=0)
                return top < _REGEX_OVECTOR_PAIRS
            return True
        text = self.text
        return found == text or found.encode().lower() == text.encode().lower()

    def __repr__(self):
        return f"Filter({self.header!r}, {self.value!r})"


def _compile_delimited(value: str) -> re.Pattern | None:
    body = value[1:]
    end = body.rfind("/")
    if end < 0:
        return None  # missing the closing delimiter: FreeSWITCH logs an error and matches nothing
    expression, options = body[:end], body[end + 1 :]
    flags = (re.IGNORECASE if "i" in options else 0) | (re.DOTALL if "s" in options else 0)
    try:
        return re.compile(expression, flags)
    except (re.error, OverflowError):
        return None


def admits(filters: list[Filter], ev) -> bool:
    """Whether a listener with these (non-empty) filters is sent the event."""
    send = False
    seen: dict[str, str | None] = {}
    for f in filters:
        if send and f.positive:
            continue
        low = f.low
        if low in seen:
            found = seen[low]
        else:
            found = seen[low] = event_header(ev, f.header, low)
        if found is None or not f.matches(found):
            continue
        if not f.positive:
            return False
        send = True
    return send


def _first(pairs, name: str, low: str) -> str | None:
    n = len(name)
    for k, v in pairs:
        if k == name or (len(k) == n and k.lower() == low):
            return v
    return None


def event_header(ev, name: str, low: str | None = None) -> str | None:
    """What a filter on header `name` finds in the event: its first header of that name in any case (the
    body for `_body` when there is no such header), or None. A lazy event is not rendered for this: only the
    part of it that can hold such a header is looked at."""
    if low is None:
        low = name.lower()
    h = ev._headers
    found = _first(h, name, low) if h is not None else _lazy_header(ev, name, low)
    if found is None and name == "_body":
        return ev.body
    return found


def _lazy_header(ev, name: str, low: str) -> str | None:
    """event_header of an event whose headers are not rendered (see Event.headers for their order: _pre,
    the common headers, then _before, the channel's state, profile and variable headers and _after, or the
    tail). The common headers are named Event-*, Core-UUID and FreeSWITCH-*; the state block holds no
    Caller-*, Other-* or variable_* header, the profile blocks only those; variables only variable_*."""
    if ev._pre:
        found = _first(ev._pre, name, low)
        if found is not None:
            return found
    if low == "event-name":
        return ev.name
    if low == "event-subclass":
        if ev.subclass:
            return ev.subclass  # the first of the common headers when the event has a subclass, else none
    elif low.startswith(("event-", "core-", "freeswitch-")):
        found = _first(ev._switch._base_headers(ev, ev._calling), name, low)
        if found is not None:
            return found
    snap = ev._snap
    if snap is None:
        tail = ev._tail
        return _first(tail() if callable(tail) else tail, name, low)
    if ev._before:
        found = _first(ev._before, name, low)
        if found is not None:
            return found
    if low.startswith("variable_"):
        variables = ev._vars
        if variables:
            var = name[9:]
            found = variables.get(var)
            if found is None:  # the name in another case
                n, var_low = len(var), low[9:]
                for k in variables:
                    if len(k) == n and k.lower() == var_low:
                        found = variables[k]
                        break
            if found is not None:
                return found
    elif low.startswith(("caller-", "other-")):
        found = _first(channel_part(snap, None), name, low)
        if found is not None:
            return found
    else:
        found = _first(_state_block(*snap[:11]), name, low)
        if found is not None:
            return found
    if ev._after:
        return _first(ev._after, name, low)
    return None


def _sendall(sock, data: bytes) -> None:
    """sock.sendall(data): first one send() on gevent's non-blocking socket underneath (gevent's sendall asks
    the kernel for the send buffer size first, a system call per write), then sendall for what is left."""
    raw = getattr(sock, "_sock", None)
    if raw is None:
        sock.sendall(data)
        return
    try:
        n = raw.send(data)
    except BlockingIOError:
        n = 0
    if n < len(data):
        sock.sendall(memoryview(data)[n:])


class EslConnection:
    """One event-socket TCP connection (either direction)."""

    def __init__(self, *, switch, sock, channel=None, async_mode: bool = True, full: bool = True):
        self.switch = switch
        self.sock = sock
        self.id = next(_conn_ids)
        self.outbound = channel is not None
        self.channel = channel
        self.async_mode = async_mode
        self.full = full
        self.authed = self.outbound
        self.format = "plain"
        self.events: set[str] = set()
        self.all_events = False
        self.custom: set[str] = set()
        self.all_custom = False
        self.listening = False
        self.myevents = False
        self.filters: list[Filter] = []
        self.linger = False
        self.linger_time = -1
        self.logging = False
        self.connected = False
        self.closed = gevent.event.Event()
        self._wbuf: list[bytes] = []  # frames queued for writing (see send)
        self._flushing = False  # a write of _wbuf is scheduled or under way
        self._closing = False  # close() asked: shut down once _wbuf is written
        self._loop = gevent.get_hub().loop
        self._raw = getattr(sock, "_sock", None)  # the non-blocking socket under gevent's
        self._held: list[bytes] | None = None
        self._greenlets: list[gevent.Greenlet] = []
        self._lingering = False
        self._disconnect_sent = False
        self.resume = False  # LFLAG_RESUME (the `resume` command)
        self._released = False
        self._sub_key = None  # where Switch.fire finds this connection (see sub_key)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._greenlets = [clock_mod.spawn(self._reader)]
        if not self.outbound:
            self.send(b"Content-Type: auth/request\n\n")

    # Writing: send() queues the frame; what is queued goes out in one write from a callback of the event loop
    # (no greenlet switch), at the moment a writer greenlet woken by the queue would have run. When the socket
    # does not take it all at once, the switch is stalled, or writes are chunked, a writer greenlet sends it.
    # close() (not abrupt) shuts the socket down once everything queued before it was sent; later frames are
    # dropped.
    def send(self, data: bytes) -> None:
        if self.closed.is_set() or self._closing:
            return
        self._wbuf.append(data)
        if not self._flushing:
            self._flushing = True
            self._loop.run_callback(self._flush)

    def close(self, *, abrupt: bool = False) -> None:
        """Flush what is queued (unless abrupt) and close the socket."""
        if self.closed.is_set():
            return
        if abrupt:
            self._shutdown()
        elif not self._closing:
            self._closing = True
            if not self._flushing:
                self._flushing = True
                self._loop.run_callback(self._flush)

    def _shutdown(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.switch._connection_closed(self)
        if self.outbound:  # however the socket ended (EOF, exit, a write error, crash)
            self._release_channel()

    def _flush(self) -> None:
        """In the event loop (it must not block): one non-blocking write of what is queued."""
        if self.closed.is_set():
            self._flushing = False
            return
        buf = self._wbuf
        raw = self._raw
        if buf and raw is not None and self.switch.chunking is None and self.switch._running.is_set():
            data = buf[0] if len(buf) == 1 else b"".join(buf)
            buf.clear()
            try:
                n = raw.send(data)
            except BlockingIOError:
                n = 0
            except OSError:
                clock_mod.spawn(self._write_failed)
                return
            if n < len(data):
                buf.append(data[n:])
        if buf:
            clock_mod.spawn(self._writer)  # the rest, waiting for the socket (or the switch) as needed
            return
        self._flushing = False
        if self._closing:
            clock_mod.spawn(self._shutdown)

    def _write_failed(self) -> None:
        self._wbuf.clear()
        self._flushing = False
        self._shutdown()

    def _writer(self) -> None:
        """What _flush could not send at once (self._flushing stays set meanwhile: later frames join the queue
        this greenlet drains)."""
        buf = self._wbuf
        try:
            while buf:
                self.switch._running.wait()
                chunking = self.switch.chunking
                if chunking is not None:
                    data = buf.pop(0)
                    pos = 0
                    while pos < len(data):
                        n = chunking.randint(1, max(1, min(len(data) - pos, 512)))
                        self.sock.sendall(data[pos : pos + n])
                        pos += n
                        gevent.sleep(0)
                else:
                    data = buf[0] if len(buf) == 1 else b"".join(buf)
                    buf.clear()
                    _sendall(self.sock, data)
        except OSError:
            self._write_failed()
            return
        self._flushing = False
        if self._closing:
            self._shutdown()

    def _reader(self) -> None:
        parser = wire.CommandParser()
        try:
            while not self.closed.is_set():
                self.switch._running.wait()
                data = self.sock.recv(65536)
                if not data:
                    break
                for cmd in parser.feed(data):
                    self.switch._running.wait()
                    try:
                        self._handle(*cmd)
                    finally:
                        self.switch._subscription_changed(self)
                    if self.closed.is_set():
                        return
        except OSError:
            pass
        self._on_eof()

    def _on_eof(self) -> None:
        """The application closed its side."""
        if self.closed.is_set():
            return
        if self.outbound:
            self._send_disconnect()
            self.close()
            self._release_channel()
        else:
            self.send(wire.disconnect_notice())
            self.close()

    def _release_channel(self) -> None:
        """The end of listener_run for an outbound socket (once): CS_RESET if `resume` was sent or
        socket_resume is true, CF_CONTROLLED cleared (see Channel.outbound_socket_ended), session released."""
        ch = self.channel
        if ch is None or self._released:
            return
        self._released = True
        ch.outbound_socket_ended(resume=self.resume)
        ch.release(self)

    def _send_disconnect(self) -> None:
        if self._disconnect_sent:
            return
        self._disconnect_sent = True
        self.send(wire.disconnect_notice(self.channel.uuid if self.channel else None))

    # ------------------------------------------------------------------ hangup of the controlled channel
    def on_channel_hangup_complete(self, ch) -> None:
        if self.closed.is_set():
            return
        if self.linger:
            self._lingering = True
            ch.hold(self)
            self.send(wire.linger_notice(ch.uuid, ch.name, self.linger_time))
            if self.linger_time > 0:

                def _expire():
                    self.switch.clock.sleep(self.linger_time)
                    if not self.closed.is_set():
                        self._send_disconnect()
                        self.close()
                    ch.release(self)

                clock_mod.spawn(_expire)
        else:
            self._send_disconnect()
            self.close()

    # ------------------------------------------------------------------ events
    def sub_key(self):
        """Which events Switch.fire offers this connection: None (none), ("uuid", u) (myevents of one
        channel: only that channel's events), ("all",) (any event; wants() decides)."""
        if self.closed.is_set() or not self.listening or not self.authed:
            return None
        if self.outbound and not self.connected:
            return None
        if self.myevents and self.channel is not None:
            return ("uuid", self.channel.uuid)
        return ("all",)

    def wants(self, ev) -> bool:
        if not self.listening or not self.authed:
            return False
        if self.outbound and not self.connected:
            return False
        if self.myevents and self.channel is not None and ev.uuid != self.channel.uuid:
            return False
        if ev.name == "CUSTOM":
            if not (self.all_custom or ev.subclass in self.custom or self.all_events):
                return False
        elif not (self.all_events or ev.name in self.events):
            return False
        if self.filters and not admits(self.filters, ev):
            return False
        return True

    def deliver(self, ev) -> None:
        # the event list first (what wants() checks last): it rejects most events at once
        name = ev.name
        if name == "CUSTOM":
            if not (self.all_custom or ev.subclass in self.custom or self.all_events):
                return
        elif not (self.all_events or name in self.events):
            return
        if self.closed.is_set() or not self.wants(ev):
            return
        data = ev.frame(self.format)
        if self._held is not None:
            self._held.append(data)
        else:
            self.send(data)

    # ------------------------------------------------------------------ commands
    def _reply(self, text: str, extra=None) -> None:
        self.switch._log("reply", self.id, text)
        self.send(wire.command_reply(text, extra))

    def _handle(self, line: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.switch._log("command", self.id, line, headers=headers)
        cmd = line.strip()
        low = cmd.lower()
        if not self.authed:
            if low.startswith("auth "):
                if cmd[5:].strip() == self.switch.password:
                    self.authed = True
                    self._reply("+OK accepted")
                else:
                    self._reply("-ERR invalid")
                    self.send(wire.disconnect_notice())
                    self.close()
            else:
                self._reply("-ERR command not found")
            return
        if low == "exit" or low.startswith("exit "):
            self._reply("+OK bye")
            if self.outbound:
                self._send_disconnect()
                self.close()
                self._release_channel()
            else:
                self.send(wire.disconnect_notice())
                self.close()
            return
        if self.outbound and low.startswith("connect"):
            self._connect()
            return
        if low.startswith("sendmsg"):
            self._sendmsg(cmd, headers, body)
            return
        if low.startswith("filter "):
            self._filter(cmd[7:])
            return
        if self.outbound and low.startswith("resume"):
            self.resume = True
            self.channel.set_var("socket_resume", "true")
            self._reply("+OK")
            return
        if self.outbound and low.startswith("getvar"):
            _, _, name = cmd.partition(" ")
            self._reply(self.channel.get_var(name.strip()) or "")
            return
        if low.startswith("myevents"):
            self._myevents(cmd)
            return
        if self.outbound and not self.full:
            self._reply("-ERR command not found")
            return
        if low.startswith("api "):
            self._api(cmd[4:], headers)
            return
        if low.startswith("bgapi "):
            self._bgapi(cmd[6:], headers)
            return
        if low.startswith("log"):
            level = cmd[3:].strip().split(" ")[0]
            if not level:
                num = 7  # no level: debug, and FreeSWITCH prints the empty argument
            elif level.isdigit():
                num = int(level) if int(level) <= 7 else None
            else:
                num = LOG_LEVELS.get(level.lower())
            if num is None:
                self._reply("-ERR invalid log level")
            else:
                self.logging = True
                self._reply(f"+OK log level {level} [{num}]")
            return
        if low.startswith("linger"):
            if self.channel is None:
                self._reply("-ERR not controlling a session")
                return
            arg = cmd[6:].strip()
            self.linger = True
            if arg:
                try:
                    self.linger_time = int(arg)
                except ValueError:
                    self.linger_time = 0
                self._reply(f"+OK will linger {self.linger_time} seconds")
            else:
                self.linger_time = -1
                self._reply("+OK will linger")
            return
        if low.startswith("nolinger"):
            if self.channel is None:
                self._reply("-ERR not controlling a session")
                return
            self.linger = False
            self._reply("+OK will not linger")
            return
        if low.startswith("nolog"):
            if self.logging:
                self.logging = False
                self._reply("+OK no longer logging")
            else:
                self._reply("-ERR not loging")
            return
        if low.startswith("divert_events"):
            on = cmd[13:].strip().lower()
            if self.channel is None:
                self._reply("-ERR not controlling a session.")
            elif not on:
                self._reply("-ERR missing value.")
            else:
                self._reply("+OK events diverted" if on == "on" else "+OK events not diverted")
            return
        if low.startswith("nixevent"):
            self._nixevent(cmd)
            return
        if low.startswith("noevents"):
            if self.listening:
                self.listening = False
                self.events.clear()
                self.custom.clear()
                self.all_events = self.all_custom = False
                self._reply("+OK no longer listening for events")
            else:
                self._reply("-ERR not listening for events")
            return
        if low.startswith("event"):
            self._event(cmd)
            return
        if low.startswith("sendevent"):
            ev_uuid = ids.uuid4()
            self._reply(f"+OK {ev_uuid}")
            return
        self._reply("-ERR command not found")

    def _connect(self) -> None:
        ch = self.channel
        self.connected = True
        reply = (
            ("Content-Type", "command/reply"),
            ("Reply-Text", "+OK\n"),
            ("Socket-Mode", "async" if self.async_mode else "static"),
            ("Control", "full" if self.full else "single-channel"),
        )
        # the event's headers (common ones, Channel-* profile, channel headers, reply) in event-plain form; the
        # Channel-* profile lines are the memoised rendering of the profile block
        snap, variables = ch._snapshot("CHANNEL_DATA")
        ev = self.switch.new_channel_event(
            "CHANNEL_DATA", ch, (), snap, reply, ("mod_event_socket.c", "parse_command", "2021"), None, variables,
        )
        profile = _profile_plain("Channel", snap[11], snap[12])
        self.switch._log("reply", self.id, "+OK (connect)")
        self.send(wire.plain_payload("".join(self.switch._plain_parts(ev, before_text=profile)), None))

    def _myevents(self, cmd: str) -> None:
        if self.myevents:
            self._reply("-ERR aready enabled.")
            return
        parts = cmd.split()
        if self.channel is None:
            if len(parts) < 2:
                self._reply("-ERR command not found")
                return
            ch = self.switch.channels_by_uuid.get(parts[1])
            if ch is None and len(parts) > 2:
                self._reply("-ERR invalid uuid")
                return
            self.channel = ch
            if len(parts) > 2 and parts[2].lower() in wire.CONTENT_TYPES:
                self.format = parts[2].lower()
        self.events |= MYEVENTS
        self.myevents = True
        self.listening = True
        if "xml" in cmd.lower().split()[1:]:
            self.format = "xml"
        if "json" in cmd.lower().split()[1:]:
            self.format = "json"
        self._reply("+OK Events Enabled")

    def _event(self, cmd: str) -> None:
        tokens = cmd.split(" ")[1:]
        key_count = 0
        custom = False
        for i, tok in enumerate(tokens):
            if not tok:
                continue
            if i == 0 and tok.lower() in ("plain", "json", "xml"):
                self.format = tok.lower()
                continue
            if custom:
                self.custom.add(tok)
                continue
            name = tok.upper()
            if name not in self.switch.EVENT_NAMES:
                continue
            key_count += 1
            if name == "ALL":
                self.all_events = True
                self.all_custom = True
            elif name == "CUSTOM":
                custom = True
            else:
                self.events.add(name)
        if not key_count:
            self._reply("-ERR no keywords supplied")
            return
        self.listening = True
        self._reply(f"+OK event listener enabled {self.format}")

    def _nixevent(self, cmd: str) -> None:
        tokens = cmd.split(" ")[1:]
        key_count = 0
        custom = False
        for tok in tokens:
            if not tok:
                continue
            if custom:
                self.custom.discard(tok)
                continue
            name = tok.upper()
            if name not in self.switch.EVENT_NAMES:
                continue
            key_count += 1
            if name == "CUSTOM":
                custom = True
            elif name == "ALL":
                self.events.clear()
                self.all_events = False
            else:
                if self.all_events:
                    self.all_events = False
                    self.events = set(self.switch.EVENT_NAMES) - {"ALL"}
                self.events.discard(name)
        if not key_count:
            self._reply("-ERR no keywords supplied")
            return
        self.listening = True
        self._reply("+OK events nixed")

    def _filter(self, rest: str) -> None:
        """`filter <header> <value>`, `filter add <header> <value>`, `filter delete <header> [<value>]`,
        `filter delete all`. The listener keeps its filters as a list of headers (duplicates allowed)."""
        name, sep, val = rest.lstrip(" ").partition(" ")
        value: str | None = val if sep else None
        if name.lower() == "delete" and value is not None:
            name, sep, val = value.partition(" ")
            value = val if sep else None
            if name.lower() == "all":
                self.filters = []
            else:
                low = name.lower()
                # the header name in any case; the value exactly; no value (or an empty one): every value
                self.filters = [f for f in self.filters
                                if not (f.low == low and (not value or f.value == value))]
            self._reply(f"+OK filter deleted. [{name}][{value or ''}]")
            return
        if value is None:
            self._reply("-ERR invalid syntax")
            return
        if name.lower() == "add":
            name, sep, val = value.partition(" ")
            value = val if sep else None
        if value is not None:
            if value == "":
                # adding a header with an empty value removes the headers of that name instead
                low = name.lower()
                self.filters = [f for f in self.filters if f.low != low]
            else:
                self.filters.append(Filter(name, value))
        self._reply(f"+OK filter added. [{name}]=[{'(null)' if value is None else value}]")

    def _sendmsg(self, cmd: str, headers, body: bytes) -> None:
        target = cmd[7:].strip()
        hd = {k.lower(): v for k, v in headers}
        if not target:
            target = hd.get("session-id", "")
        ch = None
        if self.channel is not None and (not target or target == self.channel.uuid):
            ch = self.channel
        elif target:
            ch = self.switch.channels_by_uuid.get(target)
        if ch is None:
            self._reply(f"-ERR invalid session id [{target}]")
            return
        command = hd.get("call-command", "")
        if command == "execute":
            app_name = hd.get("execute-app-name", "")
            arg = hd.get("execute-app-arg", "")
            if not arg and body and hd.get("content-type", "") == "text/plain":
                arg = body.decode("utf-8", "replace")
            loops = int(hd.get("loops", "1") or 1)
            sync = ch is self.channel and not self.async_mode and hd.get("async", "").lower() not in ("true", "1")
            done = None
            for _ in range(max(1, loops)):
                done = gevent.event.Event() if sync else None
                ch._private.put(("execute", app_name, arg, hd.get("event-uuid"), list(headers), done))
            if done is not None:
                # static (non-async) socket: the reply comes after the application finished
                while not done.wait(0.05) and not ch.hungup.is_set() and not self.closed.is_set():
                    pass
        elif command == "hangup":
            self._reply("+OK")
            ch.set_var("current_loop", None)
            ch.set_var("total_loops", None)
            if ch.hangup(hd.get("hangup-cause", "NORMAL_CLEARING") or "NORMAL_CLEARING"):
                ch._private_command_event(list(headers))
            return
        self._reply("+OK")

    def _api(self, text: str, headers) -> None:
        cmd, _, arg = text.strip().partition(" ")
        self._held = []
        try:
            body = self.switch.api.execute(cmd, arg, conn=self)
        finally:
            held, self._held = self._held, None
        self.switch._log("reply", self.id, body)
        self.send(wire.api_response(body))
        for data in held:
            self.send(data)

    def _bgapi(self, text: str, headers) -> None:
        cmd, _, arg = text.strip().partition(" ")
        job = next((v for k, v in headers if k.lower() == "job-uuid"), None) or ids.uuid4()
        self._reply(f"+OK Job-UUID: {job}", [("Job-UUID", job)])

        def _run():
            body = self.switch.api.execute(cmd, arg, conn=None)
            tail = (("Job-UUID", job), ("Job-Command", cmd), ("Job-Command-Arg", arg)) if arg else (
                ("Job-UUID", job), ("Job-Command", cmd))
            ev = self.switch.new_lazy_event("BACKGROUND_JOB", tail, calling=_BGAPI_CALLING)
            ev.body = body
            self.switch.fire(ev)

        clock_mod.spawn(_run)
