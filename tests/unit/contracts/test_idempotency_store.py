"""Contract of the IdempotencyStore port: every adapter must pass these tests.

Add an adapter by appending a factory to ``ADAPTERS``: a zero-argument callable returning an
async context manager that yields an empty store and cleans up on exit.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from mongo_support import mongo_adapters

from notibot.adapters.memory import MemoryIdempotencyStore
from notibot.adapters.mongo import MongoIdempotencyStore
from notibot.application.ports import IdempotencyStore


@asynccontextmanager
async def memory_store() -> AsyncIterator[IdempotencyStore]:
    yield MemoryIdempotencyStore()


ADAPTERS = [pytest.param(memory_store, id="memory"), *mongo_adapters(MongoIdempotencyStore)]


@pytest.fixture(params=ADAPTERS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[IdempotencyStore]:
    async with request.param() as adapter:
        yield adapter


async def test_the_first_claim_stores_and_returns_its_own_value(store: IdempotencyStore) -> None:
    assert await store.claim("send:u1", "key-1", "fp-a", "job-1") == ("job-1", "fp-a")


async def test_a_repeated_claim_returns_what_the_first_stored(store: IdempotencyStore) -> None:
    await store.claim("send:u1", "key-1", "fp-a", "job-1")

    again = await store.claim("send:u1", "key-1", "fp-a", "job-2")
    other_request = await store.claim("send:u1", "key-1", "fp-b", "job-3")

    assert again == ("job-1", "fp-a")
    assert other_request == ("job-1", "fp-a")  # the caller compares fingerprints


async def test_scopes_and_keys_are_independent(store: IdempotencyStore) -> None:
    await store.claim("send:u1", "key-1", "fp-a", "job-1")

    assert await store.claim("send:u2", "key-1", "fp-b", "job-2") == ("job-2", "fp-b")
    assert await store.claim("send:u1", "key-2", "fp-c", "job-3") == ("job-3", "fp-c")
    assert await store.claim("send:u1", "key-1", "fp-x", "job-x") == ("job-1", "fp-a")


async def test_separators_inside_scope_or_key_never_collide(store: IdempotencyStore) -> None:
    pairs = [("a:b", "c"), ("a", "b:c"), ("a%3Ab", "c"), ("a:", "b"), ("a", ":b"), ("", "a:b")]

    results = [await store.claim(scope, key, f"fp{i}", f"v{i}")
               for i, (scope, key) in enumerate(pairs)]

    assert results == [(f"v{i}", f"fp{i}") for i in range(len(pairs))]


async def test_any_text_can_be_a_key(store: IdempotencyStore) -> None:
    key = "ключ $weird.key % 🙂 " + "x" * 200

    assert await store.claim("send", key, "fp", "v1") == ("v1", "fp")
    assert await store.claim("send", key, "fp2", "v2") == ("v1", "fp")


async def test_concurrent_claims_of_one_key_all_get_the_one_winner(
    store: IdempotencyStore,
) -> None:
    results = await asyncio.gather(
        *(store.claim("send:u1", "key-1", f"fp{i}", f"job-{i}") for i in range(20)))

    assert len(set(results)) == 1
    value, fingerprint = results[0]
    assert fingerprint == f"fp{value.removeprefix('job-')}"
    assert await store.claim("send:u1", "key-1", "late", "job-late") == results[0]


def test_threads_claiming_one_key_all_get_the_one_winner_in_memory() -> None:
    store = MemoryIdempotencyStore()
    threads = 16
    barrier = threading.Barrier(threads)
    results: list[tuple[str, str] | None] = [None] * threads

    def claim(i: int) -> None:
        barrier.wait()
        results[i] = asyncio.run(store.claim("send", "k", f"fp{i}", f"v{i}"))

    workers = [threading.Thread(target=claim, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)

    assert None not in results
    assert len(set(results)) == 1
