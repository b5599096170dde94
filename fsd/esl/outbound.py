"""Outbound Event Socket server (FreeSWITCH's ``socket`` dialplan app connects to us, one call each).

Usage::

    def handle(session: OutboundSession):
        data = session.connect()            # CHANNEL_DATA (Event): Unique-ID, Caller-*, variable_*
        session.myevents()
        session.linger()
        session.execute("answer").get(timeout=5)
        done = session.execute("playback", "/x.wav")
        done.get()                          # CHANNEL_EXECUTE_COMPLETE, or SessionHangup

    server = OutboundServer(host="127.0.0.1", port=0, handler=handle)
    server.start(); server.port             # the bound port
    server.stop(timeout=10)                 # stop accepting, drain running sessions, then close them

The server is a gevent ``StreamServer``: accepting is event driven (no polling), each call's handler runs
in its own greenlet, and the socket is closed when the handler returns.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence

import gevent
import gevent.event
from gevent.server import StreamServer

from fsd.errors import ESLDisconnected, ESLTimeout
from fsd.esl.connection import (
    CommandFailed,
    Connection,
    Dispatcher,
    ESLStats,
    PendingResult,
    SessionHangup,
    Subscription,
)
from fsd.esl.frames import (
    Event,
    Frame,
    encode_api,
    encode_bgapi,
    encode_command,
    encode_execute,
    encode_sendmsg,
    new_uuid,
)
from fsd.esl.inbound import ApiResult, order_event_names
from fsd.looptimer import call_later

log = logging.getLogger(__name__)

HANGUP_EVENTS = frozenset({"CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"})
CHANNEL_DATA_LOOKUPS = 1 << 20  # get() calls on the channel data answered from its raw block
_LIST_COMMANDS = frozenset({"myevents", "event", "nixevent", "noevents"})


@functools.lru_cache(maxsize=256)
def _names_touched(names: str) -> tuple[bool, bool]:
    """Whether an event-list command's names include CHANNEL_EXECUTE_COMPLETE, and BACKGROUND_JOB (ALL counts
    for both; case-insensitive as mod_event_socket). Cached: a call's commands are the same few strings."""
    tokens = {t.upper() for t in names.split()}
    return bool(tokens & {"CHANNEL_EXECUTE_COMPLETE", "ALL"}), bool(tokens & {"BACKGROUND_JOB", "ALL"})


class OutboundSession:
    """One outbound socket: the controlled channel's data, commands and event correlation."""

    def __init__(
        self,
        sock,
        address=None,
        *,
        command_timeout: float = 10.0,
        write_timeout: float = 10.0,
        queue_size: int = 1000,
        stats: ESLStats | None = None,
        name: str = "outbound",
        hub_reader: bool = True,
    ):
        self.address = address
        self.command_timeout = command_timeout
        self.stats = stats or ESLStats()
        self.name = name
        self.dispatcher = Dispatcher(queue_size=queue_size, stats=self.stats, name=name)
        self.channel_data: Event | None = None
        self.uuid: str | None = None
        self.hangup_event: Event | None = None
        self.hangup_cause: str | None = None
        self.lingering = False
        self.linger_notice: Frame | None = None
        self.hung_up = gevent.event.Event()
        self._executions: dict[str, gevent.event.AsyncResult] = {}
        self._jobs: dict[str, gevent.event.AsyncResult] = {}
        self._bgjob_subscribed = False
        # whether CHANNEL_EXECUTE_COMPLETE reaches this socket: None until ``myevents`` (then True), False
        # once nixed. Followed from the commands sent (as mod_event_socket keeps its event list), so that an
        # ``execute`` whose completion is awaited can turn it back on in the same write (see execute()).
        self.completions: bool | None = None
        self._myevents = False
        self.conn = Connection(
            sock, name=name, write_timeout=write_timeout, stats=self.stats,
            on_event=self._on_event, on_notice=self._on_notice, on_close=self._on_close,
            hub_reader=hub_reader,
        )
        self.conn.start()

    # ------------------------------------------------------------------ state

    @property
    def closed(self) -> bool:
        return not self.conn.is_open

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self.conn.wait_closed(timeout)

    def close(self) -> None:
        """Close our side (with linger, FreeSWITCH then sends the goodbye notice and lets the call go)."""
        self.conn.close(ESLDisconnected(f"{self.name}: session closed"))

    # ------------------------------------------------------------------ reader callbacks

    def _on_event(self, event: Event) -> None:
        name = event.name
        if name == "CHANNEL_EXECUTE_COMPLETE":
            app_uuid = event.get("Application-UUID")
            if app_uuid:
                res = self._executions.pop(app_uuid, None)
                if res is not None and not res.ready():
                    res.set(event)
        elif name in HANGUP_EVENTS and (self.uuid is None or event.uuid in (None, self.uuid)):
            if not self.hung_up.is_set():
                self.hangup_event = event
                self.hangup_cause = event.get("Hangup-Cause")
                self.hung_up.set()
                self._fail_executions(SessionHangup(f"{self.name}: channel hung up ({self.hangup_cause})"))
        elif name == "BACKGROUND_JOB":
            job = event.job_uuid
            res = self._jobs.pop(job, None) if job else None
            if res is not None and not res.ready():
                res.set(ApiResult(event.body or "", event))
        self.dispatcher.dispatch(event)

    def _on_notice(self, frame: Frame) -> None:
        if frame.disposition == "linger":
            self.lingering = True
            self.linger_notice = frame
        if not self.hung_up.is_set():
            self.hung_up.set()
        self._fail_executions(SessionHangup(f"{self.name}: disconnect notice ({frame.disposition})"))

    def _on_close(self, reason: BaseException | None) -> None:
        exc = ESLDisconnected(f"{self.name}: socket closed ({reason})")
        self._fail_executions(exc)
        jobs, self._jobs = self._jobs, {}
        for res in jobs.values():
            if not res.ready():
                res.set_exception(exc)
        self.dispatcher.close()

    def _fail_executions(self, exc: BaseException) -> None:
        pending, self._executions = self._executions, {}
        for res in pending.values():
            if not res.ready():
                res.set_exception(exc)

    # ------------------------------------------------------------------ commands

    def _request(self, data: bytes, word: str, timeout: float | None, check: bool = True) -> Frame:
        t = self.command_timeout if timeout is None else timeout
        reply = self.conn.request(data, word=word, timeout=t)
        return self._check(reply, word) if check else reply

    def _check(self, reply: Frame, word: str) -> Frame:
        text = reply.reply_text or ""
        if text.startswith("-ERR") or text.startswith("-USAGE"):
            self.stats.command_errors += 1
            raise CommandFailed(f"{self.name}: {word}: {text}", reply=text)
        return reply

    def _note(self, cmd: str, reply: Frame) -> None:
        """Follow this listener's event list from a command FreeSWITCH accepted (mod_event_socket's
        ``myevents``/``event``/``nixevent``/``noevents``): which completions and job results reach us."""
        word, _, rest = cmd.partition(" ")
        word = word.lower()
        if word not in _LIST_COMMANDS or (reply.reply_text or "").startswith("-"):
            return
        completes, jobs = _names_touched(rest)
        if word == "myevents":
            self._myevents = True
            self.completions = True
        elif word == "event":
            if completes:
                self.completions = True
            if jobs:
                self._bgjob_subscribed = True
        elif word == "nixevent":
            if completes and self.completions:
                self.completions = False
            if jobs:
                self._bgjob_subscribed = False
        else:  # noevents: the whole list is cleared (the myevents restriction to this channel stays)
            if self.completions:
                self.completions = False
            self._bgjob_subscribed = False

    def command(self, cmd: str, *, headers=None, body=None, timeout: float | None = None,
                check: bool = True) -> Frame:
        reply = self._request(encode_command(cmd, headers, body), cmd.split(" ", 1)[0], timeout, check)
        self._note(cmd, reply)
        return reply

    def commands(self, *cmds: str, timeout: float | None = None, check: bool = True) -> list[Frame]:
        """Several commands pipelined (one write, one wait for all the replies), e.g.
        ``commands("linger", "myevents")``. With ``check`` the first ``-ERR`` reply raises CommandFailed."""
        t = self.command_timeout if timeout is None else timeout
        words = [c.split(" ", 1)[0] for c in cmds]
        replies = self.conn.request_many([(encode_command(c), w) for c, w in zip(cmds, words, strict=True)],
                                         timeout=t)
        for reply, word, cmd in zip(replies, words, cmds, strict=True):
            if check:
                self._check(reply, word)
            self._note(cmd, reply)
        return replies

    def connect(self, timeout: float | None = None, *, then: Sequence[str] = ()) -> Event:
        """``connect``: returns the channel data (Event-Name CHANNEL_DATA, Unique-ID, Caller-*, variable_*).

        ``then``: commands pipelined behind ``connect`` in the same write (e.g. ``myevents``, ``linger``):
        FreeSWITCH runs them in order after the connect, so the call saves their round trip. Their replies
        are checked as ``commands()`` does (the first ``-ERR`` raises CommandFailed)."""
        t = self.command_timeout if timeout is None else timeout
        words = [c.split(" ", 1)[0] for c in then]
        replies = self.conn.request_many([(encode_command("connect"), "connect"),
                                          *((encode_command(c), w) for c, w in zip(then, words, strict=True))],
                                         timeout=t)
        reply = replies[0]
        text = reply.reply_text or ""
        if not text.startswith("+OK"):
            raise CommandFailed(f"{self.name}: connect: {text}", reply=text)
        # kept for the whole call: a lazy event over the raw header block (about 5 KB) rather than the
        # parsed frame headers (about 50 KB of strings and index per call)
        raw = reply.raw_headers
        if isinstance(raw, bytes | bytearray | memoryview) and raw:
            # read now and then for the whole call: always looked up in the raw block, never parsed whole
            self.channel_data = Event.from_plain(bytes(raw), lookups=CHANNEL_DATA_LOOKUPS)
        else:
            self.channel_data = Event(reply.headers, None, content_type=reply.content_type, raw=raw)
        self.uuid = self.channel_data.get("Unique-ID") or self.channel_data.get("Channel-Unique-ID")
        if self.uuid:
            self.name = f"outbound:{self.uuid}"
            self.conn.name = self.name
        for r, word, cmd in zip(replies[1:], words, then, strict=True):
            self._check(r, word)
            self._note(cmd, r)
        return self.channel_data

    def myevents(self, fmt: str = "plain", timeout: float | None = None) -> Frame:
        return self.command("myevents" if fmt == "plain" else f"myevents {fmt}", timeout=timeout)

    def linger(self, seconds: int | None = None, timeout: float | None = None) -> Frame:
        return self.command("linger" if seconds is None else f"linger {int(seconds)}", timeout=timeout)

    def nolinger(self, timeout: float | None = None) -> Frame:
        return self.command("nolinger", timeout=timeout)

    def event(self, *names: str, fmt: str = "plain", timeout: float | None = None) -> Frame:
        tokens = ["ALL"] if "ALL" in names else order_event_names(names)
        return self.command(f"event {fmt} {' '.join(tokens)}", timeout=timeout)

    def filter(self, header: str, value: str, timeout: float | None = None) -> Frame:
        return self.command(f"filter {header} {value}", timeout=timeout)

    def resume(self, timeout: float | None = None) -> Frame:
        return self.command("resume", timeout=timeout)

    def sendmsg(self, headers, body=None, *, timeout: float | None = None) -> Frame:
        return self._request(encode_sendmsg(None, headers, body), "sendmsg", timeout)

    def execute(self, app: str, arg: str | None = None, *, lock: bool = True, timeout: float | None = None,
                loops: int | None = None, track: bool = True) -> PendingResult | None:
        """sendmsg execute with our ``event-uuid``; the AsyncResult gets the CHANNEL_EXECUTE_COMPLETE whose
        ``Application-UUID`` matches (requires ``myevents`` or an event subscription). It fails with
        SessionHangup on hangup, ESLDisconnected on socket loss, ESLTimeout after ``timeout`` seconds.

        ``track=False``: nobody waits for this application's end (``answer``, ``set``, a ring-back that is
        broken later): returns None once FreeSWITCH accepted it. A socket that nixed CHANNEL_EXECUTE_COMPLETE
        after ``myevents`` (each completion is a 6 KB event with every channel variable) gets it back in
        the same write as the first tracked ``execute``."""
        if self.hung_up.is_set():
            raise SessionHangup(f"{self.name}: channel already hung up")
        if not track:
            self._request(encode_execute(app, arg, event_uuid=new_uuid(), lock=lock, loops=loops), "sendmsg", None)
            return None
        event_uuid = new_uuid()
        res = PendingResult(event_uuid)
        self._executions[event_uuid] = res
        try:
            data = encode_execute(app, arg, event_uuid=event_uuid, lock=lock, loops=loops)
            if self._myevents and self.completions is False:
                self._request_with_completions([(data, "sendmsg")], self.command_timeout)
            else:
                self._request(data, "sendmsg", None)
        except BaseException:
            self._executions.pop(event_uuid, None)
            raise
        if timeout is not None:
            def expire():
                if self._executions.get(event_uuid) is res and not res.ready():
                    del self._executions[event_uuid]
                    res.set_exception(ESLTimeout(f"{self.name}: {app} did not complete within {timeout}s"))

            call_later(timeout, expire)  # a timer in the event loop, not a greenlet per execute
        return res

    def execute_many(self, apps: list[tuple[str, str | None]], *, lock: bool = True,
                     timeout: float | None = None, track: bool = True) -> list[PendingResult | None]:
        """Several ``execute`` pipelined: one write, then their replies (FreeSWITCH queues the
        applications in this order). One AsyncResult per application, as ``execute`` returns (None each
        with ``track=False``); a ``-ERR`` reply raises CommandFailed (none of the results is then tracked)."""
        if self.hung_up.is_set():
            raise SessionHangup(f"{self.name}: channel already hung up")
        results: list[PendingResult | None] = []
        cmds = []
        for app, arg in apps:
            event_uuid = new_uuid()
            if track:
                res = PendingResult(event_uuid)
                self._executions[event_uuid] = res
                results.append(res)
            else:
                results.append(None)
            cmds.append((encode_execute(app, arg, event_uuid=event_uuid, lock=lock), "sendmsg"))
        try:
            t = self.command_timeout if timeout is None else timeout
            if track and self._myevents and self.completions is False:
                self._request_with_completions(cmds, t)
            else:
                for reply in self.conn.request_many(cmds, timeout=t):
                    self._check(reply, "sendmsg")
        except BaseException:
            for res in results:
                if res is not None:
                    self._executions.pop(res.key, None)
            raise
        return results

    def _request_with_completions(self, cmds: list[tuple[bytes, str]], timeout: float) -> None:
        """``event CHANNEL_EXECUTE_COMPLETE`` and then ``cmds`` in one write: the completions are on before
        FreeSWITCH runs the applications."""
        on = "event CHANNEL_EXECUTE_COMPLETE"
        replies = self.conn.request_many([(encode_command(on), "event"), *cmds], timeout=timeout)
        self._check(replies[0], "event")
        self._note(on, replies[0])
        for reply in replies[1:]:
            self._check(reply, "sendmsg")

    def hangup(self, cause: str = "NORMAL_CLEARING", *, timeout: float | None = None) -> Frame:
        return self.sendmsg([("call-command", "hangup"), ("hangup-cause", cause)], timeout=timeout)

    def api(self, cmd: str, *, timeout: float | None = None, check: bool = False) -> ApiResult:
        frame = self.conn.request(encode_api(cmd), word=cmd.split(" ", 1)[0],
                                  timeout=self.command_timeout if timeout is None else timeout)
        result = ApiResult(frame.body_text if frame.content_type == "api/response" else (frame.reply_text or ""))
        return result.check() if check else result

    def bgapi(self, cmd: str, *, timeout: float | None = None) -> gevent.event.AsyncResult:
        """bgapi with our Job-UUID; subscribes this socket to BACKGROUND_JOB first if needed."""
        if not self._bgjob_subscribed:
            self.event("BACKGROUND_JOB", timeout=timeout)
        job = new_uuid()
        res = PendingResult(job)
        self._jobs[job] = res
        try:
            self._request(encode_bgapi(cmd, job), "bgapi", timeout)
        except BaseException:
            self._jobs.pop(job, None)
            raise
        return res

    def subscribe(self, event_name: str, handler: Callable[[Event], object]) -> Subscription:
        return self.dispatcher.subscribe(event_name, handler)

    def queue_depth(self) -> int:
        return self.dispatcher.queue_depth()

    def __repr__(self) -> str:
        return f"<OutboundSession {self.uuid} closed={self.closed}>"


class OutboundServer:
    """gevent StreamServer for outbound sockets; ``handler(session)`` runs in the connection's greenlet."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        handler: Callable[[OutboundSession], object],
        name: str = "outbound",
        max_sessions: int | None = None,
        command_timeout: float = 10.0,
        write_timeout: float = 10.0,
        queue_size: int = 1000,
        backlog: int = 256,
    ):
        self.host = host
        self._requested_port = port
        self.handler = handler
        self.name = name
        self.max_sessions = max_sessions
        self.command_timeout = command_timeout
        self.write_timeout = write_timeout
        self.queue_size = queue_size
        self.backlog = backlog
        self.stats = ESLStats()
        self.sessions: set[OutboundSession] = set()
        self.accepted = 0
        self.rejected = 0
        self.handler_errors = 0
        self._server: StreamServer | None = None
        self._idle = gevent.event.Event()
        self._idle.set()
        self._accepting = False

    @property
    def port(self) -> int | None:
        return self._server.server_port if self._server is not None else None

    @property
    def accepting(self) -> bool:
        return self._accepting

    def start(self) -> OutboundServer:
        self._server = StreamServer((self.host, self._requested_port), self._handle, backlog=self.backlog)
        self._server.start()
        self._accepting = True
        log.info("esl_outbound_listening name=%s host=%s port=%s", self.name, self.host, self.port)
        return self

    def serve_forever(self) -> None:
        if self._server is None:
            self.start()
        self._server.serve_forever()

    def _handle(self, sock, address) -> None:
        if not self._accepting or (self.max_sessions is not None and len(self.sessions) >= self.max_sessions):
            # closing at once makes FreeSWITCH continue with the dialplan fallback after `socket`
            self.rejected += 1
            log.warning("esl_outbound_rejected name=%s sessions=%d accepting=%s", self.name, len(self.sessions),
                        self._accepting)
            sock.close()
            return
        self.accepted += 1
        session = OutboundSession(sock, address, command_timeout=self.command_timeout,
                                  write_timeout=self.write_timeout, queue_size=self.queue_size, stats=self.stats,
                                  name=f"{self.name}:{address[0]}:{address[1]}" if address else self.name)
        self.sessions.add(session)
        self._idle.clear()
        try:
            self.handler(session)
        except (ESLDisconnected, ESLTimeout) as exc:
            log.info("esl_outbound_session_ended name=%s reason=%s", session.name, exc)
        except Exception:
            self.handler_errors += 1
            log.exception("esl_outbound_handler_failed name=%s", session.name)
        finally:
            session.close()
            self.sessions.discard(session)
            if not self.sessions:
                self._idle.set()

    def drain(self, timeout: float | None = None) -> bool:
        """Stop accepting new sessions and wait for running ones; True if all finished in time."""
        self._accepting = False
        if self._server is not None:
            self._server.close()
        return self._idle.wait(timeout) if self.sessions else True

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful stop: drain up to ``timeout`` seconds, then close the remaining sessions."""
        deadline = time.monotonic() + timeout
        if not self.drain(timeout):
            left = list(self.sessions)
            log.warning("esl_outbound_drain_timeout name=%s sessions=%d", self.name, len(left))
            for s in left:
                s.close()
            self._idle.wait(max(0.5, deadline - time.monotonic()))
        if self._server is not None:
            self._server.stop(timeout=0.5)
