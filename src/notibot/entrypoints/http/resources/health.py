"""``/health`` (liveness) and ``/health/ready`` (readiness)."""

from __future__ import annotations

import falcon
from falcon.asgi import Request, Response

from notibot.application.services import HealthService
from notibot.entrypoints.http.middleware import PUBLIC
from notibot.entrypoints.http.openapi import TAG_HEALTH, endpoint
from notibot.entrypoints.http.schemas import HealthOut, ReadinessOut, readiness_json


class Health:
    """``GET /health``."""

    access = {"GET": PUBLIC}

    @endpoint(tag=TAG_HEALTH, operation_id="health", response=HealthOut)
    async def on_get(self, req: Request, resp: Response) -> None:
        """Liveness

        Always 200 while the process answers; checks no dependency.
        """
        resp.media = {"status": "ok"}


class Readiness:
    """``GET /health/ready``."""

    access = {"GET": PUBLIC}

    def __init__(self, health: HealthService) -> None:
        self._health = health

    @endpoint(tag=TAG_HEALTH, operation_id="readiness", response=ReadinessOut,
              other_responses={503: (ReadinessOut, "A dependency does not answer")})
    async def on_get(self, req: Request, resp: Response) -> None:
        """Readiness

        200 when every dependency (store, queue, ...) answers, else 503; both list each
        check.
        """
        ready, checks = await self._health.readiness()
        resp.status = falcon.HTTP_200 if ready else falcon.HTTP_503
        resp.media = readiness_json(ready, checks)
