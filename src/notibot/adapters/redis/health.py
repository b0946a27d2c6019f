"""Readiness of Redis: a PING with a short timeout."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from notibot.adapters.redis.client import (
    RedisConnection,
    redact_url,
    redis_errors_translated,
)
from notibot.application.ports import HealthCheck
from notibot.domain import ServiceUnavailable

#: Seconds a readiness PING may take.
PING_TIMEOUT = 1.0


class RedisHealthCheck(HealthCheck):
    """PINGs Redis through the container's :class:`RedisConnection`.

    Parameters:
        connection: the client holder of this container (one client per event loop).
        name: the entry in the readiness report.
        timeout: seconds the PING may take.
    """

    def __init__(self, connection: RedisConnection, name: str = "redis",
                 timeout: float = PING_TIMEOUT) -> None:
        self.name = name
        self._connection = connection
        self._timeout = timeout

    async def check(self) -> dict[str, Any]:
        """Return ``{"adapter": "redis", "url": <redacted>, "ping_ms": ...}``.

        Raises:
            ServiceUnavailable: code ``redis_unavailable`` (or ``redis_error``) when the PING
                fails or takes longer than the timeout.
        """
        target = redact_url(self._connection.url)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                with redis_errors_translated(f"redis at {target}"):
                    await self._connection.client().ping()
        except TimeoutError as exc:  # the timeout above, not one of redis-py
            raise ServiceUnavailable(
                f"redis at {target} did not answer within {self._timeout:g} s",
                code="redis_unavailable", details={"error": "TimeoutError"}) from exc
        return {"adapter": "redis", "url": target,
                "ping_ms": round((time.perf_counter() - started) * 1000, 2)}
