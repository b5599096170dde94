"""Inbound Event Socket client (we connect to FreeSWITCH's mod_event_socket, default port 8021).

Usage::

    client = InboundClient(host="127.0.0.1", port=8021, password="ClueCon",
                           events=["CHANNEL_CREATE", "CHANNEL_HANGUP_COMPLETE"])
    client.subscribe("CHANNEL_CREATE", on_create)      # own queue + greenlet per handler
    client.connect(timeout=5)                          # first attempt; reconnects forever afterwards
    res = client.api("status")                         # ApiResult(ok, body)
    job = client.bgapi("originate user/1001 &park()")  # AsyncResult -> BackgroundJob
    job.get(timeout=30).body

Design decisions:

* ``api()`` returns an :class:`ApiResult` (``ok`` is False when the body starts with ``-ERR``) and does
  not raise on ``-ERR`` unless ``check=True``; ``command()`` (event/filter/...) raises
  :class:`CommandFailed` on ``-ERR`` by default. Timeouts raise :class:`fsd.errors.ESLTimeout`, a lost
  connection :class:`fsd.errors.ESLDisconnected` - immediately, for every waiter.
* Events are subscribed in **plain** format by default: FreeSWITCH builds JSON per listener and the JSON
  body is larger (arrays, escaping); plain is what the captures show as the cheapest to parse lazily.
* ``BACKGROUND_JOB`` is always added to the subscription (and to the filters, when filters are used) so
  ``bgapi`` results can never be filtered away.
* Reconnects with exponential backoff (``reconnect_backoff=(min, max)``), re-authenticates, re-subscribes
  and re-applies filters; ``on_connect(client)`` / ``on_disconnect(client, exc)`` are called each time.
* The socket is read in the event loop (``hub_reader=True``, the default): no reader greenlet. Queued
  handlers each keep their greenlet; ``subscribe(..., inline=True)`` handlers are called by the reader
  itself and must never block. ``api_nowait(cmd, callback)`` and ``bgapi_nowait(cmd, job_timeout=...)``
  send without waiting for the reply (the call driver uses them so that no greenlet waits per ringing leg
  or per kill); a late bgapi reply is still counted in ``stats.command_timeouts`` and logged.

Liveness (a switch that stalls - stops reading and writing its socket - without closing it):

* Replies are strictly FIFO on one connection. A command whose reply timed out stays at the head of the
  connection's FIFO (abandoned): its reply, when it comes, is consumed and discarded there, never handed
  to the next caller.
* The connection is declared dead and closed with :class:`ESLLivenessFailed` (an ``ESLDisconnected``)
  when **nothing at all** (no reply, no event) has been received for ``liveness_timeout`` seconds while
  at least one command (timed out or not) awaits its reply - the silence is measured from the later of
  the last thing received and the moment the oldest such command was first seen waiting. Events
  streaming in keep a connection with a slow ``api`` alive. A watchdog greenlet per connection samples
  the reply FIFO and two counters every ``min(liveness, probe, command timeouts) / 5`` seconds (at most
  1 s), so the reader's hot path only counts. Note that a real FreeSWITCH executes an ``api`` in the
  listener's own thread and sends no events meanwhile, so ``liveness_timeout`` is also the longest an
  ``api`` may run before the link is judged dead: keep it well above ``command_timeout`` (default 2x).
* When nothing was received for ``probe_interval`` seconds and no command is outstanding, an idle probe
  (``api status``: cheap, answered by the listener thread itself) is sent; no reply within
  ``command_timeout`` with nothing else received meanwhile also declares the link dead. A quiet
  switch therefore sees one ``api status`` per ``probe_interval``; a busy one (events flowing) none.
* Closing wakes every in-flight ``api``/``command`` caller with ``ESLLivenessFailed`` and fails pending
  ``bgapi`` jobs with ``ESLDisconnected`` at once; ``on_disconnect`` runs and the reconnect loop starts.
  ``stats.liveness_failures``, ``stats.probes_sent`` and ``stats.probes_answered`` count what happened.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable

import gevent
import gevent.event
import gevent.lock
from gevent import socket  # cooperative even when the stdlib is not monkey-patched

from fsd.errors import ESLDisconnected, ESLError, ESLTimeout
from fsd.esl.connection import (
    AuthenticationFailed,
    CommandFailed,
    Connection,
    Dispatcher,
    ESLStats,
    InlineSubscription,
    PendingResult,
    Subscription,
    supervise,
)
from fsd.esl.frames import Event, Frame, InvalidCommand, encode_api, encode_bgapi, encode_command, new_uuid
from fsd.looptimer import call_later

log = logging.getLogger(__name__)

PROBE_COMMAND = "status"  # `api status`: cheap, side-effect free, answered by the listener thread
PROBE_WORD = "probe"  # command word the probe is reported under (latency observers, logs)


class ESLLivenessFailed(ESLDisconnected):
    """The switch stopped answering on a connection it kept open (nothing received for the liveness
    timeout while commands were outstanding, or an idle probe got no reply); the client closed it."""


class InboundStats(ESLStats):
    """ESLStats plus the inbound client's liveness counters."""

    def __init__(self):
        super().__init__()
        self.liveness_failures = 0
        self.probes_sent = 0
        self.probes_answered = 0
        self.replies = 0  # replies handed to a waiting caller (progress seen by the liveness watchdog)

    def observe_command(self, word: str, seconds: float) -> None:
        self.replies += 1
        super().observe_command(word, seconds)

    def snapshot(self) -> dict:
        out = super().snapshot()
        out["liveness_failures"] = self.liveness_failures
        out["probes_sent"] = self.probes_sent
        out["probes_answered"] = self.probes_answered
        return out


class _Seen:
    """What the liveness watchdog last saw of one connection (sampled, so exact to one tick)."""

    __slots__ = ("frames", "head", "head_since", "last_rx")

    def __init__(self, now: float):
        self.frames = -1  # events + replies counted so far; -1: not sampled yet
        self.head = None  # the reply waiter at the head of the FIFO
        self.head_since = now  # when it was first seen at the head
        self.last_rx = now  # when something was last seen arriving


def _reply_fifo(conn: Connection):
    """The connection's FIFO of reply waiters (abandoned ones included: their replies are still due)."""
    # fsd.esl.connection keeps it as ``Connection._waiters``; read-only use (length, head identity)
    return conn._waiters


def _positive(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, not {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, not {value!r}")
    return v


class ESLNotConnected(ESLDisconnected):
    """The client had no connection: nothing was sent (unlike a link lost after a command went out)."""


class BgapiReplyTimeout(ESLTimeout):
    """A bgapi whose command reply did not come in time. FreeSWITCH may still run the job: ``job`` (the
    PendingResult) is still completed by its BACKGROUND_JOB, or fails with ESLTimeout after the job
    timeout (``late_job_timeout`` when none was given) or with ESLDisconnected if the link drops."""

    def __init__(self, message: str, *, job: PendingResult):
        super().__init__(message)
        self.job = job


class ApiResult:
    """Body of an ``api`` (or ``bgapi`` BACKGROUND_JOB) response. ``ok`` is False for ``-ERR ...``."""

    __slots__ = ("body", "event")

    def __init__(self, body: str, event: Event | None = None):
        self.body = body
        self.event = event

    @property
    def ok(self) -> bool:
        return not self.body.startswith("-ERR") and not self.body.startswith("-USAGE")

    @property
    def error(self) -> str | None:
        """Text after ``-ERR `` (stripped), or None when ok."""
        if self.ok:
            return None
        return self.body.split(" ", 1)[1].strip() if " " in self.body else self.body.strip()

    @property
    def text(self) -> str:
        """Body without the trailing newline."""
        return self.body.rstrip("\n")

    def check(self) -> ApiResult:
        if not self.ok:
            raise CommandFailed(self.body.strip(), reply=self.body)
        return self

    def __repr__(self) -> str:
        return f"ApiResult(ok={self.ok}, body={self.body[:60]!r})"


BackgroundJob = ApiResult  # a BACKGROUND_JOB result: .body, .ok, .event (the BACKGROUND_JOB event)


def _command_word(cmd: str) -> str:
    return cmd.split(" ", 1)[0]


_BGJOB_FILTER = ("Event-Name", "BACKGROUND_JOB")


def _check_filter(header: str, value: str) -> None:
    """A filter FreeSWITCH reads back as given: one header word (not the command words add/delete), a value."""
    for part in (header, value):
        if "\n" in part or "\r" in part:
            raise InvalidCommand("filter text must not contain a newline")
    if not header or " " in header or header.lower() in ("add", "delete"):
        raise InvalidCommand(f"filter header must be one word other than add/delete, not {header!r}")
    if not value.strip(" +-"):
        # FreeSWITCH takes an empty value as "remove this header's filters"
        raise InvalidCommand("filter value must not be empty")


def order_event_names(names: Iterable[str]) -> list[str]:
    """Event command tokens: plain names first, then ``CUSTOM`` and its subclasses."""
    plain: list[str] = []
    subs: list[str] = []
    for n in names:
        for tok in n.split():
            if tok == "CUSTOM":
                continue
            target = subs if "::" in tok else plain
            if tok not in target:
                target.append(tok)
    if any(n.split()[:1] == ["CUSTOM"] for n in names) or subs:
        return [*plain, "CUSTOM", *subs]
    return plain


class InboundClient:
    """gevent inbound ESL client with reconnect, supervised greenlets and per-handler queues."""

    # how long the job of a bgapi whose reply came late stays registered when the caller gave no job timeout
    late_job_timeout = 300.0

    def __init__(
        self,
        *,
        host: str,
        port: int,
        password: str,
        name: str = "fs",
        events: Iterable[str] = (),
        filters: Iterable[tuple[str, str]] = (),
        event_format: str = "plain",
        command_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        write_timeout: float = 10.0,
        reconnect: bool = True,
        reconnect_backoff: tuple[float, float] = (0.1, 5.0),
        liveness_timeout: float | None = None,
        probe_interval: float = 5.0,
        queue_size: int = 10000,
        hub_reader: bool = True,
        on_connect: Callable[[InboundClient], object] | None = None,
        on_disconnect: Callable[[InboundClient, BaseException | None], object] | None = None,
    ):
        if event_format not in ("plain", "json", "xml"):
            raise ValueError(f"event_format must be plain, json or xml, not {event_format!r}")
        self.host = host
        self.port = port
        self._password = password
        self.name = name
        self.event_format = event_format
        self.command_timeout = command_timeout
        self.connect_timeout = connect_timeout
        self.write_timeout = write_timeout
        self.reconnect = reconnect
        self.reconnect_backoff = reconnect_backoff
        _positive("command_timeout", command_timeout)
        # silence allowed while commands are outstanding; None: twice the command timeout
        self.liveness_timeout = _positive(
            "liveness_timeout", 2 * command_timeout if liveness_timeout is None else liveness_timeout)
        self.probe_interval = _positive("probe_interval", probe_interval)
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        # read in the event loop (a watcher callback) instead of a reader greenlet: no switch per read.
        # Queued handlers are unchanged; a handler queue that is full then drops at once (a reader
        # greenlet would first yield once to let it drain).
        self.hub_reader = hub_reader
        self.stats = InboundStats()
        self.dispatcher = Dispatcher(queue_size=queue_size, stats=self.stats, name=name)
        self._events: list[str] = []
        for e in events:
            self._add_event_name(e)
        # filters wanted (in the order first added) -> how many add_filter calls hold each; what the
        # current connection was sent (see _sync_filters)
        self._filter_refs: dict[tuple[str, str], int] = {}
        for h, v in filters:
            self._want_filter(str(h), str(v))
        self._filters_conn: Connection | None = None
        self._filters_sent: list[tuple[str, str]] = []
        self._filter_lock = gevent.lock.Semaphore()
        self._jobs: dict[str, gevent.event.AsyncResult] = {}
        self._conn: Connection | None = None
        self._connected = gevent.event.Event()
        self._attempted = gevent.event.Event()
        self._stopping = False
        self._wake = gevent.event.Event()
        self._runner: gevent.Greenlet | None = None
        self._rx_events = 0  # events received (liveness progress; a plain counter, cheap per event)
        self.last_error: BaseException | None = None
        self.auth_failures = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def start(self) -> InboundClient:
        """Start the background connect/reconnect loop and return at once."""
        if self._runner is None or self._runner.dead:
            self._stopping = False
            self._runner = supervise(self._run, name=f"esl-inbound:{self.name}", stopped=lambda: self._stopping,
                                     stats=self.stats)
        return self

    def connect(self, timeout: float | None = None) -> InboundClient:
        """Start and wait for the first attempt: return when connected, else stop and raise its error."""
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._connected.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                self.stop()
                raise ESLTimeout(f"{self.name}: not connected within {timeout}s (last error: {self.last_error})")
            self._attempted.clear()
            if self._connected.is_set():
                break
            if not self._attempted.wait(remaining) or self._connected.is_set():
                continue
            err = self.last_error
            self.stop()
            if isinstance(err, ESLError):
                raise err
            raise ESLDisconnected(f"{self.name}: connect to {self.host}:{self.port} failed: {err}")
        return self

    def wait_connected(self, timeout: float | None = None) -> bool:
        return self._connected.wait(timeout)

    def stop(self, timeout: float = 2.0) -> None:
        """Send ``exit`` if connected, close, stop reconnecting and stop handler greenlets."""
        self._stopping = True
        self._wake.set()
        conn = self._conn
        if conn is not None and conn.is_open:
            try:
                conn.request(encode_command("exit"), word="exit", timeout=min(timeout, self.command_timeout))
            except ESLError:
                pass
            conn.close(ESLDisconnected(f"{self.name}: client stopped"))
        if self._runner is not None:
            self._runner.join(timeout)
            if not self._runner.dead:
                self._runner.kill(block=False)
        self.dispatcher.close()

    close = stop

    def __enter__(self) -> InboundClient:
        return self.connect(self.connect_timeout)

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ connection loop

    def _run(self) -> None:
        lo, hi = self.reconnect_backoff
        delay = lo
        first = True
        while not self._stopping:
            if not first:
                self.stats.reconnects += 1
            first = False
            ok = self._session()
            if self._stopping or not self.reconnect:
                break
            delay = lo if ok else min(max(delay * 2, lo), hi)
            if isinstance(self.last_error, AuthenticationFailed):
                delay = hi
            log.info("esl_reconnect_wait conn=%s delay=%.2f", self.name, delay)
            self._wake.clear()
            self._wake.wait(delay)

    def _session(self) -> bool:
        """One connection: connect, auth, subscribe, then wait until it ends. True if it got connected."""
        conn = None
        watchdog = None
        was_connected = False
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
            sock.settimeout(None)
            conn = Connection(sock, name=self.name, write_timeout=self.write_timeout, stats=self.stats,
                              on_event=self._on_event, on_notice=self._on_notice, hub_reader=self.hub_reader)
            self._conn = conn
            conn.start()
            self._handshake(conn)
            watchdog = gevent.spawn(self._watch, conn)
            watchdog.name = f"esl-liveness:{self.name}"
            was_connected = True
            self.stats.connects += 1
            self.last_error = None
            self._connected.set()
            self._attempted.set()
            log.info("esl_connected conn=%s host=%s port=%s", self.name, self.host, self.port)
            if self.on_connect is not None:
                try:
                    self.on_connect(self)
                except Exception:
                    log.exception("esl_on_connect_failed conn=%s", self.name)
            conn.wait_closed()
            self.last_error = conn.close_reason
        except (OSError, ESLError) as exc:
            self.last_error = exc
            if isinstance(exc, AuthenticationFailed):
                self.auth_failures += 1
            log.warning("esl_connect_failed conn=%s host=%s port=%s error=%s", self.name, self.host, self.port, exc)
        finally:
            self._connected.clear()
            if conn is not None:
                conn.close(ESLDisconnected(f"{self.name}: connection lost"))
            if watchdog is not None:
                watchdog.kill(block=False)
            self._fail_jobs(ESLDisconnected(f"{self.name}: connection lost before the job finished"))
            self._attempted.set()
            if was_connected:
                self.stats.disconnects += 1
                level = logging.INFO if self._stopping else logging.WARNING
                log.log(level, "esl_disconnected conn=%s reason=%s", self.name, self.last_error)
                if self.on_disconnect is not None:
                    try:
                        self.on_disconnect(self, self.last_error)
                    except Exception:
                        log.exception("esl_on_disconnect_failed conn=%s", self.name)
        return was_connected

    def _handshake(self, conn: Connection) -> None:
        if not conn.auth_requested.wait(self.connect_timeout):
            raise ESLTimeout(f"{self.name}: no auth/request within {self.connect_timeout}s")
        if conn.rejected is not None:
            raise AuthenticationFailed(f"{self.name}: rejected: {conn.rejected.body_text.strip()}")
        if conn.closed.is_set():
            raise ESLDisconnected(f"{self.name}: closed before auth/request ({conn.close_reason})")
        reply = conn.request(encode_command(f"auth {self._password}"), word="auth", timeout=self.command_timeout)
        text = reply.reply_text or ""
        if not text.startswith("+OK"):
            raise AuthenticationFailed(f"{self.name}: authentication failed: {text}")
        self._send_subscriptions(conn)

    def _send_subscriptions(self, conn: Connection) -> None:
        if self._events:
            names = self._events if "ALL" in self._events else [*self._events, "BACKGROUND_JOB"]
            tokens = ["ALL"] if "ALL" in names else order_event_names(names)
            self._request(conn, f"event {self.event_format} {' '.join(tokens)}", check=True)
        else:
            self._request(conn, f"event {self.event_format} BACKGROUND_JOB", check=True)
        self._sync_filters(conn)

    # ------------------------------------------------------------------ liveness

    def _sample(self, conn: Connection, seen: _Seen) -> int:
        """Update ``seen``; return how many replies are due. Progress (something arrived): an event or a
        reply counted since the last sample, or the waiter seen at the head of the FIFO gone from it."""
        now = time.monotonic()
        fifo = _reply_fifo(conn)
        head = fifo[0] if fifo else None
        frames = self._rx_events + self.stats.replies
        if frames != seen.frames or (seen.head is not None and head is not seen.head):
            seen.last_rx = now
        seen.frames = frames
        if head is not seen.head:
            seen.head = head
            seen.head_since = now
        return len(fifo)

    def _watch(self, conn: Connection) -> None:
        """Close ``conn`` when the switch stops answering (see the module docstring); send idle probes."""
        liveness, interval = self.liveness_timeout, self.probe_interval
        tick = min(1.0, max(0.02, min(liveness, interval, self.command_timeout) / 5))
        seen = _Seen(time.monotonic())
        probe: gevent.Greenlet | None = None
        try:
            while conn.is_open and not self._stopping:
                due = self._sample(conn, seen)
                now = time.monotonic()
                if due:
                    quiet = now - max(seen.last_rx, seen.head_since)
                    if quiet >= liveness:
                        self._declare_dead(conn, f"nothing received for {quiet:.1f}s with {due} command(s) "
                                                 "awaiting a reply")
                        return
                elif now - seen.last_rx >= interval and (probe is None or probe.dead):
                    probe = gevent.spawn(self._probe, conn, seen)
                conn.closed.wait(tick)
        finally:
            if probe is not None:
                probe.kill(block=False)

    def _probe(self, conn: Connection, seen: _Seen) -> None:
        if not conn.is_open or self._stopping or _reply_fifo(conn):
            return  # no longer idle: the outstanding command's reply proves (or disproves) liveness
        sent = time.monotonic()
        self.stats.probes_sent += 1
        try:
            conn.request(encode_api(PROBE_COMMAND), word=PROBE_WORD, timeout=self.command_timeout)
        except ESLTimeout:
            self._sample(conn, seen)
            if seen.last_rx < sent:
                self._declare_dead(conn, f"no reply to the idle probe (api {PROBE_COMMAND}) within "
                                         f"{self.command_timeout}s")
            return
        except ESLError:
            return  # the connection closed meanwhile: the session loop reports it
        self.stats.probes_answered += 1

    def _declare_dead(self, conn: Connection, why: str) -> None:
        if not conn.is_open or self._stopping:
            return
        self.stats.liveness_failures += 1
        log.warning("esl_liveness_failed conn=%s host=%s port=%s reason=%s", self.name, self.host, self.port, why)
        conn.close(ESLLivenessFailed(f"{self.name}: switch not responding: {why}"))

    # ------------------------------------------------------------------ frames from the reader

    def _on_event(self, event: Event) -> None:
        self._rx_events += 1
        if event.name == "BACKGROUND_JOB":
            job = event.job_uuid
            if job:
                res = self._jobs.pop(job, None)
                if res is not None and not res.ready():
                    res.set(ApiResult(event.body or "", event))
        self.dispatcher.dispatch(event)

    def _on_notice(self, frame: Frame) -> None:
        log.info("esl_disconnect_notice conn=%s disposition=%s", self.name, frame.disposition)

    def _fail_jobs(self, exc: BaseException) -> None:
        jobs, self._jobs = self._jobs, {}
        for res in jobs.values():
            if not res.ready():
                res.set_exception(exc)

    # ------------------------------------------------------------------ commands

    def _require_conn(self) -> Connection:
        conn = self._conn
        if conn is None or not conn.is_open or not self._connected.is_set():
            raise ESLNotConnected(f"{self.name}: not connected")
        return conn

    def _request(self, conn: Connection, cmd: str, *, headers=None, body=None, timeout: float | None = None,
                 check: bool = False) -> Frame:
        t = self.command_timeout if timeout is None else timeout
        reply = conn.request(encode_command(cmd, headers, body), word=_command_word(cmd), timeout=t)
        if check:
            text = reply.reply_text or ""
            if text.startswith("-ERR") or text.startswith("-USAGE"):
                self.stats.command_errors += 1
                raise CommandFailed(f"{self.name}: {_command_word(cmd)}: {text}", reply=text)
        return reply

    def command(self, cmd: str, *, headers=None, body=None, timeout: float | None = None,
                check: bool = True) -> Frame:
        """Send a raw ESL command; return the command/reply frame (CommandFailed on -ERR if check)."""
        return self._request(self._require_conn(), cmd, headers=headers, body=body, timeout=timeout, check=check)

    def api(self, cmd: str, *, timeout: float | None = None, check: bool = False) -> ApiResult:
        """Blocking ``api``. Note: FreeSWITCH sends nothing else on this connection while it runs."""
        conn = self._require_conn()
        t = self.command_timeout if timeout is None else timeout
        frame = conn.request(encode_api(cmd), word=_command_word(cmd), timeout=t)
        if frame.content_type != "api/response":
            # e.g. a bare `api` gets command/reply -ERR command not found
            result = ApiResult(frame.reply_text or frame.body_text)
        else:
            result = ApiResult(frame.body_text)
        if not result.ok:
            self.stats.command_errors += 1
        return result.check() if check else result

    def api_many(self, cmds: list[str], *, timeout: float | None = None) -> list[ApiResult]:
        """Several ``api`` commands pipelined in one write; FreeSWITCH runs them one after the other, in
        order, and answers each (``timeout`` bounds the whole wait). One round trip instead of len(cmds)."""
        conn = self._require_conn()
        t = self.command_timeout if timeout is None else timeout
        frames = conn.request_many([(encode_api(c), _command_word(c)) for c in cmds], timeout=t)
        out = []
        for frame in frames:
            result = ApiResult(frame.body_text if frame.content_type == "api/response"
                               else (frame.reply_text or frame.body_text))
            if not result.ok:
                self.stats.command_errors += 1
            out.append(result)
        return out

    def api_nowait(self, cmd: str, callback: Callable[[ApiResult | BaseException], object], *,
                   timeout: float | None = None) -> None:
        """Send ``api`` and return at once; ``callback(ApiResult)`` (or ``callback(exception)`` when the
        link is lost) is called from the event loop when the reply comes, so it must not block. With
        ``timeout``: no reply within it calls ``callback(ESLTimeout)`` instead (counted in
        ``command_timeouts``, as a blocking ``api`` that timed out; the late reply is then ignored).
        Called once either way. Raises ESLNotConnected when there is no connection (nothing sent)."""
        res = self._require_conn().request_nowait(encode_api(cmd), word=_command_word(cmd))
        timer = None
        answered = False

        def done(r):
            nonlocal answered
            if answered:
                return  # timed out already: the callback had its answer
            answered = True
            if timer is not None:
                timer.close()
            if not r.successful():
                callback(r.exception)
                return
            frame = r.value
            result = ApiResult(frame.body_text if frame.content_type == "api/response"
                               else (frame.reply_text or frame.body_text))
            if not result.ok:
                self.stats.command_errors += 1
            callback(result)

        if timeout is not None:
            def expired():
                nonlocal answered
                if answered:
                    return
                answered = True  # a late reply is ignored
                self.stats.command_timeouts += 1
                log.warning("esl_api_reply_late conn=%s command=%s after_s=%s", self.name, _command_word(cmd),
                            timeout)
                callback(ESLTimeout(f"{self.name}: no reply to {_command_word(cmd)} within {timeout}s"))

            timer = call_later(timeout, expired)
        res.rawlink(done)

    def bgapi_nowait(self, cmd: str, *, job_timeout: float, job_uuid: str | None = None,
                     reply_timeout: float | None = None) -> PendingResult:
        """``bgapi`` without waiting for its reply: returns the job's PendingResult at once. It is
        completed by the BACKGROUND_JOB (an ApiResult), or fails with CommandFailed (``-ERR`` reply: no
        job), ESLDisconnected (link lost) or ESLTimeout (no result within ``job_timeout``). A reply later
        than ``reply_timeout`` (default: the command timeout) is counted and logged, and the job kept.
        Raises ESLNotConnected when there is no connection (nothing sent)."""
        conn = self._require_conn()
        job = job_uuid or new_uuid()
        res = PendingResult(job)
        self._jobs[job] = res
        try:
            reply = conn.request_nowait(encode_bgapi(cmd, job), word="bgapi")
        except BaseException:
            self._jobs.pop(job, None)
            raise
        self._expire_job(job, res, job_timeout)
        # a reply later than the command timeout is counted and logged as a blocking bgapi's would be;
        # the job stays registered (FreeSWITCH may well run it)
        after = self.command_timeout if reply_timeout is None else reply_timeout

        def reply_late():
            self.stats.command_timeouts += 1
            log.warning("esl_bgapi_reply_late conn=%s command=%s after_s=%s", self.name, _command_word(cmd), after)

        late = call_later(after, reply_late)

        def replied(r):
            late.close()
            if not r.successful():
                return  # link lost: _fail_jobs completes the job
            text = r.value.reply_text or ""
            if not text.startswith("+OK"):
                self.stats.command_errors += 1
                if self._jobs.get(job) is res:
                    del self._jobs[job]
                if not res.ready():
                    res.set_exception(CommandFailed(f"{self.name}: bgapi {_command_word(cmd)}: {text}", reply=text))

        reply.rawlink(replied)
        return res

    def bgapi(self, cmd: str, *, timeout: float | None = None, job_timeout: float | None = None,
              job_uuid: str | None = None) -> gevent.event.AsyncResult:
        """Send ``bgapi`` with our own Job-UUID; return an AsyncResult completed (with an ApiResult) by the
        matching BACKGROUND_JOB. The reply itself is awaited here (``timeout``); an ``-ERR`` reply raises
        CommandFailed. ``job_timeout`` fails the AsyncResult with ESLTimeout if the job does not finish."""
        conn = self._require_conn()
        job = job_uuid or new_uuid()
        res = PendingResult(job)
        self._jobs[job] = res
        t = self.command_timeout if timeout is None else timeout
        try:
            reply = conn.request(encode_bgapi(cmd, job), word="bgapi", timeout=t)
        except ESLTimeout as e:
            # the command went out and its reply is late: FreeSWITCH may well have started the job (a
            # loaded switch answers late, it does not forget). Its fate is unknown, not failed: the Job-UUID
            # stays registered so its BACKGROUND_JOB still completes `job`, which the caller gets here
            self._expire_job(job, res, job_timeout if job_timeout is not None else self.late_job_timeout)
            raise BgapiReplyTimeout(f"{self.name}: bgapi {_command_word(cmd)}: no reply in {t}s "
                                    f"(the job may still run)", job=res) from e
        except BaseException:
            self._jobs.pop(job, None)
            raise
        text = reply.reply_text or ""
        if not text.startswith("+OK"):
            self._jobs.pop(job, None)
            self.stats.command_errors += 1
            raise CommandFailed(f"{self.name}: bgapi {_command_word(cmd)}: {text}", reply=text)
        if job_timeout is not None:
            self._expire_job(job, res, job_timeout)
        return res

    def _expire_job(self, job: str, res: PendingResult, after: float) -> None:
        # a timer in the event loop, closed when the job ends first (not a greenlet per job)
        def expire():
            if self._jobs.get(job) is res:
                del self._jobs[job]
            if not res.ready():
                res.set_exception(ESLTimeout(f"{self.name}: background job {job} not done in {after}s"))

        timer = call_later(after, expire)
        res.rawlink(lambda _r: timer.close())

    def pending_jobs(self) -> int:
        return len(self._jobs)

    # ------------------------------------------------------------------ subscriptions

    def _add_event_name(self, name: str) -> bool:
        if name in ("*",) or name in self._events:
            return False
        self._events.append(name)
        return True

    def add_events(self, *names: str) -> None:
        """Add FreeSWITCH event subscriptions (sent now if connected, and after every reconnect)."""
        added = [n for n in names if self._add_event_name(n)]
        if added and self._connected.is_set() and "ALL" not in self._events[: -len(added)]:
            try:
                self._send_subscriptions(self._require_conn())
            except ESLDisconnected:
                pass  # sent on the next connect

    # ------------------------------------------------------------------ filters
    # FreeSWITCH sends a listener with filters only the events some filter matches (the filters are OR'ed;
    # `filter delete H V` removes every copy of H V). The client keeps the filters wanted, each once with a
    # count of the add_filter calls holding it, and brings the connection's list to that with the fewest
    # commands: on every connect, and at once when they change while connected. BACKGROUND_JOB is added to
    # any non-empty list (sent before the others when filtering starts on a live connection, so no bgapi
    # result falls between the two), and `filter delete all` clears the list when the last filter goes.

    def add_filter(self, header: str, value: str) -> None:
        """Also ask FreeSWITCH for the events whose ``header`` matches ``value`` (a plain value compared
        ignoring case, or ``/regex/``): sent now when connected and after every reconnect. Adding a filter
        that is already there only counts it (remove_filter takes it away when every add is undone)."""
        _check_filter(header, value)
        if self._want_filter(header, value):
            self._filters_changed()

    def remove_filter(self, header: str, value: str) -> bool:
        """Undo one add_filter(header, value); the filter goes (``filter delete``) when no add holds it any
        more. False when no such filter was added."""
        key = (header, value)
        n = self._filter_refs.get(key, 0)
        if not n:
            return False
        if n > 1:
            self._filter_refs[key] = n - 1
            return True
        del self._filter_refs[key]
        self._filters_changed()
        return True

    @property
    def filters(self) -> list[tuple[str, str]]:
        """The filters wanted (what every connection is sent, BACKGROUND_JOB's aside)."""
        return list(self._filter_refs)

    def _want_filter(self, header: str, value: str) -> bool:
        key = (header, value)
        n = self._filter_refs.get(key, 0)
        self._filter_refs[key] = n + 1
        return not n

    def _filters_changed(self) -> None:
        conn = self._conn
        if conn is None or not conn.is_open or self._filters_conn is not conn:
            return  # the handshake sends them (it has not come to the filters of this connection yet)
        try:
            self._sync_filters(conn)
        except ESLDisconnected:
            pass  # sent again on the next connect

    def _sync_filters(self, conn: Connection) -> None:
        """Send ``conn`` the filter commands that make its list the wanted one (until nothing changes)."""
        with self._filter_lock:
            if self._filters_conn is not conn:
                self._filters_conn, self._filters_sent = conn, []
            sent = self._filters_sent
            while True:
                want = list(self._filter_refs)
                if want and _BGJOB_FILTER not in want:
                    # at connect (nothing can be waiting for a job yet) after the others, as always sent;
                    # on a live connection first
                    want = [_BGJOB_FILTER, *want] if self._connected.is_set() else [*want, _BGJOB_FILTER]
                add = [f for f in want if f not in sent]
                drop = [f for f in sent if f not in want]
                if not add and not drop:
                    return
                if not want:
                    self._request(conn, "filter delete all", check=True)
                    sent.clear()
                    continue
                for f in add:
                    self._request(conn, f"filter {f[0]} {f[1]}", check=True)
                    sent.append(f)
                for f in drop:
                    self._request(conn, f"filter delete {f[0]} {f[1]}", check=True)
                    # FreeSWITCH deletes every filter of that header (any case) with that value
                    low = f[0].lower()
                    sent[:] = [g for g in sent if not (g[0].lower() == low and g[1] == f[1])]

    def subscribe(self, event_name: str, handler: Callable[[Event], object], *,
                  inline: bool = False) -> Subscription | InlineSubscription:
        """Call ``handler(event)`` for each event named ``event_name`` (or CUSTOM subclass), or ``"*"`` for
        all. Each handler has its own bounded queue and greenlet; specific handlers never disable ``"*"``.
        A specific name is also added to the FreeSWITCH subscription. ``inline=True``: the reader calls
        the handler itself, in order, with no queue or greenlet; it must never block."""
        sub = self.dispatcher.subscribe(event_name, handler, inline=inline)
        if event_name != "*":
            name = event_name if event_name.startswith("CUSTOM") or "::" not in event_name else f"CUSTOM {event_name}"
            self.add_events(name)
        return sub

    def queue_depth(self) -> int:
        return self.dispatcher.queue_depth()
