"""Readiness of the SMTP server: a fresh connection (TLS, AUTH) and a NOOP."""

from __future__ import annotations

import asyncio
from typing import Any

from notibot.adapters.smtp.sender import SmtpEmailSender
from notibot.application.ports import HealthCheck
from notibot.domain import DeliveryFailed, ServiceUnavailable

#: Seconds the whole check may take.
CHECK_TIMEOUT = 5.0


class SmtpHealthCheck(HealthCheck):
    """Checks that the sender's SMTP server accepts a connection as configured: connect,
    EHLO, STARTTLS and AUTH when configured, NOOP, QUIT (RFC 5321 section 4.1.1.9). Uses a
    connection of its own, so the sending pool is left alone.

    Parameters:
        sender: the SMTP sender of this container.
        name: the entry in the readiness report.
        timeout: seconds the whole check may take.
    """

    def __init__(self, sender: SmtpEmailSender, name: str = "smtp",
                 timeout: float = CHECK_TIMEOUT) -> None:
        self.name = name
        self._sender = sender
        self._timeout = timeout

    async def check(self) -> dict[str, Any]:
        """Return ``{"adapter": "smtp", "server": "host:port", "tls": ..., "latency_ms": ...}``.

        Raises:
            ServiceUnavailable: code ``smtp_unavailable`` when the server cannot be reached,
                refuses the connection, STARTTLS or the credentials, or takes longer than the
                timeout; ``details`` hold the server's reply.
        """
        server = self._sender.server
        try:
            async with asyncio.timeout(self._timeout):
                return await self._sender.ping()
        except DeliveryFailed as exc:
            raise ServiceUnavailable(f"SMTP server {server} is not ready: {exc.message}",
                                     code="smtp_unavailable", details=exc.details) from exc
        except TimeoutError as exc:
            raise ServiceUnavailable(
                f"SMTP server {server} did not answer within {self._timeout:g} s",
                code="smtp_unavailable", details={"server": server}) from exc
