"""Contract of the JobRepository port: every adapter must pass these tests.

Add an adapter by appending a factory to ``ADAPTERS``: a zero-argument callable returning an
async context manager that yields an empty repository and cleans up on exit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from mongo_support import mongo_adapters

from notibot.adapters.memory import MemoryJobRepository
from notibot.adapters.mongo import MongoJobRepository
from notibot.application.ports import JobFilter, JobRepository
from notibot.domain import Conflict, Job, JobError, JobStatus, NotFound


@asynccontextmanager
async def memory_repository() -> AsyncIterator[JobRepository]:
    yield MemoryJobRepository()


ADAPTERS = [pytest.param(memory_repository, id="memory"), *mongo_adapters(MongoJobRepository)]

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=ADAPTERS)
async def repo(request: pytest.FixtureRequest) -> AsyncIterator[JobRepository]:
    async with request.param() as repository:
        yield repository


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make(id: str, *, kind: str = "csv_import", second: float = 0,
         status: JobStatus = JobStatus.QUEUED, created_by: str | None = None) -> Job:
    """A job created ``second`` seconds after T0, brought to ``status`` by the state machine
    (running jobs start at their creation time)."""
    job = Job(id=id, kind=kind, created_at=at(second), created_by=created_by,
              params={"upload_id": f"up-{id}"})
    if status is not JobStatus.QUEUED:
        if status is JobStatus.CANCELLED:
            job.cancel(at(second))
            return job
        job.start(at(second))
        if status is JobStatus.SUCCEEDED:
            job.succeed(at(second + 1), {"ok": True})
        elif status is JobStatus.FAILED:
            job.fail(at(second + 1), "boom")
    return job


# -- add / get / copies ----------------------------------------------------------------------


async def test_add_then_get_returns_an_equal_job(repo: JobRepository) -> None:
    job = make("j1", status=JobStatus.RUNNING, created_by="u1")
    job.total = 100
    job.add_counts(processed=40, created=38)
    job.add_errors([JobError("invalid_email", "bad email", line=3)])
    await repo.add(job)

    assert await repo.get("j1") == job


async def test_add_with_a_taken_id_raises_conflict(repo: JobRepository) -> None:
    await repo.add(make("j1", kind="csv_import"))

    with pytest.raises(Conflict):
        await repo.add(make("j1", kind="campaign_send"))

    assert (await repo.get("j1")).kind == "csv_import"


async def test_get_unknown_raises_job_not_found(repo: JobRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.get("ghost")

    assert exc.value.code == "job_not_found"


async def test_returned_jobs_are_copies(repo: JobRepository) -> None:
    await repo.add(make("j1"))

    got = await repo.get("j1")
    got.start(at(5))
    got.add_counts(processed=10)
    got.params["upload_id"] = "changed"

    stored = await repo.get("j1")
    assert stored.status is JobStatus.QUEUED
    assert stored.counters == {}
    assert stored.params == {"upload_id": "up-j1"}


async def test_changing_the_added_job_afterwards_changes_nothing_stored(
    repo: JobRepository,
) -> None:
    job = make("j1")
    await repo.add(job)

    job.start(at(1))

    assert (await repo.get("j1")).status is JobStatus.QUEUED


# -- update (compare-and-set) ----------------------------------------------------------------


async def test_update_without_expected_status_writes(repo: JobRepository) -> None:
    await repo.add(make("j1"))
    job = await repo.get("j1")
    job.start(at(1))
    job.add_counts(processed=5)

    assert await repo.update(job) is True

    stored = await repo.get("j1")
    assert stored.status is JobStatus.RUNNING
    assert stored.counters == {"processed": 5}
    assert stored.attempts == 1


async def test_update_with_matching_expected_status_writes(repo: JobRepository) -> None:
    await repo.add(make("j1"))
    job = await repo.get("j1")
    job.start(at(1))

    assert await repo.update(job, expected_status=JobStatus.QUEUED) is True
    assert (await repo.get("j1")).status is JobStatus.RUNNING


async def test_update_with_stale_expected_status_returns_false_and_writes_nothing(
    repo: JobRepository,
) -> None:
    await repo.add(make("j1"))
    runner_copy = await repo.get("j1")
    api_copy = await repo.get("j1")
    api_copy.cancel(at(1))
    assert await repo.update(api_copy, expected_status=JobStatus.QUEUED) is True

    runner_copy.start(at(2))
    runner_copy.add_counts(processed=1)
    written = await repo.update(runner_copy, expected_status=JobStatus.QUEUED)

    assert written is False
    stored = await repo.get("j1")
    assert stored.status is JobStatus.CANCELLED
    assert stored.started_at is None
    assert stored.counters == {}


async def test_update_unknown_raises_not_found(repo: JobRepository) -> None:
    with pytest.raises(NotFound):
        await repo.update(make("ghost"))
    with pytest.raises(NotFound):
        await repo.update(make("ghost"), expected_status=JobStatus.QUEUED)


async def test_cancel_requested_is_sticky_across_updates(repo: JobRepository) -> None:
    await repo.add(make("j1", status=JobStatus.RUNNING))
    runner_copy = await repo.get("j1")  # read before the cancel request
    assert await repo.request_cancel("j1") is True

    runner_copy.add_counts(processed=10)
    assert runner_copy.cancel_requested is False
    assert await repo.update(runner_copy, expected_status=JobStatus.RUNNING) is True

    stored = await repo.get("j1")
    assert stored.cancel_requested is True
    assert stored.counters == {"processed": 10}


# -- request_cancel / touch / delete ---------------------------------------------------------


async def test_request_cancel_flags_a_running_job_only(repo: JobRepository) -> None:
    await repo.add(make("j1", status=JobStatus.RUNNING))

    assert await repo.request_cancel("j1") is True

    stored = await repo.get("j1")
    assert stored.cancel_requested is True
    assert stored.status is JobStatus.RUNNING


@pytest.mark.parametrize(
    "status",
    [JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED],
)
async def test_request_cancel_on_a_job_not_running_changes_nothing(
    repo: JobRepository, status: JobStatus
) -> None:
    job = make("j1", status=status)
    await repo.add(job)

    assert await repo.request_cancel("j1") is False
    assert await repo.get("j1") == job


async def test_request_cancel_unknown_raises_not_found(repo: JobRepository) -> None:
    with pytest.raises(NotFound):
        await repo.request_cancel("ghost")


async def test_touch_sets_the_heartbeat_and_nothing_else(repo: JobRepository) -> None:
    await repo.add(make("j1", status=JobStatus.RUNNING))
    progressed = await repo.get("j1")
    progressed.add_counts(processed=7)
    await repo.update(progressed)

    await repo.touch("j1", at(30))

    stored = await repo.get("j1")
    assert stored.heartbeat_at == at(30)
    assert stored.counters == {"processed": 7}
    assert stored.status is JobStatus.RUNNING
    assert stored.started_at == at(0)


async def test_delete_removes_the_job(repo: JobRepository) -> None:
    await repo.add(make("j1", status=JobStatus.SUCCEEDED))

    await repo.delete("j1")

    with pytest.raises(NotFound):
        await repo.get("j1")
    assert (await repo.stats()).total == 0


async def test_delete_unknown_raises_not_found(repo: JobRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.delete("ghost")

    assert exc.value.code == "job_not_found"


# -- list / stats / stale --------------------------------------------------------------------


async def test_list_is_newest_first_then_by_id_descending(repo: JobRepository) -> None:
    await repo.add(make("a", second=10))
    await repo.add(make("c", second=1))
    await repo.add(make("b", second=10))
    await repo.add(make("d", second=5))

    page = await repo.list(JobFilter(), limit=10, offset=0)

    assert [j.id for j in page.items] == ["b", "a", "d", "c"]


async def test_list_pages_with_total(repo: JobRepository) -> None:
    for i in range(5):
        await repo.add(make(f"j{i}", second=i))

    first = await repo.list(JobFilter(), limit=2, offset=0)
    last = await repo.list(JobFilter(), limit=2, offset=4)

    assert [j.id for j in first.items] == ["j4", "j3"]
    assert [j.id for j in last.items] == ["j0"]
    assert first.total == last.total == 5
    assert (first.limit, first.offset) == (2, 0)


@pytest.fixture
async def jobs(repo: JobRepository) -> JobRepository:
    await repo.add(make("q1", kind="csv_import", second=1, created_by="alice"))
    await repo.add(make("r1", kind="campaign_send", second=2, status=JobStatus.RUNNING,
                        created_by="bob"))
    await repo.add(make("s1", kind="csv_import", second=3, status=JobStatus.SUCCEEDED,
                        created_by="alice"))
    await repo.add(make("f1", kind="chat_reply", second=4, status=JobStatus.FAILED))
    await repo.add(make("s2", kind="campaign_send", second=5, status=JobStatus.SUCCEEDED,
                        created_by="alice"))
    return repo


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        pytest.param(JobFilter(), ["s2", "f1", "s1", "r1", "q1"], id="none"),
        pytest.param(JobFilter(status=JobStatus.SUCCEEDED), ["s2", "s1"], id="status"),
        pytest.param(JobFilter(status=JobStatus.CANCELLED), [], id="status-none"),
        pytest.param(JobFilter(kind="csv_import"), ["s1", "q1"], id="kind"),
        pytest.param(JobFilter(created_by="alice"), ["s2", "s1", "q1"], id="created_by"),
        pytest.param(JobFilter(status=JobStatus.SUCCEEDED, kind="campaign_send",
                               created_by="alice"), ["s2"], id="and"),
    ],
)
async def test_list_filters(jobs: JobRepository, filter: JobFilter, expected: list[str]) -> None:
    page = await jobs.list(filter, limit=50, offset=0)

    assert [j.id for j in page.items] == expected
    assert page.total == len(expected)


async def test_stats_counts_by_status_with_every_status_present(jobs: JobRepository) -> None:
    stats = await jobs.stats()

    assert stats.by_status == {"queued": 1, "running": 1, "succeeded": 2, "failed": 1,
                               "cancelled": 0}
    assert stats.by_kind == {"csv_import": 2, "campaign_send": 2, "chat_reply": 1}
    assert stats.total == 5


async def test_stats_of_an_empty_store_lists_every_status_at_zero(repo: JobRepository) -> None:
    stats = await repo.stats()

    assert stats.by_status == {s.value: 0 for s in JobStatus}
    assert stats.total == 0


async def test_find_stale_returns_running_jobs_with_an_old_heartbeat(
    repo: JobRepository,
) -> None:
    await repo.add(make("old", status=JobStatus.RUNNING, second=0))
    await repo.add(make("fresh", status=JobStatus.RUNNING, second=0))
    await repo.touch("fresh", at(100))
    await repo.add(make("queued", second=0))
    await repo.add(make("done", status=JobStatus.SUCCEEDED, second=0))

    stale = await repo.find_stale(at(50))

    assert [j.id for j in stale] == ["old"]
    assert stale[0].status is JobStatus.RUNNING


async def test_find_stale_is_strictly_older_than_the_cutoff(repo: JobRepository) -> None:
    await repo.add(make("j1", status=JobStatus.RUNNING, second=0))

    assert await repo.find_stale(at(0)) == []
    assert [j.id for j in await repo.find_stale(at(0.001))] == ["j1"]


async def test_find_stale_falls_back_to_the_start_time_without_heartbeat(
    repo: JobRepository,
) -> None:
    job = make("j1", status=JobStatus.RUNNING, second=10)
    job.heartbeat_at = None
    await repo.add(job)

    assert await repo.find_stale(at(10)) == []
    assert [j.id for j in await repo.find_stale(at(11))] == ["j1"]


# -- row errors kept beside the job ----------------------------------------------------------


def row_errors(start: int, count: int) -> list[JobError]:
    return [JobError("invalid_email", f"row {n}", line=n, values={"email": f"bad{n}"})
            for n in range(start, start + count)]


async def test_errors_are_kept_in_order_and_paged(repo: JobRepository) -> None:
    await repo.add(make("j1", status=JobStatus.RUNNING))

    await repo.add_errors("j1", row_errors(2, 150))
    await repo.add_errors("j1", row_errors(152, 3))

    everything = await repo.list_errors("j1")
    assert [e.line for e in everything] == list(range(2, 155))
    assert everything[0] == JobError("invalid_email", "row 2", line=2, values={"email": "bad2"})
    assert [e.line for e in await repo.list_errors("j1", offset=150, limit=2)] == [152, 153]
    assert [e.line for e in await repo.list_errors("j1", offset=152)] == [154]
    assert await repo.list_errors("j1", offset=500) == []


async def test_a_job_without_errors_lists_none(repo: JobRepository) -> None:
    await repo.add(make("j1"))

    assert await repo.list_errors("j1") == []


async def test_adding_errors_to_an_unknown_job_raises_not_found(repo: JobRepository) -> None:
    with pytest.raises(NotFound):
        await repo.add_errors("ghost", row_errors(1, 1))


async def test_errors_are_removed_with_the_job(repo: JobRepository) -> None:
    await repo.add(make("j1", status=JobStatus.FAILED))
    await repo.add_errors("j1", row_errors(1, 5))

    await repo.delete("j1")
    await repo.add(make("j1"))

    assert await repo.list_errors("j1") == []


async def test_errors_of_one_job_are_not_another_jobs(repo: JobRepository) -> None:
    await repo.add(make("j1"))
    await repo.add(make("j2"))

    await repo.add_errors("j1", row_errors(1, 2))

    assert await repo.list_errors("j2") == []
    assert len(await repo.list_errors("j1")) == 2
