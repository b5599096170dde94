"""Small test helpers: free ports and waiting on conditions (never bare sleeps)."""

from __future__ import annotations

import socket
import time

import gevent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.01, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value; return it, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        gevent.sleep(interval)


def wait_notifies(conn, count: int, timeout: float = 5.0) -> list[dict]:
    """Collect the JSON payloads of NOTIFYs on a LISTENing psycopg2 connection until `count` arrived."""
    import json
    import select

    got: list[dict] = []

    def poll():
        if select.select([conn], [], [], 0.05)[0]:
            conn.poll()
            got.extend(json.loads(n.payload) for n in conn.notifies)
            conn.notifies.clear()
        return len(got) >= count

    wait_for(poll, timeout=timeout, message=f"{count} NOTIFYs")
    return got
