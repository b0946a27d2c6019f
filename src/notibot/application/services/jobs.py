"""Background jobs: submitting, watching, cancelling (JobService) and running (JobRunner).

A job's code is a :data:`JobHandler` registered per kind. It receives a :class:`JobContext`,
reports progress after each batch with :meth:`JobContext.report` (which also checks for
cancellation) and returns a result summary. The runner owns the state machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from notibot.application.ports import (
    Clock,
    IdGenerator,
    JobFilter,
    JobQueue,
    JobRepository,
    JobStats,
    Page,
)
from notibot.application.services.paging import check_page
from notibot.domain import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    Job,
    JobCancelled,
    JobError,
    JobStatus,
    NotFound,
    NotibotError,
)

log = logging.getLogger(__name__)


class JobContext:
    """What a running job's code sees: its job, progress reporting and cancel checks.

    Parameters:
        job: the runner's copy of the job (status running).
    """

    def __init__(self, job: Job, jobs: JobRepository, clock: Clock) -> None:
        self.job = job
        self._jobs = jobs
        self._clock = clock

    @property
    def params(self) -> dict[str, Any]:
        """The job's input parameters."""
        return self.job.params

    async def report(
        self, *, total: int | None = None, errors: Iterable[JobError] = (), **counts: int
    ) -> None:
        """Add ``counts`` to the counters (``processed=`` drives progress), set ``total`` when
        given, record ``errors`` (the first ones inline on the job, all of them in the job
        repository's error list), save, then :meth:`checkpoint`.

        Raises:
            JobCancelled: cancellation was requested, or the job was finished elsewhere.
        """
        if total is not None:
            self.job.total = total
        self.job.add_counts(**counts)
        errors = list(errors)
        if errors:
            self.job.add_errors(errors)
            await self._jobs.add_errors(self.job.id, errors)
        self.job.beat(await self._clock.now())
        if not await self._jobs.update(self.job, expected_status=JobStatus.RUNNING):
            raise JobCancelled(f"job {self.job.id} was finished elsewhere")
        await self.checkpoint()

    async def checkpoint(self) -> None:
        """Stop here if cancellation was requested.

        Raises:
            JobCancelled: the stored job has ``cancel_requested`` set or is no longer running.
        """
        stored = await self._jobs.get(self.job.id)
        if stored.cancel_requested or stored.status is not JobStatus.RUNNING:
            self.job.cancel_requested = True
            raise JobCancelled(f"job {self.job.id} was cancelled")


#: A job kind's code: takes the context, returns a JSON-serialisable result summary or None.
JobHandler = Callable[[JobContext], Awaitable[dict[str, Any] | None]]
#: Releases what a job held when it is cancelled before it ever ran (idempotent).
JobDiscard = Callable[[Job], Awaitable[None]]


class JobRunner:
    """Runs one job by id: queued -> running -> succeeded/failed/cancelled.

    Idempotent: a job that is not queued when the message arrives (cancelled before start,
    already run by another worker) is left alone, so queues may deliver a message twice.

    Parameters:
        handlers: job kind -> handler.
        heartbeat_interval: seconds between heartbeats while a job runs.
        discards: job kind -> what to release for a job cancelled before it ever started
            (an import's uploaded file); called when the queue hands such a job over.
    """

    def __init__(
        self,
        jobs: JobRepository,
        clock: Clock,
        handlers: Mapping[str, JobHandler],
        heartbeat_interval: float = 10.0,
        discards: Mapping[str, JobDiscard] | None = None,
    ) -> None:
        self._jobs = jobs
        self._clock = clock
        self._handlers = handlers
        self._heartbeat_interval = heartbeat_interval
        self._discards = discards or {}

    async def run(self, job_id: str) -> None:
        """Run the job ``job_id`` to a final state. Never raises for the job's own failure
        (that is recorded on the job); re-raises asyncio.CancelledError after recording it."""
        try:
            job = await self._jobs.get(job_id)
        except NotFound:
            log.warning("job %s vanished before it started", job_id)
            return
        if job.status is not JobStatus.QUEUED:
            log.info("job %s is %s; not starting it", job_id, job.status.value)
            discard = self._discards.get(job.kind)
            if discard is not None and job.status is JobStatus.CANCELLED and (
                job.started_at is None
            ):
                try:
                    await discard(job)
                except Exception:  # releasing is best effort; the job stays cancelled
                    log.warning("could not release job %s", job_id, exc_info=True)
            return
        job.start(await self._clock.now())
        if not await self._jobs.update(job, expected_status=JobStatus.QUEUED):
            return  # cancelled or taken by another worker in the meantime
        handler = self._handlers.get(job.kind)
        beat = asyncio.create_task(self._heartbeat(job_id))
        try:
            if handler is None:
                raise InvalidInput(f"no handler for job kind {job.kind!r}")
            result = await handler(JobContext(job, self._jobs, self._clock))
        except JobCancelled:
            job.cancel(await self._clock.now())
        except asyncio.CancelledError:
            job.fail(await self._clock.now(), "interrupted: the process running it stopped")
            await self._jobs.update(job, expected_status=JobStatus.RUNNING)
            raise
        except NotibotError as exc:
            job.fail(await self._clock.now(), exc.message)
        except Exception as exc:
            log.exception("job %s (%s) crashed", job_id, job.kind)
            job.fail(await self._clock.now(), f"internal error: {type(exc).__name__}: {exc}")
        else:
            job.succeed(await self._clock.now(), result)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        job.beat(await self._clock.now())  # never older than the heartbeats stored meanwhile
        await self._jobs.update(job, expected_status=JobStatus.RUNNING)

    async def _heartbeat(self, job_id: str) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            try:
                await self._jobs.touch(job_id, await self._clock.now())
            except Exception:  # a missed beat is not fatal; the next one may pass
                log.warning("heartbeat of job %s failed", job_id, exc_info=True)


class JobService:
    """Submit, read, list, cancel and delete jobs.

    Parameters:
        kinds: the job kinds that have a handler; others are refused at submission.
    """

    def __init__(
        self,
        jobs: JobRepository,
        queue: JobQueue,
        ids: IdGenerator,
        clock: Clock,
        kinds: Iterable[str],
    ) -> None:
        self._jobs = jobs
        self._queue = queue
        self._ids = ids
        self._clock = clock
        self._kinds = frozenset(kinds)

    async def submit(
        self, kind: str, params: dict[str, Any] | None = None, *, created_by: str | None = None,
        total: int | None = None, job_id: str | None = None,
    ) -> Job:
        """Store a queued job and hand it to the queue.

        Parameters:
            job_id: an id the caller reserved (an Idempotency-Key's job); when a job with
                that id exists already (a concurrent repeat made it), that job is returned
                and nothing is queued again.

        Raises:
            InvalidInput: ``unknown_job_kind``.
            ServiceUnavailable: the queue is down (the job is then marked failed).
        """
        if kind not in self._kinds:
            raise InvalidInput(f"unknown job kind {kind!r}", code="unknown_job_kind",
                               details={"kinds": sorted(self._kinds)})
        job = Job(id=job_id or await self._ids.new_id(), kind=kind,
                  created_at=await self._clock.now(), created_by=created_by,
                  params=dict(params or {}), total=total)
        try:
            await self._jobs.add(job)
        except Conflict:
            if job_id is None:
                raise
            return await self._jobs.get(job_id)
        try:
            await self._queue.enqueue(job)
        except NotibotError as exc:
            job.fail(await self._clock.now(), f"could not be queued: {exc.message}")
            await self._jobs.update(job, expected_status=JobStatus.QUEUED)
            raise
        return job

    async def get(self, job_id: str) -> Job:
        """Return a job. Raises NotFound (``job_not_found``)."""
        return await self._jobs.get(job_id)

    async def eta_seconds(self, job: Job) -> float | None:
        """Estimated seconds until ``job`` finishes (see :meth:`Job.eta_seconds`)."""
        return job.eta_seconds(await self._clock.now())

    async def list(
        self, filter: JobFilter, *, limit: int | None = None, offset: int | None = None
    ) -> Page[Job]:
        """A page of jobs, newest first. Raises InvalidInput on bad paging."""
        limit, offset = check_page(limit, offset)
        return await self._jobs.list(filter, limit=limit, offset=offset)

    async def stats(self) -> JobStats:
        """Counts by status and by kind."""
        return await self._jobs.stats()

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued job is cancelled at once and never starts; a running job is
        asked to stop at its next checkpoint (it stays running until then).

        Raises:
            NotFound: no such job.
            InvalidTransition: the job already finished (HTTP 409).
        """
        for _ in range(5):  # each loop loses a race to a state change; a few always suffice
            job = await self._jobs.get(job_id)
            if job.status is JobStatus.QUEUED:
                job.cancel(await self._clock.now())
                if await self._jobs.update(job, expected_status=JobStatus.QUEUED):
                    return job
            elif job.status is JobStatus.RUNNING:
                if await self._jobs.request_cancel(job_id):
                    return await self._jobs.get(job_id)
            else:
                job.request_cancel()  # raises InvalidTransition: finished
        raise InvalidTransition(f"job {job_id} changed state during cancel; try again")

    async def delete(self, job_id: str) -> None:
        """Delete a finished job.

        Raises:
            NotFound: no such job.
            InvalidTransition: ``job_not_finished`` while it is queued or running.
        """
        job = await self._jobs.get(job_id)
        if not job.is_finished:
            raise InvalidTransition(
                f"job {job_id} is {job.status.value}; cancel it and wait until it finishes",
                code="job_not_finished", details={"job_id": job_id, "status": job.status.value},
            )
        await self._jobs.delete(job_id)

    async def requeue_queued(self) -> list[Job]:
        """Hand every job still queued to the queue again (the inline queue loses its tasks
        when its process stops; the runner skips any job that is no longer queued, so a job
        queued twice still runs once). Returns the jobs handed over."""
        requeued: list[Job] = []
        offset = 0
        while True:
            page = await self._jobs.list(JobFilter(status=JobStatus.QUEUED), limit=200,
                                         offset=offset)
            for job in page.items:
                await self._queue.enqueue(job)
                requeued.append(job)
            offset += len(page.items)
            if offset >= page.total or not page.items:
                return requeued

    async def fail_stale(self, stale_after_seconds: float) -> list[Job]:
        """Mark failed every running job whose heartbeat is older than
        ``stale_after_seconds``: its process died. Returns the jobs marked."""
        now = await self._clock.now()
        marked = []
        for job in await self._jobs.find_stale(now - timedelta(seconds=stale_after_seconds)):
            job.fail(now, f"abandoned: no heartbeat since {job.last_seen_at.isoformat()}"
                          " (the process running it died)")
            if await self._jobs.update(job, expected_status=JobStatus.RUNNING):
                marked.append(job)
        return marked
