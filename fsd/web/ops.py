"""/healthz, /readyz and /metrics as bare WSGI apps."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


def _plain(start_response, status: str, text: str, ctype: str = "text/plain; charset=utf-8"):
    body = text.encode()
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")])
    return [body]


def healthz_app(environ, start_response):
    return _plain(start_response, "200 OK", "ok\n")


def make_readyz_app(check: Callable[[], tuple[bool, str]]):
    """check() → (ready, reason)."""

    def readyz_app(environ, start_response):
        ok, reason = check()
        return _plain(start_response, "200 OK" if ok else "503 Service Unavailable",
                      ("ready: " if ok else "not ready: ") + reason + "\n")

    return readyz_app


def make_metrics_app(registry, *, before: Callable[[], None] | None = None):
    """`before()` runs at every scrape (to copy counters kept elsewhere into the registry)."""

    def metrics_app(environ, start_response):
        if before is not None:
            before()
        return _plain(start_response, "200 OK", generate_latest(registry).decode(), CONTENT_TYPE_LATEST)

    return metrics_app
