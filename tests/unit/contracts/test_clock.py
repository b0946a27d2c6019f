"""Contract of the Clock port: every adapter must pass these tests.

Add an adapter by appending a zero-argument factory returning a clock to ``ADAPTERS``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notibot.adapters.system import SystemClock
from notibot.application.ports import Clock
from notibot.testing import FakeClock

ADAPTERS = [
    pytest.param(SystemClock, id="system"),
    pytest.param(FakeClock, id="fake"),
]


@pytest.fixture(params=ADAPTERS)
def clock(request: pytest.FixtureRequest) -> Clock:
    return request.param()


async def test_now_is_timezone_aware_utc(clock: Clock) -> None:
    now = await clock.now()

    assert isinstance(now, datetime)
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)


async def test_now_never_goes_backwards(clock: Clock) -> None:
    readings = [await clock.now() for _ in range(200)]

    assert readings == sorted(readings)


async def test_system_clock_tells_the_real_time() -> None:
    before = datetime.now(UTC)
    now = await SystemClock().now()

    assert before <= now <= datetime.now(UTC)


async def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(datetime(2030, 5, 1, 12, 0, tzinfo=UTC))

    assert await clock.now() == datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    assert await clock.now() == datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
    clock.advance(90.5)
    assert await clock.now() == datetime(2030, 5, 1, 12, 1, 30, 500000, tzinfo=UTC)
