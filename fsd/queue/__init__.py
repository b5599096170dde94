"""Pure department call-distribution logic (no I/O, no clock reads, no gevent).

- :mod:`fsd.queue.strategy` — ring strategies as a state machine (``start_ring``, ``next_actions``,
  ``next_deadline``, ``plan_ring``) and the O(log n) ``Dispatcher`` of free members.
- :mod:`fsd.queue.waiting` — per-department FIFO of waiting callers, impatient offer, ``Timers``.
- :mod:`fsd.queue.callback` — callback request state machine and ``due_callbacks``.
- :mod:`fsd.queue.noanswer` — no-answer actions with the transfer loop guard.
"""
