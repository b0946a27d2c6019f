"""RedisRateLimiter against a real Redis: the RateLimiter contract, and one rate held by
several limiters (as several worker processes would hold it) through one Redis key.

Needs Redis (``redis_url`` fixture: skipped on a laptop without one, failed on CI). Each test
uses a key prefix of its own, so runs never see each other's state.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType

import pytest
import redis as redis_sync

from notibot.adapters.ratelimit import RedisRateLimiter
from notibot.adapters.redis import RedisConnection
from notibot.application.ports import RateLimiter
from notibot.domain import ServiceUnavailable

pytestmark = pytest.mark.integration


def _contract() -> ModuleType:
    """The RateLimiter contract module of the unit tests (a test module, not a package)."""
    path = Path(__file__).resolve().parents[1] / "unit" / "contracts" / "test_rate_limiter.py"
    spec = importlib.util.spec_from_file_location("notibot_rate_limiter_contract", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


contract = _contract()
assert_about = contract.assert_about


def new_prefix() -> str:
    return f"notibot-test:ratelimit:{uuid.uuid4().hex}"


class TestRedisRateLimiterContract(contract.RateLimiterContract):
    @pytest.fixture
    def factory(self, redis_url: str) -> Callable[..., object]:
        @asynccontextmanager
        async def redis_limiter(rate: float | None, *,
                                burst: int = 1) -> AsyncIterator[RateLimiter]:
            limiter = RedisRateLimiter(redis_url, rate, key_prefix=new_prefix(), burst=burst)
            try:
                yield limiter
            finally:
                await limiter.aclose()

        return redis_limiter


@pytest.fixture
async def connections(redis_url: str) -> AsyncIterator[list[RedisConnection]]:
    """Two separate Redis connections (two clients, as two processes have)."""
    made = [RedisConnection(redis_url), RedisConnection(redis_url)]
    try:
        yield made
    finally:
        for connection in made:
            await connection.aclose()


async def test_two_limiters_sharing_a_key_hold_one_rate(
        connections: list[RedisConnection]) -> None:
    prefix = new_prefix()
    first = RedisRateLimiter(connections[0], 20, key_prefix=prefix)
    second = RedisRateLimiter(connections[1], 20, key_prefix=prefix)
    started = time.monotonic()

    await asyncio.gather(*(first.acquire("email") for _ in range(10)),
                         *(second.acquire("email") for _ in range(10)))

    assert_about(time.monotonic() - started, 19 / 20)


async def test_limiters_with_different_prefixes_do_not_share(
        connections: list[RedisConnection]) -> None:
    first = RedisRateLimiter(connections[0], 10, key_prefix=new_prefix())
    second = RedisRateLimiter(connections[1], 10, key_prefix=new_prefix())
    started = time.monotonic()

    await asyncio.gather(*(first.acquire("email") for _ in range(5)),
                         *(second.acquire("email") for _ in range(5)))

    assert_about(time.monotonic() - started, 4 / 10)


def test_limiters_in_separate_threads_and_loops_hold_one_rate(redis_url: str) -> None:
    """Each thread runs its own event loop with its own client, as a worker process does."""
    prefix = new_prefix()
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def worker() -> None:
        async def run() -> None:
            limiter = RedisRateLimiter(redis_url, 30, key_prefix=prefix)
            try:
                await limiter.acquire("warm-up")  # connect before the clock starts
                barrier.wait()
                for _ in range(6):
                    await limiter.acquire("email")
            finally:
                await limiter.aclose()
        try:
            asyncio.run(run())
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    for thread in threads:
        thread.join()

    assert errors == []
    assert_about(time.monotonic() - started, 17 / 30)


async def test_the_state_is_one_small_hash_that_expires(redis_url: str) -> None:
    prefix = new_prefix()
    limiter = RedisRateLimiter(redis_url, 10, key_prefix=prefix, burst=2)
    try:
        for _ in range(3):
            await limiter.acquire("email")
    finally:
        await limiter.aclose()

    client = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = client.keys(f"{prefix}:*")
        assert keys == [f"{prefix}:email"]
        assert client.type(keys[0]) == "hash"
        assert 0 < client.pttl(keys[0]) <= 2 * 2 / 10 * 1000  # 2 x burst / rate, in ms
    finally:
        client.close()


async def test_an_unlimited_limiter_never_asks_redis(free_port: int) -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port}/0", None)

    await limiter.acquire("email")  # no Redis listens there: nothing was asked

    await limiter.aclose()


async def test_redis_down_raises_service_unavailable(free_port: int) -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port}/0", 10)
    try:
        with pytest.raises(ServiceUnavailable) as raised:
            await limiter.acquire("email")
    finally:
        await limiter.aclose()

    assert raised.value.code == "redis_unavailable"


async def test_a_shared_connection_is_not_closed_by_the_limiter(
        connections: list[RedisConnection]) -> None:
    limiter = RedisRateLimiter(connections[0], 100, key_prefix=new_prefix())
    await limiter.acquire("email")

    await limiter.aclose()

    assert await connections[0].client().ping() is True
