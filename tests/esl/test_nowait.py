"""Commands that do not wait for their reply, inline subscriptions and the inbound hub reader: what the call
driver uses so that no greenlet waits per ringing leg, per kill or per inbound event."""

from __future__ import annotations

import gevent
import gevent.event
import gevent.queue
import pytest

from fsd.errors import ESLDisconnected, ESLTimeout
from fsd.esl import CommandFailed
from fsd.esl.inbound import ESLNotConnected
from tests.esl.conftest import make_client
from tests.esl.fakes import background_job, plain_event, reply
from tests.helpers import wait_for


def channel_event(name: str, uuid: str) -> bytes:
    return plain_event([("Event-Name", name), ("Unique-ID", uuid)])


def test_the_inbound_client_reads_in_the_event_loop(fake, client):
    conn = client._conn
    assert conn.hub_reader and conn._watcher is not None and conn._reader is None
    assert client.api("status").body == "UP 0 years\n"


def test_api_nowait_calls_back_from_the_event_loop_with_the_result(fake, client):
    got = gevent.queue.Queue()
    answers = {"uuid_kill": "+OK killed\n", "uuid_exists": "-ERR No such channel!\n", "status": "UP 0 years\n"}
    fake.api_handler = lambda cmd, conn: answers[cmd.split()[0]]

    def callback(result):
        got.put((result, gevent.getcurrent() is gevent.get_hub()))

    client.api_nowait("uuid_kill leg-1 ORIGINATOR_CANCEL", callback)
    client.api_nowait("uuid_exists leg-2", callback)
    (first, in_loop1), (second, in_loop2) = got.get(timeout=5), got.get(timeout=5)
    assert first.ok and first.body == "+OK killed\n" and in_loop1
    assert not second.ok and second.error == "No such channel!" and in_loop2
    assert client.stats.command_errors == 1
    # replies stay in step with commands that wait
    assert client.api("status").body == "UP 0 years\n"


def test_api_nowait_reports_a_lost_link_and_refuses_without_one(fake, client):
    got = gevent.queue.Queue()
    fake.api_handler = lambda cmd, conn: None  # never answers
    client.api_nowait("uuid_kill leg-1", got.put)
    wait_for(lambda: fake.last.commands and fake.last.commands[-1].startswith("api uuid_kill"), 5)
    fake.drop()
    assert isinstance(got.get(timeout=5), ESLDisconnected)
    client.reconnect = False
    wait_for(lambda: not client.connected, 5)
    with pytest.raises(ESLNotConnected):
        client.api_nowait("uuid_kill leg-2", got.put)


def test_api_nowait_without_a_reply_in_time_calls_back_once_with_a_timeout(fake, client, caplog):
    """A switch that stops answering (its socket still open): the callback gets ESLTimeout after
    ``timeout``, counted as a command timeout; the reply that comes later is ignored, and the commands
    after it still get their own replies."""
    from tests.esl.fakes import api_response

    got = []
    fake.api_handler = lambda cmd, conn: None if cmd.startswith("uuid_kill") else "UP 0 years\n"
    client.api_nowait("uuid_kill leg-1 ORIGINATOR_CANCEL", got.append, timeout=0.2)
    wait_for(lambda: got, 5, message="timed out")
    assert isinstance(got[0], ESLTimeout) and client.stats.command_timeouts == 1
    assert any("esl_api_reply_late" in r.getMessage() for r in caplog.records)
    fake.last.send(api_response("+OK\n"))  # the late reply, in its place in the order
    assert client.api("status").body == "UP 0 years\n"
    assert len(got) == 1


def test_api_nowait_reply_in_time_stops_its_timer(fake, client):
    got = []
    client.api_nowait("uuid_kill leg-1", got.append, timeout=0.2)
    wait_for(lambda: got, 5, message="replied")
    assert got[0].ok
    # a second command that is never answered, sent after: its timeout fires after the first one's would have
    later = []
    fake.api_handler = lambda cmd, conn: None
    client.api_nowait("uuid_kill leg-2", later.append, timeout=0.2)
    wait_for(lambda: later, 5, message="the second one timed out")
    assert len(got) == 1 and client.stats.command_timeouts == 1


def test_bgapi_nowait_returns_at_once_and_the_job_completes_it(fake, client):
    fake.hold_bgapi_replies = True  # the reply itself is not awaited
    job = client.bgapi_nowait("originate {origination_uuid=leg-1}user/201 &park()", job_timeout=30)
    assert not job.ready() and client.pending_jobs() == 1
    job_uuid, cmd, _ = fake.jobs.get(timeout=5)
    assert job.job_uuid == job_uuid and cmd.startswith("originate")
    for c, data in fake.held_replies:
        c.send(data)
    fake.emit(background_job(job_uuid, "+OK leg-1\n", "originate"))
    assert job.get(timeout=5).body == "+OK leg-1\n"
    assert client.pending_jobs() == 0
    assert client.api("status").body == "UP 0 years\n"


def test_bgapi_nowait_late_reply_is_counted_and_the_job_kept(fake, caplog):
    client = make_client(fake, command_timeout=0.2)
    client.connect(timeout=5)
    try:
        fake.hold_bgapi_replies = True
        job = client.bgapi_nowait("originate user/201 &park()", job_timeout=30)
        job_uuid, _, _ = fake.jobs.get(timeout=5)
        wait_for(lambda: client.stats.command_timeouts == 1, 5, message="late reply counted")
        assert any("esl_bgapi_reply_late" in r.getMessage() for r in caplog.records)
        assert not job.ready() and client.pending_jobs() == 1
        for c, data in fake.held_replies:
            c.send(data)
        fake.emit(background_job(job_uuid, "+OK leg-1\n", "originate"))
        assert job.get(timeout=5).ok
        assert client.api("status").body == "UP 0 years\n"
    finally:
        client.stop()


def test_bgapi_nowait_err_reply_fails_the_job(fake, client):
    fake.hold_bgapi_replies = True
    job = client.bgapi_nowait("originate user/201 &park()", job_timeout=30)
    fake.jobs.get(timeout=5)
    conn, _ = fake.held_replies[0]
    conn.send(reply("-ERR invalid bgapi"))
    with pytest.raises(CommandFailed) as ei:
        job.get(timeout=5)
    assert ei.value.reply == "-ERR invalid bgapi"
    assert client.pending_jobs() == 0 and client.stats.command_errors == 1


def test_bgapi_nowait_job_timeout_and_lost_link(fake, client):
    expiring = client.bgapi_nowait("originate user/201 &park()", job_timeout=0.2)
    with pytest.raises(ESLTimeout):
        expiring.get(timeout=5)
    dropped = client.bgapi_nowait("originate user/202 &park()", job_timeout=30)
    fake.jobs.get(timeout=5)
    fake.jobs.get(timeout=5)
    fake.drop()
    with pytest.raises(ESLDisconnected):
        dropped.get(timeout=5)
    wait_for(lambda: client.pending_jobs() == 0, 5, message="jobs forgotten")


def test_a_job_that_ends_first_closes_its_expiry_timer(fake, client):
    job = client.bgapi_nowait("status", job_timeout=30)
    job_uuid, _, _ = fake.jobs.get(timeout=5)
    fake.emit(background_job(job_uuid, "UP\n"))
    job.get(timeout=5)
    # the expiry would fail nothing now, but the job's timer must not stay armed for 30 s
    wait_for(lambda: not _armed_timers_for(job), 5)


def _armed_timers_for(job) -> bool:
    import gc

    for obj in gc.get_referrers(job):
        if callable(obj) and getattr(obj, "__name__", "") == "expire":
            return True
    return False


def test_inline_subscription_runs_in_the_reader_in_order(fake, client):
    seen = []
    contexts = []

    def handler(ev):
        seen.append((ev.name, ev.uuid))
        contexts.append(gevent.getcurrent() is gevent.get_hub())

    sub = client.subscribe("*", handler, inline=True)
    for i in range(50):
        fake.emit(channel_event("CHANNEL_ANSWER", f"u{i}") + channel_event("CHANNEL_HANGUP", f"u{i}"))
    wait_for(lambda: len(seen) == 100, 5)
    assert seen == [(n, f"u{i}") for i in range(50) for n in ("CHANNEL_ANSWER", "CHANNEL_HANGUP")]
    assert all(contexts) and sub.delivered == 100 and sub.queue is None
    assert client.queue_depth() == 0
    sub.unsubscribe()
    fake.emit(channel_event("CHANNEL_ANSWER", "after"))
    client.api("status")  # the event came before this reply: it was read and not delivered
    assert len(seen) == 100


def test_an_inline_handler_that_fails_or_blocks_is_logged_and_the_next_event_delivered(fake, client, caplog):
    seen = []

    def handler(ev):
        if ev.uuid == "boom":
            raise RuntimeError("bug")
        if ev.uuid == "block":
            gevent.sleep(0.01)  # refused in the event loop
        seen.append(ev.uuid)

    client.subscribe("*", handler, inline=True)
    queued = []
    client.subscribe("CHANNEL_ANSWER", queued.append)  # a queued handler next to it still gets everything
    for u in ("boom", "block", "ok"):
        fake.emit(channel_event("CHANNEL_ANSWER", u))
    wait_for(lambda: seen == ["ok"] and len(queued) == 3, 5)
    assert client.stats.handler_errors == 2
    assert sum("esl_handler_failed" in r.getMessage() for r in caplog.records) == 2
