"""The rate limiter shared by every process that talks to one Redis (API server, workers)."""

from __future__ import annotations

from pyrate_limiter import AbstractClock, Limiter, RedisStateStore, WallClock
from pyrate_limiter.abstracts.store import StateStore

from notibot.adapters.ratelimit.gcra import GcraRateLimiter
from notibot.adapters.redis.client import RedisConnection, redis_errors_translated

#: Prefix of the Redis keys (one hash per limited key: ``<prefix>:<key>``).
DEFAULT_KEY_PREFIX = "notibot:ratelimit"


class RedisRateLimiter(GcraRateLimiter):
    """Holds ``rate_per_second`` events per second per key across every process and machine
    using the same Redis key.

    The GCRA state of a key is one Redis hash (``<key_prefix>:<key>``) updated by one Lua
    script, atomically, so any number of workers share the rate; the hash expires by itself
    ``2 * burst / rate`` seconds after the last event. Events are stamped with the wall clock
    of the process (keep the machines' clocks in sync with NTP: a skew of *d* ms lets one
    machine's events come up to *d* ms early). Waiting is ``asyncio.sleep`` in the waiting
    process; Redis is asked again when the computed wait is over.

    The Redis client is the per-event-loop client of a :class:`RedisConnection`: building
    the limiter opens nothing.

    Parameters:
        redis: the container's :class:`RedisConnection`, or a Redis URL (the limiter then
            owns a connection of its own, closed by :meth:`aclose`).
        rate_per_second: events per second per key (NOTIBOT_EMAIL_RATE for email); None, 0
            or negative means unlimited (Redis is then never asked).
        key_prefix: prefix of the Redis keys; limiters with the same prefix and key share
            their rate.
        burst: events allowed at once after a quiet spell (default 1: evenly spaced).
    """

    def __init__(self, redis: RedisConnection | str, rate_per_second: float | None, *,
                 key_prefix: str = DEFAULT_KEY_PREFIX, burst: int = 1) -> None:
        super().__init__(rate_per_second, burst=burst)
        self._owns_connection = not isinstance(redis, RedisConnection)
        self._connection = RedisConnection(redis) if isinstance(redis, str) else redis
        self.key_prefix = key_prefix
        self._stores: dict[str, RedisStateStore] = {}
        self._clock_instance = WallClock()

    def redis_key(self, key: str) -> str:
        """The Redis key holding the state of ``key``."""
        return f"{self.key_prefix}:{key}"

    def _store(self, key: str) -> StateStore:
        client = self._connection.client()  # this loop's client (RuntimeError across loops)
        with self._lock:
            store = self._stores.get(key)
            if store is None or store.redis is not client:
                store = self._stores[key] = RedisStateStore(client, self.redis_key(key))
            return store

    def _clock(self) -> AbstractClock:
        return self._clock_instance

    async def _try(self, limiter: Limiter, key: str) -> bool:
        with redis_errors_translated("the rate limiter's redis"):
            return await limiter.try_acquire_async(key)

    async def aclose(self) -> None:
        """Close the Redis connection when the limiter made it from a URL (a connection
        passed in belongs to its owner). The limiter can be used again afterwards."""
        with self._lock:
            self._stores.clear()
            self._limiters.clear()
        if self._owns_connection:
            await self._connection.aclose()
