"""Contract of the HealthCheck port: every adapter must pass these tests.

Add an adapter by appending a factory to ``ADAPTERS``: a zero-argument callable returning an
async context manager that yields a check of a reachable dependency.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from mongo_support import mongo_adapters

from notibot.adapters.memory import MemoryStoreHealth
from notibot.adapters.mongo import MongoHealthCheck
from notibot.application.ports import HealthCheck


@asynccontextmanager
async def memory_store() -> AsyncIterator[HealthCheck]:
    yield MemoryStoreHealth()


ADAPTERS = [pytest.param(memory_store, id="memory-store"), *mongo_adapters(MongoHealthCheck)]


@pytest.fixture(params=ADAPTERS)
async def check(request: pytest.FixtureRequest) -> AsyncIterator[HealthCheck]:
    async with request.param() as health_check:
        yield health_check


async def test_a_reachable_dependency_reports_json_details(check: HealthCheck) -> None:
    details = await check.check()

    assert isinstance(details, dict)
    json.dumps(details)


def test_a_check_has_a_name_for_the_report(check: HealthCheck) -> None:
    assert isinstance(check.name, str)
    assert check.name


async def test_memory_store_health_names_its_adapter() -> None:
    assert await MemoryStoreHealth().check() == {"adapter": "memory"}
    assert MemoryStoreHealth().name == "store"
    assert MemoryStoreHealth("cache").name == "cache"
