"""Wire contract of FreeSWITCH's event socket, checked with raw sockets.

Runs against the emulator always and against a real FreeSWITCH when FSD_TEST_FREESWITCH=host:port:password
is set (those cases carry the `freeswitch` marker). Only behaviour any stock FreeSWITCH 1.10 shows is used."""

from __future__ import annotations

import json
import uuid

from tests.helpers import wait_for
from tests.sim._client import RawEsl

ZERO = "00000000-0000-0000-0000-000000000000"
GOODBYE = b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def _login(t) -> RawEsl:
    c = RawEsl.connect(t.host, t.port)
    assert c.next().raw == b"Content-Type: auth/request\n\n"
    r = c.cmd(f"auth {t.password}")
    assert r.raw == b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"
    return c


def test_auth_request_and_wrong_password(target):
    c = RawEsl.connect(target.host, target.port)
    assert c.next().raw == b"Content-Type: auth/request\n\n"
    c.send("auth definitely-wrong")
    wait_for(lambda: c.closed, 5, message="close after wrong auth")
    assert c.raw == (
        b"Content-Type: auth/request\n\n"
        b"Content-Type: command/reply\nReply-Text: -ERR invalid\n\n"
        b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n" + GOODBYE
    )


def test_commands_before_auth(target):
    c = RawEsl.connect(target.host, target.port)
    c.next()
    for cmd in ("api status", "event plain ALL", "foo bar"):
        assert c.cmd(cmd).raw == b"Content-Type: command/reply\nReply-Text: -ERR command not found\n\n"
    assert c.cmd(f"auth {target.password}").reply == "+OK accepted"
    assert c.cmd("exit").raw == b"Content-Type: command/reply\nReply-Text: +OK bye\n\n"
    notice = c.next()
    assert notice.raw == b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n" + GOODBYE
    wait_for(lambda: c.closed, 5)


def test_api_responses(target):
    c = _login(target)
    status = c.cmd("api status")
    assert status.headers[0] == ("Content-Type", "api/response")
    assert status.headers[1][0] == "Content-Length"
    assert status.body.startswith(b"UP ") and b" is ready\n" in status.body
    assert c.api("no_such_command") == "-ERR no_such_command Command not found!\n"
    assert c.api(f"uuid_kill {ZERO}") == "-ERR No such channel!\n"
    assert c.api(f"uuid_getvar {ZERO} foo") == "-ERR No such channel!\n"
    assert c.api(f"uuid_exists {ZERO}") == "false"
    assert c.api(f"uuid_bridge {ZERO} {ZERO}") == "-ERR Invalid uuid\n"
    assert c.api(f"uuid_broadcast {ZERO} /tmp/x.wav aleg") == "-ERR invalid uuid\n"
    assert c.api("global_getvar no_such_var_fsd") == "-ERR no reply\n"
    assert c.api("reloadxml") == "+OK [Success]\n"
    assert c.api("originate error/USER_BUSY &park()") == "-ERR USER_BUSY\n"
    c.cmd("exit")


def test_show_channels_formats(target):
    c = _login(target)
    data = json.loads(c.api("show channels as json"))
    assert isinstance(data["row_count"], int)
    text = c.api("show channels")
    assert text.endswith(f"\n{data['row_count']} total.\n")
    c.cmd("exit")


def test_bgapi_background_job_plain_and_json(target):
    c = _login(target)
    assert c.cmd("event plain BACKGROUND_JOB").reply == "+OK event listener enabled plain"
    job = str(uuid.uuid4())
    r = c.cmd(f"bgapi status\nJob-UUID: {job}")
    assert r.raw == f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n".encode()
    ev = c.wait_event("BACKGROUND_JOB", Job_UUID=job)
    assert ev["Job-Command"] == "status" and ev["_body"].startswith("UP ")
    frame = next(f for f in c.events if f.event().get("Job-UUID") == job)
    assert frame.headers[0][0] == "Content-Length" and frame.headers[1] == ("Content-Type", "text/event-plain")
    body = frame.body.decode()
    assert body.startswith("Event-Name: BACKGROUND_JOB\nCore-UUID: ")
    assert "\nContent-Length: " in body.split("\n\n")[0]

    assert c.cmd("event json BACKGROUND_JOB").reply == "+OK event listener enabled json"
    job2 = str(uuid.uuid4())
    c.cmd(f"bgapi no_such_command arg1\nJob-UUID: {job2}")
    ev2 = c.wait_event("BACKGROUND_JOB", Job_UUID=job2)
    assert ev2["Job-Command-Arg"] == "arg1"
    assert ev2["_body"] == "-ERR no_such_command Command not found!\n"
    c.cmd("exit")


def test_generated_job_uuid(target):
    c = _login(target)
    r = c.cmd("bgapi status")
    assert r.reply.startswith("+OK Job-UUID: ")
    assert r.get("Job-UUID") == r.reply.split(": ", 1)[1]
    c.cmd("exit")


def test_event_filter_and_nix_replies(target):
    c = _login(target)
    assert c.cmd("event plain NO_SUCH_EVENT").reply == "-ERR no keywords supplied"
    assert c.cmd("event plain CHANNEL_CREATE CUSTOM sofia::register").reply == "+OK event listener enabled plain"
    assert c.cmd(f"filter Unique-ID {ZERO}").reply == f"+OK filter added. [Unique-ID]=[{ZERO}]"
    assert c.cmd(f"filter delete Unique-ID {ZERO}").reply == f"+OK filter deleted. [Unique-ID][{ZERO}]"
    assert c.cmd("filter delete all").reply == "+OK filter deleted. [all][]"
    assert c.cmd("nixevent CHANNEL_CREATE").reply == "+OK events nixed"
    assert c.cmd("noevents").reply == "+OK no longer listening for events"
    assert c.cmd("noevents").reply == "-ERR not listening for events"
    c.cmd("exit")


def test_session_commands_on_inbound(target):
    c = _login(target)
    assert c.cmd("linger").reply == "-ERR not controlling a session"
    assert c.cmd("nolinger").reply == "-ERR not controlling a session"
    assert c.cmd("myevents").reply == "-ERR command not found"
    assert c.cmd("no_such_esl_command").reply == "-ERR command not found"
    r = c.cmd(f"sendmsg {ZERO}\ncall-command: execute\nexecute-app-name: answer")
    assert r.reply == f"-ERR invalid session id [{ZERO}]"
    c.cmd("exit")


def test_client_close_without_exit(target):
    c = _login(target)
    assert c.api(f"uuid_exists {ZERO}") == "false"
    c.close()  # FreeSWITCH just drops the listener; a new connection still works
    c2 = _login(target)
    assert c2.api(f"uuid_exists {ZERO}") == "false"
    c2.cmd("exit")


def test_log_and_nolog(target):
    c = _login(target)
    assert c.cmd("nolog").reply == "-ERR not loging"
    assert c.cmd("log info").reply == "+OK log level info [6]"
    assert c.cmd("log").reply == "+OK log level  [7]"
    assert c.cmd("log nonsense").reply == "-ERR invalid log level"
    assert c.cmd("nolog").reply == "+OK no longer logging"
    assert c.cmd("divert_events on").reply == "-ERR not controlling a session."
    c.cmd("exit")
