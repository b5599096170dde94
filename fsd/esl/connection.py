"""Shared gevent machinery for both ESL directions: one socket, one reader, ordered replies, dispatch.

* :class:`Connection` owns a connected socket: a reader feeding :class:`FrameParser` (a greenlet, or with
  ``hub_reader=True`` a read watcher whose callback runs in the event loop: no greenlet and no stack per
  connection), a FIFO of reply waiters (FreeSWITCH answers commands strictly in order), and one write
  path (``_send``: one send per command or per pipelined batch, under a lock, bounded by a write
  timeout). When the socket ends - EOF, error, protocol error, write timeout or ``close()`` - every
  waiter is woken at once with :class:`fsd.errors.ESLDisconnected`.
* :class:`Dispatcher` delivers events to handlers: each subscription has its own bounded queue and its
  own supervised greenlet, so a slow handler never blocks the reader or the other handlers. A handler for
  a specific event name never disables ``"*"``: every matching subscription gets the event. An *inline*
  subscription (``inline=True``) is called by the reader itself, in order, with no queue and no greenlet:
  for a handler that only hands the event on (a dict lookup, a queue put) and never blocks.
* :class:`ESLStats` is a set of plain counters (no prometheus import here) that metrics code can read.
"""

from __future__ import annotations

import collections
import logging
import socket
import time
from collections.abc import Callable

import gevent
import gevent.event
import gevent.lock
import gevent.queue
import gevent.socket

from fsd.errors import ESLDisconnected, ESLError, ESLTimeout, ProtocolError
from fsd.esl.frames import (
    CT_API_RESPONSE,
    CT_AUTH_REQUEST,
    CT_COMMAND_REPLY,
    CT_DISCONNECT_NOTICE,
    CT_RUDE_REJECTION,
    EVENT_CONTENT_TYPES,
    Event,
    Frame,
    FrameParser,
    MalformedEvent,
)

log = logging.getLogger(__name__)

RECV_SIZE = 256 * 1024


class CommandFailed(ESLError):
    """FreeSWITCH answered ``-ERR ...`` to a command. ``reply`` is the reply text."""

    def __init__(self, message: str, *, reply: str = ""):
        super().__init__(message)
        self.reply = reply


class AuthenticationFailed(ESLError):
    """The inbound password was refused (or the server sent text/rude-rejection)."""


class SessionHangup(ESLDisconnected):
    """The outbound session's channel hung up; pending executions will never complete."""


class PendingResult(gevent.event.AsyncResult):
    """An AsyncResult that also carries the correlation id (``job_uuid`` of a bgapi, ``event_uuid`` of an
    outbound execute)."""

    def __init__(self, key: str):
        super().__init__()
        self.key = key

    @property
    def job_uuid(self) -> str:
        return self.key

    @property
    def event_uuid(self) -> str:
        return self.key


class ESLStats:
    """Plain counters for metrics. ``latency_observers`` are called as ``fn(command_word, seconds)``."""

    def __init__(self):
        self.events_received: collections.Counter[str] = collections.Counter()
        self.events_dropped = 0
        self.malformed_events = 0
        self.handler_errors = 0
        self.connects = 0
        self.reconnects = 0
        self.disconnects = 0
        self.commands = 0
        self.command_errors = 0
        self.command_timeouts = 0
        self.command_latency_sum = 0.0
        self.command_latency_count = 0
        self.last_command_latency = 0.0
        self.greenlet_restarts = 0
        self.latency_observers: list[Callable[[str, float], None]] = []

    def observe_command(self, word: str, seconds: float) -> None:
        self.commands += 1
        self.command_latency_sum += seconds
        self.command_latency_count += 1
        self.last_command_latency = seconds
        for fn in self.latency_observers:
            try:
                fn(word, seconds)
            except Exception:
                log.exception("esl_latency_observer_failed")

    def snapshot(self) -> dict:
        return {
            "events_received": dict(self.events_received),
            "events_dropped": self.events_dropped,
            "malformed_events": self.malformed_events,
            "handler_errors": self.handler_errors,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "disconnects": self.disconnects,
            "commands": self.commands,
            "command_errors": self.command_errors,
            "command_timeouts": self.command_timeouts,
            "command_latency_sum": self.command_latency_sum,
            "command_latency_count": self.command_latency_count,
            "greenlet_restarts": self.greenlet_restarts,
        }


def supervise(fn: Callable[[], None], *, name: str, stopped: Callable[[], bool], stats: ESLStats | None = None,
              backoff: float = 0.05) -> gevent.Greenlet:
    """Run ``fn`` in a greenlet; if it raises, log it and start it again (until ``stopped()``)."""

    def runner():
        delay = backoff
        while not stopped():
            try:
                fn()
                return
            except gevent.GreenletExit:
                raise
            except Exception:
                log.exception("esl_greenlet_crashed name=%s restarting_in=%.2f", name, delay)
                if stats is not None:
                    stats.greenlet_restarts += 1
                gevent.sleep(delay)
                delay = min(delay * 2, 5.0)

    g = gevent.spawn(runner)
    g.name = name
    return g


# --------------------------------------------------------------------------- dispatch


class _Handler:
    """What both kinds of subscription share: the handler's call (an exception is logged and counted,
    and the next event is delivered as usual) and unsubscribing."""

    queue: gevent.queue.Queue | None = None
    dropped = 0

    def __init__(self, dispatcher: Dispatcher, key: str, handler: Callable[[Event], object]):
        self.key = key
        self.handler = handler
        self.delivered = 0
        self._dispatcher = dispatcher
        self._stopped = False

    def _call(self, event: Event) -> None:
        try:
            self.handler(event)
        except Exception:
            self._dispatcher.stats.handler_errors += 1
            log.exception("esl_handler_failed key=%s event=%s", self.key, event.full_name)
        self.delivered += 1

    def unsubscribe(self) -> None:
        self._dispatcher._remove(self)


class Subscription(_Handler):
    """One handler with its own bounded queue and greenlet. ``unsubscribe()`` stops it."""

    def __init__(self, dispatcher: Dispatcher, key: str, handler: Callable[[Event], object], queue_size: int):
        super().__init__(dispatcher, key, handler)
        self.queue = gevent.queue.Queue(maxsize=queue_size)
        self.dropped = 0
        label = getattr(handler, "__name__", type(handler).__name__)
        self.greenlet = supervise(
            self._loop, name=f"esl-handler:{key}:{label}", stopped=lambda: self._stopped,
            stats=dispatcher.stats,
        )

    def deliver(self, event: Event) -> None:
        self._dispatcher._put(self, event)

    def _loop(self) -> None:
        get = self.queue.get
        call = self._call
        while not self._stopped:
            event = get()
            if event is None:
                return
            call(event)

    def _stop(self) -> None:
        self._stopped = True
        try:
            self.queue.put_nowait(None)
        except gevent.queue.Full:
            self.greenlet.kill(block=False)


class InlineSubscription(_Handler):
    """A handler the reader calls itself (``subscribe(..., inline=True)``): no queue, no greenlet, no
    switch per event. It runs in the reader's context - with a hub reader, in the event loop - so it must
    never block (gevent refuses a blocking call there: it is logged as a handler error). An exception is
    logged and counted, and the next event is delivered as usual."""

    def deliver(self, event: Event) -> None:
        if not self._stopped:
            self._call(event)

    def _stop(self) -> None:
        self._stopped = True


class Dispatcher:
    """Routes each event to every matching subscription: ``"*"``, the Event-Name, and for CUSTOM events
    the subclass (``"sofia::register"``) or ``"CUSTOM sofia::register"``. Queues are bounded: when one is
    full the event is dropped *for that handler only* and counted (``stats.events_dropped``)."""

    def __init__(self, *, queue_size: int = 10000, stats: ESLStats | None = None, name: str = "esl"):
        self.queue_size = queue_size
        self.stats = stats or ESLStats()
        self.name = name
        self._by_key: dict[str, list[Subscription]] = {}
        self._star: list[Subscription] = []
        self._last_drop_log = 0.0

    def subscribe(self, key: str, handler: Callable[[Event], object], *,
                  inline: bool = False) -> Subscription | InlineSubscription:
        sub = (InlineSubscription(self, key, handler) if inline
               else Subscription(self, key, handler, self.queue_size))
        if key == "*":
            self._star = [*self._star, sub]
        else:
            self._by_key[key] = [*self._by_key.get(key, ()), sub]
        return sub

    def _remove(self, sub: Subscription | InlineSubscription) -> None:
        if sub.key == "*":
            self._star = [s for s in self._star if s is not sub]
        else:
            rest = [s for s in self._by_key.get(sub.key, ()) if s is not sub]
            if rest:
                self._by_key[sub.key] = rest
            else:
                self._by_key.pop(sub.key, None)
        sub._stop()

    def subscriptions(self) -> list[Subscription | InlineSubscription]:
        out = list(self._star)
        for subs in self._by_key.values():
            out.extend(subs)
        return out

    def dispatch(self, event: Event) -> None:
        by_key = self._by_key
        name = event.name
        targets = by_key.get(name)
        if name == "CUSTOM" and by_key:
            sub = event.subclass
            if sub:
                extra = (by_key.get(sub) or []) + (by_key.get("CUSTOM " + sub) or [])
                if extra:
                    targets = (targets or []) + extra
        if targets:
            for s in targets:
                s.deliver(event)
        for s in self._star:
            s.deliver(event)

    def _put(self, sub: Subscription, event: Event) -> None:
        try:
            sub.queue.put_nowait(event)
            return
        except gevent.queue.Full:
            pass
        # a burst: let the handlers run once, then retry; a handler that is still behind loses the event.
        # A hub reader (callback in the event loop) cannot yield: there the event is lost at once.
        hub = gevent.get_hub()
        if gevent.getcurrent() is not hub:
            gevent.sleep(0)
        try:
            sub.queue.put_nowait(event)
        except gevent.queue.Full:
            sub.dropped += 1
            self.stats.events_dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log > 1.0:
                self._last_drop_log = now
                log.warning("esl_event_dropped conn=%s key=%s event=%s dropped_total=%d", self.name, sub.key,
                            event.full_name, self.stats.events_dropped)

    def queue_depth(self) -> int:
        """Events waiting in all handler queues (for metrics)."""
        return sum(s.queue.qsize() for s in self.subscriptions() if s.queue is not None)

    def queue_depths(self) -> dict[str, int]:
        out: dict[str, int] = collections.Counter()
        for s in self.subscriptions():
            out[s.key] += s.queue.qsize() if s.queue is not None else 0
        return dict(out)

    def close(self) -> None:
        for s in self.subscriptions():
            s._stop()
        self._by_key = {}
        self._star = []


# --------------------------------------------------------------------------- connection


class _Waiter:
    __slots__ = ("abandoned", "result", "sent_at", "word")

    def __init__(self, word: str):
        self.word = word
        self.result = gevent.event.AsyncResult()
        self.abandoned = False
        self.sent_at = 0.0  # set when the command is written


_wire_trace: Callable[[str, str, bytes], None] | None = None


def set_wire_trace(fn: Callable[[str, str, bytes], None] | None) -> None:
    """Log the wire (`--trace-esl`): fn(connection name, "in"|"out", bytes) sees every chunk read and
    every frame written, on every connection. None turns tracing off (the default, and free)."""
    global _wire_trace
    _wire_trace = fn


class Connection:
    """One ESL socket (either direction). Callbacks run in the reader greenlet and must not block:

    * ``on_event(event)``, ``on_notice(frame)`` (text/disconnect-notice), ``on_close(exc)``.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        name: str = "esl",
        write_timeout: float = 10.0,
        stats: ESLStats | None = None,
        on_event: Callable[[Event], None] | None = None,
        on_notice: Callable[[Frame], None] | None = None,
        on_close: Callable[[BaseException], None] | None = None,
        hub_reader: bool = False,
    ):
        self.sock = sock
        self.name = name
        self.write_timeout = write_timeout
        self.stats = stats or ESLStats()
        self.on_event = on_event
        self.on_notice = on_notice
        self.on_close = on_close
        self.parser = FrameParser()
        self.auth_requested = gevent.event.Event()
        self.rejected: Frame | None = None
        self.closed = gevent.event.Event()
        self.close_reason: BaseException | None = None
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._write_lock = gevent.lock.Semaphore()
        self._reader: gevent.Greenlet | None = None
        self._watcher = None  # hub reader: the read watcher
        # the plain non-blocking socket under a gevent socket: sends are tried on it first (no timer)
        self._raw = sock._sock if isinstance(sock, gevent.socket.socket) else None
        self.hub_reader = hub_reader and self._raw is not None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    # ---- lifecycle

    def start(self) -> Connection:
        if self.hub_reader:
            self._watcher = gevent.get_hub().loop.io(self.sock.fileno(), 1)
            self._watcher.start(self._on_readable)
            return self
        self._reader = gevent.spawn(self._read_loop)
        self._reader.name = f"esl-reader:{self.name}"
        return self

    @property
    def is_open(self) -> bool:
        return not self.closed.is_set()

    def close(self, reason: BaseException | None = None) -> None:
        if self.closed.is_set():
            return
        self.close_reason = reason or ESLDisconnected(f"{self.name}: connection closed")
        self.closed.set()
        self.auth_requested.set()  # wake a handshake waiting for auth/request
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
            watcher.close()
        try:
            self.sock.close()
        except OSError:
            pass
        exc = self.close_reason if isinstance(self.close_reason, ESLDisconnected) else ESLDisconnected(
            f"{self.name}: connection lost ({self.close_reason})"
        )
        while self._waiters:
            w = self._waiters.popleft()
            if not w.result.ready():
                w.result.set_exception(exc)
        if self._reader is not None and gevent.getcurrent() is not self._reader:
            self._reader.kill(block=False)
        if self.on_close is not None:
            try:
                self.on_close(self.close_reason)
            except Exception:
                log.exception("esl_on_close_failed conn=%s", self.name)

    def wait_closed(self, timeout: float | None = None) -> bool:
        return self.closed.wait(timeout)

    # ---- reading

    def _on_readable(self) -> None:
        """Hub reader: the socket is readable (callback in the event loop; must never block)."""
        if self._watcher is None:
            return
        try:
            data = self._raw.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close(ESLDisconnected(f"{self.name}: socket error: {exc}"))
            return
        if not data:
            self.close(ESLDisconnected(f"{self.name}: connection closed by peer"))
            return
        try:
            if _wire_trace is not None:
                _wire_trace(self.name, "in", data)
            for frame in self.parser.feed(data):
                self._handle_frame(frame)
        except ProtocolError as exc:
            log.error("esl_protocol_error conn=%s error=%s", self.name, exc)
            self.close(exc)
        except Exception as exc:  # a bug: never silent
            log.exception("esl_reader_crashed conn=%s", self.name)
            self.close(exc)

    def _read_loop(self) -> None:
        reason: BaseException | None = None
        try:
            recv = self.sock.recv
            feed = self.parser.feed
            handle = self._handle_frame
            while True:
                data = recv(RECV_SIZE)
                if not data:
                    reason = ESLDisconnected(f"{self.name}: connection closed by peer")
                    break
                if _wire_trace is not None:
                    _wire_trace(self.name, "in", data)
                for frame in feed(data):
                    handle(frame)
                data = frame = None  # a parked reader must not pin the last chunk and frame
                # let handler greenlets drain their queues before the next read
                gevent.sleep(0)
        except gevent.GreenletExit:
            reason = ESLDisconnected(f"{self.name}: reader stopped")
        except ProtocolError as exc:
            log.error("esl_protocol_error conn=%s error=%s", self.name, exc)
            reason = exc
        except OSError as exc:
            reason = ESLDisconnected(f"{self.name}: socket error: {exc}")
        except Exception as exc:  # a bug: never silent
            log.exception("esl_reader_crashed conn=%s", self.name)
            reason = exc
        finally:
            self.close(reason)

    def _handle_frame(self, frame: Frame) -> None:
        ct = frame.content_type
        if ct in EVENT_CONTENT_TYPES:
            try:
                event = Event.from_frame(frame)
            except MalformedEvent as exc:
                self.stats.malformed_events += 1
                log.warning("esl_malformed_event conn=%s error=%s", self.name, exc)
                return
            self.stats.events_received[event.name] += 1
            if self.on_event is not None:
                self.on_event(event)
        elif ct == CT_COMMAND_REPLY or ct == CT_API_RESPONSE:
            self._complete(frame)
        elif ct == CT_AUTH_REQUEST:
            self.auth_requested.set()
        elif ct == CT_DISCONNECT_NOTICE:
            if self.on_notice is not None:
                self.on_notice(frame)
        elif ct == CT_RUDE_REJECTION:
            self.rejected = frame
            self.auth_requested.set()
            log.error("esl_rude_rejection conn=%s text=%r", self.name, frame.body_text.strip())
        else:
            log.warning("esl_unknown_frame conn=%s content_type=%r", self.name, ct)

    def _complete(self, frame: Frame) -> None:
        if not self._waiters:
            log.warning("esl_unexpected_reply conn=%s content_type=%s", self.name, frame.content_type)
            return
        w = self._waiters.popleft()
        if w.abandoned:
            log.info("esl_late_reply_discarded conn=%s command=%s", self.name, w.word)
            return
        self.stats.observe_command(w.word, time.monotonic() - w.sent_at)
        w.result.set(frame)

    # ---- writing

    def _send(self, data: bytes, waiters: tuple[_Waiter, ...] = ()) -> None:
        """The one write path: ``data`` (one command, or several pipelined) goes out whole under the write
        lock, and the waiters for their replies join the FIFO in the same step, so the FIFO order is the
        wire order. Tried first as one non-blocking send (no timer); what does not fit is sent with
        ``sendall`` bounded by ``write_timeout``: a stalled peer raises ESLTimeout and drops the
        connection, a socket error ESLDisconnected."""
        if self.closed.is_set():
            raise self._closed_error()
        timer = None
        try:
            with self._write_lock:
                if self.closed.is_set():
                    raise self._closed_error()
                if waiters:
                    now = time.monotonic()
                    for w in waiters:
                        w.sent_at = now
                    self._waiters.extend(waiters)
                if _wire_trace is not None:
                    _wire_trace(self.name, "out", data)
                raw = self._raw
                if raw is not None:
                    try:
                        n = raw.send(data)
                    except (BlockingIOError, InterruptedError):
                        n = 0
                    if n == len(data):
                        return
                    data = data[n:]
                timer = gevent.Timeout(self.write_timeout)
                timer.start()
                self.sock.sendall(data)
        except gevent.Timeout as t:
            if t is not timer:
                raise
            exc = ESLTimeout(f"{self.name}: write stalled for {self.write_timeout}s")
            self.close(exc)
            raise exc from None
        except OSError as exc:
            err = ESLDisconnected(f"{self.name}: write failed: {exc}")
            self.close(err)
            raise err from None
        finally:
            if timer is not None:
                timer.close()

    def write(self, data: bytes) -> None:
        """Send bytes that expect no reply (see ``_send``)."""
        self._send(data)

    def _closed_error(self) -> ESLDisconnected:
        r = self.close_reason
        return r if isinstance(r, ESLDisconnected) else ESLDisconnected(f"{self.name}: connection closed ({r})")

    def _wait_reply(self, w: _Waiter, timeout: float | None) -> Frame:
        try:
            return w.result.get(timeout=timeout)
        except gevent.Timeout:
            w.abandoned = True  # its reply will still arrive and must not go to the next waiter
            self.stats.command_timeouts += 1
            raise ESLTimeout(f"{self.name}: no reply to {w.word!r} within {timeout}s") from None

    def request(self, data: bytes, *, word: str, timeout: float | None) -> Frame:
        """Send one command and wait for its command/reply or api/response (in order)."""
        w = _Waiter(word)
        self._send(data, (w,))
        return self._wait_reply(w, timeout)

    def request_nowait(self, data: bytes, *, word: str) -> gevent.event.AsyncResult:
        """Send one command and return at once: the AsyncResult gets its reply frame (replies stay in
        order with the awaited ones), or the ESLDisconnected of a lost connection. No timeout of its own."""
        w = _Waiter(word)
        self._send(data, (w,))
        return w.result

    def request_many(self, commands: list[tuple[bytes, str]], *, timeout: float | None) -> list[Frame]:
        """Pipeline: send several commands in one write, then wait for their replies (in order; ``timeout``
        bounds the whole wait). Returns the reply frames; the first failure raises (later replies are
        then discarded when they arrive)."""
        waiters = tuple(_Waiter(word) for _, word in commands)
        self._send(b"".join(data for data, _ in commands), waiters)
        deadline = None if timeout is None else time.monotonic() + timeout
        out = []
        try:
            for w in waiters:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                out.append(self._wait_reply(w, left))
        except BaseException:
            for w in waiters[len(out):]:
                w.abandoned = True
            raise
        return out
