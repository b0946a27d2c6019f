"""Readiness of the Dramatiq broker: a PING (Redis) or a connection handshake (RabbitMQ)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from notibot.adapters.dramatiq.broker import broker_kind
from notibot.adapters.redis import redact_url
from notibot.application.ports import HealthCheck
from notibot.domain import ServiceUnavailable

if TYPE_CHECKING:
    from dramatiq import Broker

#: Seconds the probe may take.
PROBE_TIMEOUT = 2.0


def _amqp_handshake(url: str, timeout: float) -> None:
    import pika

    parameters = pika.URLParameters(url)
    parameters.connection_attempts = 1
    parameters.retry_delay = 0
    parameters.socket_timeout = timeout
    parameters.stack_timeout = timeout
    parameters.blocked_connection_timeout = timeout
    pika.BlockingConnection(parameters).close()


class BrokerHealthCheck(HealthCheck):
    """Checks that the broker answers: PING through the Redis broker's own client, or a fresh
    AMQP connection (opened and closed) for RabbitMQ. Runs the blocking client in a thread.

    Parameters:
        broker: the broker the job queue sends to.
        url: its URL (NOTIBOT_BROKER_URL, else NOTIBOT_REDIS_URL); shown without password.
        name: the entry in the readiness report.
        timeout: seconds the probe may take.
    """

    def __init__(self, broker: Broker, url: str, name: str = "broker",
                 timeout: float = PROBE_TIMEOUT) -> None:
        self.name = name
        self._broker = broker
        self._url = url
        self._kind = broker_kind(url)
        self._timeout = timeout

    def _probe(self) -> None:
        if self._kind == "redis":
            self._broker.client.ping()  # type: ignore[attr-defined]
        elif self._kind == "rabbitmq":
            _amqp_handshake(self._url, self._timeout)

    async def check(self) -> dict[str, Any]:
        """Return ``{"adapter": "dramatiq", "broker": "redis"|"rabbitmq"|"stub", "url": ...}``.

        Raises:
            ServiceUnavailable: code ``broker_unavailable`` when the broker does not answer in
                time.
        """
        target = redact_url(self._url)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.to_thread(self._probe), self._timeout)
        except TimeoutError as exc:
            raise ServiceUnavailable(
                f"the {self._kind} broker at {target} did not answer within {self._timeout:g} s",
                code="broker_unavailable", details={"error": "TimeoutError"}) from exc
        except Exception as exc:
            raise ServiceUnavailable(
                f"the {self._kind} broker at {target} cannot be reached: "
                f"{exc or type(exc).__name__}",
                code="broker_unavailable", details={"error": type(exc).__name__}) from exc
        return {"adapter": "dramatiq", "broker": self._kind, "url": target,
                "ping_ms": round((time.perf_counter() - started) * 1000, 2)}
