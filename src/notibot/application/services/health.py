"""Readiness of the dependencies."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from notibot.application.ports import HealthCheck
from notibot.domain import NotibotError


class HealthService:
    """Runs every :class:`~notibot.application.ports.HealthCheck` and reports each one."""

    def __init__(self, checks: Sequence[HealthCheck]) -> None:
        self._checks = list(checks)

    async def readiness(self) -> tuple[bool, dict[str, dict[str, Any]]]:
        """Return ``(all_ready, {name: {"status": "ok"|"down", "latency_ms", ...}})``."""
        report: dict[str, dict[str, Any]] = {}
        ready = True
        for check in self._checks:
            started = time.perf_counter()
            try:
                details = await check.check()
                entry: dict[str, Any] = {"status": "ok", **details}
            except NotibotError as exc:
                ready = False
                entry = {"status": "down", "error": exc.message}
            except Exception as exc:  # a probe must never break the report
                ready = False
                entry = {"status": "down", "error": f"{type(exc).__name__}: {exc}"}
            entry["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
            report[check.name] = entry
        return ready, report
