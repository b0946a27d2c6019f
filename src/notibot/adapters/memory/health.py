"""Readiness of the in-memory store: always ready."""

from __future__ import annotations

from typing import Any

from notibot.application.ports import HealthCheck


class MemoryStoreHealth(HealthCheck):
    """Reports the in-memory store (nothing to reach, so always ok)."""

    def __init__(self, name: str = "store") -> None:
        self.name = name

    async def check(self) -> dict[str, Any]:
        return {"adapter": "memory"}
