"""Fixtures of the HTTP tests: the app over an all-in-memory notibot, driven through
``falcon.testing.ASGIConductor`` (lifespan included, so start-up creates the admin and the
inline job queue runs jobs on the test's event loop)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from falcon import testing
from http_support import ADMIN_PASSWORD, ADMIN_USERNAME, OPERATOR_USERNAME, Api, Gate, MakeApi

from notibot.entrypoints.http import create_app
from notibot.testing import FakeClock, batched_job, memory_notibot


@pytest.fixture
async def make_api(clock: FakeClock) -> AsyncIterator[MakeApi]:
    """Factory: ``await make_api(settings={...}, **provider_overrides)`` starts an app (ASGI
    lifespan start-up) that is shut down after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(settings: dict[str, Any] | None = None, **overrides: Any) -> Api:
            gate = Gate()
            notibot = memory_notibot(
                admin=(ADMIN_USERNAME, ADMIN_PASSWORD), settings=settings,
                job_handlers={"test": batched_job(batches=3, delay=0.001),
                              "gated": gate.handler},
                clock=clock, **overrides)
            app = create_app(notibot.container)
            conductor = await stack.enter_async_context(testing.ASGIConductor(app))
            return Api(conductor, notibot, clock, gate)

        yield make


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    """The app with default settings (sign-up closed, admin ``admin``)."""
    return await make_api()


@pytest.fixture
async def admin_token(api: Api) -> str:
    return await api.token_of(ADMIN_USERNAME, ADMIN_PASSWORD)


@pytest.fixture
async def operator_token(api: Api) -> str:
    return await api.new_user_token(OPERATOR_USERNAME, "operator")
