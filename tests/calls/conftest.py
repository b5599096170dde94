"""Fixtures shared by the call tests."""

from __future__ import annotations

import pytest

from tests.calls.harness import Node, tmpdir


@pytest.fixture
def node(pool):
    """fsd's call driver and the emulator it drives (callback worker on); a module may define its own."""
    n = Node(pool=pool, storage_dir=tmpdir(), hostname="simA", node="n1")
    yield n
    n.stop()


@pytest.fixture
def slow_node(pool):
    """As ``node``, at a fifth of its speed (1 simulated second = 100 ms): for the tests that assert slot
    timing to half a simulated second, which at the usual 20 ms per second is 10 ms of real time - less than
    a loaded 2-core host's scheduling jitter."""
    n = Node(pool=pool, storage_dir=tmpdir(), hostname="simA", node="n1", scale=0.1)
    yield n
    n.stop()
