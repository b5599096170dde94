"""fsd's one HTTP server: gevent's pywsgi with a tiny path dispatcher in front.

Hot paths (the mod_xml_curl directory, /metrics, health) are bare WSGI callables mounted by
prefix, so they never pay for the cabinet framework; everything else goes to the default app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gevent.pywsgi import WSGIHandler, WSGIServer

log = logging.getLogger(__name__)

WSGIApp = Callable


def not_found_app(environ, start_response):
    body = b"not found\n"
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Dispatcher:
    """Route by exact path or path prefix (longest first) to WSGI apps."""

    def __init__(self, *, mounts: dict[str, WSGIApp] | None = None, default: WSGIApp | None = None):
        self.mounts: dict[str, WSGIApp] = dict(mounts or {})
        self.default = default or not_found_app

    def mount(self, prefix: str, app: WSGIApp) -> None:
        self.mounts[prefix] = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        app = self.mounts.get(path)
        if app is None:
            for prefix in sorted(self.mounts, key=len, reverse=True):
                if prefix.endswith("/") and path.startswith(prefix):
                    app = self.mounts[prefix]
                    break
        return (app or self.default)(environ, start_response)


class _QuietHandler(WSGIHandler):
    def log_request(self):  # access logs go through our own logging when wanted
        pass


class HttpServer:
    def __init__(self, *, host: str, port: int, app: WSGIApp, max_body_bytes: int = 10 * 1024 * 1024,
                 xmlcurl=None):
        """`xmlcurl`: the XmlCurlApp to answer on the fast lane (see fsd.web.fastlane.FastLaneServer)."""
        self.xmlcurl = xmlcurl
        self.host = host
        self.requested_port = port
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._server: WSGIServer | None = None

    @property
    def port(self) -> int:
        return self._server.server_port if self._server else self.requested_port

    def start(self) -> None:
        kwargs = dict(handler_class=_QuietHandler, log=None, error_log=logging.getLogger("fsd.web.wsgi"))
        if self.xmlcurl is not None:
            from fsd.web.fastlane import FastLaneServer

            self._server = FastLaneServer((self.host, self.requested_port), self.app, xmlcurl=self.xmlcurl, **kwargs)
        else:
            self._server = WSGIServer((self.host, self.requested_port), self.app, **kwargs)
        self._server.start()
        log.info("http_listening host=%s port=%s", self.host, self.port)

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.stop(timeout=timeout)
            self._server = None
