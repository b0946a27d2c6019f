"""The inline job queue: runs each job as an asyncio task in this process."""

from __future__ import annotations

import asyncio
import contextlib

from notibot.application.ports import JobExecutor, JobQueue
from notibot.domain import Job, ServiceUnavailable


class InlineJobQueue(JobQueue):
    """Runs jobs as asyncio tasks of the current event loop, at most ``concurrency`` at once.

    Cancel semantics are those of a real queue because the executor (the JobRunner) reads the
    job from the repository first: a job cancelled while queued never starts, and a running
    one stops at its next checkpoint. :meth:`close` interrupts jobs still running.

    Parameters:
        executor: the coroutine function that runs a job by id (``JobRunner.run``).
        concurrency: how many jobs may run at the same time (>= 1).
    """

    def __init__(self, executor: JobExecutor, concurrency: int = 4) -> None:
        self._executor = executor
        self._concurrency = max(1, concurrency)
        self._semaphore: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def enqueue(self, job: Job) -> None:
        if self._closed:
            raise ServiceUnavailable("the job queue is closed", code="queue_closed")
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._concurrency)
        task = asyncio.create_task(self._run(job.id), name=f"notibot-job-{job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job_id: str) -> None:
        assert self._semaphore is not None
        async with self._semaphore:
            await self._executor(job_id)

    async def join(self) -> None:
        """Wait until every queued and running job has finished (for tests and scripts)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
