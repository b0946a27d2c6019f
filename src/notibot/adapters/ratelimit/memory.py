"""The rate limiter of one process (the embedded default and tests)."""

from __future__ import annotations

from pyrate_limiter import AbstractClock, InMemoryStateStore, MonotonicClock
from pyrate_limiter.abstracts.store import StateStore

from notibot.adapters.ratelimit.gcra import GcraRateLimiter


class MemoryRateLimiter(GcraRateLimiter):
    """Holds ``rate_per_second`` events per second per key within this process, on the
    monotonic clock (immune to wall-clock steps).

    The state of a key is one in-memory GCRA store behind a ``threading.Lock``, shared by
    every event loop of the process: two loops in two threads acquiring the same key hold
    the rate together. Waiting is ``asyncio.sleep``; nothing blocks the loop.

    Parameters:
        rate_per_second: events per second per key (NOTIBOT_EMAIL_RATE for email); None, 0
            or negative means unlimited.
        burst: events allowed at once after a quiet spell (default 1: evenly spaced).
    """

    def __init__(self, rate_per_second: float | None, *, burst: int = 1) -> None:
        super().__init__(rate_per_second, burst=burst)
        self._stores: dict[str, InMemoryStateStore] = {}
        self._clock_instance = MonotonicClock()

    def _store(self, key: str) -> StateStore:
        with self._lock:
            store = self._stores.get(key)
            if store is None:
                store = self._stores[key] = InMemoryStateStore()
            return store

    def _clock(self) -> AbstractClock:
        return self._clock_instance
