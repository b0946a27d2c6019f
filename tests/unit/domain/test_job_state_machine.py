"""Job: the state machine, progress, ETA, staleness and row errors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from notibot.domain import InvalidTransition, Job, JobError, JobStatus
from notibot.domain.job import MAX_INLINE_ERRORS

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job_in(status: JobStatus) -> Job:
    return Job(id="j1", kind="csv_import", created_at=T0, status=status)


ACTIONS: dict[str, Callable[[Job], None]] = {
    "start": lambda job: job.start(at(1)),
    "succeed": lambda job: job.succeed(at(2), {"rows": 3}),
    "fail": lambda job: job.fail(at(2), "broken"),
    "cancel": lambda job: job.cancel(at(2)),
    "request_cancel": lambda job: job.request_cancel(),
}

#: (from status, action) -> resulting status; every pair not listed is forbidden.
ALLOWED = {
    (JobStatus.QUEUED, "start"): JobStatus.RUNNING,
    (JobStatus.QUEUED, "fail"): JobStatus.FAILED,
    (JobStatus.QUEUED, "cancel"): JobStatus.CANCELLED,
    (JobStatus.RUNNING, "succeed"): JobStatus.SUCCEEDED,
    (JobStatus.RUNNING, "fail"): JobStatus.FAILED,
    (JobStatus.RUNNING, "cancel"): JobStatus.CANCELLED,
    (JobStatus.RUNNING, "request_cancel"): JobStatus.RUNNING,
}
FORBIDDEN = [(s, a) for s in JobStatus for a in ACTIONS if (s, a) not in ALLOWED]


@pytest.mark.parametrize(("status", "action"), list(ALLOWED), ids=lambda v: str(v))
def test_allowed_transitions(status: JobStatus, action: str) -> None:
    job = job_in(status)

    ACTIONS[action](job)

    assert job.status is ALLOWED[(status, action)]


@pytest.mark.parametrize(("status", "action"), FORBIDDEN, ids=lambda v: str(v))
def test_forbidden_transitions_raise_and_change_nothing(status: JobStatus, action: str) -> None:
    job = job_in(status)
    before = job_in(status)

    with pytest.raises(InvalidTransition) as exc:
        ACTIONS[action](job)

    assert job == before
    expected_code = f"job_{status.value}" if status.is_finished else "invalid_transition"
    assert exc.value.code == expected_code
    assert exc.value.details["status"] == status.value
    assert exc.value.details["job_id"] == "j1"


def test_there_are_seven_allowed_and_eighteen_forbidden_pairs() -> None:
    assert len(ALLOWED) == 7
    assert len(FORBIDDEN) == 18


def test_finished_statuses() -> None:
    assert {s for s in JobStatus if s.is_finished} == {
        JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
    assert job_in(JobStatus.FAILED).is_finished
    assert not job_in(JobStatus.RUNNING).is_finished


def test_start_records_times_and_counts_the_attempt() -> None:
    job = job_in(JobStatus.QUEUED)

    job.start(at(5))

    assert job.started_at == job.heartbeat_at == at(5)
    assert job.attempts == 1


def test_succeed_keeps_the_result_and_the_finish_time() -> None:
    job = job_in(JobStatus.RUNNING)

    job.succeed(at(9), {"created": 10})

    assert job.result == {"created": 10}
    assert job.finished_at == at(9)
    assert job.failure_reason is None


def test_fail_keeps_the_reason() -> None:
    job = job_in(JobStatus.QUEUED)

    job.fail(at(3), "could not be queued")

    assert job.failure_reason == "could not be queued"
    assert job.finished_at == at(3)


def test_request_cancel_only_raises_the_flag() -> None:
    job = job_in(JobStatus.RUNNING)

    job.request_cancel()

    assert job.cancel_requested is True
    assert job.status is JobStatus.RUNNING
    assert job.finished_at is None


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING])
def test_cancel_finishes_the_job_with_the_flag_set(status: JobStatus) -> None:
    job = job_in(status)

    job.cancel(at(4))

    assert job.cancel_requested is True
    assert job.finished_at == at(4)


# -- progress / eta / staleness --------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "processed", "expected"),
    [
        (None, 0, None),
        (None, 10, None),
        (0, 0, 0.0),
        (10, 0, 0.0),
        (10, 5, 0.5),
        (200, 50, 0.25),
        (10, 10, 1.0),
        (10, 15, 1.0),
    ],
)
def test_progress_is_processed_over_total(
    total: int | None, processed: int, expected: float | None
) -> None:
    job = job_in(JobStatus.RUNNING)
    job.total = total
    job.add_counts(processed=processed)

    assert job.progress == expected


def test_a_succeeded_job_is_always_complete() -> None:
    job = job_in(JobStatus.RUNNING)
    job.total = 100
    job.add_counts(processed=3)

    job.succeed(at(1))

    assert job.progress == 1.0


def test_counters_add_up() -> None:
    job = job_in(JobStatus.RUNNING)

    job.add_counts(processed=5, created=4)
    job.add_counts(processed=5, updated=1)

    assert job.counters == {"processed": 10, "created": 4, "updated": 1}


def test_eta_extrapolates_the_rate_so_far() -> None:
    job = job_in(JobStatus.QUEUED)
    job.start(at(0))
    job.total = 100
    job.add_counts(processed=25)

    assert job.eta_seconds(at(10)) == pytest.approx(30.0)
    job.add_counts(processed=25)
    assert job.eta_seconds(at(10)) == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("status", "total", "processed"),
    [
        (JobStatus.QUEUED, 100, 0),
        (JobStatus.RUNNING, None, 10),
        (JobStatus.RUNNING, 100, 0),
        (JobStatus.SUCCEEDED, 100, 100),
    ],
)
def test_eta_is_unknown_unless_running_with_progress(
    status: JobStatus, total: int | None, processed: int
) -> None:
    job = job_in(status)
    job.started_at = T0
    job.total = total
    job.add_counts(processed=processed)

    assert job.eta_seconds(at(10)) is None


def test_a_running_job_is_stale_once_its_heartbeat_is_too_old() -> None:
    job = job_in(JobStatus.QUEUED)
    job.start(at(0))
    job.beat(at(100))

    assert job.is_stale(at(160), stale_after_seconds=60) is False
    assert job.is_stale(at(161), stale_after_seconds=60) is True


def test_staleness_falls_back_to_start_then_creation_time() -> None:
    job = job_in(JobStatus.RUNNING)  # no heartbeat, no start recorded
    assert job.is_stale(at(61), stale_after_seconds=60) is True
    assert job.is_stale(at(59), stale_after_seconds=60) is False

    job.started_at = at(50)
    assert job.is_stale(at(61), stale_after_seconds=60) is False


@pytest.mark.parametrize("status", [s for s in JobStatus if s is not JobStatus.RUNNING])
def test_only_running_jobs_can_be_stale(status: JobStatus) -> None:
    assert job_in(status).is_stale(at(10_000), stale_after_seconds=1) is False


# -- errors ----------------------------------------------------------------------------------


def errors(start: int, count: int) -> list[JobError]:
    return [JobError("invalid_email", f"row {n}", line=n) for n in range(start, start + count)]


def test_add_errors_keeps_the_first_hundred_and_counts_all() -> None:
    job = job_in(JobStatus.RUNNING)

    job.add_errors(errors(2, 60))
    job.add_errors(errors(62, 60))
    job.add_errors(errors(122, 5))

    assert MAX_INLINE_ERRORS == 100
    assert len(job.errors) == 100
    assert [e.line for e in job.errors] == list(range(2, 102))
    assert job.error_count == 125


def test_add_no_errors_changes_nothing() -> None:
    job = job_in(JobStatus.RUNNING)

    job.add_errors([])

    assert job.errors == []
    assert job.error_count == 0
