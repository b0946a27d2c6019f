"""The Dramatiq job queue: sends ``run_job(job_id)`` messages to the broker."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from dramatiq.errors import DramatiqError
from redis import exceptions as redis_errors

from notibot.adapters.dramatiq.actors import RUN_JOB
from notibot.adapters.dramatiq.broker import close_broker
from notibot.application.ports import JobQueue
from notibot.domain import Job, ServiceUnavailable

if TYPE_CHECKING:
    from dramatiq import Broker

log = logging.getLogger(__name__)

#: Threads that talk to the broker for one queue (sends block on the network; RabbitMQ keeps
#: one connection per thread).
SEND_THREADS = 4


def _broker_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (DramatiqError, redis_errors.RedisError, OSError)
    try:
        from pika.exceptions import AMQPError
    except ImportError:  # pragma: no cover - the rabbitmq extra is a dependency
        return errors
    return (*errors, AMQPError)


class DramatiqJobQueue(JobQueue):
    """Hands jobs to Dramatiq workers: :meth:`enqueue` sends a ``run_job`` message carrying only
    the job id, from a small thread pool (the broker clients block), so the event loop never
    waits on the network.

    Delivery is at least once; that is safe because the JobRunner skips a job that is no longer
    queued. A job whose worker died mid-run stays ``running`` (the redelivered message finds it
    running and does nothing) until ``JobService.fail_stale`` marks it failed: at the next
    start-up of any notibot process, or by a worker's periodic stale sweep.

    Jobs run in worker processes, so :meth:`close` does not interrupt them: a worker
    interrupts its own jobs when it shuts down (they are then marked failed, "interrupted").

    Parameters:
        broker: a broker from :func:`~notibot.adapters.dramatiq.configure_broker` (the
            ``run_job`` actor declared on it).
        close_broker: close the broker's connections in :meth:`close` (False when the broker
            is shared, as in a worker process whose consumer uses it).
    """

    def __init__(self, broker: Broker, *, close_broker: bool = True) -> None:
        self.broker = broker
        self._actor = broker.get_actor(RUN_JOB)
        self._close_broker = close_broker
        self._errors = _broker_errors()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("the job queue is closed", code="queue_closed")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="notibot-send")
            return self._pool

    async def enqueue(self, job: Job) -> None:
        """Send ``run_job(job.id)``.

        Raises:
            ServiceUnavailable: ``queue_closed`` after :meth:`close`; ``broker_unavailable``
                when the broker cannot be reached.
        """
        pool = self._threads()
        loop = asyncio.get_running_loop()
        try:
            sending = loop.run_in_executor(pool, self._actor.send, job.id)
        except RuntimeError:  # closed between the check above and now
            raise ServiceUnavailable("the job queue is closed", code="queue_closed") from None
        try:
            message = await sending
        except self._errors as exc:
            raise ServiceUnavailable(
                f"the job broker cannot be reached: {exc or type(exc).__name__}",
                code="broker_unavailable", details={"error": type(exc).__name__}) from exc
        log.debug("job %s sent as message %s", job.id, message.message_id)

    async def close(self) -> None:
        """Refuse further jobs, wait for sends in flight and close the broker's connections
        (when this queue owns the broker)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is None and not self._close_broker:
            return
        pool = pool or ThreadPoolExecutor(1, thread_name_prefix="notibot-send")
        try:
            if self._close_broker:
                # RabbitMQ connections are per thread: close them from a pool thread.
                await asyncio.get_running_loop().run_in_executor(pool, close_broker, self.broker)
        except Exception:
            log.warning("closing the job broker failed", exc_info=True)
        finally:
            await asyncio.to_thread(pool.shutdown, wait=True)
