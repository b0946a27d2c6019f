"""Redis adapters: the per-event-loop async client, its readiness check and the translation of
redis errors into the domain's :class:`~notibot.domain.ServiceUnavailable`."""

from notibot.adapters.redis.client import (
    RedisConnection,
    create_redis_client,
    redact_url,
    redis_errors_translated,
    translate_redis_error,
)
from notibot.adapters.redis.health import RedisHealthCheck
from notibot.adapters.redis.short_term import RedisShortTermMemory

__all__ = [
    "RedisConnection", "RedisHealthCheck", "create_redis_client", "redact_url",
    "redis_errors_translated", "translate_redis_error",
]
__all__ += ["RedisShortTermMemory"]
