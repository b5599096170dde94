"""Scripted behaviour of the emulator: endpoints, callers, dialplan apps, outbound sockets, time scaling."""

from __future__ import annotations

import json
import random
import time
import wave

import gevent.queue
import pytest

from fsd.sim import Answer, Busy, CallerScript, Clock, Gateway, NoAnswer, Phone, Reject, Switch
from fsd.sim.channel import write_wav
from tests.helpers import free_port, wait_for
from tests.sim._client import OutboundServer, login

FAST = 0.01  # 1 simulated second = 10 ms


def _ts(ev) -> float:
    return int(ev.get("Event-Date-Timestamp")) / 1e6


# ---------------------------------------------------------------------------------------- clock


def test_time_scale_makes_simulated_time_run_faster():
    clock = Clock(time_scale=0.01)
    t0 = clock.now()
    real0 = time.monotonic()
    clock.sleep(20)
    assert clock.now() - t0 >= 20
    assert time.monotonic() - real0 < 20  # 20 simulated seconds did not take 20 real ones


def test_event_dates_show_simulated_time(sw, esl):
    sw.add_phone(Phone("1001", behaviour=Answer(after=20.0)))
    # a long originate timeout: at 1 simulated s = 10 ms, the default 60 s leaves a loaded host only 0.4 s
    assert esl.api("originate {originate_timeout=600}user/1001@127.0.0.1 &park()").startswith("+OK ")
    progress = sw.wait_for_event("CHANNEL_PROGRESS")
    answer = sw.wait_for_event("CHANNEL_ANSWER")
    assert _ts(answer) - _ts(progress) >= 19.9


# ---------------------------------------------------------------------------------------- originate


def test_originate_answer_after_n_seconds_parks_the_leg(sw, esl):
    sw.add_phone(Phone("1001", behaviour=Answer(after=2.0)))
    reply = esl.api("originate user/1001@127.0.0.1 &park()")
    assert reply.startswith("+OK ") and reply.endswith("\n")
    uuid = reply.split()[1]
    ch = sw.wait_for_channel(uuid=uuid, state="CS_EXECUTE")
    sw.wait_for_event("CHANNEL_PARK", Unique_ID=uuid)
    assert ch.answer_state == "answered"
    assert esl.api(f"uuid_exists {uuid}") == "true"
    assert esl.api(f"uuid_kill {uuid}") == "+OK\n"
    ch.destroyed.wait(5)
    assert ch.hangup_cause == "NORMAL_CLEARING"
    assert esl.api(f"uuid_kill {uuid}") == "-ERR No such channel!\n"


@pytest.mark.parametrize(
    ("phone", "dial", "reply"),
    [
        (Phone("1002", behaviour=Busy()), "user/1002@127.0.0.1", "-ERR USER_BUSY\n"),
        (Phone("1003", register=False), "user/1003@127.0.0.1", "-ERR USER_NOT_REGISTERED\n"),
        (None, "user/9999@127.0.0.1", "-ERR SUBSCRIBER_ABSENT\n"),
        (Phone("1004", behaviour=NoAnswer()), "{leg_timeout=3}user/1004@127.0.0.1", "-ERR NO_ANSWER\n"),
        (Phone("1005", behaviour=Reject(cause="CALL_REJECTED")), "user/1005@127.0.0.1", "-ERR CALL_REJECTED\n"),
    ],
)
def test_originate_failures(sw, esl, phone, dial, reply):
    if phone is not None:
        sw.add_phone(phone)
    assert esl.api(f"originate {dial} &park()") == reply


def test_no_answer_leg_gets_no_answer_cause(sw, esl):
    sw.add_phone(Phone("1004", behaviour=NoAnswer()))
    assert esl.api("originate {leg_timeout=3}user/1004@127.0.0.1 &park()") == "-ERR NO_ANSWER\n"
    ev = sw.wait_for_event("CHANNEL_HANGUP_COMPLETE")
    assert ev.get("Hangup-Cause") == "NO_ANSWER"


def test_gateway_numbers_and_unreachable_gateway(sw, esl):
    gw = sw.add_gateway(Gateway("pstn", numbers={"200": Busy()}, behaviour=Answer(after=1.0)))
    assert esl.api("originate sofia/gateway/pstn/200 &park()") == "-ERR USER_BUSY\n"
    assert esl.api("originate sofia/gateway/pstn/300 &park()").startswith("+OK ")
    gw.reachable = False
    assert esl.api("originate sofia/gateway/pstn/300 &park()") == "-ERR NORMAL_TEMPORARY_FAILURE\n"
    assert esl.api("originate sofia/gateway/nope/300 &park()") == "-ERR INVALID_GATEWAY\n"


def test_simultaneous_ring_first_answer_wins(sw, esl):
    sw.add_phone(Phone("1001", behaviour=Answer(after=3.0)))
    sw.add_phone(Phone("1002", behaviour=Answer(after=1.0)))
    reply = esl.api("originate {ignore_early_media=true}user/1001@127.0.0.1,user/1002@127.0.0.1 &park()")
    winner = sw.channel(reply.split()[1])
    assert winner.profile["Destination-Number"] == "1002"
    loser = next(c for c in sw.all_channels if c.profile["Destination-Number"] == "1001")
    loser.destroyed.wait(5)
    assert loser.hangup_cause == "LOSE_RACE"


def test_sequential_dial_tries_next_group(sw, esl):
    sw.add_phone(Phone("1001", behaviour=Busy()))
    sw.add_phone(Phone("1002", behaviour=Answer(after=0.5)))
    # a long originate timeout: at 10 ms per simulated second a loaded host could otherwise use up the default
    # 60 simulated seconds before the second group answers (the timeout is not this test's subject)
    reply = esl.api("originate {originate_timeout=6000}user/1001@127.0.0.1|user/1002@127.0.0.1 &park()")
    assert sw.channel(reply.split()[1]).profile["Destination-Number"] == "1002", reply


def test_leg_delay_start_and_per_leg_vars(sw, esl):
    sw.add_phone(Phone("1001", behaviour=Answer(after=1.0)))
    sw.add_phone(Phone("1002", behaviour=Answer(after=0.1)))
    reply = esl.api("originate {x=1}[leg_delay_start=5]user/1002@127.0.0.1,[y=2]user/1001@127.0.0.1 &park()")
    winner = sw.channel(reply.split()[1])
    assert winner.profile["Destination-Number"] == "1001"  # 1002 only starts ringing after 5 s
    assert winner.get_var("x") == "1" and winner.get_var("y") == "2"


def test_originate_timeout_applies_to_the_whole_attempt(sw, esl):
    sw.add_phone(Phone("1001", behaviour=NoAnswer()))
    assert esl.api("originate {originate_timeout=2}user/1001@127.0.0.1 &park()") == "-ERR NO_ANSWER\n"


def test_bgapi_honours_job_uuid_and_reports_result(sw, esl):
    sw.add_phone(Phone("1002", behaviour=Busy()))
    assert esl.cmd("event plain BACKGROUND_JOB").reply == "+OK event listener enabled plain"
    reply = esl.cmd("bgapi originate user/1002@127.0.0.1 &park()\nJob-UUID: my-job-1")
    assert reply.reply == "+OK Job-UUID: my-job-1" and reply.get("Job-UUID") == "my-job-1"
    ev = esl.wait_event("BACKGROUND_JOB", Job_UUID="my-job-1")
    assert ev["_body"] == "-ERR USER_BUSY\n"
    assert ev["Job-Command"] == "originate"


def test_originate_to_extension_runs_dialplan():
    sw = Switch(
        time_scale=FAST,
        heartbeat_interval=0,
        dialplan={"default": {"5000": ["answer", "playback:silence_stream://1000", "hangup"]}},
    ).start()
    try:
        sw.add_phone(Phone("1001", behaviour=Answer(after=0.1)))
        c = login("127.0.0.1", sw.esl_port)
        reply = c.api("originate user/1001@127.0.0.1 5000 XML default")
        ch = sw.channel(reply.split()[1])
        ch.destroyed.wait(5)
        apps = [e.get("Application") for e in sw.events if e.name == "CHANNEL_EXECUTE" and e.uuid == ch.uuid]
        assert apps == ["answer", "playback", "hangup"]
        c.close()
    finally:
        sw.stop()


# ---------------------------------------------------------------------------------------- uuid_*


def test_uuid_bridge_of_two_parked_legs_and_hangup_propagation(sw, esl):
    sw.add_phone(Phone("1001", behaviour=Answer(after=0.1)))
    sw.add_phone(Phone("1002", behaviour=Answer(after=0.1), hangup_after=5.0))
    a = esl.api("originate user/1001@127.0.0.1 &park()").split()[1]
    b = esl.api("originate user/1002@127.0.0.1 &park()").split()[1]
    sw.wait_for_event("CHANNEL_PARK", Unique_ID=b)
    assert esl.api(f"uuid_bridge {a} {b}") == f"+OK {b}\n"
    ev = sw.wait_for_event("CHANNEL_BRIDGE")
    assert ev.get("Bridge-A-Unique-ID") == a and ev.get("Bridge-B-Unique-ID") == b
    assert sw.channel(a).bridged_to is sw.channel(b)
    # 1002 hangs up after 5 s: the bridge ends and the parked a-leg has nothing left to do
    sw.wait_for_event("CHANNEL_UNBRIDGE")
    sw.channel(a).destroyed.wait(5)
    assert sw.channel(a).hangup_cause == "NORMAL_CLEARING"


def test_uuid_bridge_invalid(esl):
    zero = "00000000-0000-0000-0000-000000000000"
    assert esl.api(f"uuid_bridge {zero} {zero}") == "-ERR Invalid uuid\n"


def test_setvar_getvar_broadcast_break(sw, esl):
    sw.add_phone(Phone("1001", behaviour=Answer(after=0.1)))
    u = esl.api("originate user/1001@127.0.0.1 &park()").split()[1]
    sw.wait_for_event("CHANNEL_PARK", Unique_ID=u)
    assert esl.api(f"uuid_setvar {u} fsd_var hello world") == "+OK\n"
    assert esl.api(f"uuid_getvar {u} fsd_var") == "hello world"
    assert esl.api(f"uuid_getvar {u} nothing") == "_undef_"
    assert esl.api(f"uuid_broadcast {u} tone_stream://%(1000,0,440);loops=-1 aleg") == "+OK Message sent\n"
    sw.wait_for_event("PLAYBACK_START", Unique_ID=u)
    assert esl.api(f"uuid_break {u}") == "+OK\n"
    stop = sw.wait_for_event("PLAYBACK_STOP", Unique_ID=u)
    assert stop.get("Playback-Status") == "break"
    done = sw.wait_for_event("CHANNEL_EXECUTE_COMPLETE", Unique_ID=u, Application="playback")
    assert done.get("Application-Response") == "FILE PLAYED"
    assert esl.api("hupall NORMAL_CLEARING") == "+OK hangup all channels with cause NORMAL_CLEARING\n"
    sw.channel(u).destroyed.wait(5)


def test_uuid_transfer_runs_the_extension():
    dialplan = {"default": {"9999": ["answer", "playback:tone_stream://%(1000,0,440)", "hangup:NORMAL_CLEARING"]}}
    sw = Switch(time_scale=FAST, heartbeat_interval=0, dialplan=dialplan).start()
    try:
        c = login("127.0.0.1", sw.esl_port)
        ch = sw.incoming_call(did="5900", caller="100", apps=["answer", "park"], context="default")
        sw.wait_for_event("CHANNEL_PARK", Unique_ID=ch.uuid)
        assert c.api(f"uuid_transfer {ch.uuid} 9999 XML default") == "+OK\n"
        ch.destroyed.wait(5)
        assert ch.profile["Destination-Number"] == "9999" and ch.profile["RDNIS"] == "5900"
        apps = [e.get("Application") for e in sw.events if e.name == "CHANNEL_EXECUTE" and e.uuid == ch.uuid]
        assert apps == ["answer", "park", "answer", "playback", "hangup"]
        c.close()
    finally:
        sw.stop()


def test_show_channels_lists_live_calls(sw, esl):
    assert esl.api("show channels") == "\n0 total.\n"
    assert esl.api("show channels as json") == '{"row_count": 0}\n'
    ch = sw.incoming_call(did="5900", caller="100", apps=["answer", "park"])
    sw.wait_for_event("CHANNEL_PARK", Unique_ID=ch.uuid)
    text = esl.api("show channels")
    assert text.startswith("uuid,direction,created,") and text.endswith("\n\n1 total.\n")
    assert ch.uuid in text
    data = json.loads(esl.api("show channels as json"))
    assert data["row_count"] == 1 and data["rows"][0]["uuid"] == ch.uuid
    assert sw.channels()[0]["uuid"] == ch.uuid


# ---------------------------------------------------------------------------------------- outbound socket


@pytest.fixture
def outbound():
    srv = OutboundServer()
    yield srv
    srv.stop()


def _connect(conn):
    r = conn.cmd("connect")
    assert r.reply == "%2BOK%0A" or r.get("Reply-Text") == "%2BOK%0A"
    return r


def test_dtmf_into_play_and_get_digits(outbound):
    sw = Switch(time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", outbound.port)).start()
    try:
        ch = sw.incoming_call(did="100", caller="200", script=CallerScript(prompt_digits=["42#"]))
        conn = outbound.accept()
        _connect(conn)
        assert conn.cmd("myevents").reply == "+OK Events Enabled"
        conn.cmd("sendmsg\ncall-command: execute\nexecute-app-name: answer")
        arg = "1 3 2 5000 # silence_stream://10000 silence_stream://250 choice \\d+ 3000"
        conn.cmd(f"sendmsg\ncall-command: execute\nexecute-app-name: play_and_get_digits\nexecute-app-arg: {arg}")
        ev = conn.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="play_and_get_digits")
        assert ev["variable_choice"] == "42" and ev["variable_read_result"] == "success"
        assert [e for e in conn.event_names() if e == "DTMF"] == ["DTMF", "DTMF", "DTMF"]
        conn.close()
        ch.destroyed.wait(5)
    finally:
        sw.stop()


def test_play_and_get_digits_timeout_without_digits(outbound):
    sw = Switch(time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", outbound.port)).start()
    try:
        sw.incoming_call(did="100", caller="200")
        conn = outbound.accept()
        _connect(conn)
        conn.cmd("myevents")
        arg = "1 1 2 3000 # silence_stream://500 silence_stream://100 choice \\d 3000"
        conn.cmd(f"sendmsg\ncall-command: execute\nexecute-app-name: play_and_get_digits\nexecute-app-arg: {arg}")
        ev = conn.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="play_and_get_digits")
        assert "variable_choice" not in ev and ev["variable_read_result"] == "timeout"
        conn.close()
    finally:
        sw.stop()


def test_caller_hangs_up_without_linger_disconnects(outbound):
    sw = Switch(time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", outbound.port)).start()
    try:
        ch = sw.incoming_call(did="100", caller="200", script=CallerScript(hangup_after=2.0))
        conn = outbound.accept()
        _connect(conn)
        conn.cmd("myevents")
        wait_for(lambda: conn.closed, 5, message="socket closed after hangup")
        ev = [f for f in conn.events if f.event().get("Event-Name") == "CHANNEL_HANGUP"][0].event()
        assert ev["Hangup-Cause"] == "NORMAL_CLEARING"
        notices = [f for f in list(conn.frames.queue) if f and f.content_type == "text/disconnect-notice"]
        assert notices and notices[-1].get("Content-Disposition") == "disconnect"
        ch.destroyed.wait(5)
        assert ch.destroyed.is_set()
    finally:
        sw.stop()


def test_linger_keeps_session_until_the_app_closes(outbound):
    sw = Switch(time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", outbound.port)).start()
    try:
        ch = sw.incoming_call(did="100", caller="200")
        conn = outbound.accept()
        _connect(conn)
        conn.cmd("myevents")
        assert conn.cmd("linger").reply == "+OK will linger"
        conn.cmd("sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING")
        notice = wait_for(
            lambda: next((f for f in list(conn.frames.queue) if f and f.get("Content-Disposition") == "linger"), None),
            5,
        )
        assert notice.get("Controlled-Session-UUID") == ch.uuid and notice.get("Linger-Time") == "-1"
        assert not ch.destroyed.wait(0.1)  # held while the app lingers
        conn.close()
        ch.destroyed.wait(5)
        assert ch.destroyed.is_set()
    finally:
        sw.stop()


def test_linger_with_timeout_closes_by_itself(outbound):
    sw = Switch(time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", outbound.port)).start()
    try:
        ch = sw.incoming_call(did="100", caller="200")
        conn = outbound.accept()
        _connect(conn)
        assert conn.cmd("linger 10").reply == "+OK will linger 10 seconds"
        conn.cmd("sendmsg\ncall-command: hangup")
        wait_for(lambda: conn.closed, 5, message="linger expiry")
        kinds = [f.get("Content-Disposition") for f in list(conn.frames.queue) if f]
        assert kinds[-2:] == ["linger", "disconnect"]
        ch.destroyed.wait(5)
        assert ch.destroyed.is_set()
    finally:
        sw.stop()


def test_fallback_runs_after_socket_close(outbound):
    sw = Switch(
        time_scale=FAST,
        heartbeat_interval=0,
        outbound_target=("127.0.0.1", outbound.port),
        fallback=["playback:silence_stream://500", "hangup:USER_BUSY"],
    ).start()
    try:
        ch = sw.incoming_call(did="100", caller="200")
        conn = outbound.accept()
        _connect(conn)
        conn.close()
        ch.destroyed.wait(5)
        apps = [e.get("Application") for e in sw.events if e.name == "CHANNEL_EXECUTE" and e.uuid == ch.uuid]
        assert apps == ["socket", "playback", "hangup"]
        assert ch.hangup_cause == "USER_BUSY"
    finally:
        sw.stop()


def test_socket_refused_runs_fallback_at_once():
    sw = Switch(time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", free_port())).start()
    try:
        ch = sw.incoming_call(did="100", caller="200")
        ch.destroyed.wait(5)
        names = [e.name for e in sw.events if e.uuid == ch.uuid]
        assert "CHANNEL_PARK" not in names
        assert ch.hangup_cause == "NORMAL_CLEARING"
    finally:
        sw.stop()


def test_bridge_app_over_the_socket(outbound):
    sw = Switch(time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", outbound.port)).start()
    try:
        sw.add_phone(Phone("1001", behaviour=Answer(after=2.0), hangup_after=3.0))
        sw.add_phone(Phone("1002", behaviour=Busy()))
        ch = sw.incoming_call(did="100", caller="200")
        conn = outbound.accept()
        _connect(conn)
        conn.cmd("myevents")
        conn.cmd("sendmsg\ncall-command: execute\nexecute-app-name: answer")
        conn.cmd(
            "sendmsg\ncall-command: execute\nexecute-app-name: bridge\n"
            "execute-app-arg: {leg_timeout=10}user/1002@127.0.0.1,user/1001@127.0.0.1"
        )
        conn.wait_event("CHANNEL_BRIDGE")
        conn.wait_event("CHANNEL_UNBRIDGE")
        done = conn.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="bridge")
        assert done["Answer-State"] == "answered"  # the caller stays up, parked in the socket app
        assert not ch.hungup.is_set()
        conn.cmd("sendmsg\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING")
        ch.destroyed.wait(5)
        assert ch.destroyed.is_set()
    finally:
        sw.stop()


def test_bridge_failure_sets_disposition_and_continues(outbound):
    sw = Switch(time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", outbound.port)).start()
    try:
        sw.add_phone(Phone("1002", behaviour=Busy()))
        ch = sw.incoming_call(did="100", caller="200")
        conn = outbound.accept()
        _connect(conn)
        conn.cmd("myevents")
        conn.cmd("sendmsg\ncall-command: execute\nexecute-app-name: bridge\nexecute-app-arg: user/1002@127.0.0.1")
        done = conn.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="bridge")
        assert done["variable_originate_disposition"] == "USER_BUSY"
        assert not ch.hungup.is_set()
        conn.close()
    finally:
        sw.stop()


def test_api_over_the_outbound_socket(outbound):
    sw = Switch(time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", outbound.port)).start()
    try:
        ch = sw.incoming_call(did="100", caller="200")
        conn = outbound.accept()
        _connect(conn)
        assert conn.api(f"uuid_getvar {ch.uuid} uuid") == ch.uuid
        r = conn.cmd("bgapi status\nJob-UUID: j-1")
        assert r.reply == "+OK Job-UUID: j-1"
        conn.close()
    finally:
        sw.stop()


def test_record_writes_a_real_wav(tmp_path, outbound):
    sw = Switch(time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", outbound.port)).start()
    try:
        sw.incoming_call(did="100", caller="200", script=CallerScript(record_seconds=3.0))
        conn = outbound.accept()
        _connect(conn)
        conn.cmd("myevents")
        path = str(tmp_path / "rec" / "msg.wav")
        conn.cmd(f"sendmsg\ncall-command: execute\nexecute-app-name: record\nexecute-app-arg: {path} 60")
        conn.wait_event("CHANNEL_EXECUTE_COMPLETE", Application="record")
        with wave.open(path) as w:
            assert w.getframerate() == 8000
            assert abs(w.getnframes() / 8000.0 - 3.0) < 0.01
        assert any(e.name == "RECORD_STOP" for e in sw.events)
        conn.close()
    finally:
        sw.stop()


def test_playback_takes_the_wav_duration(tmp_path):
    path = str(tmp_path / "p.wav")
    write_wav(path, 4.0)
    sw = Switch(time_scale=FAST, heartbeat_interval=0, fallback=[f"playback:{path}", "hangup"]).start()
    try:
        ch = sw.incoming_call(did="100", caller="200")
        ch.destroyed.wait(5)
        start = next(e for e in sw.events if e.name == "PLAYBACK_START")
        stop = next(e for e in sw.events if e.name == "PLAYBACK_STOP")
        assert _ts(stop) - _ts(start) >= 3.99
        assert stop.get("Playback-Status") == "done"
        assert ch.get_var("playback_ms") == "4000"
    finally:
        sw.stop()


def test_missing_file_is_not_found():
    sw = Switch(time_scale=FAST, heartbeat_interval=0, fallback=["playback:/no/such.wav", "hangup"]).start()
    try:
        ch = sw.incoming_call(did="100", caller="200")
        ch.destroyed.wait(5)
        done = next(e for e in sw.events if e.name == "CHANNEL_EXECUTE_COMPLETE" and e.get("Application") == "playback")
        assert done.get("Application-Response") == "FILE NOT FOUND"
    finally:
        sw.stop()


# ---------------------------------------------------------------------------------------- registration, control


def test_registration_events_and_unregister(sw, esl):
    esl.cmd("event plain CUSTOM sofia::register sofia::unregister")
    p = sw.add_phone(Phone("1001"))
    ev = esl.wait_event("CUSTOM", Event_Subclass="sofia::register")
    assert ev["from-user"] == "1001" and ev["status"] == "Registered(UDP)"
    sw.unregister(p)
    esl.wait_event("CUSTOM", Event_Subclass="sofia::unregister")
    assert esl.api("originate user/1001@127.0.0.1 &park()") == "-ERR USER_NOT_REGISTERED\n"


def test_random_chunking_keeps_the_stream_intact():
    sw = Switch(time_scale=FAST, heartbeat_interval=0, chunking=random.Random(7)).start()
    try:
        c = login("127.0.0.1", sw.esl_port)
        for _ in range(5):
            assert c.api("status").startswith("UP ")
        c.cmd("event plain ALL")
        ch = sw.incoming_call(did="100", caller="200", apps=["answer", "hangup"])
        ch.destroyed.wait(5)
        c.wait_event("CHANNEL_DESTROY", Unique_ID=ch.uuid)
        c.close()
    finally:
        sw.stop()


def test_crash_drops_connections_and_keeps_channels(outbound):
    sw = Switch(
        time_scale=FAST, heartbeat_interval=0, outbound_target=("127.0.0.1", outbound.port), fallback=["park"]
    ).start()
    try:
        c = login("127.0.0.1", sw.esl_port)
        ch = sw.incoming_call(did="100", caller="200")
        conn = outbound.accept()
        _connect(conn)
        sw.crash()
        wait_for(lambda: c.closed and conn.closed, 5, message="connections dropped")
        # the call survived and went on with its fallback (park)
        sw.wait_for_event("CHANNEL_PARK", Unique_ID=ch.uuid)
        assert not ch.hungup.is_set()
        c2 = login("127.0.0.1", sw.esl_port)  # the switch still accepts new connections
        assert c2.api(f"uuid_exists {ch.uuid}") == "true"
        c2.close()
    finally:
        sw.stop()


def test_stall_and_resume(sw):
    c = login("127.0.0.1", sw.esl_port)
    sw.stall()
    c.send("api hostname")
    with pytest.raises(gevent.queue.Empty):
        c.next(timeout=0.2)  # nothing is answered while stalled
    sw.resume()
    f = c.next(timeout=5)
    assert f.body == b"sim1"
    c.close()


def test_two_switches_in_one_process():
    a = Switch(hostname="a", heartbeat_interval=0).start()
    b = Switch(hostname="b", heartbeat_interval=0).start()
    try:
        assert a.esl_port != b.esl_port
        ca, cb = login("127.0.0.1", a.esl_port), login("127.0.0.1", b.esl_port)
        assert ca.api("hostname") == "a" and cb.api("hostname") == "b"
        ca.close()
        cb.close()
    finally:
        a.stop()
        b.stop()


def test_heartbeat_every_20_simulated_seconds():
    sw = Switch(time_scale=0.005).start()
    try:
        c = login("127.0.0.1", sw.esl_port)
        c.cmd("event plain HEARTBEAT")
        first = c.wait_event("HEARTBEAT")
        assert first["Event-Info"] == "System Ready"
        wait_for(lambda: len(c.events) >= 2, 5, message="second heartbeat")
        e1, e2 = c.events[0].event(), c.events[1].event()
        assert int(e2["Event-Date-Timestamp"]) - int(e1["Event-Date-Timestamp"]) >= 19_900_000
        c.close()
    finally:
        sw.stop()


def test_wrong_password_and_before_auth():
    sw = Switch(heartbeat_interval=0).start()
    try:
        from tests.sim._client import RawEsl

        c = RawEsl.connect("127.0.0.1", sw.esl_port)
        assert c.next().content_type == "auth/request"
        assert c.cmd("api status").reply == "-ERR command not found"
        assert c.cmd("auth nope").reply == "-ERR invalid"
        assert c.next().content_type == "text/disconnect-notice"
        wait_for(lambda: c.closed, 5)
    finally:
        sw.stop()


def test_park_after_bridge_parks_the_caller_when_the_agent_hangs_up(sw, esl):
    sw.add_phone(Phone("1001", behaviour=Answer(after=0.1), hangup_after=2.0))
    ch = sw.incoming_call(did="100", caller="200", apps=["answer", "park", "hangup"])
    sw.wait_for_event("CHANNEL_PARK", Unique_ID=ch.uuid)
    agent = esl.api("originate user/1001@127.0.0.1 &park()").split()[1]
    sw.wait_for_event("CHANNEL_PARK", Unique_ID=agent)
    assert esl.api(f"uuid_setvar {ch.uuid} park_after_bridge true") == "+OK\n"
    esl.api(f"uuid_bridge {ch.uuid} {agent}")
    sw.wait_for_event("CHANNEL_UNBRIDGE", Unique_ID=ch.uuid)
    wait_for(lambda: sum(1 for e in sw.events if e.name == "CHANNEL_PARK" and e.uuid == ch.uuid) == 2, 5)
    assert not ch.hungup.is_set()


def test_call_from_a_phone(sw):
    sw.add_phone(Phone("1001", variables={"effective_caller_id_name": "Ivan", "effective_caller_id_number": "201"}))
    ch = sw.call_from_phone("1001", "79001234567", apps=["answer", "hangup"])
    ch.destroyed.wait(5)
    assert ch.name.startswith("sofia/internal/1001@")
    assert ch.profile["Caller-ID-Name"] == "Ivan" and ch.profile["Destination-Number"] == "79001234567"
    assert ch.get_var("user_name") == "1001" and ch.get_var("domain_name") == "127.0.0.1"
    assert ch.get_var("effective_caller_id_number") == "201"


def test_static_socket_replies_after_execution(outbound):
    sw = Switch(time_scale=FAST, heartbeat_interval=0).start()
    try:
        ch = sw.incoming_call(did="100", caller="200", apps=[("socket", f"127.0.0.1:{outbound.port} full")])
        conn = outbound.accept()
        r = conn.cmd("connect")
        assert r.get("Socket-Mode") == "static" and r.get("Control") == "full"
        conn.cmd("myevents")
        assert (
            conn.cmd(
                "sendmsg\ncall-command: execute\nexecute-app-name: playback\nexecute-app-arg: silence_stream://2000"
            ).reply
            == "+OK"
        )
        # the reply came only after the playback completed
        assert any(f.event().get("Event-Name") == "CHANNEL_EXECUTE_COMPLETE" for f in conn.events)
        conn.close()
        ch.destroyed.wait(5)
    finally:
        sw.stop()


def test_originate_with_bridge_target(sw, esl):
    sw.add_phone(Phone("1001", behaviour=Answer(after=0.5), hangup_after=3.0))
    sw.add_phone(Phone("1002", behaviour=Answer(after=0.5)))
    a = esl.api("originate user/1001@127.0.0.1 &bridge(user/1002@127.0.0.1)").split()[1]
    ev = sw.wait_for_event("CHANNEL_BRIDGE", Unique_ID=a)
    b = sw.channel(ev.get("Bridge-B-Unique-ID"))
    assert b.profile["Destination-Number"] == "1002"
    # 1001 hangs up after 3 s: the bridged 1002 leg is hung up too
    b.destroyed.wait(5)
    assert b.hangup_cause == "NORMAL_CLEARING" and sw.channel(a).hungup.is_set()
