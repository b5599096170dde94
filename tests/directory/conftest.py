"""A running directory: PostgreSQL (per-test database) → Directory → XmlCurlApp on a real HTTP server, a
ConfigListener feeding it NOTIFYs, and an emulated FreeSWITCH (fsd.sim) whose mod_xml_curl client posts to it."""

from __future__ import annotations

import base64
import http.client
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from prometheus_client import CollectorRegistry

from fsd.directory import Directory
from fsd.metrics import Metrics
from fsd.services import Actor, Services
from fsd.sim.switch import Switch
from fsd.store.listen import ConfigListener
from fsd.web.fastlane import FastLaneServer
from fsd.web.server import Dispatcher, HttpServer
from fsd.web.xmlcurl import XmlCurlApp
from tests.helpers import wait_for

PATH = "/freeswitch/directory"
USER, PASSWORD = "freeswitch", "change-me-xmlcurl"
DOMAIN = "acme.example.com"


def form(**fields) -> bytes:
    """A body as mod_xml_curl builds it: the five basic fields, event headers, then the lookup's own."""
    section = fields.pop("section", "directory")
    head = fields.pop("head", None)
    if head is None:
        head = [("hostname", "sim"), ("section", section), ("tag_name", "domain"), ("key_name", "name"),
                ("key_value", fields.get("domain", ""))]
    ev = [("Event-Name", "REQUEST_PARAMS"), ("Core-UUID", "test"), ("Event-Date-GMT", "Sat, 28 Nov 2026 08:05:00 GMT")]
    body = "&".join(f"{k}={v}" for k, v in head)
    body += "&" + "&".join(f"{k}={quote(v, safe=',')}" for k, v in ev + list(fields.items()))
    return body.encode()


def post(port: int, body: bytes | None, *, creds=(USER, PASSWORD), method="POST", headers=None, path=PATH):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "freeswitch-xml/1.0"}
    if creds is not None:
        h["Authorization"] = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
    h.update(headers or {})
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    out = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return out


def counter(metrics, action, result) -> float:
    return metrics.registry.get_sample_value("fsd_xmlcurl_requests_total", {"action": action, "result": result}) or 0


class Stack:
    """One fsd process's directory stack over `pool`, served over HTTP."""

    def __init__(self, *, pool, dsn, flush=None, listen=True, app_kwargs=None, server="pywsgi", **directory_kwargs):
        self.metrics = Metrics(registry=CollectorRegistry())
        self.flushed: list[tuple[str, str]] = []
        self.switch: Switch | None = None
        self.directory = Directory(pool=pool, metrics=self.metrics, flush=flush or self._flush, **directory_kwargs)
        kw = {"user": USER, "password": PASSWORD, "deadline_ms": 1500, "max_body_bytes": 65536}
        kw.update(app_kwargs or {})
        self.app = XmlCurlApp(directory=self.directory, metrics=self.metrics, **kw)
        dispatcher = Dispatcher()
        dispatcher.mount(PATH, self.app)
        if server == "pywsgi":  # fsd's HttpServer with the app mounted on the Dispatcher
            self.http = HttpServer(host="127.0.0.1", port=0, app=dispatcher)
        elif server == "front":  # the same Dispatcher behind FastLaneServer, a greenlet per lookup
            self.http = _FrontHttp(FastLaneServer(("127.0.0.1", 0), dispatcher, xmlcurl=self.app, log=None,
                                                  inline=False))
        else:  # the same behind FastLaneServer (cached answers from the accept loop)
            self.http = _FrontHttp(FastLaneServer(("127.0.0.1", 0), dispatcher, xmlcurl=self.app, log=None))
        self.http.start()
        self.listener = None
        if listen:
            self.listener = ConfigListener(dsn=dsn, on_change=self.directory.on_change,
                                           on_reconnect=self.directory.on_reconnect)
            self.listener.start()
            wait_for(lambda: self.listener.connected, 10, message="config listener connected")

    @property
    def port(self) -> int:
        return self.http.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def _flush(self, user: str, domain: str) -> None:
        self.flushed.append((user, domain))
        if self.switch is not None:
            self.switch.flush_directory_cache(f"id {user} {domain}")

    def new_switch(self, **kw) -> Switch:
        self.switch = Switch(xml_curl_url=self.url, xml_curl_credentials=(USER, PASSWORD), **kw)
        return self.switch

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        self.http.stop(timeout=1)
        self.directory.close()


class _FrontHttp:
    def __init__(self, server):
        self.server = server

    @property
    def port(self) -> int:
        return self.server.server_port

    def start(self) -> None:
        self.server.start()

    def stop(self, timeout: float = 1.0) -> None:
        self.server.stop(timeout=timeout)


@pytest.fixture(params=["pywsgi", "front", "lane"])
def server_kind(request):
    """The HTTP guards are tested against fsd's HttpServer (Dispatcher), FastLaneServer with its inline
    answers off and on."""
    return request.param


@pytest.fixture
def services(pool):
    return Services(pool=pool)


@pytest.fixture
def tenant(services):
    return services.tenants.create(Actor.system(), name="Acme", domain=DOMAIN, max_users=50)


@pytest.fixture
def stack(pool, db_dsn, request):
    # Without a server_kind: FastLaneServer, the server fsd answers mod_xml_curl with (the WSGI path is
    # tested through every guard in test_security, and in test_front).
    kind = request.getfixturevalue("server_kind") if "server_kind" in request.fixturenames else "lane"
    s = Stack(pool=pool, dsn=db_dsn, server=kind)
    yield s
    s.stop()


@pytest.fixture
def world(stack, services, tenant):
    sw = stack.new_switch()
    return SimpleNamespace(stack=stack, services=services, tenant=tenant, switch=sw, actor=Actor.system(),
                           metrics=stack.metrics, directory=stack.directory)
