"""Dramatiq brokers for notibot: Redis or RabbitMQ chosen by URL, the stub broker for tests, and
the middleware every notibot broker carries.

Middleware, and why:

* ``AsyncIO``: actors are ``async def``; each worker process runs one event loop thread and
  every actor coroutine of the process runs on it (so the process's async clients belong to it).
* ``Retries`` with exponential backoff (:data:`MIN_BACKOFF_MS` doubling up to
  :data:`MAX_BACKOFF_MS`, with jitter), retrying only what :func:`is_transient` accepts:
  :class:`~notibot.domain.ServiceUnavailable` and connection/timeout errors. Everything else
  (domain errors such as InvalidInput, bugs) fails the message at once.
* ``ShutdownNotifications(notify_shutdown=True)``: a worker told to stop interrupts the jobs it
  runs; the JobRunner marks them failed ("interrupted") instead of leaving them running until
  the process is killed.
* No ``TimeLimit``: an import of a million rows may run longer than any fixed limit; a job's
  liveness is its heartbeat (stale jobs are failed by ``JobService.fail_stale``).
* No ``Abortable`` (dramatiq-abort): see :mod:`notibot.adapters.dramatiq` for why cancel relies
  on the cooperative flag only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

try:
    from dramatiq.errors import BrokerConnectionError
except ImportError:  # dramatiq < 2.0 names it ConnectionError
    from dramatiq.errors import ConnectionError as BrokerConnectionError  # type: ignore[no-redef]
from dramatiq.middleware import AsyncIO, Middleware, Retries, ShutdownNotifications
from redis import exceptions as redis_errors

from notibot.adapters.dramatiq.actors import WorkerLifecycle, WorkerRuntime, declare_run_job
from notibot.domain import NotibotError, ServiceUnavailable

if TYPE_CHECKING:
    from dramatiq import Broker

#: Queue of notibot's job messages (``notibot worker --queues``).
DEFAULT_QUEUE = "notibot"
#: Prefix of every key the Redis broker writes.
DEFAULT_NAMESPACE = "notibot"
#: Retries of a message whose run failed transiently (the store or broker was unreachable).
MAX_RETRIES = 20
#: First retry delay, milliseconds; each retry doubles it (plus up to 100 % jitter).
MIN_BACKOFF_MS = 1_000
#: Longest retry delay, milliseconds. 20 retries cover about two hours of outage.
MAX_BACKOFF_MS = 600_000
#: Broker URL of the in-memory stub broker (tests only; NOTIBOT_BROKER_URL does not take it).
STUB_URL = "stub://"

#: URL scheme -> broker kind.
BROKER_KINDS = {"redis": "redis", "rediss": "redis", "amqp": "rabbitmq", "amqps": "rabbitmq",
                "stub": "stub"}

#: Seconds the Redis broker's client waits to connect / for a reply. The Redis broker polls
#: with short Lua scripts (no blocking commands), so a reply never legitimately takes long.
REDIS_CONNECT_TIMEOUT = 2.0
REDIS_SOCKET_TIMEOUT = 10.0


def broker_kind(url: str) -> str:
    """``"redis"``, ``"rabbitmq"`` or ``"stub"`` for a broker URL.

    Raises:
        ValueError: the scheme is none of redis, rediss, amqp, amqps, stub.
    """
    scheme = urlsplit(url).scheme.lower()
    try:
        return BROKER_KINDS[scheme]
    except KeyError:
        raise ValueError(f"unsupported broker URL scheme {scheme!r}: use redis://, rediss://, "
                         "amqp:// or amqps://") from None


def is_transient(exc: BaseException) -> bool:
    """True when retrying later may succeed: ServiceUnavailable (unless it says
    ``transient=False``, like a permanent SMTP rejection) and connection or timeout errors.
    Domain errors, bugs and interruptions (worker shutdown) are not transient."""
    if isinstance(exc, ServiceUnavailable):
        return getattr(exc, "transient", True) is not False
    if isinstance(exc, NotibotError):
        return False
    return isinstance(exc, (ConnectionError, TimeoutError, BrokerConnectionError,
                            redis_errors.ConnectionError, redis_errors.TimeoutError))


class TransientRetries:
    """The ``retry_when`` predicate of the Retries middleware: retry transient errors only, at
    most ``max_retries`` times."""

    def __init__(self, max_retries: int = MAX_RETRIES) -> None:
        self.max_retries = max_retries

    def __call__(self, retries_so_far: int, exception: BaseException) -> bool:
        return retries_so_far < self.max_retries and is_transient(exception)


def notibot_middleware(*, max_retries: int = MAX_RETRIES, min_backoff: int = MIN_BACKOFF_MS,
                       max_backoff: int = MAX_BACKOFF_MS,
                       runtime: WorkerRuntime | None = None) -> list[Middleware]:
    """The middleware of a notibot broker, in order (see the module docstring).

    Parameters:
        runtime: what a worker of this broker runs jobs with; None for a broker that only
            sends (the API server).
    """
    middleware: list[Middleware] = [
        ShutdownNotifications(notify_shutdown=True),
        Retries(max_retries=max_retries, min_backoff=min_backoff, max_backoff=max_backoff,
                retry_when=TransientRetries(max_retries)),
        AsyncIO(),
    ]
    if runtime is not None:
        middleware.append(WorkerLifecycle(runtime))  # after AsyncIO: needs its loop
    return middleware


def configure_broker(
    url: str,
    *,
    runtime: WorkerRuntime | None = None,
    queue_name: str = DEFAULT_QUEUE,
    namespace: str = DEFAULT_NAMESPACE,
    max_retries: int = MAX_RETRIES,
    min_backoff: int = MIN_BACKOFF_MS,
    max_backoff: int = MAX_BACKOFF_MS,
) -> Broker:
    """Build the broker for ``url`` with notibot's middleware and its ``run_job`` actor.

    Opens no connection: Redis and RabbitMQ brokers connect on first use. Does not make the
    broker dramatiq's global broker (the worker entrypoint does that).

    Parameters:
        url: ``redis://`` / ``rediss://`` (RedisBroker), ``amqp://`` / ``amqps://``
            (RabbitmqBroker, publisher confirms on) or ``stub://`` (StubBroker, tests).
        runtime: see :func:`notibot_middleware`.
        queue_name: the queue of job messages.
        namespace: key prefix of the Redis broker (ignored by the others).
        max_retries, min_backoff, max_backoff: retry policy of transient failures
            (milliseconds).

    Raises:
        ValueError: unsupported URL scheme.
    """
    kind = broker_kind(url)
    middleware = notibot_middleware(max_retries=max_retries, min_backoff=min_backoff,
                                    max_backoff=max_backoff, runtime=runtime)
    broker: Broker
    if kind == "redis":
        import redis
        from dramatiq.brokers.redis import RedisBroker

        client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
                                      socket_timeout=REDIS_SOCKET_TIMEOUT,
                                      health_check_interval=30)
        broker = RedisBroker(client=client, namespace=namespace, middleware=middleware)
    elif kind == "rabbitmq":
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, confirm_delivery=True, middleware=middleware)
    else:
        from dramatiq.brokers.stub import StubBroker

        broker = StubBroker(middleware=middleware)
    declare_run_job(broker, queue_name=queue_name)
    return broker


def close_broker(broker: Broker) -> None:
    """Close the broker's connections (RabbitMQ channels, the Redis connection pool)."""
    broker.close()
    client = getattr(broker, "client", None)  # RedisBroker: close() leaves its pool open
    if client is not None:
        client.close()


__all__ = [
    "DEFAULT_NAMESPACE", "DEFAULT_QUEUE", "MAX_BACKOFF_MS", "MAX_RETRIES", "MIN_BACKOFF_MS",
    "STUB_URL", "TransientRetries", "broker_kind", "close_broker", "configure_broker",
    "is_transient", "notibot_middleware",
]
