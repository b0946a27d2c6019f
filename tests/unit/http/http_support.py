"""Helpers of the HTTP tests: the :class:`Api` driver, the ``gated`` job and error checks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from falcon import testing

from notibot.application.services.jobs import JobContext
from notibot.container import Notibot
from notibot.testing import FakeClock

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-password"
OPERATOR_USERNAME = "operator1"
OPERATOR_PASSWORD = "operator-password"


class Gate:
    """Job handler of kind ``gated``: reports total 10 and 4 processed, then waits until the
    test opens the gate, then reports the other 6 (the cancel checkpoint) and succeeds."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.opened = asyncio.Event()

    async def handler(self, ctx: JobContext) -> dict[str, Any]:
        await ctx.report(total=10, processed=4)
        self.reached.set()
        await self.opened.wait()
        await ctx.report(processed=6)
        return {"gated": True}

    async def wait_reached(self) -> None:
        await asyncio.wait_for(self.reached.wait(), timeout=2)


@dataclass
class Api:
    """The app under test plus the notibot it runs on (sharing the container)."""

    conductor: testing.ASGIConductor
    notibot: Notibot
    clock: FakeClock
    gate: Gate

    async def request(self, method: str, path: str, *, token: str | None = None,
                      headers: dict[str, str] | None = None, **kwargs: Any) -> testing.Result:
        """Simulate a request; ``token`` becomes ``Authorization: Bearer <token>``."""
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        return await self.conductor.simulate_request(method, path, headers=all_headers,
                                                     **kwargs)

    async def get(self, path: str, **kwargs: Any) -> testing.Result:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> testing.Result:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> testing.Result:
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> testing.Result:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> testing.Result:
        return await self.request("DELETE", path, **kwargs)

    async def login(self, username: str, password: str) -> dict[str, Any]:
        """The token pair of a successful login."""
        result = await self.post("/auth/login", json={"username": username,
                                                      "password": password})
        assert result.status_code == 200, result.json
        return result.json

    async def token_of(self, username: str, password: str) -> str:
        return (await self.login(username, password))["access_token"]

    async def new_user_token(self, username: str, role: str,
                             password: str = OPERATOR_PASSWORD) -> str:
        """Create a user directly through the service, then log in over HTTP."""
        await self.notibot.auth.create_user(username, password, role)
        return await self.token_of(username, password)

    async def wait_for_status(self, job_id: str, status: str) -> None:
        """Wait (up to 2 s) until the job ``job_id`` has ``status``."""
        for _ in range(2000):
            if (await self.notibot.jobs.get(job_id)).status.value == status:
                return
            await asyncio.sleep(0.001)
        raise AssertionError(f"job {job_id} never became {status}")

    async def jobs_done(self) -> None:
        """Wait until every job of the inline queue has finished."""
        await asyncio.wait_for(self.notibot.container.job_queue().join(), timeout=5)


#: ``await make_api(settings={...}, **provider_overrides)`` (fixture ``make_api``).
MakeApi = Callable[..., Awaitable[Api]]


def error_of(result: testing.Result) -> dict[str, Any]:
    """The ``error`` object of an error response (checks the envelope)."""
    body = result.json
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]
