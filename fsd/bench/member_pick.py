"""Benchmark: choosing the next member for a waiting caller: the live ring planner and the Dispatcher.

Live path (what a call runs): ``fsd.queue.strategy.next_actions`` for a caller whose current member
was just taken by another call (MemberChanged busy=True), in a department of 2,000 members about half
busy, 1,000 callers waiting (each with its own ring state); between picks members finish calls (their
last-call time changes, which reorders ``evenly``).

Scenario: one department of 2,000 members (about half busy at any time), 1,000 callers waiting.
Each operation serves one caller: pick the next member (``evenly`` or ``in_order``, skipping a few
members that caller already tried) and reserve it; meanwhile a random busy member finishes a call
(``call_ended``), which reorders the ``evenly`` index. The goal (anchor) is p99 < 1 ms per pick.

Run: ``.venv/bin/python -m fsd.bench.member_pick``.
"""

from __future__ import annotations

import random
import time

from fsd.queue.strategy import DepartmentPolicy, Dispatcher, Member, MemberChanged, next_actions, start_ring

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


def _measure_live(strategy: str, ops: int, seed: int) -> list[float]:
    rnd = random.Random(seed)
    members = {e: Member(employee_id=e, busy=rnd.random() < 0.5, last_call_ended_at=rnd.random() * 1000)
               for e in range(MEMBERS)}
    policy = DepartmentPolicy(strategy=strategy, step_delay_s=15.0, ring_timeout_s=3600.0)
    states = [start_ring(list(members.values()), policy, 0.0)[0] for _ in range(CALLERS)]
    clock = 1000.0
    samples = []
    perf = time.perf_counter_ns
    for i in range(ops):
        c = i % CALLERS
        st = states[c]
        taken = st.current
        if taken is not None:
            members[taken] = Member(employee_id=taken, busy=True, last_call_ended_at=members[taken].last_call_ended_at)
        ev = [MemberChanged(member=members[taken])] if taken is not None else []
        t0 = perf()
        states[c], _ = next_actions(st, 1.0 + i * 1e-4, ev)
        samples.append((perf() - t0) / 1e6)
        # a busy member finishes a call: free again, idle from now (every caller hears of it)
        clock += 0.01
        e = rnd.randrange(MEMBERS)
        if members[e].busy:
            members[e] = Member(employee_id=e, busy=False, last_call_ended_at=clock)
            states[c], _ = next_actions(states[c], 1.0 + i * 1e-4, [MemberChanged(member=members[e])])
    return samples


def run() -> list[dict]:
    """Rows {"figure","value","unit","anchor","ratio"}; ratio = value / anchor (< 1 is good)."""
    rows = []
    for strategy in ("evenly", "in_order"):
        _measure_live(strategy, 500, 3)  # warm-up
        samples = _measure_live(strategy, 5000, 4)
        for q in (50, 99):
            value = _percentile(samples, q)
            rows.append({"figure": f"live ring planner, {strategy}: next member after the current one was taken, "
                                   f"p{q} ({MEMBERS} members, {CALLERS} callers waiting)",
                         "value": round(value, 4), "unit": "ms", "anchor": ANCHOR_MS,
                         "ratio": round(value / ANCHOR_MS, 4), "goal": "p99 < 1 ms" if q == 99 else None})
    for strategy in ("evenly", "in_order"):
        _measure(strategy, 2000, 1)  # warm-up
        samples = _measure(strategy, 20000, 2)
        for q in (50, 99):
            value = _percentile(samples, q)
            rows.append(
                {
                    "figure": f"Dispatcher index, {strategy}: pick + reserve, p{q} "
                              f"({MEMBERS} members, {CALLERS} callers)",
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
