"""The emulator's mod_xml_curl client: directory POSTs like FreeSWITCH's, digest check, cache."""

from __future__ import annotations

import hashlib
import os
import urllib.parse

import pytest
from gevent.pywsgi import WSGIServer

from fsd.sim import Phone, Switch
from tests.sim import fidelity
from tests.sim._client import login

NOT_FOUND = '<document type="freeswitch/xml"><section name="result"><result status="not found" /></section></document>'


def _user_doc(user, password, cacheable=None):
    a1 = hashlib.md5(f"{user}:127.0.0.1:{password}".encode()).hexdigest()  # noqa: S324
    cache = f' cacheable="{cacheable}"' if cacheable else ""
    return (
        '<document type="freeswitch/xml"><section name="directory"><domain name="127.0.0.1">'
        f'<groups><group name="default"><users><user id="{user}"{cache}><params>'
        f'<param name="a1-hash" value="{a1}"/></params><variables>'
        '<variable name="user_context" value="default"/><variable name="accountcode" value="x1"/>'
        "</variables></user></users></group></groups></domain></section></document>"
    )


@pytest.fixture
def directory_server():
    return {}


@pytest.fixture
def directory(directory_server):
    requests = []
    users = directory_server
    users.update({"2001": ("secret2001", None), "2002": ("pw", "60000")})

    def app(environ, start_response):
        body = environ["wsgi.input"].read().decode()
        form = urllib.parse.parse_qsl(body, keep_blank_values=True)
        requests.append(form)
        d = dict(form)
        if d.get("user") in users:
            pw, cache = users[d["user"]]
            out = _user_doc(d["user"], pw, cache)
        else:
            out = NOT_FOUND
        start_response("200 OK", [("Content-Type", "text/xml")])
        return [out.encode()]

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    yield f"http://127.0.0.1:{server.server_port}/fsxml", requests
    server.stop()


def test_register_checks_the_digest_against_a1_hash(directory):
    url, requests = directory
    sw = Switch(heartbeat_interval=0, xml_curl_url=url).start()
    try:
        c = login("127.0.0.1", sw.esl_port)
        c.cmd("event plain CUSTOM sofia::register sofia::register_failure")
        ok = Phone("2001", password="secret2001", register=False)
        assert sw.register(ok) is True
        c.wait_event("CUSTOM", Event_Subclass="sofia::register", username="2001")
        assert ok.variables["accountcode"] == "x1"
        assert sw.register(Phone("2001", password="wrong", register=False), password="wrong") is False
        c.wait_event("CUSTOM", Event_Subclass="sofia::register_failure")
        assert sw.register(Phone("2999", password="x", register=False)) is False  # unknown user
        d = dict(requests[0])
        assert d["section"] == "directory" and d["action"] == "sip_auth" and d["sip_auth_username"] == "2001"
        assert d["sip_auth_method"] == "REGISTER" and d["key"] == "id" and d["domain"] == "127.0.0.1"
        c.close()
    finally:
        sw.stop()


@pytest.mark.skipif(not fidelity.available(), reason="FreeSWITCH traces not present")
def test_request_fields_in_freeswitch_order(directory):
    url, requests = directory
    sw = Switch(heartbeat_interval=0, xml_curl_url=url).start()
    try:
        sw.register(Phone("2001", password="secret2001", register=False))
        with open(os.path.join(fidelity.TRACES, "xmlcurl", "xmlcurl-04-directory-sip_auth.request.http"), "rb") as f:
            body = f.read().decode().split("\r\n\r\n", 1)[1]
        want = [k for k, _ in urllib.parse.parse_qsl(body, keep_blank_values=True)]
        assert [k for k, _ in requests[0]] == want
    finally:
        sw.stop()


def test_user_call_lookup_and_cache(directory):
    url, requests = directory
    sw = Switch(heartbeat_interval=0, xml_curl_url=url).start()
    try:
        c = login("127.0.0.1", sw.esl_port)
        assert c.api("originate user/2999@127.0.0.1 &park()") == "-ERR SUBSCRIBER_ABSENT\n"
        d = dict(requests[-1])
        assert d["action"] == "user_call" and d["as_channel"] == "true" and d["user"] == "2999"
        # known in the directory but never registered
        assert c.api("originate user/2002@127.0.0.1 &park()") == "-ERR USER_NOT_REGISTERED\n"
        n = len(requests)
        sw.phones.clear()
        assert c.api("user_exists id 2002 127.0.0.1") == "true"
        assert len(requests) == n  # cacheable: served from the cache
        assert c.api("xml_flush_cache id 2002 127.0.0.1") == "+OK cleared 1 entry\n"
        sw.phones.clear()
        assert c.api("user_exists id 2002 127.0.0.1") == "true"
        assert len(requests) == n + 1
        c.close()
    finally:
        sw.stop()


def test_user_dial_asks_the_directory_even_for_registered_phones(directory, directory_server):
    url, requests = directory
    sw = Switch(heartbeat_interval=0, time_scale=0.01, xml_curl_url=url).start()
    try:
        from fsd.sim import Answer

        sw.add_phone(Phone("2001", password="secret2001", behaviour=Answer(after=0.1)))
        c = login("127.0.0.1", sw.esl_port)
        assert c.api("originate user/2001@127.0.0.1 &park()").startswith("+OK ")
        assert dict(requests[-1])["action"] == "user_call"
        # removed from the directory (not cacheable): the dial fails although the phone is registered
        del directory_server["2001"]
        assert c.api("originate user/2001@127.0.0.1 &park()") == "-ERR SUBSCRIBER_ABSENT\n"
        c.close()
    finally:
        sw.stop()


@pytest.mark.skipif(not fidelity.available(), reason="FreeSWITCH traces not present")
@pytest.mark.parametrize(
    ("capture", "command"),
    [
        ("xmlcurl-08-directory-user_call", "originate user/2001@127.0.0.1 &park()"),
        ("xmlcurl-09-directory-noaction-user-2001", "user_exists id 2001 127.0.0.1"),
    ],
)
def test_lookup_request_fields_in_freeswitch_order(directory, capture, command):
    url, requests = directory
    sw = Switch(heartbeat_interval=0, xml_curl_url=url).start()
    try:
        c = login("127.0.0.1", sw.esl_port)
        c.api(command)
        with open(os.path.join(fidelity.TRACES, "xmlcurl", f"{capture}.request.http"), "rb") as f:
            body = f.read().decode().split("\r\n\r\n", 1)[1]
        want = urllib.parse.parse_qsl(body, keep_blank_values=True)
        got = requests[0]
        assert [k for k, _ in got] == [k for k, _ in want]
        volatile = {
            "hostname",
            "Core-UUID",
            "FreeSWITCH-Hostname",
            "FreeSWITCH-Switchname",
            "FreeSWITCH-IPv4",
            "FreeSWITCH-IPv6",
            "Event-Date-Local",
            "Event-Date-GMT",
            "Event-Date-Timestamp",
            "Event-Sequence",
        }
        assert [kv for kv in got if kv[0] not in volatile] == [kv for kv in want if kv[0] not in volatile]
        c.close()
    finally:
        sw.stop()


@pytest.mark.skipif(not fidelity.available(), reason="FreeSWITCH traces not present")
def test_directory_run_matches_capture():
    """The xmlcurl capture's ESL side: REGISTERs of 2001 (right and wrong password) and unknown 2999 through
    the directory (served with the captured answers), then the directory api commands."""
    from fsd.sim import Answer
    from tests.sim.test_fidelity_events import _keep

    def captured(n):
        path = [f for f in os.listdir(os.path.join(fidelity.TRACES, "xmlcurl")) if f.startswith(f"xmlcurl-{n:02d}-")]
        with open(
            os.path.join(fidelity.TRACES, "xmlcurl", next(p for p in path if p.endswith("response.http"))), "rb"
        ) as f:
            return f.read().decode().split("\r\n\r\n", 1)[1]

    user_doc, not_found = captured(4), captured(7)

    def app(environ, start_response):
        form = dict(urllib.parse.parse_qsl(environ["wsgi.input"].read().decode(), keep_blank_values=True))
        start_response("200 OK", [("Content-Type", "text/xml")])
        return [(user_doc if form.get("user") == "2001" else not_found).encode()]

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    sw = Switch(
        time_scale=0.05,
        heartbeat_interval=0,
        xml_curl_url=f"http://127.0.0.1:{server.server_port}/fsxml",
        **fidelity.CAPTURE_IDENTITY,
    ).start()
    try:

        def before(i, cmd):
            if i == 2:
                ok = Phone(
                    "2001",
                    password="secret2001",
                    register=False,
                    port=5111,
                    behaviour=Answer(after=2.0),
                    user_agent="sipp-trace-agent",
                )
                sw.add_phone(ok)
                assert sw.register(ok)
                assert not sw.register(Phone("2001", register=False, user_agent="sipp-trace-agent"), password="bad")
                assert not sw.register(Phone("2999", password="x", register=False, user_agent="sipp-trace-agent"))

        got, _ = fidelity.replay("xmlcurl-directory.esl", sw.esl_port, before_command=before, keep=_keep)
        want = fidelity.expected_frames("xmlcurl-directory.esl")
        cmds = [c for c, _ in fidelity.client_commands("xmlcurl-directory.esl")]
        # not emulated: mod_voicemail's loopback call, and the registration table's SIP-level values
        skip = {b"api sofia status profile internal reg", b"api originate loopback/"}
        for g, w in zip(got, want, strict=True):
            gs, ws = fidelity.normalise(g, structure=True), fidelity.normalise(w, structure=True)
            if w.content_type == "api/response":
                idx = [f for f in want if f.content_type in ("api/response",)].index(w)
                api_cmds = [c for c in cmds if c.startswith(b"api ")]
                if api_cmds[idx].startswith(tuple(skip)):
                    continue
            assert gs == ws, fidelity.first_difference([gs], [ws])
        reg = next(f for f in got if b"sofia%3A%3Aregister\n" in f.body).event()
        assert reg["number_alias"] == "201" and reg["effective_caller_id_name"] == "Ivan Petrov"
    finally:
        sw.stop()
        server.stop()
