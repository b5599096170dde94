"""Phone(talk_after_bridge=N): a person who talks N seconds once connected (not N seconds after answering)."""

from __future__ import annotations

import pytest

from fsd.sim import Answer, Phone, Switch
from tests.helpers import wait_for
from tests.sim._client import login

FAST = 0.02


@pytest.fixture
def sw():
    s = Switch(time_scale=FAST, heartbeat_interval=0).start()
    yield s
    s.stop()


def test_talk_time_counts_from_the_bridge_and_an_unbridged_leg_stays_up(sw):
    sw.add_phone(Phone("1001", behaviour=Answer(after=0.5), talk_after_bridge=2))
    sw.add_phone(Phone("1002", behaviour=Answer(after=0.5)))
    esl = login("127.0.0.1", sw.esl_port)
    try:
        a = sw.channel(esl.api("originate user/1001@127.0.0.1 &park()").split()[1])
        b = sw.channel(esl.api("originate user/1002@127.0.0.1 &park()").split()[1])
        assert a.answered.is_set() and b.answered.is_set()
        sw.clock.sleep(5)  # answered long ago, never bridged: still up
        assert not a.hungup.is_set()
        assert esl.api(f"uuid_bridge {a.uuid} {b.uuid}").startswith("+OK")
        wait_for(lambda: a.hungup.is_set(), timeout=10, message="a hangs up after talking")
        talked = (a.times["Channel-Hangup-Time"] - a.times["Channel-Bridged-Time"]) / 1e6
        assert 2.0 <= talked < 6.0, talked
        assert a.hangup_cause == "NORMAL_CLEARING"
    finally:
        esl.close()

