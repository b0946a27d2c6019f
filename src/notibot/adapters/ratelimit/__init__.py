"""Rate limiters (the RateLimiter port) over pyrate-limiter's GCRA: in this process's memory,
or in Redis so that every worker holds one rate together (NOTIBOT_EMAIL_RATE)."""

from typing import Any

from notibot.adapters.ratelimit.gcra import GcraRateLimiter, gcra_rate, unlimited
from notibot.adapters.ratelimit.memory import MemoryRateLimiter


def __getattr__(name: str) -> Any:
    # the Redis limiter (and so the Redis client) is loaded only when asked for: the
    # embedded default never imports redis
    if name in ("RedisRateLimiter", "DEFAULT_KEY_PREFIX"):
        from notibot.adapters.ratelimit import redis_limiter

        return getattr(redis_limiter, name)
    raise AttributeError(name)


__all__ = [
    "DEFAULT_KEY_PREFIX", "GcraRateLimiter", "MemoryRateLimiter", "RedisRateLimiter",
    "gcra_rate", "unlimited",
]
