"""`show registrations` as FreeSWITCH 1.10.12 answers it (mod_commands show_function and its sql callbacks):
the plain form is the comma-separated table (header line, one line per registration, `\\nN total.\\n`, only
`\\n0 total.\\n` when empty), `as json` is cJSON's unformatted `{"row_count":N,"rows":[...]}` with no newline
(`{"row_count": 0}\\n` when empty), an unknown format is refused. The non-empty plain form is compared with
the real capture in /work/shared/freeswitch-traces/esl/registration-events.inbound.server.raw."""

from __future__ import annotations

import json
import os

import pytest

from fsd.sim import Phone, Switch

COLUMNS = "reg_user,realm,token,url,expires,network_ip,network_port,network_proto,hostname,metadata"
CAPTURE = "/work/shared/freeswitch-traces/esl/registration-events.inbound.server.raw"


@pytest.fixture
def sw():
    s = Switch(hostname="vm", time_scale=0.01, heartbeat_interval=0).start()
    yield s
    s.stop()


def test_empty_table_in_every_form(esl):
    assert esl.api("show registrations") == "\n0 total.\n"
    assert esl.api("show registrations as json") == '{"row_count": 0}\n'
    assert esl.api("show registrations as xml") == '<result row_count="0"/>\n'
    assert esl.api("show registrations as csv") == "\n0 total.\n"
    assert esl.api("show registrations as yaml") == "-ERR Cannot find format yaml\n"


def _capture_table() -> str:
    raw = open(CAPTURE, "rb").read().decode()
    start = raw.index(COLUMNS)
    end = raw.index(" total.\n", start) + len(" total.\n")
    return raw[start:end]


@pytest.mark.skipif(not os.path.exists(CAPTURE), reason="FreeSWITCH capture not available")
def test_plain_table_has_the_captured_shape(sw, esl):
    for user, port in (("1001", 5101), ("1002", 5102)):
        sw.add_phone(Phone(user, "127.0.0.1", port=port))
    sw.add_phone(Phone("1003", "127.0.0.1", register=False))  # in the directory, not registered
    got = esl.api("show registrations")
    real = _capture_table()
    assert got.count("\n") == real.count("\n") and got.endswith("\n\n2 total.\n") and real.endswith("\n\n2 total.\n")
    got_lines, real_lines = got.split("\n"), real.split("\n")
    assert got_lines[0] == real_lines[0] == COLUMNS
    for g, r in zip(got_lines[1:3], real_lines[1:3], strict=True):
        gf, rf = g.split(","), r.split(",")
        assert len(gf) == len(rf) == 10
        # the same user, realm, url and network columns (token, expires and hostname differ by nature)
        assert (gf[0], gf[1], gf[3], gf[5], gf[6], gf[7]) == (rf[0], rf[1], rf[3], rf[5], rf[6], rf[7])
        assert gf[4].isdigit() and gf[8] == "vm" and gf[9] == ""


def test_json_table_is_cjson_unformatted(sw, esl):
    sw.add_phone(Phone("1001", "co.example"))
    sw.add_phone(Phone("anna", "co.example"))
    body = esl.api("show registrations as json")
    assert not body.endswith("\n") and ": " not in body and ", " not in body
    doc = json.loads(body)
    assert list(doc) == ["row_count", "rows"] and doc["row_count"] == 2
    assert [list(r) for r in doc["rows"]] == [COLUMNS.split(",")] * 2
    assert {(r["reg_user"], r["realm"]) for r in doc["rows"]} == {("1001", "co.example"), ("anna", "co.example")}
    assert all(isinstance(v, str) for r in doc["rows"] for v in r.values())  # every column a string


def test_unregistered_phone_leaves_the_table(sw, esl):
    p = sw.add_phone(Phone("1001", "co.example"))
    assert json.loads(esl.api("show registrations as json"))["row_count"] == 1
    sw.unregister(p)
    assert esl.api("show registrations as json") == '{"row_count": 0}\n'
    assert esl.api("show registrations") == "\n0 total.\n"
