"""Injectable clock for the emulator.

`Clock(time_scale=0.01)` makes simulated time run 100x faster than real time: `clock.sleep(20)` returns
after 0.2 real seconds. All Event-Date-* headers, channel timestamps, HEARTBEAT intervals and scripted
endpoint delays use *simulated* time: an event fired 20 simulated seconds after start shows an
Event-Date-Timestamp 20 s later than the start, even though only 0.2 s of wall time passed.
"""

from __future__ import annotations

import sys
import time
import weakref

import gevent
from greenlet import GreenletExit
from greenlet import greenlet as _RawGreenlet


class Clock:
    """Simulated time = `start` + real elapsed time / time_scale."""

    def __init__(self, *, time_scale: float = 1.0, start: float | None = None):
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.time_scale = time_scale
        self._real0 = time.monotonic()
        self._sim0 = time.time() if start is None else start

    def now(self) -> float:
        """Simulated wall-clock time in seconds since the epoch."""
        return self._sim0 + (time.monotonic() - self._real0) / self.time_scale

    def now_us(self) -> int:
        return int(self.now() * 1_000_000)

    def real(self, sim_seconds: float) -> float:
        """Real seconds that `sim_seconds` of simulated time take."""
        return max(0.0, sim_seconds * self.time_scale)

    def sleep(self, sim_seconds: float) -> None:
        gevent.sleep(self.real(sim_seconds))


class Greenlet(gevent.Greenlet):
    """gevent's Greenlet without the spawning stack: gevent copies up to 10 frames of the spawner's stack
    for every greenlet (debugging aid), a good part of the cost of a spawn. The emulator spawns a few
    greenlets per call."""

    spawning_stack_limit = 0




# ---------------------------------------------------------------------------------------------- pooled greenlets
# The emulator starts several short-lived greenlets per call (a channel's session, a connection's reader, an
# endpoint's behaviour, timers, a bgapi job). A new greenlet's first Python frame costs a fresh 16 KB data stack
# (an mmap and an munmap: ~20 us with the page faults, more than the work of most of these greenlets). spawn and
# spawn_later hand the function to a parked greenlet of a pool instead; a greenlet whose function returned parks
# itself for the next one. Scheduling is gevent's: the function starts from an event-loop callback (spawn) or
# timer (spawn_later), as a new Greenlet's would.

_MAX_IDLE = 4096


class Task:
    """A function run by a pooled greenlet: what spawn / spawn_later return (kill(), dead)."""

    __slots__ = ("fn", "args", "state", "worker", "timer")

    def __init__(self, fn, args):
        self.fn = fn
        self.args = args
        self.state = 0  # 0 scheduled, 1 running, 2 returned, failed, killed or cancelled
        self.worker = None
        self.timer = None

    @property
    def dead(self) -> bool:
        return self.state == 2

    def kill(self, exception=GreenletExit, block: bool = False) -> None:
        """Cancel the function if it has not started; if it runs, raise `exception` in it (from the event
        loop, as Greenlet.kill(block=False) does). `block` is accepted for Greenlet's signature only."""
        if self.state == 0:
            self.state = 2
            if self.timer is not None:
                self.timer.close()
                self.timer = None
        elif self.state == 1:
            gevent.get_hub().loop.run_callback(_throw_if_running, self, exception)


def _throw_if_running(task: Task, exception) -> None:
    w = task.worker
    if task.state == 1 and w is not None and w.task is task:
        w.throw(exception)


class _Worker(_RawGreenlet):
    """A pooled greenlet: runs the Task it is switched to, then parks in its hub's idle list."""

    __slots__ = ("task",)

    def __init__(self, hub):
        _RawGreenlet.__init__(self, parent=hub)
        self.task = None

    def run(self, task: Task) -> None:
        hub = self.parent
        idle = _idle(hub)
        while True:
            if task.state == 0:  # not cancelled meanwhile
                task.state = 1
                task.worker = self
                self.task = task
                try:
                    task.fn(*task.args)
                except GreenletExit:
                    return  # killed: this greenlet ends with it
                except BaseException:
                    hub.handle_error(self, *sys.exc_info())  # reported as gevent reports a failed greenlet
                    return
                finally:
                    task.state = 2
                    task.fn = task.args = task.worker = self.task = None
            if len(idle) >= _MAX_IDLE:
                return
            idle.append(self)
            task = hub.switch()  # parked until spawn / spawn_later switch to it with the next task


_idle_hub = None
_idle_list: list = []
_IDLE_BY_HUB: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _idle(hub) -> list:
    global _idle_hub, _idle_list
    if hub is _idle_hub:
        return _idle_list
    idle = _IDLE_BY_HUB.get(hub)
    if idle is None:
        idle = _IDLE_BY_HUB[hub] = []
    _idle_hub, _idle_list = hub, idle
    return idle


def _worker_for(hub) -> _Worker:
    idle = _idle(hub)
    return idle.pop() if idle else _Worker(hub)


def spawn(fn, *args) -> Task:
    """Run fn(*args) in a pooled greenlet from the next turn of the event loop."""
    task = Task(fn, args)
    hub = gevent.get_hub()
    hub.loop.run_callback(_worker_for(hub).switch, task)
    return task


def spawn_later(seconds: float, fn, *args) -> Task:
    """Run fn(*args) in a pooled greenlet `seconds` (real) from now."""
    task = Task(fn, args)
    timer = task.timer = gevent.get_hub().loop.timer(max(0.0, seconds))
    timer.start(_fire, task)
    return task


def _fire(task: Task) -> None:
    """The timer of spawn_later, in the event loop."""
    timer, task.timer = task.timer, None
    if timer is not None:
        timer.close()
    if task.state == 0:
        hub = gevent.get_hub()
        _worker_for(hub).switch(task)
