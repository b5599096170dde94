"""clock.spawn / spawn_later: functions run by pooled greenlets (reused once their function returned), with
gevent's scheduling, cancellation and kill."""

from __future__ import annotations

import gevent
import gevent.event
from greenlet import GreenletExit, getcurrent

from fsd.sim import clock


def test_functions_run_in_spawn_order_and_parked_greenlets_are_reused():
    ran = []
    for i in range(5):
        clock.spawn(lambda i=i: ran.append((i, getcurrent())))
    assert ran == []  # from the next turn of the event loop, like gevent.spawn
    gevent.sleep(0)
    assert [i for i, _ in ran] == [0, 1, 2, 3, 4]
    first = {id(g) for _, g in ran}
    ran.clear()
    for i in range(5):
        clock.spawn(lambda i=i: ran.append((i, getcurrent())))
    gevent.sleep(0)
    assert [i for i, _ in ran] == [0, 1, 2, 3, 4]
    assert {id(g) for _, g in ran} <= first  # no new greenlet


def test_a_blocking_function_keeps_its_greenlet_and_others_run_meanwhile():
    gate = gevent.event.Event()
    order = []

    def slow():
        order.append("slow start")
        gate.wait()
        order.append("slow end")

    t = clock.spawn(slow)
    clock.spawn(order.append, "other")
    gevent.sleep(0.01)
    assert order == ["slow start", "other"] and not t.dead
    gate.set()
    gevent.sleep(0.01)
    assert order[-1] == "slow end" and t.dead


def test_spawn_later_runs_after_its_delay_and_can_be_cancelled():
    ran = []
    clock.spawn_later(0.05, ran.append, "late")
    clock.spawn_later(0.01, ran.append, "early")
    cancelled = clock.spawn_later(0.02, ran.append, "cancelled")
    cancelled.kill()
    assert cancelled.dead
    gevent.sleep(0.1)
    assert ran == ["early", "late"]


def test_kill_before_start_cancels_and_kill_while_running_raises_in_it():
    ran = []
    t = clock.spawn(ran.append, "never")
    t.kill()
    gevent.sleep(0)
    assert ran == [] and t.dead

    got = []
    gate = gevent.event.Event()

    def waits():
        try:
            gate.wait()
        except GreenletExit:
            got.append("killed")
            raise

    t = clock.spawn(waits)
    gevent.sleep(0)
    t.kill(block=False)
    gevent.sleep(0.01)
    assert got == ["killed"] and t.dead
    # the pool still works
    clock.spawn(ran.append, "after")
    gevent.sleep(0)
    assert ran == ["after"]


def test_a_failing_function_is_reported_and_the_pool_goes_on(capsys):
    def boom():
        raise ValueError("boom")

    hub = gevent.get_hub()
    errors = []
    orig = hub.handle_error
    hub.handle_error = lambda context, *info: errors.append(info[0])
    try:
        t = clock.spawn(boom)
        gevent.sleep(0)
    finally:
        hub.handle_error = orig
    assert errors == [ValueError] and t.dead
    ran = []
    clock.spawn(ran.append, 1)
    gevent.sleep(0)
    assert ran == [1]
