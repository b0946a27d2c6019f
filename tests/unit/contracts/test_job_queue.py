"""Contract of the JobQueue port, with the real JobRunner as executor.

Add an adapter by appending a factory to ``ADAPTERS``: a callable ``(executor, concurrency)``
returning an async context manager that yields a started queue and closes it on exit. The
tests only use the port (``enqueue``, ``close``) and observe the jobs in a thread-safe
in-memory JobRepository, with handlers synchronised by ``threading.Event`` so a queue whose
workers run in other threads or event loops passes too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from dramatiq import Worker

from notibot.adapters.dramatiq import STUB_URL, DramatiqJobQueue, ExecutorRuntime, configure_broker
from notibot.adapters.memory import InlineJobQueue, MemoryJobRepository
from notibot.application.ports import JobExecutor, JobQueue
from notibot.application.services import JobContext, JobRunner
from notibot.domain import Job, JobStatus, ServiceUnavailable
from notibot.testing import FakeClock


@asynccontextmanager
async def inline_queue(executor: JobExecutor, concurrency: int) -> AsyncIterator[JobQueue]:
    queue = InlineJobQueue(executor, concurrency=concurrency)
    try:
        yield queue
    finally:
        await queue.close()


@asynccontextmanager
async def dramatiq_queue(executor: JobExecutor, concurrency: int) -> AsyncIterator[JobQueue]:
    """A DramatiqJobQueue over a StubBroker, plus an in-process Worker with ``concurrency``
    threads running ``executor`` on the worker's event loop. On exit the worker shuts down
    first (interrupting running jobs, as a worker process does when stopped), then the queue
    closes."""
    broker = configure_broker(STUB_URL, runtime=ExecutorRuntime(executor), min_backoff=5,
                              max_backoff=20)
    worker = Worker(broker, worker_threads=concurrency, worker_timeout=50)
    await asyncio.to_thread(worker.start)
    queue = DramatiqJobQueue(broker)
    try:
        yield queue
    finally:
        await asyncio.to_thread(worker.stop)
        await queue.close()


ADAPTERS = [pytest.param(inline_queue, id="inline"), pytest.param(dramatiq_queue, id="dramatiq")]

WAIT_SECONDS = 5.0


async def until(event: threading.Event) -> None:
    """Wait for ``event`` without blocking the event loop."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not event.is_set():
        assert time.monotonic() < deadline, "timed out waiting for an event"
        await asyncio.sleep(0.002)


class Harness:
    """A job repository, a runner over ``handlers`` and the queue factory under test."""

    def __init__(self, factory: Any) -> None:
        self.jobs = MemoryJobRepository()
        self.handlers: dict[str, Any] = {}
        self.runner = JobRunner(self.jobs, FakeClock(), self.handlers, heartbeat_interval=0.01)
        self.ran: list[str] = []  # job ids whose handler started, in order
        self._factory = factory
        self._count = 0

    def queue(self, concurrency: int = 4) -> AbstractAsyncContextManager[JobQueue]:
        return self._factory(self.runner.run, concurrency)

    async def store(self, kind: str) -> Job:
        self._count += 1
        job = Job(id=f"job{self._count}", kind=kind,
                  created_at=datetime(2026, 1, 1, tzinfo=UTC))
        await self.jobs.add(job)
        return job

    async def submit(self, queue: JobQueue, kind: str) -> Job:
        job = await self.store(kind)
        await queue.enqueue(job)
        return job

    async def wait_for(self, job_id: str, status: JobStatus) -> Job:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            job = await self.jobs.get(job_id)
            if job.status is status:
                return job
            assert time.monotonic() < deadline, f"{job_id} is {job.status}, not {status}"
            await asyncio.sleep(0.002)

    def handler(self, gate: threading.Event | None = None,
                started: threading.Event | None = None) -> Any:
        """A handler recording its job id, signalling ``started`` and then waiting for
        ``gate`` (checking cancellation while it waits)."""

        async def handle(ctx: JobContext) -> dict[str, Any]:
            self.ran.append(ctx.job.id)
            if started is not None:
                started.set()
            if gate is not None:
                await until(gate)
            await ctx.report(total=1, processed=1)
            return {"job": ctx.job.id}

        return handle


@pytest.fixture(params=ADAPTERS)
def harness(request: pytest.FixtureRequest) -> Harness:
    return Harness(request.param)


async def test_an_enqueued_job_runs_to_success(harness: Harness) -> None:
    harness.handlers["work"] = harness.handler()

    async with harness.queue() as queue:
        job = await harness.submit(queue, "work")
        done = await harness.wait_for(job.id, JobStatus.SUCCEEDED)

    assert done.result == {"job": job.id}
    assert done.progress == 1.0
    assert harness.ran == [job.id]


async def test_every_enqueued_job_runs_once(harness: Harness) -> None:
    harness.handlers["work"] = harness.handler()

    async with harness.queue(concurrency=3) as queue:
        jobs = [await harness.submit(queue, "work") for _ in range(10)]
        for job in jobs:
            await harness.wait_for(job.id, JobStatus.SUCCEEDED)

    assert sorted(harness.ran) == sorted(j.id for j in jobs)


async def test_a_job_cancelled_while_queued_never_starts(harness: Harness) -> None:
    gate, started = threading.Event(), threading.Event()
    harness.handlers["work"] = harness.handler(gate, started)

    async with harness.queue(concurrency=1) as queue:
        blocker = await harness.submit(queue, "work")
        await until(started)
        waiting = await harness.submit(queue, "work")
        cancelled = await harness.jobs.get(waiting.id)
        cancelled.cancel(datetime(2026, 1, 1, 1, tzinfo=UTC))
        assert await harness.jobs.update(cancelled, expected_status=JobStatus.QUEUED)
        sentinel = await harness.submit(queue, "work")
        gate.set()
        await harness.wait_for(blocker.id, JobStatus.SUCCEEDED)
        await harness.wait_for(sentinel.id, JobStatus.SUCCEEDED)

    assert harness.ran == [blocker.id, sentinel.id]
    stored = await harness.jobs.get(waiting.id)
    assert stored.status is JobStatus.CANCELLED
    assert stored.started_at is None
    assert stored.attempts == 0


async def test_a_message_for_a_job_cancelled_before_enqueue_is_harmless(
    harness: Harness,
) -> None:
    harness.handlers["work"] = harness.handler()

    async with harness.queue(concurrency=1) as queue:
        job = await harness.store("work")
        job.cancel(datetime(2026, 1, 1, 1, tzinfo=UTC))
        await harness.jobs.update(job)
        await queue.enqueue(job)
        sentinel = await harness.submit(queue, "work")
        await harness.wait_for(sentinel.id, JobStatus.SUCCEEDED)

    assert harness.ran == [sentinel.id]
    assert (await harness.jobs.get(job.id)).status is JobStatus.CANCELLED


async def test_close_interrupts_running_jobs_and_the_runner_marks_them_failed(
    harness: Harness,
) -> None:
    started = threading.Event()
    harness.handlers["work"] = harness.handler(threading.Event(), started)  # never opens

    async with harness.queue() as queue:
        job = await harness.submit(queue, "work")
        await until(started)
        await queue.close()

    stored = await harness.jobs.get(job.id)
    assert stored.status is JobStatus.FAILED
    assert "interrupted" in (stored.failure_reason or "")
    assert stored.finished_at is not None


async def test_enqueue_after_close_raises_service_unavailable(harness: Harness) -> None:
    harness.handlers["work"] = harness.handler()

    async with harness.queue() as queue:
        await queue.close()
        job = await harness.store("work")
        with pytest.raises(ServiceUnavailable):
            await queue.enqueue(job)

    assert harness.ran == []


async def test_no_more_jobs_run_at_once_than_the_concurrency(harness: Harness) -> None:
    lock = threading.Lock()
    running = 0
    peak = 0

    async def handle(ctx: JobContext) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        await asyncio.sleep(0.02)
        with lock:
            running -= 1

    harness.handlers["work"] = handle
    async with harness.queue(concurrency=2) as queue:
        jobs = [await harness.submit(queue, "work") for _ in range(6)]
        for job in jobs:
            await harness.wait_for(job.id, JobStatus.SUCCEEDED)

    assert peak == 2
