"""Rate limiters (the RateLimiter port) over pyrate-limiter's GCRA: in this process's memory,
or in Redis so that every worker holds one rate together (NOTIBOT_EMAIL_RATE)."""

from notibot.adapters.ratelimit.gcra import GcraRateLimiter, gcra_rate, unlimited
from notibot.adapters.ratelimit.memory import MemoryRateLimiter
from notibot.adapters.ratelimit.redis_limiter import DEFAULT_KEY_PREFIX, RedisRateLimiter

__all__ = [
    "DEFAULT_KEY_PREFIX", "GcraRateLimiter", "MemoryRateLimiter", "RedisRateLimiter",
    "gcra_rate", "unlimited",
]
