"""One-shot timers in the gevent event loop.

``call_later(seconds, fn)`` runs ``fn()`` from the event loop after ``seconds``, with no greenlet
(``gevent.spawn_later`` starts one per timer); ``.close()`` on what it returns cancels it, and closing twice
is harmless. fsd arms one per bgapi job, per reply deadline, per awaited application, per finished call with
stopped legs, and the event-loop lag monitor re-arms one twice a second. ``fn`` runs in the event loop: it
must not block.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent


def call_later(seconds: float, fn: Callable[[], object]):
    timer = gevent.get_hub().loop.timer(max(0.0, seconds))

    def fire() -> None:
        timer.close()
        fn()

    timer.start(fire)
    return timer
