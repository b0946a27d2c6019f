"""The Redis adapter against a real Redis: the per-loop client, readiness, error translation."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

from notibot.adapters.redis import (
    RedisConnection,
    RedisHealthCheck,
    create_redis_client,
    redact_url,
    redis_errors_translated,
)
from notibot.application.services import HealthService
from notibot.domain import ServiceUnavailable

pytestmark = pytest.mark.integration


async def test_the_client_pings_and_decodes_text(redis_url: str) -> None:
    client = create_redis_client(redis_url)
    key = f"notibot-test:{uuid.uuid4().hex}"
    try:
        assert await client.ping() is True
        await client.set(key, "héllo", ex=30)
        assert await client.get(key) == "héllo"
    finally:
        await client.delete(key)
        await client.aclose()


def test_the_client_is_created_inside_a_running_loop_only() -> None:
    with pytest.raises(RuntimeError, match="inside the event loop"):
        create_redis_client("redis://127.0.0.1:6379/0")


async def test_a_connection_keeps_one_client_for_its_loop(redis_url: str) -> None:
    connection = RedisConnection(redis_url)
    try:
        client = connection.client()
        assert connection.client() is client
        assert await client.ping() is True
    finally:
        await connection.aclose()


async def test_a_connection_refuses_a_second_live_loop(redis_url: str) -> None:
    connection = RedisConnection(redis_url)
    connection.client()
    errors: list[BaseException] = []

    def other_loop() -> None:
        async def use() -> None:
            connection.client()

        try:
            asyncio.run(use())
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_loop)
    thread.start()
    thread.join()
    await connection.aclose()

    assert len(errors) == 1
    assert "another event loop" in str(errors[0])


def test_a_connection_gets_a_new_client_once_its_loop_is_closed(redis_url: str) -> None:
    connection = RedisConnection(redis_url)

    async def ping() -> object:
        client = connection.client()
        await client.ping()
        return client

    first = asyncio.run(ping())
    second = asyncio.run(ping())  # the first loop is closed: a new client, no error

    assert first is not second
    asyncio.run(connection.aclose())


async def test_building_a_connection_opens_nothing(free_port: int) -> None:
    connection = RedisConnection(f"redis://127.0.0.1:{free_port}/0")

    await connection.aclose()  # nothing was created, nothing to fail


async def test_health_is_ok_when_redis_answers(redis_url: str) -> None:
    connection = RedisConnection(redis_url)
    try:
        ready, report = await HealthService([RedisHealthCheck(connection)]).readiness()
    finally:
        await connection.aclose()

    assert ready
    assert report["redis"]["status"] == "ok"
    assert report["redis"]["adapter"] == "redis"


async def test_health_is_down_quickly_on_a_wrong_port(free_port: int) -> None:
    connection = RedisConnection(f"redis://127.0.0.1:{free_port}/0")
    check = RedisHealthCheck(connection)
    started = time.monotonic()
    try:
        with pytest.raises(ServiceUnavailable) as exc:
            await check.check()
        ready, report = await HealthService([check]).readiness()
    finally:
        await connection.aclose()

    assert exc.value.code == "redis_unavailable"
    assert str(free_port) in exc.value.message
    assert time.monotonic() - started < 5
    assert not ready and report["redis"]["status"] == "down"


async def test_health_is_down_when_the_ping_times_out() -> None:
    # A listener that accepts connections and never answers.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = RedisConnection(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(ServiceUnavailable) as exc:
            await RedisHealthCheck(connection, timeout=0.2).check()
    finally:
        await connection.aclose()
        server.close()

    assert exc.value.code == "redis_unavailable"
    assert "did not answer within 0.2 s" in exc.value.message


async def test_errors_redis_answers_become_service_unavailable(redis_url: str) -> None:
    client = create_redis_client(redis_url)
    key = f"notibot-test:{uuid.uuid4().hex}"
    try:
        await client.set(key, "text", ex=30)
        with pytest.raises(ServiceUnavailable) as exc, redis_errors_translated():
            await client.lpush(key, "x")  # WRONGTYPE
    finally:
        await client.delete(key)
        await client.aclose()

    assert exc.value.code == "redis_error"
    assert "WRONGTYPE" in exc.value.message


async def test_connection_errors_become_redis_unavailable(free_port: int) -> None:
    client = create_redis_client(f"redis://127.0.0.1:{free_port}/0")
    try:
        with pytest.raises(ServiceUnavailable) as exc, redis_errors_translated("the cache"):
            await client.get("key")
    finally:
        await client.aclose()

    assert exc.value.code == "redis_unavailable"
    assert exc.value.message.startswith("the cache cannot be reached")


def test_passwords_are_redacted() -> None:
    assert redact_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("rediss://user:s3cret@h/1") == "rediss://user:***@h/1"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"
