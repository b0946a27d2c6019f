"""Fixtures shared by every test suite: a controllable clock and readable ids."""

from __future__ import annotations

import pytest

from notibot.testing import FakeClock, SequentialIdGenerator


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when told (starts 2026-01-01 09:00 UTC)."""
    return FakeClock()


@pytest.fixture
def ids() -> SequentialIdGenerator:
    """Ids ``id1``, ``id2``, ... in order."""
    return SequentialIdGenerator()
