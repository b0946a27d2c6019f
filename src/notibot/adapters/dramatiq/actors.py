"""The ``run_job`` actor and the worker-process runtime it runs jobs with.

A message carries only a job id. The actor hands it to the JobRunner of the worker process,
which reads the job from the JobRepository: a job cancelled while queued never starts, and a
message delivered twice (Dramatiq delivers at least once) finds the job no longer queued and
does nothing.

Each worker process builds its own runtime (its own container, whose async clients belong to
the process's AsyncIO event loop thread): :class:`WorkerLifecycle` starts it on that loop when
the worker boots, retries lazily on the first message when that failed, and stops it when the
worker shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from notibot.application.ports import JobExecutor

if TYPE_CHECKING:
    from dramatiq import Broker, Worker

log = logging.getLogger(__name__)

#: Name of the actor that runs a job by id (producers and workers must agree on it).
RUN_JOB = "run_job"


class WorkerRuntime(ABC):
    """What a worker process runs jobs with. Built per process, started and stopped on the
    process's event loop."""

    @abstractmethod
    async def start(self, broker: Broker) -> JobExecutor:
        """Build and start what jobs need; return the coroutine function that runs a job by id
        (``JobRunner.run``). ``broker`` is the worker's broker (jobs that submit jobs send
        through it).

        Raises:
            ServiceUnavailable: a dependency is down (the message is retried later).
        """

    @abstractmethod
    async def stop(self) -> None:
        """Release what :meth:`start` built."""


class ExecutorRuntime(WorkerRuntime):
    """A runtime around an existing executor (tests, or an application that embeds notibot and
    runs an in-process Dramatiq worker over its own container)."""

    def __init__(self, executor: JobExecutor) -> None:
        self._executor = executor

    async def start(self, broker: Broker) -> JobExecutor:
        return self._executor

    async def stop(self) -> None:
        return None


_active_lock = threading.Lock()
_active: WorkerLifecycle | None = None


def active_lifecycle() -> WorkerLifecycle:
    """The :class:`WorkerLifecycle` of the worker running in this process.

    Process-wide, like Dramatiq's AsyncIO event loop thread: one notibot worker per process.

    Raises:
        RuntimeError: no notibot worker has booted in this process.
    """
    lifecycle = _active
    if lifecycle is None:
        raise RuntimeError("no notibot worker is running in this process: build the broker with "
                           "configure_broker(url, runtime=...) and start a dramatiq Worker")
    return lifecycle


class WorkerLifecycle(Middleware):
    """Starts the worker's :class:`WorkerRuntime` at worker boot and stops it at shutdown, on
    the AsyncIO middleware's event loop (so it must come after AsyncIO in the middleware list).

    A start that fails at boot is logged and tried again by the first message (whose failure
    is then retried with backoff like any transient error).
    """

    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime
        self._broker: Broker | None = None
        self._executor: JobExecutor | None = None
        self._starting: asyncio.Lock | None = None

    def before_worker_boot(self, broker: Broker, worker: Worker) -> None:
        global _active
        self._broker = broker
        with _active_lock:
            if _active is not None and _active is not self:
                log.warning("another notibot worker was active in this process; replacing it")
            _active = self

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        try:
            self._run(self.executor)
        except Exception:
            log.exception("the notibot worker runtime did not start; the first message will "
                          "try again")

    def after_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        global _active
        try:
            if self._executor is not None:
                self._run(self._stop)
        except Exception:
            log.exception("the notibot worker runtime did not stop cleanly")
        finally:
            with _active_lock:
                if _active is self:
                    _active = None

    async def executor(self) -> JobExecutor:
        """The runtime's executor, starting the runtime on first call (on the current loop)."""
        if self._executor is not None:
            return self._executor
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._executor is None:
                if self._broker is None:
                    raise RuntimeError("the worker has not booted")
                self._executor = await self.runtime.start(self._broker)
                log.info("notibot worker runtime started")
        return self._executor

    async def _stop(self) -> None:
        self._executor = None
        await self.runtime.stop()
        log.info("notibot worker runtime stopped")

    @staticmethod
    def _run(function: Callable[[], Awaitable[object]]) -> None:
        """Run ``function()`` on the AsyncIO middleware's loop and wait for it."""
        loop_thread = get_event_loop_thread()
        if loop_thread is None:
            raise RuntimeError("the AsyncIO middleware must come before WorkerLifecycle")
        loop_thread.run_coroutine(function())


async def run_job(job_id: str) -> None:
    """Actor body: run job ``job_id`` with the JobRunner of this worker process.

    Parameters:
        job_id: the id of a stored job; the message carries nothing else.

    Raises:
        ServiceUnavailable: the store could not be reached (retried with backoff).
    """
    executor = await active_lifecycle().executor()
    await executor(job_id)


def declare_run_job(broker: Broker, *, queue_name: str) -> dramatiq.Actor:
    """Declare the ``run_job`` actor on ``broker`` (once per broker) and return it."""
    declare = dramatiq.actor(broker=broker, actor_name=RUN_JOB, queue_name=queue_name,
                             notify_shutdown=True)
    return declare(run_job)
