"""The event-loop lag monitor: one loop timer, observed into a histogram; a blocked loop shows as lag."""

from __future__ import annotations

import pytest
from gevent.monkey import get_original
from prometheus_client import CollectorRegistry

from fsd.metrics import Metrics
from fsd.metrics.looplag import LoopLagMonitor
from tests.helpers import wait_for


def test_a_blocked_loop_is_measured_as_lag():
    m = Metrics(registry=CollectorRegistry())
    mon = LoopLagMonitor(histogram=m.loop_lag, interval_s=0.05)
    mon.start()
    try:
        wait_for(lambda: m.registry.get_sample_value("fsd_event_loop_lag_seconds_count") >= 1, timeout=5,
                 message="first tick")
        before = m.registry.get_sample_value("fsd_event_loop_lag_seconds_count")
        get_original("time", "sleep")(0.3)  # the stimulus: blocks the event loop itself (not a gevent sleep)
        wait_for(lambda: m.registry.get_sample_value("fsd_event_loop_lag_seconds_count") > before, timeout=5,
                 message="tick after the block")
        assert mon.last_lag_s >= 0.2  # the timer was due 0.05 s in and ran after the 0.3 s block
        assert m.registry.get_sample_value("fsd_event_loop_lag_seconds_bucket", {"le": "0.1"}) == before
    finally:
        mon.stop()
    assert mon._timer is None


def test_start_twice_keeps_one_timer_and_stop_is_idempotent():
    m = Metrics(registry=CollectorRegistry())
    mon = LoopLagMonitor(histogram=m.loop_lag, interval_s=0.05)
    mon.start()
    timer = mon._timer
    mon.start()
    assert mon._timer is timer
    mon.stop()
    mon.stop()
    assert mon._timer is None


def test_interval_must_be_positive():
    with pytest.raises(ValueError, match="interval_s"):
        LoopLagMonitor(histogram=None, interval_s=0)
