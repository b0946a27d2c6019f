"""Fixtures of the integration tests: the URLs of real servers, checked before use.

A server that does not answer skips the tests that need it, with the reason, on a laptop;
when the ``CI`` environment variable is set (``.ci/run`` sets it) it fails them instead: CI
must never skip silently.

URLs: NOTIBOT_TEST_REDIS_URL (default redis://127.0.0.1:6379/0) and
NOTIBOT_TEST_RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/%2F).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def on_ci() -> bool:
    """True when the CI variable is set to anything but an explicit no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip with ``reason`` on a laptop; fail on CI."""
    if on_ci():
        pytest.fail(f"{reason} (CI is set: integration tests must not be skipped)",
                    pytrace=False)
    pytest.skip(reason)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a Redis server that answers PING."""
    import redis

    url = os.environ.get("NOTIBOT_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        unavailable(f"no Redis answers at {_redact(url)} ({type(exc).__name__}: {exc}); "
                    "start redis-server or set NOTIBOT_TEST_REDIS_URL")
    finally:
        client.close()
    return url


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    """URL of a RabbitMQ server that accepts an AMQP connection."""
    import pika

    url = os.environ.get("NOTIBOT_TEST_RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    parameters.socket_timeout = 2
    parameters.blocked_connection_timeout = 2
    try:
        pika.BlockingConnection(parameters).close()
    except (pika.exceptions.AMQPError, OSError, socket.gaierror) as exc:
        unavailable(f"no RabbitMQ answers at {_redact(url)} ({type(exc).__name__}: {exc}); "
                    "start rabbitmq-server or set NOTIBOT_TEST_RABBITMQ_URL")
    return url


@pytest.fixture
def free_port() -> int:
    """A local TCP port where nothing listens (for "server down" tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gemini_stub():
    """A running local stub of the Gemini REST API (``gemini_stub.GeminiStub``): pass
    ``gemini_stub.base_url`` as the Gemini base URL; it records requests and can be scripted
    to fail or answer late. Needs nothing installed, so it never skips."""
    from gemini_stub import GeminiStub

    with GeminiStub() as stub:
        yield stub
