"""Fuzz the xml_curl request side: fsd/directory/request.py (parse, parse_form) and the HTTP answer of
fsd/web/xmlcurl.py (XmlCurlApp.respond and the fast lane's request reader).

* parse/parse_form on any bytes: a DirectoryRequest / dict, or BadRequest - nothing else.
* a well-formed form built from arbitrary field values round-trips: what parse_form returns is what was
  encoded (first occurrence wins), or BadRequest for values the parser documents as refused.
* XmlCurlApp.respond and the fast lane answer any request with an HTTP status, never an exception.
"""

from __future__ import annotations

import base64
from urllib.parse import quote_from_bytes

from hypothesis import assume, example, given
from hypothesis import strategies as st

from fsd.directory import request as rq
from fsd.directory.request import BadRequest, DirectoryRequest, parse, parse_form
from fsd.web.fastlane import FastLaneServer
from fsd.web.xmlcurl import XmlCurlApp
from tests.directory import captures
from tests.fuzz import fuzz_settings

_REAL = [body for _, _, body in captures.requests()]
_NAMES = sorted(rq._WANTED) + ["hostname", "Event-Name", "Core-UUID", "sip_auth_nonce", "x"]

_tokens = st.sampled_from([b"&", b"=", b"%", b"%2B", b"%0A", b"%00", b"%ZZ", b"%C3%A9", b"%FF", b"+", b"\xff",
                           b"section=directory", b"section=dialplan", b"action=sip_auth", b"action=group_call",
                           b"purpose=gateways", b"purpose=network-list", b"user=1001", b"domain=a.example",
                           b"tag_name=domain", b"key_name=name", b"key_value=b.example", b"group_name=g",
                           b"profile=internal", b"%7F", b"\x01", b"=" * 3, b"&&"])
_structured = st.lists(st.one_of(st.binary(max_size=16), _tokens), max_size=40).map(b"&".join)
_mutated_real = st.tuples(st.sampled_from(_REAL), st.integers(0, 2000), st.integers(0, 40), st.binary(max_size=12)).map(
    lambda t: t[0][: t[1]] + t[3] + t[0][t[1] + t[2] :]
)
body_bytes = st.one_of(st.binary(max_size=300), _structured, _mutated_real)


def _check_request(req: DirectoryRequest) -> None:
    assert req.kind in (rq.USER, rq.GROUP, rq.DOMAIN, rq.GATEWAYS, rq.NETWORK_LIST, rq.UNSUPPORTED)
    assert req.section
    for value in (req.action, req.purpose, req.profile, req.key, req.user, req.domain, req.group):
        assert isinstance(value, str) and len(value) <= rq.MAX_VALUE
        assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    if req.kind == rq.USER:
        assert req.user and req.domain and req.user == req.user.lower()
    assert req.domain == req.domain.lower()
    assert req.metric_action in (*rq.KNOWN_ACTIONS, "gateways", "other")


@fuzz_settings(500)
@given(body=body_bytes)
@example(body=b"")
@example(body=b"section=directory&user=%zz")
@example(body=b"section=directory&user=" + b"a" * 300)
@example(body=b"section=directory&domain=%C3")
def test_fuzz_parse_any_bytes(body):
    try:
        fields = parse_form(body)
    except BadRequest:
        fields = None
    else:
        assert set(fields) <= rq._WANTED
    try:
        req = parse(body)
    except BadRequest:
        assert fields is None or not fields.get("section")
        return
    assert fields is not None
    _check_request(req)


_value = st.one_of(st.text(max_size=40), st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
                   st.sampled_from(["1001", "a.example", "directory", "sip_auth", "+74951234567", "é", "a b&c=d%"]))


@fuzz_settings(400)
@given(pairs=st.lists(st.tuples(st.sampled_from(_NAMES), _value), min_size=1, max_size=10))
def test_fuzz_encoded_form_round_trips(pairs):
    """A form encoded the way mod_xml_curl encodes it gives back the first value of each wanted field."""
    body = "&".join(f"{name}={quote_from_bytes(value.encode('utf-8', 'surrogatepass'), safe='')}"
                    for name, value in pairs).encode("ascii")
    expected: dict[str, str] = {}
    refused = False
    for name, value in pairs:
        if name in rq._WANTED and name not in expected:
            expected[name] = value
            raw = value.encode("utf-8", "surrogatepass")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                refused = True
            if len(value) > rq.MAX_VALUE or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
                refused = True
    try:
        fields = parse_form(body)
    except BadRequest:
        assert refused
        return
    assert not refused
    assert fields == expected


# ---------------------------------------------------------------------------------------------- HTTP layer
class _Directory:
    not_found = b'<document type="freeswitch/xml"><section name="result"/></document>'

    def __init__(self):
        self.requests = []

    def lookup(self, req, *, deadline=None):
        self.requests.append(req)
        return b"<document/>", "found"


_AUTH = "Basic " + base64.b64encode(b"freeswitch:s3cret").decode()
_STATUSES = {"200", "400", "401", "403", "405", "408", "413", "431"}


def _app() -> XmlCurlApp:
    return XmlCurlApp(directory=_Directory(), user="freeswitch", password="s3cret", max_body_bytes=4096,  # noqa: S106
                      deadline_ms=1000)


def _check_answer(answer) -> None:
    status, headers, body = answer
    assert status.split(" ", 1)[0] in _STATUSES, status
    assert ("Content-Length", str(len(body))) in headers
    f"HTTP/1.1 {status}\r\n".encode("latin-1")  # the fast lane writes it in latin-1


def _non_ascii_digits(text: str) -> bool:
    """Known defect (see test_content_length_with_non_ascii_digit_is_a_bad_request): str.isdigit() accepts
    characters such as '²' (U+00B2, a latin-1 byte on the wire) that int() refuses."""
    return text.isdigit() and not text.isascii()


_header = st.one_of(st.text(max_size=12), st.sampled_from(["", "0", "12", "99999999", " 5", "-1", "4097", "٣", "²"]))


@fuzz_settings(400)
@given(addr=st.sampled_from(["127.0.0.1", "::1", "10.0.0.1", "", "x", "fe80::1%eth0", "127.0.0.1%x"]),
       method=st.sampled_from(["POST", "GET", "", "post"]),
       auth=st.one_of(st.just(_AUTH), st.text(max_size=20)),
       length=_header, body=body_bytes)
def test_fuzz_xmlcurl_respond(addr, method, auth, length, body):
    assume(not _non_ascii_digits(length))
    answer = _app().respond(remote_addr=addr, method=method, authorization=auth, content_length=length,
                            read_body=lambda n: body[:n])
    _check_answer(answer)


class _FakeSock:
    """The fast lane's view of a socket: recv() hands out the given chunks, sendall() records."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.sent = []

    def recv(self, n, flags=0):
        if not self.chunks:
            return b""
        chunk = self.chunks[0][:n]
        rest = self.chunks[0][n:]
        if rest:
            self.chunks[0] = rest
        else:
            self.chunks.pop(0)
        return chunk

    def sendall(self, data):
        self.sent.append(data)


def _server() -> FastLaneServer:
    return FastLaneServer(("127.0.0.1", 0), lambda env, sr: [], xmlcurl=_app())


_head_lines = st.lists(st.one_of(
    st.sampled_from([f"Authorization: {_AUTH}", "Content-Type: application/x-www-form-urlencoded",
                     "Expect: 100-continue", "Transfer-Encoding: chunked", "Host: x", "no colon", ":", ""]),
    st.tuples(st.sampled_from(["Content-Length", "content-length", "X"]), _header).map(lambda t: f"{t[0]}:{t[1]}"),
    st.binary(max_size=20).map(lambda b: b.decode("latin-1")),
), max_size=8)


@fuzz_settings(300)
@given(lines=_head_lines, body=body_bytes, cuts=st.lists(st.integers(0, 400), max_size=6))
@example(lines=[f"Authorization: {_AUTH}", "Content-Length: 3"], body=b"a=b", cuts=[])
def test_fuzz_fast_lane_request_reader(lines, body, cuts):
    head = "\r\n".join(["POST /freeswitch/directory HTTP/1.1", *lines]).encode("utf-8")
    assume(not any(_non_ascii_digits(v.partition(":")[2].strip()) for v in lines
                   if v.partition(":")[0].strip().lower() == "content-length"))
    data = head + b"\r\n\r\n" + body
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True) if b > a]
    answer = _server()._fast_request(_FakeSock(chunks), ("127.0.0.1", 5555))
    _check_answer(answer)


@fuzz_settings(300)
@given(junk=st.binary(max_size=600))
def test_fuzz_fast_lane_head_without_end(junk):
    junk = junk.replace(b"\r\n\r\n", b"")
    answer = _server()._fast_request(_FakeSock([junk[i:i + 50] for i in range(0, len(junk), 50)]), ("127.0.0.1", 1))
    assert answer[0].startswith("400")


def test_content_length_with_non_ascii_digit_is_a_bad_request():
    req = (b"POST /freeswitch/directory HTTP/1.1\r\nAuthorization: " + _AUTH.encode()
           + b"\r\nContent-Length: \xb2\r\n\r\n")
    answer = _server()._fast_request(_FakeSock([req]), ("127.0.0.1", 5555))
    assert answer[0].startswith("400")
