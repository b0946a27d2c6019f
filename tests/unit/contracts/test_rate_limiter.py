"""Contract of the RateLimiter port: every adapter must pass these tests.

Add an adapter by appending a factory to ``ADAPTERS``: a callable ``factory(rate, burst=1)``
returning an async context manager that yields a limiter holding ``rate`` events per second
(None, 0 or negative: unlimited) on fresh state. The Redis limiter runs the same contract in
tests/integration/test_rate_limiter_redis.py, which subclasses :class:`RateLimiterContract`.

The tests measure real time on the monotonic clock. A limiter must never be faster than its
rate (tight lower bounds) and should not be much slower (loose upper bounds, for busy CI
machines). With ``burst=1``, ``n`` events at ``r`` per second take ``(n - 1) / r`` seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from notibot.adapters.ratelimit import MemoryRateLimiter, gcra_rate
from notibot.application.ports import RateLimiter

#: Seconds a limiter may take beyond the ideal time (scheduling, Redis round trips).
SLACK = 0.35
#: Seconds a limiter may come early (clock granularity: pyrate counts whole milliseconds).
EARLY = 0.02

MakeLimiter = Callable[..., Awaitable[RateLimiter]]


async def timed(*calls: Awaitable[None]) -> float:
    """Seconds to run ``calls`` concurrently."""
    started = time.monotonic()
    await asyncio.gather(*calls)
    return time.monotonic() - started


def assert_about(elapsed: float, ideal: float) -> None:
    assert ideal - EARLY <= elapsed <= ideal + SLACK, f"took {elapsed:.3f} s, ideal {ideal:.3f}"


class RateLimiterContract:
    """The tests every RateLimiter adapter must pass; a subclass provides the ``factory``
    fixture (a param of ``ADAPTERS``)."""

    @pytest.fixture
    async def make_limiter(self, factory: Callable[..., object]) -> AsyncIterator[MakeLimiter]:
        async with AsyncExitStack() as stack:
            async def make(rate: float | None, *, burst: int = 1) -> RateLimiter:
                return await stack.enter_async_context(factory(rate, burst=burst))

            yield make

    @pytest.mark.parametrize("rate", [None, 0, -3])
    async def test_no_rate_means_no_waiting(self, make_limiter: MakeLimiter,
                                            rate: float | None) -> None:
        limiter = await make_limiter(rate)

        elapsed = await timed(*(limiter.acquire("email") for _ in range(500)))

        assert elapsed < 0.5

    async def test_sequential_events_are_spaced_by_the_rate(
            self, make_limiter: MakeLimiter) -> None:
        limiter = await make_limiter(20)
        stamps = []

        for _ in range(8):
            await limiter.acquire("email")
            stamps.append(time.monotonic())

        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert min(gaps) >= 0.05 - EARLY / 4
        assert_about(stamps[-1] - stamps[0], 7 / 20)

    async def test_concurrent_waiters_share_the_rate(self, make_limiter: MakeLimiter) -> None:
        limiter = await make_limiter(25)

        elapsed = await timed(*(limiter.acquire("email") for _ in range(16)))

        assert_about(elapsed, 15 / 25)

    async def test_waiting_never_fails(self, make_limiter: MakeLimiter) -> None:
        limiter = await make_limiter(50)

        results = await asyncio.gather(*(limiter.acquire("email") for _ in range(20)),
                                       return_exceptions=True)

        assert results == [None] * 20

    async def test_keys_have_separate_rates(self, make_limiter: MakeLimiter) -> None:
        limiter = await make_limiter(10)

        elapsed = await timed(*(limiter.acquire(key) for key in ["a", "b", "c"] * 5))

        assert_about(elapsed, 4 / 10)

    async def test_a_fractional_rate_is_held(self, make_limiter: MakeLimiter) -> None:
        limiter = await make_limiter(4.5)

        elapsed = await timed(*(limiter.acquire("email") for _ in range(4)))

        assert_about(elapsed, 3 / 4.5)

    async def test_burst_events_go_at_once_then_the_rate_holds(
            self, make_limiter: MakeLimiter) -> None:
        limiter = await make_limiter(10, burst=4)

        first = await timed(*(limiter.acquire("email") for _ in range(4)))
        rest = await timed(*(limiter.acquire("email") for _ in range(3)))

        assert first < 0.05
        assert_about(rest, 3 / 10)

    async def test_after_a_quiet_spell_the_next_event_goes_at_once(
            self, make_limiter: MakeLimiter) -> None:
        limiter = await make_limiter(10)
        await limiter.acquire("email")
        await asyncio.sleep(0.15)

        assert await timed(limiter.acquire("email")) < 0.03

    async def test_a_cancelled_waiter_uses_up_nothing(self, make_limiter: MakeLimiter) -> None:
        limiter = await make_limiter(4)
        await limiter.acquire("email")  # the next is allowed 0.25 s later
        waiter = asyncio.create_task(limiter.acquire("email"))
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

        elapsed = await timed(limiter.acquire("email"))

        assert_about(elapsed, 0.2)  # the slot the cancelled waiter wanted, not the one after


# -- the in-memory adapter --------------------------------------------------------------------


@asynccontextmanager
async def memory_limiter(rate: float | None, *, burst: int = 1) -> AsyncIterator[RateLimiter]:
    yield MemoryRateLimiter(rate, burst=burst)


ADAPTERS = [pytest.param(memory_limiter, id="memory")]


class TestRateLimiterContract(RateLimiterContract):
    @pytest.fixture(params=ADAPTERS)
    def factory(self, request: pytest.FixtureRequest) -> Callable[..., object]:
        return request.param


def test_two_event_loops_in_two_threads_hold_one_rate_together() -> None:
    limiter = MemoryRateLimiter(20)
    barrier = threading.Barrier(2)

    def worker() -> None:
        async def run() -> None:
            barrier.wait()
            for _ in range(6):
                await limiter.acquire("email")
        asyncio.run(run())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert_about(time.monotonic() - started, 11 / 20)


def test_building_a_limiter_does_nothing_until_used() -> None:
    limiter = MemoryRateLimiter(5)

    assert limiter.rate_per_second == 5
    assert "5/s" in repr(limiter)
    assert MemoryRateLimiter(0).rate_per_second is None


@pytest.mark.parametrize(("rate", "burst"), [(2_000_000, 1), (10, 0)])
def test_impossible_settings_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        MemoryRateLimiter(rate, burst=burst)


def test_the_rate_is_exact_to_the_microsecond() -> None:
    rate = gcra_rate(3)  # 333,334 us between events: never faster than 3/s

    assert rate.interval * 1000 / rate.limit == 333_334
