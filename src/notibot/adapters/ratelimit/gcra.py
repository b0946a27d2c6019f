"""What the rate limiters share: the GCRA of pyrate-limiter, waited on with asyncio.

GCRA (Generic Cell Rate Algorithm, ITU-T I.371) keeps one number per key, the theoretical
arrival time (TAT) of the next event. At ``rate`` events per second each event pushes it
``1/rate`` seconds further; an event is allowed while the TAT is at most ``burst/rate``
seconds ahead of now. So events leave evenly spaced, ``1/rate`` seconds apart (with
``burst=1``), and ``n`` events take ``(n - 1)/rate`` seconds, however many callers share
the key.

pyrate-limiter does the algorithm (in-process under a lock, or as one Lua script in Redis),
the waiting (``Limiter.try_acquire_async`` sleeps with ``asyncio.sleep`` until the computed
wait has passed, then tries again) and the per-loop serialisation of waiters. This module
only adapts it to the :class:`~notibot.application.ports.RateLimiter` port: unlimited rates,
one pyrate ``Limiter`` per (event loop, key), errors as the domain's.
"""

from __future__ import annotations

import asyncio
import threading
from abc import abstractmethod
from math import ceil

from pyrate_limiter import GCRA, AbstractClock, Limiter, Rate, SingleBucketFactory, StateBucket
from pyrate_limiter.abstracts.store import StateStore

from notibot.application.ports import RateLimiter
from notibot.domain import ServiceUnavailable

#: pyrate's GCRA spaces events ``ceil(interval_ms * 1000 / limit)`` microseconds apart; with
#: this ``limit`` the interval in milliseconds equals the spacing in microseconds.
_LIMIT = 1000


def unlimited(rate_per_second: float | None) -> bool:
    """True when ``rate_per_second`` means "no limit" (None, 0 or negative)."""
    return rate_per_second is None or rate_per_second <= 0


def gcra_rate(rate_per_second: float, burst: int = 1) -> Rate:
    """The pyrate :class:`~pyrate_limiter.Rate` of ``rate_per_second`` events per second
    (fractions allowed: 0.5 is one event every 2 s), precise to the microsecond, allowing
    ``burst`` events at once.

    Raises:
        ValueError: a rate that is not above 0 or above 1,000,000 per second, or a burst
            below 1.
    """
    if unlimited(rate_per_second) or rate_per_second > 1_000_000:
        raise ValueError(f"rate must be above 0 and at most 1e6 per second, not "
                         f"{rate_per_second}")
    if burst < 1:
        raise ValueError(f"burst must be at least 1, not {burst}")
    spacing_us = max(1, ceil(1_000_000 / rate_per_second))
    return Rate(_LIMIT, spacing_us, burst=burst)


class GcraRateLimiter(RateLimiter):
    """A :class:`RateLimiter` over pyrate-limiter's GCRA; subclasses say where the state
    lives (:meth:`_store`) and which clock stamps events (:meth:`_clock`).

    Parameters:
        rate_per_second: events allowed per second per key (fractions allowed); None, 0 or
            negative means unlimited: :meth:`acquire` returns at once.
        burst: events allowed at once after a quiet spell; 1 (the default) spaces every
            event ``1/rate`` seconds from the previous one.
    """

    def __init__(self, rate_per_second: float | None, *, burst: int = 1) -> None:
        self.rate_per_second: float | None = None
        self._rate: Rate | None = None
        if rate_per_second is not None and rate_per_second > 0:
            self.rate_per_second = float(rate_per_second)
            self._rate = gcra_rate(self.rate_per_second, burst)
        elif burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        self.burst = burst
        self._lock = threading.Lock()
        #: (event loop, key) -> (the store the limiter was built on, the limiter)
        self._limiters: dict[tuple[asyncio.AbstractEventLoop, str],
                             tuple[StateStore, Limiter]] = {}

    def __repr__(self) -> str:
        rate = "unlimited" if self.rate_per_second is None else f"{self.rate_per_second:g}/s"
        return f"{type(self).__name__}({rate}, burst={self.burst})"

    @abstractmethod
    def _store(self, key: str) -> StateStore:
        """The pyrate state store of ``key`` for the running loop (may be cached)."""

    @abstractmethod
    def _clock(self) -> AbstractClock:
        """The clock stamping events: wall time when processes share state, else monotonic."""

    def _limiter(self, key: str) -> Limiter:
        assert self._rate is not None
        loop = asyncio.get_running_loop()
        store = self._store(key)
        with self._lock:
            for gone in [entry for entry in self._limiters if entry[0].is_closed()]:
                del self._limiters[gone]
            cached = self._limiters.get((loop, key))
            if cached is not None and cached[0] is store:
                return cached[1]
            bucket = StateBucket([self._rate], GCRA(), store, clock=self._clock())
            # no leak scheduling: GCRA state has nothing to trim (Redis expires the key);
            # no buffer: GCRA computes the exact wait
            limiter = Limiter(SingleBucketFactory(bucket, schedule_leak=False), buffer_ms=0)
            self._limiters[(loop, key)] = (store, limiter)
            return limiter

    async def acquire(self, key: str) -> None:
        """Wait (``asyncio.sleep``, never failing for being over the rate) until one more
        event under ``key`` is allowed, then count it.

        Raises:
            ServiceUnavailable: the shared storage does not answer (Redis limiter).
        """
        if self._rate is None:
            return
        limiter = self._limiter(key)
        allowed = await self._try(limiter, key)
        if not allowed:  # blocking without timeout: pyrate returns False only on TimeoutError
            raise ServiceUnavailable(f"the rate limiter's storage timed out for {key!r}",
                                     code="rate_limiter_unavailable", details={"key": key})

    async def _try(self, limiter: Limiter, key: str) -> bool:
        return await limiter.try_acquire_async(key)
