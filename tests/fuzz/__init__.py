"""Fuzzing: hypothesis runs over the parsers that take bytes from outside (ESL frames, xml_curl forms, the
config loader). A bounded run is part of `make test`; `make fuzz` sets FSD_FUZZ_EXAMPLES=20000 for a long one.

The property is always the same: nothing escapes but the documented error type, and nothing hangs
(hypothesis' per-example deadline fails an example that takes too long)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings


def examples(default: int) -> int:
    """max_examples: FSD_FUZZ_EXAMPLES when set (the long `make fuzz` run), else the bounded default."""
    value = os.environ.get("FSD_FUZZ_EXAMPLES", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


def fuzz_settings(default: int, *, deadline_ms: int = 2000):
    """Hypothesis settings for a fuzz test: bounded by default, long under `make fuzz`; a slow example
    (over deadline_ms, i.e. a near-hang) fails the test."""
    return settings(max_examples=examples(default), deadline=deadline_ms, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
