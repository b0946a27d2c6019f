"""``notibot worker``: Dramatiq worker processes that run notibot's jobs.

Start workers with ``notibot worker`` (:func:`run_worker`) or with Dramatiq's own command line,
naming the broker set-up function of this module::

    dramatiq notibot.entrypoints.worker:setup --processes 2 --threads 8

Each worker process reads the settings from its environment (NOTIBOT_*), builds its broker
(:func:`setup`) and, when the worker boots, its own :class:`~notibot.container.Notibot` on the
worker's event loop (:class:`NotibotRuntime`): async clients bound to that loop, shared with
no other process or loop. Importing this module reads no setting and opens nothing.

A job whose worker died mid-run stays ``running`` until its heartbeat is older than
NOTIBOT_JOB_STALE_AFTER; then the next notibot process to start, or the periodic stale sweep
of any running worker, marks it failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import dramatiq
from dramatiq import Broker

from notibot.adapters.dramatiq import DramatiqJobQueue, WorkerRuntime, configure_broker
from notibot.application.ports import JobExecutor
from notibot.container import Notibot
from notibot.settings import Settings

log = logging.getLogger("notibot.worker")

#: Builds the worker's Notibot over the worker's broker.
AppFactory = Callable[[Broker], Notibot]


def check_worker_settings(settings: Settings) -> None:
    """Refuse settings a worker process cannot serve.

    Raises:
        ValueError: NOTIBOT_QUEUE is not dramatiq (the API would run its jobs inline and
            send none), or NOTIBOT_STORE=memory (a worker process would not see the jobs of
            the API process).
    """
    if settings.queue != "dramatiq":
        raise ValueError("NOTIBOT_QUEUE must be dramatiq to run workers (with NOTIBOT_BROKER_URL "
                         "or NOTIBOT_REDIS_URL naming the broker); inline jobs run in the API "
                         "server")
    if settings.store == "memory":
        raise ValueError("NOTIBOT_STORE=memory keeps data inside one process, so a worker "
                         "would never see the API's jobs: use a shared store "
                         "(NOTIBOT_STORE=mongo)")


class NotibotRuntime(WorkerRuntime):
    """The worker process's notibot: built and started on the worker's event loop when the
    worker boots, stopped when it shuts down. While it runs, it marks stale jobs (heartbeat
    older than NOTIBOT_JOB_STALE_AFTER: their worker died) failed every ``sweep_interval``
    seconds.

    Parameters:
        settings: default: read from the environment.
        factory: builds the Notibot over the worker's broker (default:
            :meth:`Notibot.from_settings` with a DramatiqJobQueue over that broker).
        sweep_interval: seconds between stale-job sweeps (default: half of
            NOTIBOT_JOB_STALE_AFTER); 0 disables them.
    """

    def __init__(self, settings: Settings | None = None, *, factory: AppFactory | None = None,
                 sweep_interval: float | None = None) -> None:
        self._settings = settings
        self._factory = factory
        self._sweep_interval = sweep_interval
        self.app: Notibot | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def _build(self, broker: Broker) -> Notibot:
        if self._factory is not None:
            return self._factory(broker)
        return Notibot.from_settings(
            self._settings or Settings(), dramatiq_broker=broker,
            job_queue=DramatiqJobQueue(broker, close_broker=False))

    async def start(self, broker: Broker) -> JobExecutor:
        app = self._build(broker)
        try:
            await app.start(ensure_admin=False, run_jobs=False)
        except BaseException:  # release what started before the failure; the next try rebuilds
            with contextlib.suppress(Exception):
                result = app.container.shutdown_resources()
                if result is not None:
                    await result
            raise
        self.app = app
        settings = app.settings
        interval = (settings.job_stale_after / 2 if self._sweep_interval is None
                    else self._sweep_interval)
        if interval > 0:
            self._sweeper = asyncio.create_task(
                self._sweep(app, interval, settings.job_stale_after), name="notibot-stale-sweep")
        return app.container.job_runner().run

    @staticmethod
    async def _sweep(app: Notibot, interval: float, stale_after: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                for job in await app.jobs.fail_stale(stale_after):
                    log.warning("job %s was abandoned by a dead worker; marked failed", job.id)
            except Exception:  # the store may be down for a while; the next sweep retries
                log.warning("the stale-job sweep failed", exc_info=True)

    async def stop(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        app, self.app = self.app, None
        if app is not None:
            await app.stop()


def worker_broker(settings: Settings, *, runtime: WorkerRuntime | None = None) -> Broker:
    """The broker of a worker process for ``settings``, with the ``run_job`` actor and a
    runtime (default: :class:`NotibotRuntime` over ``settings``). Opens nothing."""
    return configure_broker(settings.resolved_broker_url,
                            runtime=runtime or NotibotRuntime(settings))


def setup() -> Broker:
    """Broker set-up for Dramatiq's command line (``dramatiq notibot.entrypoints.worker:setup``):
    read the settings from the environment, check them, build the worker broker and make it
    Dramatiq's global broker. Runs in every worker process.

    Raises:
        pydantic.ValidationError: a setting is invalid.
        ValueError: see :func:`check_worker_settings`.
    """
    settings = Settings()
    check_worker_settings(settings)
    broker = worker_broker(settings)
    dramatiq.set_broker(broker)
    return broker


def worker_arguments(processes: int, threads: int, queues: Sequence[str] | None) -> list[str]:
    """Dramatiq command-line arguments for :func:`run_worker`.

    Raises:
        ValueError: ``processes`` or ``threads`` below 1, or an empty queue name.
    """
    if processes < 1 or threads < 1:
        raise ValueError("--processes and --threads must be at least 1")
    arguments = [f"{__name__}:setup", "--processes", str(processes), "--threads", str(threads)]
    if queues:
        if not all(name.strip() for name in queues):
            raise ValueError("--queues takes non-empty queue names")
        arguments += ["--queues", *queues]
    return arguments


def run_worker(processes: int = 1, threads: int = 8, queues: list[str] | None = None) -> int:
    """Run Dramatiq worker processes for notibot's broker until they are stopped (SIGINT or
    SIGTERM stops them gracefully: running jobs are interrupted and marked failed). Blocks.

    Settings are checked here first, so a bad setting fails before any process starts; each
    worker process then reads them again from the environment.

    Parameters:
        processes: worker processes.
        threads: worker threads per process (jobs running at once per process).
        queues: queues to consume (default: all of notibot's).

    Returns:
        Dramatiq's exit code (0 after a clean stop).

    Raises:
        pydantic.ValidationError: a setting is invalid.
        ValueError: see :func:`check_worker_settings` and :func:`worker_arguments`.
    """
    check_worker_settings(Settings())
    arguments = worker_arguments(processes, threads, queues)
    from dramatiq.cli import main, make_argument_parser

    return int(main(make_argument_parser().parse_args(arguments)) or 0)
