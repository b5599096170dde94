"""Parsing mod_xml_curl's POST bodies: every captured request, the fields of the FreeSWITCH source, bad input."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fsd.directory import request as rq
from fsd.directory.request import BadRequest, parse, parse_form
from tests.directory import captures

# name -> (kind, metric action, user, domain, profile)
EXPECTED = {
    "xmlcurl-01-directory-gateways": (rq.GATEWAYS, "gateways", "", "", "internal"),
    "xmlcurl-02-directory-gateways": (rq.GATEWAYS, "gateways", "", "", "external"),
    "xmlcurl-03-directory-network-list": (rq.NETWORK_LIST, "other", "", "127.0.0.1", ""),
    "xmlcurl-04-directory-sip_auth": (rq.USER, "sip_auth", "2001", "127.0.0.1", ""),
    "xmlcurl-05-directory-message-count": (rq.USER, "message-count", "2001", "127.0.0.1", ""),
    "xmlcurl-06-directory-sip_auth": (rq.USER, "sip_auth", "2001", "127.0.0.1", ""),
    "xmlcurl-07-directory-sip_auth": (rq.USER, "sip_auth", "2999", "127.0.0.1", ""),
    "xmlcurl-08-directory-user_call": (rq.USER, "user_call", "2001", "127.0.0.1", ""),
    "xmlcurl-09-directory-noaction-user-2001": (rq.USER, "other", "2001", "127.0.0.1", ""),
    "xmlcurl-10-directory-noaction-user-2001": (rq.USER, "other", "2001", "127.0.0.1", ""),
    "xmlcurl-11-directory-message-count": (rq.USER, "message-count", "2001", "127.0.0.1", ""),
    "xmlcurl-12-directory-voicemail-lookup": (rq.USER, "voicemail-lookup", "2001", "127.0.0.1", ""),
    "xmlcurl-13-directory-gateways": (rq.GATEWAYS, "gateways", "", "", "internal"),
    "xmlcurl-14-directory-gateways": (rq.GATEWAYS, "gateways", "", "", "external"),
    "xmlcurl-15-directory-network-list": (rq.NETWORK_LIST, "other", "", "127.0.0.1", ""),
    "xmlcurl-16-dialplan-context-public": (rq.UNSUPPORTED, "other", "", "", ""),
    "xmlcurl-17-dialplan-context-public": (rq.UNSUPPORTED, "other", "", "", ""),
    "xmlcurl-18-dialplan-context-default": (rq.UNSUPPORTED, "other", "", "", ""),
}


def test_every_capture_is_covered():
    names = [name for name, _, _ in captures.requests()]
    assert names == sorted(EXPECTED)


@pytest.mark.parametrize("name,headers,body", captures.requests(), ids=lambda v: v if isinstance(v, str) else "")
def test_captured_request_parses(name, headers, body):
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert int(headers["content-length"]) == len(body)
    req = parse(body)
    kind, action, user, domain, profile = EXPECTED[name]
    assert (req.kind, req.metric_action, req.user, req.domain, req.profile) == (kind, action, user, domain, profile)
    if "dialplan" in name:
        assert req.section == "dialplan"
    else:
        assert req.section == "directory"


def test_form_decoding_follows_switch_url_encode():
    body = captures.request_body("xmlcurl-04-directory-sip_auth")
    f = parse_form(body)
    assert f["section"] == "directory" and f["key"] == "id" and f["action"] == "sip_auth"
    # the five basic fields come first and are not encoded; event headers are not decoded at all
    assert "Event-Date-GMT" not in f and "sip_auth_uri" not in f
    f = parse_form(b"section=directory&user=a%2Bb&domain=%D0%B0.example.com")
    assert f["user"] == "a+b" and f["domain"] == "а.example.com"
    f = parse_form(b"section=directory&user=a+b&domain=x.example.com")
    assert f["user"] == "a+b"  # switch_url_encode sends '+' as %2B: a raw '+' is a '+'


def test_first_occurrence_wins_and_lookup_is_case_insensitive():
    req = parse(b"section=directory&tag_name=domain&key_name=name&key_value=Acme.Example.COM&key=id"
                b"&user=Ivan&domain=Acme.Example.com&domain=other.example.com")
    assert req.kind == rq.USER and req.user == "ivan" and req.domain == "acme.example.com"


def test_group_call_fields_from_mod_commands():
    # group_call_function: group, domain, action=group_call; switch_xml_locate_group adds group_name and domain again
    body = (b"hostname=vm&section=directory&tag_name=domain&key_name=name&key_value=acme.example.com"
            b"&Event-Name=REQUEST_PARAMS&Core-UUID=x&group=sales&domain=acme.example.com&action=group_call"
            b"&group_name=sales&domain=acme.example.com")
    req = parse(body)
    assert (req.kind, req.group, req.domain, req.metric_action) == (rq.GROUP, "sales", "acme.example.com",
                                                                    "group_call")


def test_reverse_auth_lookup_fields_from_sofia_reg():
    body = (b"hostname=vm&section=directory&tag_name=domain&key_name=name&key_value=acme.example.com"
            b"&Event-Name=REQUEST_PARAMS&action=reverse-auth-lookup&sip_call_id=abc%40host&key=id&user=201"
            b"&domain=acme.example.com")
    req = parse(body)
    assert (req.kind, req.user, req.metric_action) == (rq.USER, "201", "reverse-auth-lookup")


def test_domain_from_key_value_when_no_domain_field():
    req = parse(b"hostname=vm&section=directory&tag_name=domain&key_name=name&key_value=acme.example.com"
                b"&Event-Name=REQUEST_PARAMS")
    assert (req.kind, req.domain) == (rq.DOMAIN, "acme.example.com")
    req = parse(b"hostname=vm&section=directory&tag_name=&key_name=&key_value=&Event-Name=REQUEST_PARAMS")
    assert req.kind == rq.UNSUPPORTED


@pytest.mark.parametrize("body", [
    b"",
    b"\xff\xfesection=directory",
    b"section",
    b"section=directory&&user=1",
    b"=directory",
    b"foo=bar",
    b"section=",
    b"section=directory&user=%zz&domain=a.example.com",
    b"section=directory&user=%E2%28%A1&domain=a.example.com",
    b"section=directory&user=a%00b&domain=a.example.com",
    b"section=directory&user=a%0Ab&domain=a.example.com",
    b"section=directory&user=" + b"x" * 300 + b"&domain=a.example.com",
])
def test_malformed_bodies_are_bad_requests(body):
    with pytest.raises(BadRequest):
        parse(body)


def _reference_parse_form(body: bytes) -> dict[str, str]:
    """The plain reading of the form rules (parse_form is the fast one): every pair name=value, first wins."""
    text = body.decode("utf-8")
    if not text:
        raise BadRequest("empty")
    fields: dict[str, str] = {}
    for pair in text.split("&"):
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise BadRequest("not a form")
        if name in rq._WANTED and name not in fields:
            fields[name] = rq._decode(name, value)
    return fields


_pieces = st.sampled_from(["&", "=", "&&", "==", "%", "%41", "%0A", "%C3%A9", "é", "\x01", "\x7f", "+", "a", "x=y",
                           "section=directory", "user=Ivan", "domain=a.example", "key=id", "key_name=name",
                           "group_name=g", "group=g", "tag_name=domain", "key_value=k", "action=sip_auth"])


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(_pieces, st.text(max_size=6)), max_size=14).map("".join))
@example("section=directory&user=a&user=b&domain=x")
@example("=a&section=directory")
@example("section=directory&")
def test_parse_form_reads_forms_as_the_plain_rules_do(text):
    body = text.encode("utf-8", "surrogatepass")
    try:
        expected = _reference_parse_form(body)
    except (BadRequest, UnicodeDecodeError):
        with pytest.raises(BadRequest):
            parse_form(body)
        return
    assert parse_form(body) == expected
