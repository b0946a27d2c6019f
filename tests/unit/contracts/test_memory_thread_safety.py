"""The in-memory repositories are shared by threads (a worker thread beside the server loop):
each write is atomic under its ``threading.Lock``.

Each thread runs its own event loop, as a Dramatiq worker thread would.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from notibot.adapters.memory import (
    MemoryCustomerRepository,
    MemoryJobRepository,
    MemoryUserRepository,
)
from notibot.application.ports import CustomerFilter, JobFilter
from notibot.domain import Conflict, Customer, Job, JobStatus, Role, User

T0 = datetime(2026, 1, 1, tzinfo=UTC)
THREADS = 32


def race(work: Callable[[int], Coroutine[Any, Any, Any]]) -> list[Any]:
    """Run ``work(i)`` in THREADS threads released at once; return results or exceptions."""
    barrier = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS

    def target(i: int) -> None:
        barrier.wait()
        try:
            results[i] = asyncio.run(work(i))
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=target, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


async def test_one_of_many_threads_adding_customers_with_a_shared_email_wins() -> None:
    repo = MemoryCustomerRepository()

    async def add(i: int) -> str:
        await repo.add(Customer.create(id=f"c{i}", now=T0, full_name=f"C{i}",
                                       email="shared@example.org", phone=f"+849123450{i:02d}"))
        return f"c{i}"

    results = race(add)

    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if not isinstance(r, str))
    page = await repo.list(CustomerFilter(), limit=100, offset=0)
    assert [c.id for c in page.items] == winners
    # the losers left no phone behind in the index
    for i in range(THREADS):
        found = await repo.find_by_phone(f"+849123450{i:02d}")
        assert (found is not None) == (f"c{i}" in winners)


async def test_threads_adding_distinct_customers_all_succeed() -> None:
    repo = MemoryCustomerRepository()

    async def add(i: int) -> None:
        for n in range(20):
            await repo.add(Customer.create(id=f"c{i}-{n}", now=T0, full_name="C",
                                           email=f"c{i}-{n}@example.org"))

    assert race(add) == [None] * THREADS
    assert (await repo.list(CustomerFilter(), limit=1, offset=0)).total == THREADS * 20


async def test_one_of_many_threads_registering_a_username_wins() -> None:
    repo = MemoryUserRepository()

    async def add(i: int) -> None:
        await repo.add(User(id=f"u{i}", username="Alice" if i % 2 else "alice",
                            password_hash="h", role=Role.OPERATOR, created_at=T0))

    results = race(add)

    assert results.count(None) == 1
    assert (await repo.list(limit=100, offset=0)).total == 1


async def test_one_of_many_threads_starting_a_queued_job_wins_the_compare_and_set() -> None:
    repo = MemoryJobRepository()
    await repo.add(Job(id="j1", kind="test", created_at=T0))

    async def start(i: int) -> bool:
        job = await repo.get("j1")
        job.start(T0)
        job.created_by = f"worker-{i}"
        return await repo.update(job, expected_status=JobStatus.QUEUED)

    results = race(start)

    assert results.count(True) == 1
    stored = await repo.get("j1")
    assert stored.status is JobStatus.RUNNING
    assert stored.created_by == f"worker-{results.index(True)}"
    assert (await repo.list(JobFilter(), limit=10, offset=0)).total == 1
