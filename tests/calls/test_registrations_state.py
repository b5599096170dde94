"""Registration bookkeeping (pure): parsing `show registrations`, the ordering of the table and the events,
several switches."""

from __future__ import annotations

import os

import pytest

from fsd.calls.members import Registrations, RegistrationTableError, parse_registrations, reg_key

CAPTURE = "/work/shared/freeswitch-traces/esl/registration-events.inbound.server.raw"


@pytest.mark.skipif(not os.path.exists(CAPTURE), reason="FreeSWITCH capture not available")
def test_parse_the_real_plain_table():
    raw = open(CAPTURE, "rb").read().decode()
    start = raw.index("reg_user,realm,")
    body = raw[start:raw.index(" total.\n", start) + len(" total.\n")]
    assert parse_registrations(body) == {"1001@127.0.0.1", "1002@127.0.0.1"}


def test_parse_every_form():
    assert parse_registrations("\n0 total.\n") == set()
    assert parse_registrations('{"row_count": 0}\n') == set()
    body = ('{"row_count":2,"rows":[{"reg_user":"Anna","realm":"Co.Example","token":"x","url":"u"},'
            '{"reg_user":"201","realm":"co.example","token":"y","url":"v"}]}')
    assert parse_registrations(body) == {"anna@co.example", "201@co.example"}
    csv = ("reg_user,realm,token,url,expires,network_ip,network_port,network_proto,hostname,metadata\n"
           "anna,co.example,t@h,sofia/internal/sip:anna@10.0.0.1:5060,1795856451,10.0.0.1,5060,udp,fs1,\n"
           "\n1 total.\n")
    assert parse_registrations(csv) == {"anna@co.example"}


@pytest.mark.parametrize("body", [
    "-ERR SQL disabled, no data available!\n",
    '{"row_count":2,"rows":[{"reg_user":"a","realm":"b"}]}',  # truncated
    '{"rows":[]}',
    "reg_user,realm,token\nanna,co.example,t\n",  # no total line
    "reg_user,realm,token\nanna,co.example,t\n\n2 total.\n",  # total does not match
    "",
])
def test_parse_refuses_what_is_not_a_table(body):
    with pytest.raises(RegistrationTableError):
        parse_registrations(body)


A, B = reg_key("anna", "co.example"), reg_key("201", "co.example")


def test_nothing_known_until_a_switch_says_something():
    r = Registrations()
    assert r.state([A]) is None
    r.connected("fs1")
    assert r.state([A]) is None and not r.informed()
    t = r.table_requested("fs1")
    assert r.table("fs1", t, set())
    assert r.informed() and r.state([A]) is False


def test_table_supersedes_earlier_events_and_later_events_win():
    r = Registrations()
    r.connected("fs1")
    r.event("fs1", "anna", "co.example", True)  # before the request: the table is newer
    t = r.table_requested("fs1")
    r.event("fs1", "201", "CO.example", True)  # handled while the request was in flight: at least as new
    r.event("fs1", "bob", "co.example", False)
    assert r.table("fs1", t, {reg_key("bob", "co.example")})
    assert r.state([A]) is False  # the table does not have her: the earlier event is superseded
    assert r.state([B]) is True  # the event after the request wins over the table that lacks it
    assert r.state([reg_key("bob", "co.example")]) is False  # and an unregister event too
    r.event("fs1", "anna", "co.example", True)  # after the table
    assert r.state([A]) is True


def test_a_stale_or_superseded_table_is_ignored():
    r = Registrations()
    r.connected("fs1")
    t1 = r.table_requested("fs1")
    t2 = r.table_requested("fs1")
    assert not r.table("fs1", t1, {A})
    assert r.table("fs1", t2, set())
    assert r.state([A]) is False
    t3 = r.table_requested("fs1")
    r.disconnected("fs1")
    r.connected("fs1")
    assert not r.table("fs1", t3, {A})  # read on the connection that was lost
    assert r.state([A]) is None
    t4 = r.table_requested("fs1")
    r.table_failed("fs1", t4)
    assert not r.table("fs1", t4, {A})


def test_registered_on_any_connected_switch():
    r = Registrations()
    for s in ("fs1", "fs2"):
        r.connected(s)
    r.table("fs1", r.table_requested("fs1"), {A})
    assert r.state([A]) is True  # registered on fs1 is enough
    assert r.state([B]) is None  # not on fs1, and fs2 has not said anything yet
    r.table("fs2", r.table_requested("fs2"), set())
    assert r.state([A]) is True and r.state([B]) is False
    r.event("fs1", "anna", "co.example", False)
    assert r.state([A]) is False
    r.event("fs2", "anna", "co.example", True)
    assert r.state([A]) is True
    r.disconnected("fs2")  # what a lost switch said no longer counts
    assert r.state([A]) is False
    assert r.state([A, B]) is False


def test_events_alone_still_count_without_a_table():
    r = Registrations()
    r.connected("fs1")
    r.event("fs1", "anna", "co.example", True)
    assert r.state([A]) is True
    r.event("fs1", "anna", "co.example", False)
    assert r.state([A]) is False
    assert r.state([B]) is None  # nothing said about B
