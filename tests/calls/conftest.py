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
