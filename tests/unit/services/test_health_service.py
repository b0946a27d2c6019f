"""HealthService: every check is reported, one failure makes the whole not ready."""

from __future__ import annotations

from typing import Any

from notibot.adapters.memory import MemoryStoreHealth
from notibot.application.ports import HealthCheck
from notibot.application.services import HealthService
from notibot.domain import ServiceUnavailable


class DownCheck(HealthCheck):
    name = "broker"

    async def check(self) -> dict[str, Any]:
        raise ServiceUnavailable("connection refused", code="broker_down")


class CrashingCheck(HealthCheck):
    name = "redis"

    async def check(self) -> dict[str, Any]:
        raise OSError("no route to host")


async def test_all_checks_up_is_ready() -> None:
    ready, report = await HealthService([MemoryStoreHealth(), MemoryStoreHealth("cache")]
                                        ).readiness()

    assert ready is True
    assert set(report) == {"store", "cache"}
    assert report["store"]["status"] == "ok"
    assert report["store"]["adapter"] == "memory"
    assert report["store"]["latency_ms"] >= 0


async def test_a_failing_check_makes_it_not_ready_and_the_others_are_still_reported() -> None:
    service = HealthService([DownCheck(), MemoryStoreHealth(), CrashingCheck()])

    ready, report = await service.readiness()

    assert ready is False
    assert report["broker"]["status"] == "down"
    assert report["broker"]["error"] == "connection refused"
    assert report["redis"]["status"] == "down"
    assert report["redis"]["error"] == "OSError: no route to host"
    assert report["store"]["status"] == "ok"
    assert all("latency_ms" in entry for entry in report.values())


async def test_no_checks_is_ready_with_an_empty_report() -> None:
    assert await HealthService([]).readiness() == (True, {})
