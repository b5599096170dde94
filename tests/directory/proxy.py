"""A TCP proxy between a Pool and PostgreSQL that a test can cut (database down) or hold (database hangs)."""

from __future__ import annotations

import contextlib
import re
import socket

import gevent
import gevent.event
import gevent.server


class PgProxy:
    def __init__(self, *, target_port: int, host: str = "127.0.0.1"):
        self.target = (host, target_port)
        self.server = gevent.server.StreamServer((host, 0), self._handle)
        self._socks: set[socket.socket] = set()
        self.down = False
        self._flowing = gevent.event.Event()
        self._flowing.set()

    @property
    def port(self) -> int:
        return self.server.server_port

    def dsn(self, dsn: str) -> str:
        return re.sub(r"\bport=\d+", f"port={self.port}", dsn)

    def start(self) -> PgProxy:
        self.server.start()
        return self

    def stop(self) -> None:
        self.cut()
        self._flowing.set()
        self.server.stop(timeout=0)

    # -- faults ---------------------------------------------------------------------------
    def cut(self) -> None:
        """PostgreSQL unreachable: every connection is closed, new ones are closed at once."""
        self.down = True
        for s in list(self._socks):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self._socks.clear()

    def hold(self) -> None:
        """PostgreSQL hangs: bytes are accepted and nothing is forwarded."""
        self._flowing.clear()

    def restore(self) -> None:
        self.down = False
        self._flowing.set()

    # -- plumbing -------------------------------------------------------------------------
    def _handle(self, client, _addr):
        if self.down:
            client.close()
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self._socks.update((client, upstream))
        a = gevent.spawn(self._pipe, client, upstream)
        b = gevent.spawn(self._pipe, upstream, client)
        gevent.joinall([a, b])
        for s in (client, upstream):
            self._socks.discard(s)
            s.close()

    def _pipe(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                if self.down:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
