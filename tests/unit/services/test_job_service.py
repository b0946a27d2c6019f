"""JobService and JobRunner on the in-memory repository and the inline queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from notibot.adapters.memory import InlineJobQueue, MemoryJobRepository
from notibot.application.ports import JobFilter
from notibot.application.services import JobContext, JobHandler, JobRunner, JobService
from notibot.domain import (
    InvalidInput,
    InvalidTransition,
    Job,
    JobError,
    JobStatus,
    NotFound,
    ServiceUnavailable,
)
from notibot.testing import FakeClock, SequentialIdGenerator, batched_job


class Jobs:
    """A job service, runner, inline queue and repository sharing one FakeClock."""

    def __init__(self, clock: FakeClock, handlers: dict[str, JobHandler], *,
                 heartbeat_interval: float = 10.0, concurrency: int = 4) -> None:
        self.clock = clock
        self.repo = MemoryJobRepository()
        self.runner = JobRunner(self.repo, clock, handlers, heartbeat_interval=heartbeat_interval)
        self.queue = InlineJobQueue(self.runner.run, concurrency=concurrency)
        self.service = JobService(self.repo, self.queue, SequentialIdGenerator("job"), clock,
                                  kinds=handlers)

    async def run_all(self) -> None:
        await asyncio.wait_for(self.queue.join(), timeout=5)


@pytest.fixture
async def make_jobs(clock: FakeClock) -> AsyncIterator[Callable[..., Jobs]]:
    built: list[Jobs] = []

    def make(handlers: dict[str, JobHandler], **options: Any) -> Jobs:
        built.append(Jobs(clock, handlers, **options))
        return built[-1]

    yield make
    for jobs in built:
        await jobs.queue.close()


class Gate:
    """A handler that reports one unit, says it started, waits to be let through, then reports
    a second unit; records how far it got."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.proceed = asyncio.Event()
        self.ran: list[str] = []
        self.finished: list[str] = []

    async def __call__(self, ctx: JobContext) -> dict[str, Any]:
        self.ran.append(ctx.job.id)
        await ctx.report(total=2, processed=1)
        self.started.set()
        await self.proceed.wait()
        await ctx.report(processed=1)
        self.finished.append(ctx.job.id)
        return {"done": True}


# -- submit and run --------------------------------------------------------------------------


async def test_submit_of_an_unknown_kind_is_refused_and_stores_nothing(
    make_jobs: Callable[..., Jobs],
) -> None:
    jobs = make_jobs({"b": batched_job(), "a": batched_job()})

    with pytest.raises(InvalidInput) as exc:
        await jobs.service.submit("nope")

    assert exc.value.code == "unknown_job_kind"
    assert exc.value.details == {"kinds": ["a", "b"]}
    assert (await jobs.service.stats()).total == 0


async def test_submit_stores_a_queued_job_with_its_inputs(
    make_jobs: Callable[..., Jobs], clock: FakeClock
) -> None:
    jobs = make_jobs({"test": batched_job()})
    params = {"upload_id": "up1"}

    job = await jobs.service.submit("test", params, created_by="u1", total=7)
    params["upload_id"] = "changed"

    assert job.status is JobStatus.QUEUED
    stored = await jobs.service.get(job.id)
    assert (stored.id, stored.kind, stored.created_by, stored.params, stored.created_at) == (
        "job1", "test", "u1", {"upload_id": "up1"}, clock.current)
    assert stored.total == 7


async def test_a_job_runs_to_success_with_result_and_full_progress(
    make_jobs: Callable[..., Jobs],
) -> None:
    jobs = make_jobs({"test": batched_job(batches=5, batch_size=10, delay=0)})

    job = await jobs.service.submit("test")
    await jobs.run_all()

    done = await jobs.service.get(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"batches": 5}
    assert done.progress == 1.0
    assert done.total == 50
    assert done.counters == {"processed": 50}
    assert done.attempts == 1
    assert done.started_at is not None and done.finished_at is not None
    assert done.failure_reason is None


async def test_reported_errors_are_kept_on_the_job(make_jobs: Callable[..., Jobs]) -> None:
    async def handler(ctx: JobContext) -> None:
        await ctx.report(total=3, processed=3, errors=[
            JobError("invalid_email", "bad email", line=2),
            JobError("no_contact", "no email or phone", line=4),
        ])

    jobs = make_jobs({"import": handler})
    job = await jobs.service.submit("import")
    await jobs.run_all()

    done = await jobs.service.get(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert [(e.code, e.line) for e in done.errors] == [("invalid_email", 2), ("no_contact", 4)]
    assert done.error_count == 2
    assert done.result is None
    assert await jobs.repo.list_errors(job.id) == done.errors


async def test_the_first_errors_are_inline_and_all_of_them_in_the_repository(
    make_jobs: Callable[..., Jobs],
) -> None:
    async def handler(ctx: JobContext) -> None:
        for batch in range(3):
            await ctx.report(processed=50, errors=[
                JobError("invalid_phone", "bad phone", line=2 + batch * 50 + n)
                for n in range(50)])

    jobs = make_jobs({"import": handler})
    job = await jobs.service.submit("import", total=150)
    await jobs.run_all()

    done = await jobs.service.get(job.id)
    kept = await jobs.repo.list_errors(job.id)
    assert done.error_count == 150
    assert [e.line for e in done.errors] == list(range(2, 102))
    assert [e.line for e in kept] == list(range(2, 152))


async def test_a_handler_raising_a_notibot_error_fails_the_job_with_its_message(
    make_jobs: Callable[..., Jobs],
) -> None:
    async def handler(ctx: JobContext) -> None:
        await ctx.report(total=10, processed=4)
        raise InvalidInput("the file has no email column", code="missing_columns")

    jobs = make_jobs({"import": handler})
    job = await jobs.service.submit("import")
    await jobs.run_all()

    failed = await jobs.service.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.failure_reason == "the file has no email column"
    assert failed.counters == {"processed": 4}
    assert failed.finished_at is not None


async def test_a_crashing_handler_fails_the_job_as_an_internal_error(
    make_jobs: Callable[..., Jobs],
) -> None:
    async def handler(ctx: JobContext) -> None:
        raise RuntimeError("boom")

    jobs = make_jobs({"crash": handler})
    job = await jobs.service.submit("crash")
    await jobs.run_all()

    failed = await jobs.service.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.failure_reason is not None
    assert failed.failure_reason.startswith("internal error")
    assert "RuntimeError: boom" in failed.failure_reason


async def test_a_job_of_a_kind_without_handler_fails(
    make_jobs: Callable[..., Jobs], clock: FakeClock
) -> None:
    jobs = make_jobs({})
    await jobs.repo.add(Job(id="j1", kind="orphan", created_at=clock.current))

    await jobs.runner.run("j1")

    failed = await jobs.repo.get("j1")
    assert failed.status is JobStatus.FAILED
    assert "orphan" in (failed.failure_reason or "")


async def test_submit_to_a_closed_queue_raises_and_marks_the_job_failed(
    make_jobs: Callable[..., Jobs],
) -> None:
    jobs = make_jobs({"test": batched_job()})
    await jobs.queue.close()

    with pytest.raises(ServiceUnavailable):
        await jobs.service.submit("test")

    page = await jobs.service.list(JobFilter())
    assert [j.status for j in page.items] == [JobStatus.FAILED]
    assert (page.items[0].failure_reason or "").startswith("could not be queued")


# -- runner idempotence and heartbeat --------------------------------------------------------


async def test_the_runner_ignores_a_job_that_is_not_queued(
    make_jobs: Callable[..., Jobs],
) -> None:
    calls: list[str] = []

    async def handler(ctx: JobContext) -> dict[str, int]:
        calls.append(ctx.job.id)
        return {"calls": len(calls)}

    jobs = make_jobs({"once": handler})
    job = await jobs.service.submit("once")
    await jobs.run_all()
    done = await jobs.service.get(job.id)

    await jobs.runner.run(job.id)  # a redelivered message
    await jobs.runner.run("ghost")  # a message for a deleted job

    assert calls == [job.id]
    assert await jobs.service.get(job.id) == done


async def test_heartbeats_are_recorded_while_a_slow_handler_runs(
    make_jobs: Callable[..., Jobs], clock: FakeClock
) -> None:
    seen: list[Any] = []

    async def slow(ctx: JobContext) -> None:
        clock.advance(30)
        await asyncio.sleep(0.08)  # several heartbeat intervals
        seen.append((await jobs.repo.get(ctx.job.id)).heartbeat_at)

    jobs = make_jobs({"slow": slow}, heartbeat_interval=0.01)
    job = await jobs.service.submit("slow")
    started = clock.current
    await jobs.run_all()

    assert seen == [started + timedelta(seconds=30)]
    assert (await jobs.service.get(job.id)).status is JobStatus.SUCCEEDED


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_of_a_queued_job_cancels_it_and_it_never_starts(
    make_jobs: Callable[..., Jobs],
) -> None:
    gate = Gate()
    jobs = make_jobs({"work": gate}, concurrency=1)
    blocker = await jobs.service.submit("work")
    await asyncio.wait_for(gate.started.wait(), timeout=5)
    waiting = await jobs.service.submit("work")

    cancelled = await jobs.service.cancel(waiting.id)
    gate.proceed.set()
    await jobs.run_all()

    assert cancelled.status is JobStatus.CANCELLED
    assert gate.ran == [blocker.id]
    stored = await jobs.service.get(waiting.id)
    assert stored.status is JobStatus.CANCELLED
    assert stored.started_at is None
    assert stored.finished_at is not None
    assert (await jobs.service.get(blocker.id)).status is JobStatus.SUCCEEDED


async def test_cancel_of_a_running_job_stops_it_at_the_next_checkpoint(
    make_jobs: Callable[..., Jobs],
) -> None:
    gate = Gate()
    jobs = make_jobs({"work": gate})
    job = await jobs.service.submit("work")
    await asyncio.wait_for(gate.started.wait(), timeout=5)

    requested = await jobs.service.cancel(job.id)

    assert requested.status is JobStatus.RUNNING
    assert requested.cancel_requested is True
    gate.proceed.set()
    await jobs.run_all()
    stopped = await jobs.service.get(job.id)
    assert stopped.status is JobStatus.CANCELLED
    assert gate.finished == []
    assert stopped.counters == {"processed": 2}  # the batch in flight was saved, then it stopped
    assert stopped.result is None
    assert stopped.finished_at is not None


@pytest.mark.parametrize(
    "status", [JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED])
async def test_cancel_of_a_finished_job_is_an_invalid_transition(
    make_jobs: Callable[..., Jobs], clock: FakeClock, status: JobStatus
) -> None:
    jobs = make_jobs({"test": batched_job()})
    job = Job(id="j1", kind="test", created_at=clock.current)
    job.start(clock.current)
    {JobStatus.SUCCEEDED: lambda: job.succeed(clock.current, {}),
     JobStatus.FAILED: lambda: job.fail(clock.current, "broken"),
     JobStatus.CANCELLED: lambda: job.cancel(clock.current)}[status]()
    await jobs.repo.add(job)

    with pytest.raises(InvalidTransition) as exc:
        await jobs.service.cancel("j1")

    assert exc.value.code == f"job_{status.value}"
    assert await jobs.repo.get("j1") == job


async def test_cancel_twice_is_refused_the_second_time(make_jobs: Callable[..., Jobs]) -> None:
    gate = Gate()
    jobs = make_jobs({"work": gate}, concurrency=1)
    await jobs.service.submit("work")
    await asyncio.wait_for(gate.started.wait(), timeout=5)
    waiting = await jobs.service.submit("work")
    await jobs.service.cancel(waiting.id)

    with pytest.raises(InvalidTransition) as exc:
        await jobs.service.cancel(waiting.id)

    assert exc.value.code == "job_cancelled"
    gate.proceed.set()


async def test_cancel_of_an_unknown_job_raises_not_found(make_jobs: Callable[..., Jobs]) -> None:
    jobs = make_jobs({"test": batched_job()})

    with pytest.raises(NotFound) as exc:
        await jobs.service.cancel("ghost")

    assert exc.value.code == "job_not_found"


# -- delete ----------------------------------------------------------------------------------


async def test_an_unfinished_job_cannot_be_deleted(make_jobs: Callable[..., Jobs]) -> None:
    gate = Gate()
    jobs = make_jobs({"work": gate}, concurrency=1)
    running = await jobs.service.submit("work")
    await asyncio.wait_for(gate.started.wait(), timeout=5)
    queued = await jobs.service.submit("work")

    for job_id, status in ((running.id, "running"), (queued.id, "queued")):
        with pytest.raises(InvalidTransition) as exc:
            await jobs.service.delete(job_id)
        assert exc.value.code == "job_not_finished"
        assert exc.value.details == {"job_id": job_id, "status": status}
        assert (await jobs.service.get(job_id)).status.value == status

    gate.proceed.set()
    await jobs.run_all()


async def test_a_finished_job_can_be_deleted(make_jobs: Callable[..., Jobs]) -> None:
    jobs = make_jobs({"test": batched_job(batches=1, delay=0)})
    job = await jobs.service.submit("test")
    await jobs.run_all()

    await jobs.service.delete(job.id)

    with pytest.raises(NotFound):
        await jobs.service.get(job.id)
    with pytest.raises(NotFound):
        await jobs.service.delete(job.id)


# -- stale jobs ------------------------------------------------------------------------------


async def running_job(jobs: Jobs, job_id: str) -> Job:
    job = Job(id=job_id, kind="test", created_at=jobs.clock.current)
    job.start(jobs.clock.current)
    await jobs.repo.add(job)
    return job


async def test_fail_stale_marks_running_jobs_without_recent_heartbeat_failed(
    make_jobs: Callable[..., Jobs], clock: FakeClock
) -> None:
    jobs = make_jobs({"test": batched_job()})
    await running_job(jobs, "dead")
    await running_job(jobs, "alive")
    await jobs.repo.add(Job(id="queued", kind="test", created_at=clock.current))
    clock.advance(300)
    await jobs.repo.touch("alive", clock.current - timedelta(seconds=60))

    marked = await jobs.service.fail_stale(120)

    assert [j.id for j in marked] == ["dead"]
    dead = await jobs.repo.get("dead")
    assert dead.status is JobStatus.FAILED
    assert (dead.failure_reason or "").startswith("abandoned")
    assert dead.finished_at == clock.current
    assert (await jobs.repo.get("alive")).status is JobStatus.RUNNING
    assert (await jobs.repo.get("queued")).status is JobStatus.QUEUED
    assert await jobs.service.fail_stale(120) == []


async def test_a_job_failed_as_stale_stays_failed_when_its_handler_reports_again(
    make_jobs: Callable[..., Jobs], clock: FakeClock
) -> None:
    gate = Gate()
    jobs = make_jobs({"work": gate})
    job = await jobs.service.submit("work")
    await asyncio.wait_for(gate.started.wait(), timeout=5)
    clock.advance(3600)

    assert [j.id for j in await jobs.service.fail_stale(120)] == [job.id]
    gate.proceed.set()
    await jobs.run_all()

    stored = await jobs.service.get(job.id)
    assert stored.status is JobStatus.FAILED
    assert (stored.failure_reason or "").startswith("abandoned")
    assert gate.finished == []


# -- read side -------------------------------------------------------------------------------


async def test_list_is_newest_first_and_checks_paging(
    make_jobs: Callable[..., Jobs], clock: FakeClock
) -> None:
    jobs = make_jobs({"test": batched_job(batches=1, delay=0)})
    for _ in range(3):
        clock.advance(1)
        await jobs.service.submit("test", created_by="u1")
    await jobs.run_all()

    page = await jobs.service.list(JobFilter(created_by="u1"), limit=2)

    assert [j.id for j in page.items] == ["job3", "job2"]
    assert page.total == 3
    for limit, offset in ((0, 0), (201, 0), (10, -1)):
        with pytest.raises(InvalidInput) as exc:
            await jobs.service.list(JobFilter(), limit=limit, offset=offset)
        assert exc.value.code == "invalid_paging"


async def test_stats_and_eta(make_jobs: Callable[..., Jobs], clock: FakeClock) -> None:
    gate = Gate()
    jobs = make_jobs({"work": gate})
    job = await jobs.service.submit("work")
    await asyncio.wait_for(gate.started.wait(), timeout=5)
    clock.advance(10)

    running = await jobs.service.get(job.id)
    stats = await jobs.service.stats()

    assert running.progress == 0.5
    assert await jobs.service.eta_seconds(running) == pytest.approx(10.0)
    assert stats.by_status["running"] == 1
    assert stats.by_kind == {"work": 1}
    gate.proceed.set()
    await jobs.run_all()
    assert await jobs.service.eta_seconds(await jobs.service.get(job.id)) is None
