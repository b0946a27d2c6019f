"""The redis.asyncio client: one per event loop, and redis errors as the domain's errors.

A ``redis.asyncio.Redis`` belongs to the event loop it first talks in (its connections are
that loop's streams). The API server and each Dramatiq worker process run their own loop, so
each builds its own client: :class:`RedisConnection` creates the client lazily, inside the
running loop, and refuses to hand it to another live loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis

from notibot.domain import ServiceUnavailable

#: Seconds to open a TCP connection to Redis before giving up.
CONNECT_TIMEOUT = 2.0
#: Seconds to wait for an answer on an open connection (no blocking commands are used).
SOCKET_TIMEOUT = 5.0
#: Seconds of idleness after which a pooled connection is checked before reuse.
HEALTH_CHECK_INTERVAL = 30
#: Connections one client may open at once (commands beyond wait for a free one).
MAX_CONNECTIONS = 64
#: Seconds a command waits for a free pooled connection before failing.
POOL_TIMEOUT = 10.0


def redact_url(url: str) -> str:
    """``url`` without its password (``redis://user:***@host:6379/0``), for logs and reports."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def create_redis_client(url: str, *, connect_timeout: float = CONNECT_TIMEOUT,
                        socket_timeout: float = SOCKET_TIMEOUT) -> Redis:
    """Return a new ``redis.asyncio.Redis`` for ``url`` (no connection is opened yet).

    The client's pool holds at most :data:`MAX_CONNECTIONS` connections; a command beyond
    them waits up to :data:`POOL_TIMEOUT` seconds for a free one (redis-py's default pool
    would fail at once with "Too many connections").

    Call it inside the event loop that will use the client: the client and its pool belong to
    that loop. Replies are decoded to ``str`` (UTF-8): notibot keeps text and JSON in Redis.

    Parameters:
        url: ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL, optionally with a database
            number (``redis://host:6379/0``) and credentials.
        connect_timeout: seconds to open a connection.
        socket_timeout: seconds to wait for a reply.

    Raises:
        RuntimeError: no event loop is running in this thread.
        ValueError: ``url`` is not a Redis URL.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("create the Redis client inside the event loop that uses it "
                           "(no event loop is running in this thread)") from None
    pool = BlockingConnectionPool.from_url(
        url, decode_responses=True, socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout, health_check_interval=HEALTH_CHECK_INTERVAL,
        max_connections=MAX_CONNECTIONS, timeout=POOL_TIMEOUT)
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


class RedisConnection:
    """The Redis client of one container: created on first use inside the running event loop,
    closed by :meth:`aclose`. Building this object opens nothing.

    One client per event loop: asking from a second loop while the first still runs raises
    RuntimeError (build one container per loop, DESIGN "never share one client object between
    loops"); once the first loop is closed, a new client is created for the new loop.

    Parameters:
        url: the Redis URL (NOTIBOT_REDIS_URL).
    """

    def __init__(self, url: str, *, connect_timeout: float = CONNECT_TIMEOUT,
                 socket_timeout: float = SOCKET_TIMEOUT) -> None:
        self.url = url
        self._connect_timeout = connect_timeout
        self._socket_timeout = socket_timeout
        self._client: Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"RedisConnection({redact_url(self.url)!r})"

    def client(self) -> Redis:
        """The client of the running event loop, created on first call.

        Raises:
            RuntimeError: no loop is running, or the client belongs to another loop that is
                still open.
        """
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed():
                raise RuntimeError(
                    "this Redis client belongs to another event loop; build one container "
                    "(and so one client) per event loop")
            self._client = None  # its loop is gone, and its connections with it
        if self._client is None:
            self._client = create_redis_client(self.url, connect_timeout=self._connect_timeout,
                                               socket_timeout=self._socket_timeout)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the client and its connections (no-op when none was created). Call it in the
        loop that used the client."""
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            with contextlib.suppress(redis_errors.RedisError, OSError, RuntimeError):
                await client.aclose()


def translate_redis_error(exc: BaseException, *, target: str = "redis") -> ServiceUnavailable:
    """The domain error for a redis-py (or socket) exception.

    Returns:
        ServiceUnavailable with code ``redis_unavailable`` when Redis cannot be reached, times
        out, is loading or refuses the credentials; ``redis_error`` when it answered with an
        error (wrong type, out of memory, read-only replica, ...).
    """
    name = type(exc).__name__
    if isinstance(exc, redis_errors.ResponseError):
        return ServiceUnavailable(f"{target} answered with an error: {exc}", code="redis_error",
                                  details={"error": name})
    return ServiceUnavailable(f"{target} cannot be reached: {exc or name}",
                              code="redis_unavailable", details={"error": name})


@contextlib.contextmanager
def redis_errors_translated(target: str = "redis") -> Iterator[None]:
    """Turn redis-py, socket and timeout errors raised inside the block into
    :class:`~notibot.domain.ServiceUnavailable` (see :func:`translate_redis_error`)::

        with redis_errors_translated():
            await client.rpush(key, value)
    """
    try:
        yield
    except (redis_errors.RedisError, OSError, TimeoutError) as exc:
        raise translate_redis_error(exc, target=target) from exc
