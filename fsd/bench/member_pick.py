"""Benchmark: choosing the next member for a waiting caller with the Dispatcher.

Scenario: one department of 2,000 members (about half busy at any time), 1,000 callers waiting.
Each operation serves one caller: pick the next member (``evenly`` or ``in_order``, skipping a few
members that caller already tried) and reserve it; meanwhile a random busy member finishes a call
(``call_ended``), which reorders the ``evenly`` index. The goal (anchor) is p99 < 1 ms per pick.

Run: ``.venv/bin/python -m fsd.bench.member_pick``.
"""

from __future__ import annotations

import random
import time

from fsd.queue.strategy import Dispatcher

MEMBERS = 2000
CALLERS = 1000
ANCHOR_MS = 1.0


def _percentile(values, q):
    values = sorted(values)
    i = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[i]


def _measure(strategy: str, ops: int, seed: int) -> list[float]:
    rnd = random.Random(seed)
    d = Dispatcher()
    for e in range(MEMBERS):
        d.add_member(department_id="dept", employee_id=e, last_call_ended_at=rnd.random() * 1000)
    busy = set(rnd.sample(range(MEMBERS), MEMBERS // 2))
    for e in busy:
        d.set_free(e, False)
    tried = {c: set(rnd.sample(range(MEMBERS), 3)) for c in range(CALLERS)}
    last_pick = {c: None for c in range(CALLERS)}
    clock = 1000.0
    samples = []
    perf = time.perf_counter_ns
    for i in range(ops):
        caller = i % CALLERS
        t0 = perf()
        member = d.pick("dept", strategy=strategy, exclude=tried[caller], after=last_pick[caller])
        if member is not None:
            d.reserve(member)
        samples.append((perf() - t0) / 1e6)
        if member is not None:
            busy.add(member)
            tried[caller].add(member)
            last_pick[caller] = member
            if len(tried[caller]) > 8:
                tried[caller] = set(list(tried[caller])[-3:])
        # keep about half the department busy: one member finishes a call per pick
        clock += 0.01
        if busy:
            e = busy.pop()
            d.call_ended(e, clock)
    return samples


def run() -> list[dict]:
    """Rows {"figure","value","unit","anchor","ratio"}; ratio = value / anchor (< 1 is good)."""
    rows = []
    for strategy in ("evenly", "in_order"):
        _measure(strategy, 2000, 1)  # warm-up
        samples = _measure(strategy, 20000, 2)
        for q in (50, 99):
            value = _percentile(samples, q)
            rows.append(
                {
                    "figure": f"member_pick_{strategy}_p{q}_ms ({MEMBERS} members, {CALLERS} callers)",
                    "value": round(value, 4),
                    "unit": "ms",
                    "anchor": ANCHOR_MS,
                    "ratio": round(value / ANCHOR_MS, 4),
                }
            )
    return rows


if __name__ == "__main__":
    for row in run():
        print(f"{row['figure']}: {row['value']} {row['unit']} (anchor {row['anchor']} ms, ratio {row['ratio']})")
