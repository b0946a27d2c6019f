"""RedisShortTermMemory against a real Redis: the ShortTermMemory contract, real expiry, and
writers on separate clients (as the API server and workers are).

Needs Redis (``redis_url`` fixture: skipped on a laptop without one, failed on CI). Each test
uses a key prefix of its own and deletes its keys afterwards.

The contract's test functions (tests/unit/contracts/test_short_term_memory.py) run here
unchanged with a Redis factory: their ``elapse(seconds)`` shortens the PTTL of the test's keys
by that much (deleting the keys whose time would be up), which is what that much time does to
a Redis key. Real expiry is checked separately below, with real sleeping and loose bounds.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import inspect
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from redis.asyncio import Redis

from notibot.adapters.redis import RedisConnection, RedisShortTermMemory
from notibot.application.ports import ShortTermStats
from notibot.domain import MessageRole, ServiceUnavailable

pytestmark = pytest.mark.integration


def _contract() -> ModuleType:
    """The ShortTermMemory contract module of the unit tests (a test module, not a package)."""
    path = (Path(__file__).resolve().parents[1] / "unit" / "contracts"
            / "test_short_term_memory.py")
    spec = importlib.util.spec_from_file_location("notibot_short_term_memory_contract", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


contract = _contract()
Harness = contract.Harness
msg = contract.msg
msgs = contract.msgs
ids_of = contract.ids_of

# The contract: every test function of the module that runs on a factory (takes ``make``);
# the memory-only tests there build their adapter themselves and are not taken.
make = contract.make
for _name, _test in vars(contract).items():
    if _name.startswith("test_") and "make" in inspect.signature(_test).parameters:
        globals()[_name] = _test


def new_prefix() -> str:
    return f"notibot-test:stm:{uuid.uuid4().hex}:"


async def _keys(client: Redis, prefix: str) -> list[str]:
    return [key async for key in client.scan_iter(match=f"{prefix}*")]


async def _shorten_ttls(client: Redis, prefix: str, seconds: float) -> None:
    """Do to the keys under ``prefix`` what ``seconds`` of time would do to their expiry."""
    elapsed_ms = round(seconds * 1000)
    for key in await _keys(client, prefix):
        left = await client.pttl(key)
        if left < 0:
            continue  # gone meanwhile (-2) or no expiry at all (-1): a bug the tests will see
        if left <= elapsed_ms:
            await client.delete(key)
        else:
            await client.pexpire(key, left - elapsed_ms)


@asynccontextmanager
async def redis_harness(redis_url: str, *, max_messages: int = 50,
                        ttl_seconds: float = 1800) -> AsyncIterator[Any]:
    connection = RedisConnection(redis_url)
    prefix = new_prefix()
    memory = RedisShortTermMemory(connection, max_messages=max_messages,
                                  ttl_seconds=ttl_seconds, key_prefix=prefix)

    async def elapse(seconds: float) -> None:
        await _shorten_ttls(connection.client(), prefix, seconds)

    try:
        yield Harness(memory, elapse)
    finally:
        client = connection.client()
        keys = await _keys(client, prefix)
        if keys:
            await client.delete(*keys)
        await connection.aclose()


@pytest.fixture
def factory(redis_url: str) -> Callable[..., Any]:
    return functools.partial(redis_harness, redis_url)


@pytest.fixture
async def connections(redis_url: str) -> AsyncIterator[Callable[[], RedisConnection]]:
    """``connections()``: a new RedisConnection (its own client), closed after the test."""
    opened: list[RedisConnection] = []

    def open_one() -> RedisConnection:
        opened.append(RedisConnection(redis_url))
        return opened[-1]

    yield open_one
    for connection in opened:
        await connection.aclose()


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test; its keys are deleted afterwards."""
    value = new_prefix()
    yield value
    connection = RedisConnection(redis_url)
    try:
        client = connection.client()
        keys = await _keys(client, value)
        if keys:
            await client.delete(*keys)
    finally:
        await connection.aclose()


# -- real time -------------------------------------------------------------------------------


async def test_a_window_really_expires(connections: Callable[[], RedisConnection],
                                       prefix: str) -> None:
    stm = RedisShortTermMemory(connections(), ttl_seconds=0.3, key_prefix=prefix)
    await stm.append("s1", msgs("m1", "m2"))

    stats = await stm.stats("s1")
    assert stats.count == 2
    assert stats.ttl_seconds is not None and 0 < stats.ttl_seconds <= 0.3

    await asyncio.sleep(0.5)

    assert await stm.recent("s1") == []
    assert await stm.stats("s1") == ShortTermStats(count=0, ttl_seconds=None)


async def test_stats_reports_the_ttl_left_in_seconds(
        connections: Callable[[], RedisConnection], prefix: str) -> None:
    stm = RedisShortTermMemory(connections(), ttl_seconds=120, key_prefix=prefix)
    await stm.append("s1", msgs("m1"))
    await asyncio.sleep(0.2)

    ttl = (await stm.stats("s1")).ttl_seconds

    assert ttl is not None and 0 < ttl <= 120
    assert ttl <= 119.9  # time passed (ms precision), yet not much more than it
    assert ttl > 110


async def test_a_write_keeps_a_window_alive_past_its_first_ttl(
        connections: Callable[[], RedisConnection], prefix: str) -> None:
    stm = RedisShortTermMemory(connections(), ttl_seconds=0.6, key_prefix=prefix)
    await stm.append("s1", msgs("m1"))
    await asyncio.sleep(0.4)
    await stm.append("s1", [msg("m2", 1)])
    await asyncio.sleep(0.4)  # 0.8 s after the first write, 0.4 s after the last

    assert ids_of(await stm.recent("s1")) == ["m1", "m2"]


# -- separate clients ------------------------------------------------------------------------


@pytest.mark.parametrize(("cap", "expected"), [(1000, 200), (50, 50)])
async def test_concurrent_appends_from_two_clients(
        connections: Callable[[], RedisConnection], prefix: str, cap: int,
        expected: int) -> None:
    writers = [RedisShortTermMemory(connections(), max_messages=cap, ttl_seconds=60,
                                    key_prefix=prefix) for _ in range(2)]

    await asyncio.gather(*(writer.append("s1", [msg(f"w{w}-{n}", n)])
                           for n in range(100) for w, writer in enumerate(writers)))

    reader = RedisShortTermMemory(connections(), max_messages=cap, key_prefix=prefix)
    back = ids_of(await reader.recent("s1"))
    assert len(back) == len(set(back)) == expected
    if cap >= 200:
        assert set(back) == {f"w{w}-{n}" for w in range(2) for n in range(100)}
    stats = await reader.stats("s1")
    assert stats.count == expected
    assert stats.ttl_seconds is not None and 50 < stats.ttl_seconds <= 60


async def test_more_concurrent_calls_than_the_pool_holds(
        connections: Callable[[], RedisConnection], prefix: str) -> None:
    """The client's pool is blocking: commands beyond its connections wait for one."""
    stm = RedisShortTermMemory(connections(), max_messages=1000, key_prefix=prefix)

    await asyncio.gather(*(stm.append("s1", [msg(f"m{n}", n)]) for n in range(250)))

    assert (await stm.stats("s1")).count == 250


async def test_a_window_never_exists_without_expiry(
        connections: Callable[[], RedisConnection], prefix: str) -> None:
    writers = [RedisShortTermMemory(connections(), max_messages=20, ttl_seconds=60,
                                    key_prefix=prefix) for _ in range(2)]
    watcher = connections().client()
    key = writers[0].redis_key("s1")
    seen: list[int] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            seen.append(await watcher.pttl(key))

    async def write(writer: RedisShortTermMemory, w: int) -> None:
        for n in range(150):
            if n % 10 == 9:
                await writer.replace("s1", msgs(f"r{w}-{n}a", f"r{w}-{n}b"))
            elif n % 25 == 24:
                await writer.delete("s1")
            else:
                await writer.append("s1", [msg(f"w{w}-{n}", n)])

    watching = asyncio.create_task(watch())
    try:
        await asyncio.gather(*(write(writer, w) for w, writer in enumerate(writers)))
    finally:
        done.set()
        await watching

    assert len(seen) > 10
    assert -1 not in seen, "a window existed without expiry"
    assert all(ms == -2 or 0 < ms <= 60_000 for ms in seen)
    final = await watcher.pttl(key)
    assert final == -2 or 0 < final <= 60_000


async def test_two_adapters_on_one_prefix_share_windows(
        connections: Callable[[], RedisConnection], prefix: str) -> None:
    server = RedisShortTermMemory(connections(), key_prefix=prefix)
    worker = RedisShortTermMemory(connections(), key_prefix=prefix)

    await server.append("s1", msgs("m1"))
    await worker.append("s1", [msg("m2", 1)])

    assert ids_of(await server.recent("s1")) == ["m1", "m2"]
    await worker.delete("s1")
    assert await server.recent("s1") == []


# -- storage format and errors ---------------------------------------------------------------


async def test_each_message_is_one_json_document_in_a_list(
        connections: Callable[[], RedisConnection], prefix: str) -> None:
    connection = connections()
    stm = RedisShortTermMemory(connection, key_prefix=prefix)
    written = msg("m1", 1.25, role=MessageRole.ASSISTANT, tz=contract.HANOI,
                  content="Chào bạn", metadata={"tokens": {"in": 3}, "tags": ["a", None]})

    await stm.append("s1", [written])

    client = connection.client()
    assert stm.redis_key("s1") == f"{prefix}s1"
    assert await client.type(stm.redis_key("s1")) == "list"
    [raw] = await client.lrange(stm.redis_key("s1"), 0, -1)
    assert json.loads(raw) == {"id": "m1", "role": "assistant", "content": "Chào bạn",
                               "created_at": "2026-01-01T16:00:01.250000+07:00",
                               "metadata": {"tokens": {"in": 3}, "tags": ["a", None]}}


async def test_an_unreachable_redis_is_service_unavailable(free_port: int) -> None:
    connection = RedisConnection(f"redis://127.0.0.1:{free_port}/0", connect_timeout=0.5,
                                 socket_timeout=0.5)
    stm = RedisShortTermMemory(connection)
    try:
        calls = [lambda: stm.append("s1", msgs("m1")), lambda: stm.recent("s1"),
                 lambda: stm.replace("s1", msgs("m1")), lambda: stm.delete("s1"),
                 lambda: stm.stats("s1")]
        for call in calls:
            with pytest.raises(ServiceUnavailable) as caught:
                await call()
            assert caught.value.code == "redis_unavailable"
    finally:
        await connection.aclose()


async def test_a_key_of_another_type_is_a_redis_error(
        connections: Callable[[], RedisConnection], prefix: str) -> None:
    connection = connections()
    stm = RedisShortTermMemory(connection, key_prefix=prefix)
    await connection.client().set(stm.redis_key("s1"), "not a list")

    for call in (lambda: stm.append("s1", msgs("m1")), lambda: stm.recent("s1")):
        with pytest.raises(ServiceUnavailable) as caught:
            await call()
        assert caught.value.code == "redis_error"


async def test_an_element_that_is_not_a_message_is_a_redis_error(
        connections: Callable[[], RedisConnection], prefix: str) -> None:
    connection = connections()
    stm = RedisShortTermMemory(connection, key_prefix=prefix)
    await connection.client().rpush(stm.redis_key("s1"), "{not json")

    with pytest.raises(ServiceUnavailable) as caught:
        await stm.recent("s1")
    assert caught.value.code == "redis_error"


@pytest.mark.parametrize("kwargs", [{"max_messages": 0}, {"ttl_seconds": 0},
                                    {"ttl_seconds": -1}])
def test_a_bad_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RedisShortTermMemory(RedisConnection("redis://127.0.0.1:6379/0"), **kwargs)
