"""Readiness of MongoDB for ``GET /health/ready``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from notibot.adapters.mongo.errors import translate_errors, unavailable
from notibot.application.ports import HealthCheck

#: Seconds a readiness ping may take.
DEFAULT_PING_TIMEOUT = 2.0


class MongoHealthCheck(HealthCheck):
    """Pings the server (``{"ping": 1}``) within ``timeout`` seconds.

    :meth:`check` returns ``{"adapter": "mongodb", "database": <name>, "latency_ms": <float>}``.

    Parameters:
        database: an ``AsyncIOMotorDatabase``.
        name: the name in the readiness report.
        timeout: seconds before the check gives up (shorter than the client's server
            selection timeout, so a readiness probe answers quickly).

    Raises:
        ServiceUnavailable: ``mongodb_unavailable`` when the server does not answer in time
            (``mongodb_error`` when it answers with an error).
    """

    def __init__(self, database: Any, *, name: str = "mongodb",
                 timeout: float = DEFAULT_PING_TIMEOUT) -> None:
        self.name = name
        self._database = database
        self._timeout = timeout

    async def check(self) -> dict[str, Any]:
        started = time.perf_counter()
        with translate_errors("ping MongoDB"):
            try:
                await asyncio.wait_for(self._database.command("ping"), self._timeout)
            except TimeoutError as exc:
                raise unavailable(exc) from exc
        return {"adapter": "mongodb", "database": self._database.name,
                "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
