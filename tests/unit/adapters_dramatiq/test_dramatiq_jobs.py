"""Jobs through Dramatiq (StubBroker + an in-process Worker): the API's JobService sends,
the worker's own Notibot runs. Observed on the shared job repository and the handlers' records.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from dramatiq_support import Fleet, Recorder, until

from notibot.adapters.dramatiq import (
    DEFAULT_QUEUE,
    STUB_URL,
    active_lifecycle,
    configure_broker,
    run_job,
)
from notibot.adapters.memory import MemoryJobRepository
from notibot.application.ports import JobFilter
from notibot.domain import InvalidInput, Job, JobStatus, ServiceUnavailable
from notibot.testing import FakeClock, batched_job, memory_notibot

FAST_RETRIES = {"min_backoff": 5, "max_backoff": 20}


class FlakyJobRepository(MemoryJobRepository):
    """A memory job repository whose first ``failures`` reads of a job raise ``error`` (the
    database was briefly unreachable); counts the failed reads."""

    def __init__(self, failures: int, error: Callable[[], Exception]) -> None:
        super().__init__()
        self.failures_left = failures
        self.failed_reads = 0
        self._error = error
        self._flaky_lock = threading.Lock()

    async def get(self, job_id: str) -> Job:
        with self._flaky_lock:
            if self.failures_left > 0:
                self.failures_left -= 1
                self.failed_reads += 1
                raise self._error()
        return await super().get(job_id)


@pytest.fixture
async def fleet_factory() -> AsyncIterator[Callable[..., Any]]:
    """Builds started fleets over a StubBroker and stops them after the test."""
    fleets: list[Fleet] = []

    async def make(handlers: dict[str, Any], *, threads: int = 2, worker: bool = True,
                   **options: Any) -> Fleet:
        fleet = Fleet(handlers, **options)
        fleets.append(fleet)
        broker = configure_broker(STUB_URL, runtime=fleet.runtime, **FAST_RETRIES)
        await fleet.start(broker, threads=threads, worker=worker)
        return fleet

    yield make
    for fleet in fleets:
        await fleet.stop()


async def drain(fleet: Fleet) -> None:
    """Wait until the broker's queue is empty and the worker idle (dead letters allowed)."""
    assert fleet.broker is not None and fleet.worker is not None
    await asyncio.to_thread(fleet.broker.join, DEFAULT_QUEUE, fail_fast=False)
    await asyncio.to_thread(fleet.worker.join)


async def test_a_submitted_job_runs_to_succeeded(fleet_factory: Any) -> None:
    fleet = await fleet_factory({"batches": batched_job(batches=3, delay=0.001)})

    job = await fleet.submit("batches")
    await drain(fleet)

    done = await fleet.jobs.get(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"batches": 3}
    assert done.counters["processed"] == 30
    assert done.attempts == 1


async def test_the_job_runs_on_the_worker_loop_with_the_worker_own_container(
    fleet_factory: Any,
) -> None:
    recorder = Recorder()
    fleet = await fleet_factory({"work": recorder.gated()})

    job = await fleet.submit("work")
    await drain(fleet)

    assert recorder.calls == [job.id]
    assert recorder.loops[0] is not asyncio.get_running_loop()
    worker_app = fleet.runtime.app
    assert worker_app is not None and worker_app is not fleet.api
    assert worker_app.container is not fleet.api.container


async def test_a_job_cancelled_while_queued_never_starts(fleet_factory: Any) -> None:
    recorder, gate, started = Recorder(), threading.Event(), threading.Event()
    fleet = await fleet_factory({"work": recorder.gated(gate, started)}, threads=1)

    blocker = await fleet.submit("work")
    await until(started)
    waiting = await fleet.submit("work")
    cancelled = await fleet.api.jobs.cancel(waiting.id)
    gate.set()
    await drain(fleet)

    assert cancelled.status is JobStatus.CANCELLED
    assert recorder.calls == [blocker.id]
    stored = await fleet.jobs.get(waiting.id)
    assert stored.status is JobStatus.CANCELLED
    assert stored.started_at is None and stored.attempts == 0
    assert (await fleet.jobs.get(blocker.id)).status is JobStatus.SUCCEEDED


async def test_a_running_job_cancelled_stops_at_its_next_checkpoint(fleet_factory: Any) -> None:
    fleet = await fleet_factory({"long": batched_job(batches=10_000, delay=0.002)})

    job = await fleet.submit("long")
    running = await fleet.wait_until(job.id, lambda j: j.counters.get("processed", 0) > 0)
    asked = await fleet.api.jobs.cancel(job.id)
    await drain(fleet)

    assert running.status is JobStatus.RUNNING
    assert asked.cancel_requested
    stored = await fleet.jobs.get(job.id)
    assert stored.status is JobStatus.CANCELLED
    assert 0 < stored.counters["processed"] < 100_000
    assert stored.finished_at is not None


async def test_a_transient_store_failure_is_retried_with_backoff_then_the_job_runs(
    fleet_factory: Any,
) -> None:
    jobs = FlakyJobRepository(0, lambda: ServiceUnavailable("store down", code="store_down"))
    recorder = Recorder()
    fleet = await fleet_factory({"work": recorder.gated()}, jobs=jobs)
    jobs.failures_left = 2  # the next two reads fail: the runner's first two attempts

    job = await fleet.submit("work")
    await drain(fleet)

    stored = await fleet.jobs.get(job.id)
    assert stored.status is JobStatus.SUCCEEDED
    assert jobs.failed_reads == 2
    assert stored.attempts == 1  # the job itself started once
    assert recorder.calls == [job.id]
    assert fleet.broker.dead_letters == []


async def test_a_connection_error_escaping_the_runner_is_retried(fleet_factory: Any) -> None:
    jobs = FlakyJobRepository(0, lambda: ConnectionResetError("reset by peer"))
    fleet = await fleet_factory({"work": Recorder().gated()}, jobs=jobs)
    jobs.failures_left = 1

    job = await fleet.submit("work")
    await drain(fleet)

    assert jobs.failed_reads == 1
    assert (await fleet.jobs.get(job.id)).status is JobStatus.SUCCEEDED


async def test_a_non_transient_error_escaping_the_runner_is_not_retried(
    fleet_factory: Any,
) -> None:
    jobs = FlakyJobRepository(0, lambda: InvalidInput("corrupt job document"))
    recorder = Recorder()
    fleet = await fleet_factory({"work": recorder.gated()}, jobs=jobs)
    jobs.failures_left = 5

    job = await fleet.submit("work")
    await drain(fleet)

    assert jobs.failed_reads == 1  # one attempt, no retry
    assert len(fleet.broker.dead_letters) == 1
    assert recorder.calls == []
    jobs.failures_left = 0
    assert (await fleet.jobs.get(job.id)).status is JobStatus.QUEUED  # left for an operator


async def test_a_domain_error_of_the_handler_fails_the_job_and_is_not_retried(
    fleet_factory: Any,
) -> None:
    recorder = Recorder()
    fleet = await fleet_factory(
        {"bad": recorder.raising(InvalidInput("column 'email' is missing"))})

    job = await fleet.submit("bad")
    await drain(fleet)

    stored = await fleet.jobs.get(job.id)
    assert stored.status is JobStatus.FAILED
    assert stored.failure_reason == "column 'email' is missing"
    assert recorder.calls == [job.id]
    assert fleet.broker.dead_letters == []


async def test_a_transient_error_of_the_handler_is_recorded_on_the_job_not_retried(
    fleet_factory: Any,
) -> None:
    """The runner owns a job's failures: once the handler ran, the job is failed and the
    message done; retrying work inside a job is the handler's business (e.g. SMTP backoff)."""
    recorder = Recorder()
    fleet = await fleet_factory({"smtp": recorder.raising(ServiceUnavailable("smtp down"))})

    job = await fleet.submit("smtp")
    await drain(fleet)

    stored = await fleet.jobs.get(job.id)
    assert stored.status is JobStatus.FAILED
    assert stored.failure_reason == "smtp down"
    assert recorder.calls == [job.id]


async def test_a_duplicate_message_for_a_job_runs_it_once(fleet_factory: Any) -> None:
    recorder, gate, started = Recorder(), threading.Event(), threading.Event()
    fleet = await fleet_factory({"work": recorder.gated(gate, started)}, threads=2)

    job = await fleet.submit("work")
    queue = fleet.api.container.job_queue()
    await queue.enqueue(job)  # delivered again, e.g. after a redelivery
    await queue.enqueue(job)
    await until(started)
    gate.set()
    await drain(fleet)

    assert recorder.calls == [job.id]
    stored = await fleet.jobs.get(job.id)
    assert stored.status is JobStatus.SUCCEEDED
    assert stored.attempts == 1
    assert fleet.broker.dead_letters == []


async def test_messages_sent_before_a_worker_starts_run_when_it_does(fleet_factory: Any) -> None:
    recorder = Recorder()
    fleet = await fleet_factory({"work": recorder.gated()}, worker=False)
    jobs = [await fleet.submit("work") for _ in range(3)]
    assert {(await fleet.jobs.get(j.id)).status for j in jobs} == {JobStatus.QUEUED}

    await fleet.start_worker()
    await drain(fleet)

    assert sorted(recorder.calls) == sorted(j.id for j in jobs)


async def test_a_worker_whose_notibot_cannot_start_yet_retries_on_its_messages(
    fleet_factory: Any,
) -> None:
    recorder = Recorder()
    fleet = await fleet_factory({"work": recorder.gated()}, boot_failures=2)
    assert fleet.runtime.app is None  # the start at boot failed, and was logged

    job = await fleet.submit("work")
    await drain(fleet)

    assert fleet.boot_attempts == 3  # boot, first delivery (retried), second delivery
    assert (await fleet.jobs.get(job.id)).status is JobStatus.SUCCEEDED
    assert recorder.calls == [job.id]


async def test_a_worker_shutdown_interrupts_running_jobs_and_they_are_marked_failed(
    fleet_factory: Any,
) -> None:
    started = threading.Event()
    fleet = await fleet_factory({"stuck": Recorder().gated(threading.Event(), started)})
    job = await fleet.submit("stuck")
    await until(started)

    await asyncio.to_thread(fleet.worker.stop)
    fleet.worker = None

    stored = await fleet.jobs.get(job.id)
    assert stored.status is JobStatus.FAILED
    assert "interrupted" in (stored.failure_reason or "")
    assert fleet.runtime.app is None  # the worker's Notibot was stopped with it


async def test_the_worker_sweeps_jobs_abandoned_by_dead_workers(fleet_factory: Any) -> None:
    clock = FakeClock()
    fleet = await fleet_factory({"work": Recorder().gated()}, worker=False,
                                sweep_interval=0.01, worker_overrides={"clock": clock},
                                settings={"job_stale_after": 60})
    orphan = Job(id="orphan", kind="work", created_at=clock.current)
    orphan.start(clock.current)  # its worker died right after starting it
    await fleet.jobs.add(orphan)
    await fleet.start_worker()
    assert (await fleet.jobs.get("orphan")).status is JobStatus.RUNNING

    clock.advance(61)
    stored = await fleet.wait_for("orphan", JobStatus.FAILED)

    assert "abandoned" in (stored.failure_reason or "")


async def test_submit_fails_the_job_when_the_broker_is_unreachable() -> None:
    # The API side only: a Redis broker on a port where nothing listens (no connection is
    # made until the first send).
    app = memory_notibot(settings={"queue": "dramatiq",
                                   "broker_url": "redis://127.0.0.1:1/0"})
    await app.start()
    try:
        with pytest.raises(ServiceUnavailable) as exc:
            await app.jobs.submit("test")
        assert exc.value.code == "broker_unavailable"
        page = await app.container.job_repository().list(JobFilter(), limit=10, offset=0)
        assert [j.status for j in page.items] == [JobStatus.FAILED]
        assert "could not be queued" in (page.items[0].failure_reason or "")
    finally:
        await app.stop()


async def test_run_job_outside_a_worker_says_what_is_missing() -> None:
    with pytest.raises(RuntimeError, match="no notibot worker"):
        active_lifecycle()
    with pytest.raises(RuntimeError, match="no notibot worker"):
        await run_job("job1")
