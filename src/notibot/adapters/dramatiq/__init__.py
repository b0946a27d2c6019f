"""The Dramatiq job queue: Redis or RabbitMQ brokers, a ``run_job(job_id)`` actor, workers.

The API process sends ``run_job(job_id)`` messages (:class:`DramatiqJobQueue`); worker
processes (``notibot worker``) consume them and run each job with their own container's
JobRunner (:class:`WorkerRuntime`, started by the :class:`WorkerLifecycle` middleware on the
worker's event loop).

Delivery and failures:

* At least once. Messages carry only the job id and the JobRunner is idempotent: a redelivered
  message for a job that is no longer queued does nothing.
* A failure the runner lets through (the store unreachable while the job is read or started)
  is retried with exponential backoff when transient (:func:`is_transient`); the job stays
  queued meanwhile. A job's own failure (its handler raised, InvalidInput or even
  ServiceUnavailable) is recorded on the job by the runner and is not retried by the queue.
* A worker that dies mid-job leaves the job ``running``; its message comes back (Redis: after
  the broker's heartbeat timeout; RabbitMQ: when the connection drops) and finds the job
  running, so nothing runs twice. ``JobService.fail_stale`` marks the job failed once its
  heartbeat is older than NOTIBOT_JOB_STALE_AFTER: at the next start-up of any notibot process,
  and periodically in every running worker (``notibot.entrypoints.worker``).

Cancel: a queued job is cancelled in the store and its message is a no-op when it arrives; a
running job stops at its next checkpoint (the cooperative ``cancel_requested`` flag in the
JobRepository, read after every batch). dramatiq-abort is deliberately not installed: its abort
raises an exception at an arbitrary point of the job (possibly in the middle of a bulk write),
which the JobRunner records as "failed: interrupted" rather than "cancelled"; the JobQueue port
has no cancel hook that would send the abort, and the abort backend would need Redis even with
a RabbitMQ broker. It would only shorten the wait until the next checkpoint, and batches are
short by design.
"""

from notibot.adapters.dramatiq.actors import (
    RUN_JOB,
    ExecutorRuntime,
    WorkerLifecycle,
    WorkerRuntime,
    active_lifecycle,
    run_job,
)
from notibot.adapters.dramatiq.broker import (
    DEFAULT_NAMESPACE,
    DEFAULT_QUEUE,
    MAX_BACKOFF_MS,
    MAX_RETRIES,
    MIN_BACKOFF_MS,
    STUB_URL,
    TransientRetries,
    broker_kind,
    close_broker,
    configure_broker,
    is_transient,
    notibot_middleware,
)
from notibot.adapters.dramatiq.health import BrokerHealthCheck
from notibot.adapters.dramatiq.job_queue import DramatiqJobQueue

__all__ = [
    "DEFAULT_NAMESPACE", "DEFAULT_QUEUE", "MAX_BACKOFF_MS", "MAX_RETRIES", "MIN_BACKOFF_MS",
    "RUN_JOB", "STUB_URL", "BrokerHealthCheck", "DramatiqJobQueue", "ExecutorRuntime",
    "TransientRetries", "WorkerLifecycle", "WorkerRuntime", "active_lifecycle", "broker_kind",
    "close_broker", "configure_broker", "is_transient", "notibot_middleware", "run_job",
]
