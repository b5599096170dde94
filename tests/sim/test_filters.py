"""The emulator's `filter` command against mod_event_socket 1.10.12: command replies (byte-exact frames) and
which events a filtered listener is sent (header names in any case, values ignoring case, +/- signs,
/regex/options, `_body`, variable_* headers, BACKGROUND_JOB filtered like any event)."""

from __future__ import annotations

import copy

import pytest

from fsd.sim import Answer, Phone
from fsd.sim.esl import event_header
from tests.helpers import wait_for

FAST = 0.01


def _reply_frame(text: str) -> bytes:
    # the frame layout of the captured replies (esl-inbound-extra.server.raw @5340)
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


@pytest.mark.parametrize(("command", "reply"), [
    ("filter Unique-ID abc", "+OK filter added. [Unique-ID]=[abc]"),
    ("filter add Unique-ID abc", "+OK filter added. [Unique-ID]=[abc]"),
    # `add` with a header and no value: nothing is added, the reply prints the missing value as (null)
    ("filter add Unique-ID", "+OK filter added. [Unique-ID]=[(null)]"),
    ("filter Caller-Caller-ID-Name John Smith", "+OK filter added. [Caller-Caller-ID-Name]=[John Smith]"),
    ("filter delete Unique-ID abc", "+OK filter deleted. [Unique-ID][abc]"),
    ("filter delete Unique-ID", "+OK filter deleted. [Unique-ID][]"),
    ("filter delete all", "+OK filter deleted. [all][]"),
    ("filter DELETE ALL", "+OK filter deleted. [ALL][]"),
    ("filter Unique-ID", "-ERR invalid syntax"),
    ("filter delete", "-ERR invalid syntax"),
    ("filter add", "-ERR invalid syntax"),
])
def test_filter_replies_are_byte_exact(esl, command, reply):
    f = esl.cmd(command)
    assert f.raw == _reply_frame(reply)


def _leg(sw, esl, ext: str, leg: str, extra: str = "") -> None:
    sw.add_phone(Phone(ext, behaviour=Answer(after=0.5)))
    r = esl.api(f"originate {{origination_uuid={leg},originate_timeout=600{extra}}}user/{ext}@127.0.0.1 &park()")
    assert r.startswith("+OK"), r


def _names(esl, uuid):
    return [n for n in esl.event_names(uuid) if n in ("CHANNEL_ANSWER", "CHANNEL_HANGUP")]


def _two_legs_hung_up(sw, esl, extra_a: str = "", extra_b: str = ""):
    _leg(sw, esl, "1001", "leg-a", extra_a)
    _leg(sw, esl, "1002", "leg-b", extra_b)
    assert esl.api("uuid_kill leg-a").startswith("+OK")
    assert esl.api("uuid_kill leg-b").startswith("+OK")
    wait_for(lambda: sw.channel("leg-a").hungup.is_set() and sw.channel("leg-b").hungup.is_set(),
             message="legs hung up")
    # a marker after both hangups: once it is seen, every earlier event the listener was sent has arrived
    job = esl.cmd("bgapi status").get("Job-UUID")
    esl.wait_event("BACKGROUND_JOB", Job_UUID=job)


def _listen(esl, *filters: str) -> None:
    assert esl.cmd("event plain CHANNEL_ANSWER CHANNEL_HANGUP BACKGROUND_JOB").reply.startswith("+OK")
    for f in filters:
        assert esl.cmd(f"filter {f}").reply.startswith("+OK filter added.")
    assert esl.cmd("filter Event-Name BACKGROUND_JOB").reply.startswith("+OK")


def test_header_name_matches_in_any_case(sw, esl):
    _listen(esl, "unique-id leg-a")
    _two_legs_hung_up(sw, esl)
    assert _names(esl, "leg-a") == ["CHANNEL_ANSWER", "CHANNEL_HANGUP"]
    assert _names(esl, "leg-b") == []


def test_value_compares_ignoring_case(sw, esl):
    _listen(esl, "Unique-ID LEG-B")
    _two_legs_hung_up(sw, esl)
    assert _names(esl, "leg-b") == ["CHANNEL_ANSWER", "CHANNEL_HANGUP"]
    assert _names(esl, "leg-a") == []


def test_channel_variable_filter_picks_the_marked_legs(sw, esl):
    _listen(esl, "variable_fsd_mark m1")
    _two_legs_hung_up(sw, esl, extra_a=",fsd_mark=m1", extra_b=",fsd_mark=m2")
    assert _names(esl, "leg-a") == ["CHANNEL_ANSWER", "CHANNEL_HANGUP"]
    assert _names(esl, "leg-b") == []


def test_negative_filter_drops_what_a_positive_one_lets_through(sw, esl):
    _listen(esl, "Unique-ID leg-a", "Event-Name -CHANNEL_ANSWER")
    _two_legs_hung_up(sw, esl)
    assert _names(esl, "leg-a") == ["CHANNEL_HANGUP"]
    assert _names(esl, "leg-b") == []


def test_only_negative_filters_let_nothing_through(sw, esl):
    assert esl.cmd("event plain CHANNEL_ANSWER CHANNEL_HANGUP BACKGROUND_JOB").reply.startswith("+OK")
    assert esl.cmd("filter Unique-ID -leg-a").reply == "+OK filter added. [Unique-ID]=[-leg-a]"
    _leg(sw, esl, "1001", "leg-a")
    _leg(sw, esl, "1002", "leg-b")
    esl.api("uuid_kill leg-a")
    esl.api("uuid_kill leg-b")
    wait_for(lambda: sw.channel("leg-b").hungup.is_set(), message="leg-b hung up")
    assert esl.cmd("filter delete all").reply == "+OK filter deleted. [all][]"
    job = esl.cmd("bgapi status").get("Job-UUID")
    esl.wait_event("BACKGROUND_JOB", Job_UUID=job)  # with no filter left, events flow again
    assert [f.event().get("Event-Name") for f in esl.events] == ["BACKGROUND_JOB"]


def test_regex_with_options(sw, esl):
    _listen(esl, "Unique-ID /^LEG-A$/i")
    _two_legs_hung_up(sw, esl)
    assert _names(esl, "leg-a") == ["CHANNEL_ANSWER", "CHANNEL_HANGUP"]
    assert _names(esl, "leg-b") == []


def test_regex_without_closing_delimiter_matches_nothing(sw, esl):
    _listen(esl, "Unique-ID /leg-a", "Unique-ID /leg-b/")
    _two_legs_hung_up(sw, esl)
    assert _names(esl, "leg-a") == []
    assert _names(esl, "leg-b") == ["CHANNEL_ANSWER", "CHANNEL_HANGUP"]


def test_body_filter_looks_at_the_event_body(sw, esl):
    assert esl.cmd("event plain BACKGROUND_JOB").reply.startswith("+OK")
    assert esl.cmd("filter _body /^-ERR/").reply == "+OK filter added. [_body]=[/^-ERR/]"
    ok = esl.cmd("bgapi status").get("Job-UUID")
    bad = esl.cmd("bgapi no_such_command").get("Job-UUID")
    esl.wait_event("BACKGROUND_JOB", Job_UUID=bad)
    assert [f.event().get("Job-UUID") for f in esl.events] == [bad]
    assert ok != bad


def test_background_job_is_filtered_like_any_event(sw, esl):
    assert esl.cmd("event plain BACKGROUND_JOB CHANNEL_ANSWER").reply.startswith("+OK")
    assert esl.cmd("filter Unique-ID leg-a").reply.startswith("+OK")
    lost = esl.cmd("bgapi status").get("Job-UUID")
    _leg(sw, esl, "1001", "leg-a")
    esl.wait_event("CHANNEL_ANSWER", Unique_ID="leg-a")
    assert esl.cmd("filter Event-Name BACKGROUND_JOB").reply.startswith("+OK")
    seen = esl.cmd("bgapi status").get("Job-UUID")
    esl.wait_event("BACKGROUND_JOB", Job_UUID=seen)
    jobs = [f.event().get("Job-UUID") for f in esl.events if f.event().get("Event-Name") == "BACKGROUND_JOB"]
    assert jobs == [seen] and lost != seen


def test_delete_by_header_name_in_any_case_and_without_value(sw, esl):
    _listen(esl, "Unique-ID leg-a", "Unique-ID leg-b", "Unique-ID leg-b")
    # the header in another case; the value exactly: both copies of leg-b go
    assert esl.cmd("filter delete unique-id leg-b").reply == "+OK filter deleted. [unique-id][leg-b]"
    _two_legs_hung_up(sw, esl)
    assert _names(esl, "leg-a") == ["CHANNEL_ANSWER", "CHANNEL_HANGUP"]
    assert _names(esl, "leg-b") == []


def test_delete_without_value_removes_every_filter_on_that_header(sw, esl):
    _listen(esl, "Unique-ID leg-a", "Unique-ID leg-b")
    assert esl.cmd("filter delete UNIQUE-ID").reply == "+OK filter deleted. [UNIQUE-ID][]"
    _two_legs_hung_up(sw, esl)
    assert _names(esl, "leg-a") == [] and _names(esl, "leg-b") == []


def test_add_without_value_adds_nothing(sw, esl):
    _listen(esl, "Unique-ID leg-a")
    assert esl.cmd("filter add Unique-ID").reply == "+OK filter added. [Unique-ID]=[(null)]"
    _two_legs_hung_up(sw, esl)
    assert _names(esl, "leg-a") == ["CHANNEL_ANSWER", "CHANNEL_HANGUP"]
    assert _names(esl, "leg-b") == []


def test_filter_lookup_of_lazy_events_equals_their_rendered_headers(sw, esl):
    """event_header() reads an unrendered event part by part: the same answer as the rendered list."""
    _leg(sw, esl, "1001", "leg-a", ",fsd_mark=m1,Mixed_Case=v")
    _leg(sw, esl, "1002", "leg-b")
    assert esl.api("uuid_bridge leg-a leg-b").startswith("+OK")
    wait_for(lambda: sw.channel("leg-a").get_var("bridge_to") == "leg-b", message="bridged")
    esl.api("uuid_kill leg-a")
    wait_for(lambda: sw.channel("leg-b").hungup.is_set(), message="hung up")
    esl.cmd("bgapi status")
    lazy = [e for e in list(sw.events) if e._headers is None]
    assert len(lazy) >= 10
    extra = ["event-name", "EVENT-SUBCLASS", "variable_FSD_MARK", "variable_mixed_case", "caller-unique-id",
             "OTHER-LEG-UNIQUE-ID", "unique-id", "job-uuid", "_body", "No-Such-Header", "variable_none"]
    checked = 0
    for ev in lazy:
        rendered = copy.copy(ev).headers  # a copy renders; the event itself stays lazy
        names = {k for k, _ in rendered} | {k.lower() for k, _ in rendered} | {k.upper() for k, _ in rendered}
        for name in sorted(names | set(extra)):
            want = next((v for k, v in rendered if k.lower() == name.lower()), None)
            if want is None and name == "_body":
                want = ev.body
            assert event_header(ev, name) == want, (ev, name)
            checked += 1
        assert ev._headers is None
    assert checked > 1000
