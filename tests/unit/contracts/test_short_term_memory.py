"""Contract of the ShortTermMemory port: every adapter must pass these tests.

Add an adapter by appending a factory to ``ADAPTERS``: a callable
``factory(*, max_messages, ttl_seconds)`` returning an async context manager that yields a
:class:`Harness` on fresh state and cleans up on exit. ``Harness.elapse(seconds)`` makes that
much time pass for the adapter's expiry: the memory adapter's FakeClock is advanced; the Redis
adapter (tests/integration/test_short_term_redis.py, which reuses the test functions of this
module) shortens the TTL of its keys as that much time would have. No test here sleeps.

TTLs read back are compared with a tolerance of :data:`TTL_SLACK` seconds below the ideal
(real time passes between a write and a read on a real server), never above it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple

import pytest

from notibot.adapters.memory import MemoryShortTermMemory
from notibot.application.ports import ShortTermMemory, ShortTermStats
from notibot.domain import InvalidInput, Message, MessageRole
from notibot.testing import FakeClock

#: Seconds a TTL read back may be below the ideal (round trips, a busy machine).
TTL_SLACK = 2.0
#: Appends run at once by the concurrency tests. At most 100: one redis.asyncio client holds
#: at most 100 connections and refuses more (MaxConnectionsError) rather than waiting; see
#: test_more_concurrent_calls_than_the_pool_holds in tests/integration/test_short_term_redis.py.
CONCURRENT = 100

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
HANOI = timezone(timedelta(hours=7))
NEWFOUNDLAND = timezone(-timedelta(hours=3, minutes=30))


class Harness(NamedTuple):
    """One adapter under test and the way to make time pass for it."""

    memory: ShortTermMemory
    elapse: Callable[[float], Awaitable[None]]


Factory = Callable[..., AbstractAsyncContextManager[Harness]]
Make = Callable[..., Awaitable[Harness]]


@asynccontextmanager
async def memory_harness(*, max_messages: int = 50,
                         ttl_seconds: float = 1800) -> AsyncIterator[Harness]:
    clock = FakeClock()

    async def elapse(seconds: float) -> None:
        clock.advance(seconds)

    yield Harness(MemoryShortTermMemory(clock, max_messages=max_messages,
                                        ttl_seconds=ttl_seconds), elapse)


ADAPTERS = [pytest.param(memory_harness, id="memory")]


@pytest.fixture(params=ADAPTERS)
def factory(request: pytest.FixtureRequest) -> Factory:
    return request.param


@pytest.fixture
async def make(factory: Factory) -> AsyncIterator[Make]:
    """``await make(max_messages=..., ttl_seconds=...)``: a harness, closed after the test."""
    async with AsyncExitStack() as stack:
        async def build(*, max_messages: int = 50, ttl_seconds: float = 1800) -> Harness:
            return await stack.enter_async_context(
                factory(max_messages=max_messages, ttl_seconds=ttl_seconds))

        yield build


def msg(id: str, second: float = 0, *, role: MessageRole = MessageRole.CUSTOMER,
        content: str | None = None, metadata: dict[str, Any] | None = None,
        tz: timezone = UTC) -> Message:
    return Message(id=id, role=role, content=content or f"message {id}",
                   created_at=(T0 + timedelta(seconds=second)).astimezone(tz),
                   metadata=metadata or {})


def msgs(*ids: str) -> list[Message]:
    return [msg(i, n) for n, i in enumerate(ids)]


def ids_of(messages: list[Message]) -> list[str]:
    return [m.id for m in messages]


def assert_ttl(stats: ShortTermStats, ideal: float) -> None:
    assert stats.ttl_seconds is not None, "the window has no expiry"
    assert ideal - TTL_SLACK <= stats.ttl_seconds <= ideal, (
        f"ttl {stats.ttl_seconds} s, ideal {ideal} s")


# -- append / recent -------------------------------------------------------------------------


async def test_a_window_that_was_never_written_is_empty(make: Make) -> None:
    stm, _ = await make()

    assert await stm.recent("s1") == []
    assert await stm.stats("s1") == ShortTermStats(count=0, ttl_seconds=None)


async def test_append_keeps_messages_in_the_order_written(make: Make) -> None:
    stm, _ = await make()

    await stm.append("s1", msgs("m1", "m2"))
    await stm.append("s1", [msg("m3", 9)])
    await stm.append("s1", [msg("m4", 1)])  # an older time is not re-sorted: order written

    assert ids_of(await stm.recent("s1")) == ["m1", "m2", "m3", "m4"]
    assert (await stm.stats("s1")).count == 4


async def test_the_cap_keeps_the_newest_messages(make: Make) -> None:
    stm, _ = await make(max_messages=3)

    for name in ("m1", "m2", "m3", "m4"):
        await stm.append("s1", [msg(name)])
    assert ids_of(await stm.recent("s1")) == ["m2", "m3", "m4"]

    await stm.append("s1", msgs("m5", "m6", "m7", "m8", "m9"))  # more than the cap at once
    assert ids_of(await stm.recent("s1")) == ["m7", "m8", "m9"]
    assert (await stm.stats("s1")).count == 3


async def test_appending_nothing_changes_nothing(make: Make) -> None:
    stm, elapse = await make(ttl_seconds=60)

    await stm.append("s1", [])
    assert await stm.stats("s1") == ShortTermStats(count=0, ttl_seconds=None)

    await stm.append("s1", msgs("m1"))
    await elapse(40)
    await stm.append("s1", [])
    assert_ttl(await stm.stats("s1"), 20)  # not refreshed
    assert ids_of(await stm.recent("s1")) == ["m1"]


async def test_recent_returns_a_new_list_each_time(make: Make) -> None:
    stm, _ = await make()
    await stm.append("s1", msgs("m1"))

    first = await stm.recent("s1")
    first.append(msg("intruder"))
    first.clear()

    assert ids_of(await stm.recent("s1")) == ["m1"]


# -- expiry ----------------------------------------------------------------------------------


async def test_a_write_sets_the_ttl(make: Make) -> None:
    stm, _ = await make(ttl_seconds=60)

    await stm.append("s1", msgs("m1", "m2"))

    stats = await stm.stats("s1")
    assert stats.count == 2
    assert_ttl(stats, 60)


async def test_each_write_refreshes_the_ttl(make: Make) -> None:
    stm, elapse = await make(ttl_seconds=60)

    await stm.append("s1", [msg("m1")])
    await elapse(40)
    assert_ttl(await stm.stats("s1"), 20)
    await stm.append("s1", [msg("m2")])
    assert_ttl(await stm.stats("s1"), 60)
    await elapse(40)  # 80 s after the first write, 40 s after the last

    assert ids_of(await stm.recent("s1")) == ["m1", "m2"]
    assert_ttl(await stm.stats("s1"), 20)


async def test_an_expired_window_is_empty(make: Make) -> None:
    stm, elapse = await make(ttl_seconds=60)
    await stm.append("s1", msgs("m1", "m2"))

    await elapse(61)

    assert await stm.recent("s1") == []
    assert await stm.stats("s1") == ShortTermStats(count=0, ttl_seconds=None)


async def test_appending_to_an_expired_window_starts_a_new_one(make: Make) -> None:
    stm, elapse = await make(ttl_seconds=60)
    await stm.append("s1", msgs("m1", "m2"))
    await elapse(61)

    await stm.append("s1", [msg("m3")])

    assert ids_of(await stm.recent("s1")) == ["m3"]
    assert_ttl(await stm.stats("s1"), 60)


# -- replace / delete ------------------------------------------------------------------------


async def test_replace_keeps_the_newest_max_messages_with_a_fresh_ttl(make: Make) -> None:
    stm, elapse = await make(max_messages=3, ttl_seconds=60)
    await stm.append("s1", msgs("old1", "old2"))
    await elapse(50)

    await stm.replace("s1", msgs("m1", "m2", "m3", "m4", "m5"))

    assert ids_of(await stm.recent("s1")) == ["m3", "m4", "m5"]
    stats = await stm.stats("s1")
    assert stats.count == 3
    assert_ttl(stats, 60)


async def test_replace_refills_an_expired_window(make: Make) -> None:
    stm, elapse = await make(ttl_seconds=60)
    await stm.append("s1", msgs("m1"))
    await elapse(61)

    await stm.replace("s1", msgs("t1", "t2"))
    await elapse(30)

    assert ids_of(await stm.recent("s1")) == ["t1", "t2"]
    assert_ttl(await stm.stats("s1"), 30)


async def test_replace_with_nothing_deletes_the_window(make: Make) -> None:
    stm, _ = await make()
    await stm.append("s1", msgs("m1", "m2"))

    await stm.replace("s1", [])
    assert await stm.recent("s1") == []
    assert await stm.stats("s1") == ShortTermStats(count=0, ttl_seconds=None)

    await stm.replace("never-written", [])
    assert await stm.stats("never-written") == ShortTermStats(count=0, ttl_seconds=None)


async def test_delete_forgets_the_window_and_is_idempotent(make: Make) -> None:
    stm, _ = await make()
    await stm.append("s1", msgs("m1"))
    await stm.append("s2", msgs("x1"))

    await stm.delete("s1")
    await stm.delete("s1")
    await stm.delete("never-written")

    assert await stm.recent("s1") == []
    assert await stm.stats("s1") == ShortTermStats(count=0, ttl_seconds=None)
    assert ids_of(await stm.recent("s2")) == ["x1"]


# -- what comes back -------------------------------------------------------------------------


async def test_messages_come_back_equal(make: Make) -> None:
    stm, _ = await make()
    written = [
        msg("m1", 1.5, content="Xin chào, tôi cần hỗ trợ 🙏\nDòng hai", tz=HANOI),
        msg("m2", 2.000123, role=MessageRole.ASSISTANT,
            metadata={"model": "gemini-2.5-flash", "tokens": {"in": 12, "out": 40},
                      "latency_ms": 812.5, "cached": False, "trace": None,
                      "steps": [1, "two", {"three": [3.0, True, None]}], "$odd.key": "ok"}),
        msg("m3", 3, role=MessageRole.NOTIFICATION, tz=NEWFOUNDLAND,
            metadata={"delivery_id": "d1", "campaign": "Tết", "subject": "Ưu đãi"}),
        msg("m4", 4, role=MessageRole.OPERATOR, content='quotes " and \\ backslash', tz=UTC),
    ]

    await stm.append("s1", written[:2])
    await stm.append("s1", written[2:])
    back = await stm.recent("s1")

    assert back == written
    assert [m.created_at.utcoffset() for m in back] == [m.created_at.utcoffset()
                                                        for m in written]
    assert [type(m.role) for m in back] == [MessageRole] * 4
    assert back[0].created_at == T0 + timedelta(seconds=1.5)  # same instant, other offset


async def test_replaced_messages_come_back_equal(make: Make) -> None:
    stm, _ = await make()
    written = [msg("m1", 1, tz=HANOI, metadata={"a": [{"b": {"c": 1}}]}),
               msg("m2", 2, role=MessageRole.ASSISTANT, tz=NEWFOUNDLAND)]

    await stm.replace("s1", written)

    back = await stm.recent("s1")
    assert back == written
    assert [m.created_at.utcoffset() for m in back] == [timedelta(hours=7),
                                                        -timedelta(hours=3, minutes=30)]


async def test_text_with_a_lone_surrogate_comes_back_equal(make: Make) -> None:
    # JSON bodies may carry "\ud83d" alone; json.loads turns it into a Python str.
    stm, _ = await make()
    written = [msg("m1", content="broken emoji \ud83d here", metadata={"k": "\udc00"})]

    await stm.append("s1", written)

    assert await stm.recent("s1") == written


@pytest.mark.parametrize("metadata", [
    {"when": T0},
    {"pair": (1, 2)},
    {1: "integer key"},
    {"ratio": float("nan")},
    {"ids": {"a", "b"}},
], ids=["datetime", "tuple", "int-key", "nan", "set"])
async def test_metadata_that_is_not_plain_json_is_refused(make: Make,
                                                          metadata: dict[Any, Any]) -> None:
    stm, _ = await make()
    await stm.append("s1", msgs("m1"))

    for write in (stm.append, stm.replace):
        with pytest.raises(InvalidInput) as caught:
            await write("s1", [msg("ok", 5), msg("bad", 6, metadata=metadata)])
        assert caught.value.code == "invalid_metadata"

    assert ids_of(await stm.recent("s1")) == ["m1"]  # nothing written


async def test_windows_of_two_conversations_are_independent(make: Make) -> None:
    stm, elapse = await make(max_messages=3, ttl_seconds=60)

    await stm.append("s1", msgs("a1", "a2", "a3", "a4"))
    await elapse(30)
    await stm.append("s2", msgs("b1"))

    assert ids_of(await stm.recent("s1")) == ["a2", "a3", "a4"]
    assert ids_of(await stm.recent("s2")) == ["b1"]
    assert_ttl(await stm.stats("s1"), 30)
    assert_ttl(await stm.stats("s2"), 60)

    await elapse(31)  # s1 expires, s2 has 29 s left
    assert await stm.recent("s1") == []
    assert ids_of(await stm.recent("s2")) == ["b1"]

    await stm.delete("s2")
    await stm.replace("s1", msgs("c1"))
    assert await stm.recent("s2") == []
    assert ids_of(await stm.recent("s1")) == ["c1"]


# -- concurrency -----------------------------------------------------------------------------


async def test_concurrent_appends_lose_nothing_below_the_cap(make: Make) -> None:
    stm, _ = await make(max_messages=1000, ttl_seconds=60)

    await asyncio.gather(*(stm.append("s1", [msg(f"m{n}", n)]) for n in range(CONCURRENT)))

    back = await stm.recent("s1")
    assert sorted(ids_of(back)) == sorted(f"m{n}" for n in range(CONCURRENT))
    stats = await stm.stats("s1")
    assert stats.count == CONCURRENT
    assert_ttl(stats, 60)


async def test_concurrent_appends_keep_each_batch_together_and_in_order(make: Make) -> None:
    stm, _ = await make(max_messages=1000)

    await asyncio.gather(*(stm.append("s1", [msg(f"b{b}-{i}", i) for i in range(3)])
                           for b in range(50)))

    back = ids_of(await stm.recent("s1"))
    assert len(back) == 150
    batches = [back[i:i + 3] for i in range(0, 150, 3)]
    assert all(batch == [f"{batch[0][:-2]}-{i}" for i in range(3)] for batch in batches)
    assert sorted(batch[0] for batch in batches) == sorted(f"b{b}-0" for b in range(50))


async def test_concurrent_appends_above_the_cap_keep_exactly_the_cap(make: Make) -> None:
    stm, _ = await make(max_messages=10, ttl_seconds=60)

    await asyncio.gather(*(stm.append("s1", [msg(f"m{n}", n)]) for n in range(CONCURRENT)))

    stats = await stm.stats("s1")
    assert stats.count == 10
    assert_ttl(stats, 60)
    assert len(set(ids_of(await stm.recent("s1")))) == 10


# -- the memory adapter only -----------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{"max_messages": 0}, {"ttl_seconds": 0},
                                    {"ttl_seconds": -1}])
def test_memory_adapter_refuses_a_bad_configuration(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MemoryShortTermMemory(FakeClock(), **kwargs)


async def test_memory_adapter_keeps_its_own_copies_and_hands_out_read_only_ones(
        clock: FakeClock) -> None:
    stm = MemoryShortTermMemory(clock)
    written = msg("m1", metadata={"tags": ["a"]})
    await stm.append("s1", [written])

    written.metadata["tags"].append("changed after writing")
    read = (await stm.recent("s1"))[0]
    with pytest.raises(TypeError):
        read.metadata["tags"].append("changed after reading")
    with pytest.raises(TypeError):
        read.metadata["new"] = 1
    (await stm.recent("s1")).clear()  # the list is the caller's

    [again] = await stm.recent("s1")
    assert again.metadata == {"tags": ["a"]}
    assert json.loads(json.dumps(again.metadata)) == {"tags": ["a"]}  # still JSON
    changeable = copy.deepcopy(again.metadata)
    changeable["tags"].append("b")  # a deep copy is a plain, changeable dict
    assert changeable == {"tags": ["a", "b"]} and again.metadata == {"tags": ["a"]}


async def test_memory_adapter_expires_exactly_at_the_ttl(clock: FakeClock) -> None:
    stm = MemoryShortTermMemory(clock, ttl_seconds=60)
    await stm.append("s1", msgs("m1"))

    clock.advance(59.999)
    assert (await stm.stats("s1")).count == 1
    clock.advance(0.001)
    assert await stm.stats("s1") == ShortTermStats(count=0, ttl_seconds=None)


def test_memory_adapter_appends_from_many_threads_lose_nothing(clock: FakeClock) -> None:
    stm = MemoryShortTermMemory(clock, max_messages=10_000)

    def worker(t: int) -> None:
        async def run() -> None:
            for n in range(200):
                await stm.append("s1", [msg(f"t{t}-{n}", n)])

        asyncio.run(run())

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    back = asyncio.run(stm.recent("s1"))
    assert len(back) == 1600
    assert len(set(ids_of(back))) == 1600
