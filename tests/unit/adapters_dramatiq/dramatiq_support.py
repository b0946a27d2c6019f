"""A notibot "fleet" in one process for Dramatiq tests: an API-side Notibot that sends jobs to
a broker, and a Dramatiq Worker whose own Notibot (built by NotibotRuntime on the worker's
event loop) shares the API's in-memory stores, as two processes share a database.

Tests observe state only: the job repository, handler call records, the broker's dead
letters.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from dramatiq import Broker, Worker

from notibot.adapters.dramatiq import DramatiqJobQueue
from notibot.adapters.memory import (
    MemoryCustomerRepository,
    MemoryJobRepository,
    MemoryUploadStore,
)
from notibot.application.services.jobs import JobContext, JobHandler
from notibot.container import Notibot
from notibot.domain import Job, JobStatus, ServiceUnavailable
from notibot.entrypoints.worker import NotibotRuntime
from notibot.testing import memory_notibot

WAIT_SECONDS = 10.0


async def until(event: threading.Event, seconds: float = WAIT_SECONDS) -> None:
    """Wait for ``event`` without blocking the running loop."""
    deadline = time.monotonic() + seconds
    while not event.is_set():
        assert time.monotonic() < deadline, "timed out waiting for an event"
        await asyncio.sleep(0.002)


class Recorder:
    """Handlers that record the job ids they ran (thread-safe) and can wait on gates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[str] = []
        self.loops: list[asyncio.AbstractEventLoop] = []

    def record(self, ctx: JobContext) -> None:
        with self._lock:
            self.calls.append(ctx.job.id)
            self.loops.append(asyncio.get_running_loop())

    def gated(self, gate: threading.Event | None = None,
              started: threading.Event | None = None) -> JobHandler:
        async def handle(ctx: JobContext) -> dict[str, Any]:
            self.record(ctx)
            if started is not None:
                started.set()
            if gate is not None:
                await until(gate)
            await ctx.report(total=1, processed=1)
            return {"job": ctx.job.id}

        return handle

    def raising(self, error: Exception) -> JobHandler:
        async def handle(ctx: JobContext) -> None:
            self.record(ctx)
            raise error

        return handle


class Fleet:
    """An API Notibot (NOTIBOT_QUEUE=dramatiq over ``broker``) and an in-process Worker.

    Parameters:
        broker: from ``configure_broker(url, runtime=fleet.runtime, ...)``; build the fleet
            first, then the broker with its runtime, then call :meth:`start`.
        handlers: job kind -> handler, for both sides (the API only checks kinds).
        jobs: the shared job repository (default: a new MemoryJobRepository).
    """

    def __init__(self, handlers: Mapping[str, JobHandler], *,
                 jobs: MemoryJobRepository | None = None,
                 settings: dict[str, Any] | None = None,
                 worker_overrides: dict[str, Any] | None = None,
                 sweep_interval: float = 0, boot_failures: int = 0) -> None:
        self.handlers = dict(handlers)
        self.boot_failures = boot_failures  # the worker app's first builds fail (store down)
        self.boot_attempts = 0
        self.jobs = jobs or MemoryJobRepository()
        self.customers = MemoryCustomerRepository()
        self.uploads = MemoryUploadStore()
        self.settings = {"queue": "dramatiq", **(settings or {})}
        self.worker_overrides = worker_overrides or {}
        self.runtime = NotibotRuntime(factory=self._worker_app, sweep_interval=sweep_interval)
        self.broker: Broker | None = None
        self.api: Notibot | None = None
        self.worker: Worker | None = None

    def _shared(self) -> dict[str, Any]:
        return {"job_repository": self.jobs, "customer_repository": self.customers,
                "upload_store": self.uploads}

    def _worker_app(self, broker: Broker) -> Notibot:
        self.boot_attempts += 1
        if self.boot_attempts <= self.boot_failures:
            raise ServiceUnavailable("the store is not up yet", code="store_unavailable")
        return memory_notibot(settings=self.settings, job_handlers=self.handlers,
                              dramatiq_broker=broker,
                              job_queue=DramatiqJobQueue(broker, close_broker=False),
                              **self._shared(), **self.worker_overrides)

    async def start(self, broker: Broker, *, threads: int = 2, worker: bool = True) -> None:
        """Start the API app over ``broker`` and (unless ``worker`` is False) the Worker."""
        self.broker = broker
        self.api = memory_notibot(settings=self.settings, job_handlers=self.handlers,
                                  dramatiq_broker=broker, **self._shared())
        await self.api.start()
        if worker:
            await self.start_worker(threads)

    async def start_worker(self, threads: int = 2) -> None:
        assert self.broker is not None
        self.worker = Worker(self.broker, worker_threads=threads, worker_timeout=50)
        await asyncio.to_thread(self.worker.start)

    async def submit(self, kind: str) -> Job:
        assert self.api is not None
        return await self.api.jobs.submit(kind)

    async def wait_for(self, job_id: str, *statuses: JobStatus,
                       seconds: float = WAIT_SECONDS) -> Job:
        """The stored job once its status is one of ``statuses``."""
        return await self.wait_until(job_id, lambda job: job.status in statuses, seconds)

    async def wait_until(self, job_id: str, condition: Callable[[Job], bool],
                         seconds: float = WAIT_SECONDS) -> Job:
        """The stored job once ``condition(job)`` holds."""
        deadline = time.monotonic() + seconds
        job = await self.jobs.get(job_id)
        while not condition(job):
            assert time.monotonic() < deadline, f"timed out; {job_id} is {job.status}"
            await asyncio.sleep(0.005)
            job = await self.jobs.get(job_id)
        return job

    async def stop(self) -> None:
        if self.worker is not None:
            await asyncio.to_thread(self.worker.stop)
            self.worker = None
        if self.api is not None:
            await self.api.stop()
            self.api = None
