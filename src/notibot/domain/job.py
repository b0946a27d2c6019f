"""Job: a background task (CSV import, campaign send, chat reply) and its state machine.

States::

    queued --start--> running --succeed--> succeeded
       |                 |----fail-------> failed
       |                 '----cancel-----> cancelled   (at a checkpoint, after cancel was asked)
       '--cancel--> cancelled                         (never started)
       '--fail----> failed                            (could not be started)

Cancellation is cooperative: :meth:`Job.request_cancel` raises a flag on a running job, and the
job's own code stops at its next checkpoint (between batches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from notibot.domain.errors import InvalidTransition

#: How many row errors a job keeps inline (``GET /tasks/{id}``); the rest are counted.
MAX_INLINE_ERRORS = 100


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_finished(self) -> bool:
        """True for succeeded, failed and cancelled: no further transition is possible."""
        return self in FINISHED


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


class JobKind(StrEnum):
    """The kinds of job notibot runs. Handlers are registered per kind by the application."""

    CSV_IMPORT = "csv_import"
    CAMPAIGN_SEND = "campaign_send"
    CHAT_REPLY = "chat_reply"


@dataclass(slots=True, frozen=True)
class JobError:
    """One error a job recorded: usually a rejected input row.

    Attributes:
        code: machine-readable reason, e.g. ``invalid_email``.
        message: human explanation.
        line: 1-based line number in the input file, when the error is about a row.
        values: the row's original cells by column name, so a rejected row can be fixed and
            imported again.
    """

    code: str
    message: str
    line: int | None = None
    values: dict[str, str] | None = None


@dataclass(slots=True)
class Job:
    """A background task with progress counters.

    Attributes:
        kind: a :class:`JobKind` value (or a kind registered by a user of the library).
        params: the job's input, JSON-serialisable ids and options only (never whole objects).
        total: number of units of work when known (rows, recipients); ``None`` when unknown.
        counters: named counts; ``counters["processed"]`` drives :attr:`progress`.
        errors: the first :data:`MAX_INLINE_ERRORS` errors; ``error_count`` counts all.
        heartbeat_at: last sign of life of the process running the job (UTC).
        result: the job's output summary once it succeeded.
        failure_reason: why it failed, when it failed.
    """

    id: str
    kind: str
    created_at: datetime
    status: JobStatus = JobStatus.QUEUED
    created_by: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    total: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    errors: list[JobError] = field(default_factory=list)
    error_count: int = 0
    cancel_requested: bool = False
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    result: dict[str, Any] | None = None
    failure_reason: str | None = None

    # -- state machine -------------------------------------------------------------------

    @property
    def is_finished(self) -> bool:
        """True once the job reached succeeded, failed or cancelled."""
        return self.status.is_finished

    def _require(self, action: str, *allowed: JobStatus) -> None:
        if self.status not in allowed:
            raise InvalidTransition(
                f"cannot {action} job {self.id}: it is {self.status.value}",
                code=f"job_{self.status.value}" if self.is_finished else "invalid_transition",
                details={"job_id": self.id, "status": self.status.value, "action": action},
            )

    def start(self, now: datetime) -> None:
        """queued -> running. Raises InvalidTransition from any other state."""
        self._require("start", JobStatus.QUEUED)
        self.status = JobStatus.RUNNING
        self.started_at = now
        self.heartbeat_at = now
        self.attempts += 1

    def succeed(self, now: datetime, result: dict[str, Any] | None = None) -> None:
        """running -> succeeded, keeping ``result``. Raises InvalidTransition otherwise."""
        self._require("complete", JobStatus.RUNNING)
        self.status = JobStatus.SUCCEEDED
        self.finished_at = now
        self.result = result

    def fail(self, now: datetime, reason: str) -> None:
        """queued|running -> failed with ``reason``. Raises InvalidTransition otherwise."""
        self._require("fail", JobStatus.QUEUED, JobStatus.RUNNING)
        self.status = JobStatus.FAILED
        self.finished_at = now
        self.failure_reason = reason

    def cancel(self, now: datetime) -> None:
        """queued -> cancelled at once, or running -> cancelled (called by the runner at a
        checkpoint after :meth:`request_cancel`). Raises InvalidTransition when finished."""
        self._require("cancel", JobStatus.QUEUED, JobStatus.RUNNING)
        self.status = JobStatus.CANCELLED
        self.finished_at = now
        self.cancel_requested = True

    def request_cancel(self) -> None:
        """Ask a running job to stop at its next checkpoint. Raises InvalidTransition when the
        job is not running."""
        self._require("cancel", JobStatus.RUNNING)
        self.cancel_requested = True

    # -- progress ------------------------------------------------------------------------

    def beat(self, now: datetime) -> None:
        """Record a sign of life of the running process."""
        self.heartbeat_at = now

    def add_counts(self, **deltas: int) -> None:
        """Add ``deltas`` to the named counters (``processed=500, created=480``)."""
        for name, delta in deltas.items():
            self.counters[name] = self.counters.get(name, 0) + delta

    def add_errors(self, errors: list[JobError]) -> None:
        """Count ``errors`` and keep them while fewer than :data:`MAX_INLINE_ERRORS` are kept."""
        room = MAX_INLINE_ERRORS - len(self.errors)
        if room > 0:
            self.errors.extend(errors[:room])
        self.error_count += len(errors)

    @property
    def progress(self) -> float | None:
        """Fraction of the work done, 0.0 to 1.0; ``None`` while ``total`` is unknown.
        A succeeded job is always 1.0."""
        if self.status is JobStatus.SUCCEEDED:
            return 1.0
        if not self.total:
            return 0.0 if self.total == 0 else None
        return min(1.0, self.counters.get("processed", 0) / self.total)

    def eta_seconds(self, now: datetime) -> float | None:
        """Estimated seconds left, by linear extrapolation of the rate so far; ``None`` when
        the job is not running or nothing has been processed yet."""
        progress = self.progress
        if self.status is not JobStatus.RUNNING or not progress or self.started_at is None:
            return None
        elapsed = (now - self.started_at).total_seconds()
        return max(0.0, elapsed / progress - elapsed)

    @property
    def last_seen_at(self) -> datetime:
        """The job's last sign of life: its last heartbeat, else its start, else its
        creation (UTC). Stale-job searches compare this."""
        return self.heartbeat_at or self.started_at or self.created_at

    def is_stale(self, now: datetime, stale_after_seconds: float) -> bool:
        """True when the job is running but its last heartbeat is older than
        ``stale_after_seconds``: the process that ran it has died."""
        if self.status is not JobStatus.RUNNING:
            return False
        return (now - self.last_seen_at).total_seconds() > stale_after_seconds
