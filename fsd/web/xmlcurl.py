"""The mod_xml_curl endpoint: a bare WSGI app (the hot path; no framework).

POST /freeswitch/directory (the shipped freeswitch-conf/autoload_configs/xml_curl.conf.xml binding).
Order of checks: source address (403) → method (405) → HTTP basic credentials, mod_xml_curl's
`gateway-credentials` (401) → Content-Length (400 missing/bad, 413 over the limit) → form (400) →
directory lookup. The whole request runs under a gevent.Timeout of `deadline_ms`; the directory stops
waiting for PostgreSQL before that and answers from its cache or with "not found".
Answers are 200 text/xml with `Connection: close` (FreeSWITCH opens a new connection per lookup).
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import logging
import time
from collections.abc import Callable

import gevent

from fsd.directory import BadRequest, parse

log = logging.getLogger(__name__)

ACTIONS = ("sip_auth", "user_call", "message-count", "voicemail-lookup", "reverse-auth-lookup", "group_call",
           "gateways", "other")
RESULTS = ("found", "not_found", "denied", "bad_request", "stale", "error")


def _networks(spec: str):
    return [ipaddress.ip_network(n.strip(), strict=False) for n in spec.split(",") if n.strip()]


class XmlCurlApp:
    """WSGI callable answering mod_xml_curl's directory POSTs from a fsd.directory.Directory."""

    def __init__(self, *, directory, user: str, password: str, allow_from: str = "127.0.0.1/32,::1/128",
                 max_body_bytes: int = 65536, deadline_ms: int = 1500, metrics=None):
        self.directory = directory
        self.max_body_bytes = int(max_body_bytes)
        self.deadline_s = deadline_ms / 1000.0
        self._networks = _networks(allow_from)
        self._allowed: dict[str, bool] = {}
        # With no password configured nobody is let in (fail closed).
        self._expected = ("Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()) if password else None
        if not password:
            log.warning("xmlcurl_no_password every request will be refused; set [xmlcurl] password")
        self.not_found = directory.not_found
        self._requests = {}
        self._seconds = {}
        if metrics is not None:
            for a in ACTIONS:
                self._seconds[a] = metrics.xmlcurl_seconds.labels(a)
                for r in RESULTS:
                    self._requests[(a, r)] = metrics.xmlcurl_requests.labels(a, r)

    # ------------------------------------------------------------------ helpers
    def _address_allowed(self, addr: str) -> bool:
        ok = self._allowed.get(addr)
        if ok is None:
            try:
                ip = ipaddress.ip_address(addr.split("%", 1)[0])
                ok = any(ip in n for n in self._networks)
            except ValueError:
                ok = False
            if len(self._allowed) > 4096:
                self._allowed.clear()
            self._allowed[addr] = ok
        return ok

    def _count(self, action: str, result: str, t0: float) -> None:
        c = self._requests.get((action, result))
        if c is not None:
            c.inc()
            self._seconds[action].observe(time.perf_counter() - t0)

    @staticmethod
    def _error(status: str, text: str, extra=()) -> tuple[str, list, bytes]:
        body = text.encode() + b"\n"
        return status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("Connection", "close"),
                        *extra], body

    def reject(self, status: str, text: str) -> tuple[str, list, bytes]:
        """A malformed request seen by the HTTP layer itself (counted as bad_request)."""
        self._count("other", "bad_request", time.perf_counter())
        return self._error(status, text)

    # ------------------------------------------------------------------ the request
    def respond(self, *, remote_addr: str, method: str, authorization: str, content_length: str,
                read_body: Callable[[int], bytes]) -> tuple[str, list, bytes]:
        """(status, headers, body) for one request; shared by the WSGI app and fsd.web.fastlane.FastLaneServer."""
        t0 = time.perf_counter()
        if not self._address_allowed(remote_addr):
            self._count("other", "denied", t0)
            return self._error("403 Forbidden", "forbidden")
        if method != "POST":
            self._count("other", "bad_request", t0)
            return self._error("405 Method Not Allowed", "POST only", [("Allow", "POST")])
        try:
            auth_ok = self._expected is not None and hmac.compare_digest(authorization, self._expected)
        except TypeError:  # non-ASCII header
            auth_ok = False
        if not auth_ok:
            self._count("other", "denied", t0)
            return self._error("401 Unauthorized", "credentials required", [("WWW-Authenticate", 'Basic realm="fsd"')])
        if not (content_length.isascii() and content_length.isdigit()):
            self._count("other", "bad_request", t0)
            return self._error("400 Bad Request", "Content-Length required")
        n = int(content_length)
        if n > self.max_body_bytes:
            self._count("other", "bad_request", t0)
            return self._error("413 Request Entity Too Large", "request too large")

        deadline = time.monotonic() + self.deadline_s
        timer = gevent.Timeout(self.deadline_s)
        timer.start()
        action = "other"
        try:
            try:
                body = read_body(n)
            except gevent.Timeout as t:
                if t is not timer:
                    raise
                self._count("other", "bad_request", t0)
                return self._error("408 Request Timeout", "request body too slow")
            if len(body) != n:
                self._count("other", "bad_request", t0)
                return self._error("400 Bad Request", "body shorter than Content-Length")
            try:
                req = parse(body)
            except BadRequest as e:
                self._count("other", "bad_request", t0)
                return self._error("400 Bad Request", f"bad request: {e}")
            action = req.metric_action
            try:
                doc, result = self.directory.lookup(req, deadline=deadline)
            except gevent.Timeout as t:
                if t is not timer:
                    raise
                log.warning("xmlcurl_deadline_exceeded action=%s", action)
                doc, result = self.not_found, "error"
        finally:
            timer.close()
        self._count(action, result, t0)
        return "200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(doc))), ("Connection", "close")], doc

    # ------------------------------------------------------------------ WSGI
    def __call__(self, environ, start_response):
        status, headers, body = self.respond(
            remote_addr=environ.get("REMOTE_ADDR", ""), method=environ.get("REQUEST_METHOD", ""),
            authorization=environ.get("HTTP_AUTHORIZATION", ""), content_length=environ.get("CONTENT_LENGTH") or "",
            read_body=environ["wsgi.input"].read)
        if status[0] != "2":
            # The connection is closed after an error, so the unread body need not be drained: tell gevent's
            # pywsgi (which otherwise reads up to Content-Length after the app returns) there is nothing left,
            # or a client announcing a huge or slow body would hold this greenlet.
            inp = environ.get("wsgi.input")
            try:
                inp.content_length = 0
                inp.chunked_input = False
            except AttributeError:
                pass
        start_response(status, headers)
        return [body]


def make_xmlcurl_app(*, directory, config, metrics=None) -> XmlCurlApp:
    """From fsd.config.XmlCurlConfig."""
    return XmlCurlApp(directory=directory, user=config.user, password=config.password,
                      allow_from=config.allow_from, max_body_bytes=config.max_body_bytes,
                      deadline_ms=config.deadline_ms, metrics=metrics)
