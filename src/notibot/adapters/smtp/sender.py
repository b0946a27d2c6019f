"""The production EmailSender: SMTP through aiosmtplib over a small pool of reused connections.

One message is one SMTP transaction (RFC 5321 section 3.3): ``MAIL FROM``, one ``RCPT TO``,
``DATA``. Connections stay open between messages, so a campaign pays the TCP connect, the
greeting, EHLO, STARTTLS and AUTH once per pooled connection instead of once per message.

Retrying is not this adapter's job: the campaign job retries transient failures with backoff
and keeps per-delivery bookkeeping. The one exception is a pooled connection that the server
closed while it sat idle: when the first command of a transaction on a reused connection
finds it gone (disconnect, timeout or a ``421`` reply to ``MAIL``), nothing was accepted
yet, so the sender reconnects once and carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any, Literal

import aiosmtplib

from notibot.adapters.outbox.mime import RenderedEmail, domain_of, render_email
from notibot.adapters.smtp.errors import translate_smtp_error
from notibot.application.ports import EmailMessage, EmailSender

TlsMode = Literal["none", "starttls", "ssl"]
#: The NOTIBOT_SMTP_TLS values: no TLS, STARTTLS upgrade (RFC 3207), TLS from the first byte
#: (implicit TLS, "SMTPS", RFC 8314).
TLS_MODES: tuple[str, ...] = ("none", "starttls", "ssl")
#: The port of each TLS mode when none is given: 25 (RFC 5321), 587 submission (RFC 6409),
#: 465 submissions (RFC 8314).
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
#: Seconds each SMTP command (and the connection) may take.
DEFAULT_TIMEOUT = 30.0
#: Seconds a polite QUIT may take when the pool closes.
QUIT_TIMEOUT = 2.0

#: What a failing SMTP exchange can raise (aiosmtplib errors, socket errors, timeouts).
_SMTP_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)


class _StaleConnection(Exception):
    """The first command on a reused connection found it closed: nothing was accepted."""


class _TransactionFailed(Exception):
    """A step of the transaction failed; ``error`` is what aiosmtplib raised."""

    def __init__(self, stage: str, error: BaseException) -> None:
        super().__init__(stage)
        self.stage = stage
        self.error = error


def _stale(error: BaseException) -> bool:
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return error.code == 421  # "service not available, closing transmission channel"
    return isinstance(error, (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError,
                              OSError))


class _Pool:
    """The connections of one event loop: at most ``size`` exist, each used by one send at a
    time; idle ones wait in ``idle`` (last in, first out, so warm connections get reused)."""

    def __init__(self, size: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.slots = asyncio.Semaphore(size)
        self.idle: list[aiosmtplib.SMTP] = []
        self.closed = False

    def take(self) -> aiosmtplib.SMTP | None:
        while self.idle:
            client = self.idle.pop()
            if client.is_connected:
                return client
            client.close()  # the server closed it while idle
        return None

    def give_back(self, client: aiosmtplib.SMTP, healthy: bool) -> None:
        if healthy and not self.closed and client.is_connected:
            self.idle.append(client)
        else:
            client.close()


class SmtpEmailSender(EmailSender):
    """Sends email over SMTP with aiosmtplib, reusing up to ``pool_size`` connections.

    Building the sender opens nothing: connections open on demand, inside the running event
    loop, and each loop gets its own pool (an aiosmtplib connection belongs to one loop).
    A connection serves one message at a time; one the server has closed is replaced.

    Parameters:
        host: the SMTP server (NOTIBOT_SMTP_HOST).
        port: its port (NOTIBOT_SMTP_PORT); None picks 25, 587 or 465 from ``tls``.
        username: AUTH user (NOTIBOT_SMTP_USERNAME, RFC 4954); None sends no AUTH.
        password: AUTH password (NOTIBOT_SMTP_PASSWORD).
        tls: ``"none"``, ``"starttls"`` (upgrade, required: a server that does not offer it
            fails) or ``"ssl"`` (implicit TLS) (NOTIBOT_SMTP_TLS).
        from_address: the From of messages that set none (NOTIBOT_EMAIL_FROM); its bare
            address is the envelope sender.
        pool_size: most connections open at once per event loop (and so most messages in
            flight).
        timeout: seconds to connect and for each SMTP command.
        hostname: domain of generated Message-IDs; the domain of ``from_address`` when None.
        local_hostname: the name this client gives in EHLO; the machine's FQDN when None
            (looked up once, off the event loop).
        validate_certs: check the server's certificate and name (keep True in production).
        cert_bundle: a PEM file of CA certificates to trust instead of the system's (a
            private CA, or the self-signed certificate of a test server).

    Raises:
        ValueError: an unknown ``tls``, a ``pool_size`` below 1, a ``timeout`` not above 0,
            or a password without a username.
    """

    def __init__(self, host: str, port: int | None = None, *, username: str | None = None,
                 password: str | None = None, tls: str = "starttls", from_address: str,
                 pool_size: int = 4, timeout: float = DEFAULT_TIMEOUT,
                 hostname: str | None = None, local_hostname: str | None = None,
                 validate_certs: bool = True, cert_bundle: str | None = None) -> None:
        if tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, not {pool_size}")
        if timeout <= 0:
            raise ValueError(f"timeout must be above 0 seconds, not {timeout}")
        if password is not None and not username:
            raise ValueError("an SMTP password needs a username")
        self.host = host
        self.port = port or DEFAULT_PORTS[tls]
        self.username = username or None
        self._password = password
        self.tls = tls
        self.from_address = from_address
        self.pool_size = pool_size
        self.timeout = timeout
        self.hostname = hostname or domain_of(from_address)
        self._local_hostname = local_hostname
        self.validate_certs = validate_certs
        self.cert_bundle = cert_bundle
        self._lock = threading.Lock()
        self._pools: dict[asyncio.AbstractEventLoop, _Pool] = {}

    @property
    def server(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"SmtpEmailSender({self.server!r}, tls={self.tls!r}, pool_size={self.pool_size})"

    # -- sending ------------------------------------------------------------------------------

    async def send(self, message: EmailMessage) -> str:
        """Send ``message`` in one SMTP transaction; return its Message-ID.

        Raises:
            DeliveryFailed: ``transient=True`` for a 4xx reply, a lost or refused connection,
                a timeout; ``transient=False`` for a 5xx reply (a recipient refused at
                ``RCPT``, a message refused at ``DATA``), a message that cannot be built
                (``invalid_email_message``) or a server that cannot be used as configured
                (``smtp_misconfigured``). ``details`` hold ``smtp_code``, ``reply``,
                ``stage`` (connect, mail, rcpt, data), ``server`` and ``recipient``.
        """
        rendered = render_email(message, default_from=self.from_address,
                                message_id_domain=self.hostname)
        pool = self._pool()
        async with pool.slots:
            client = pool.take()
            reused = client is not None
            if client is None:
                client = await self._connect(rendered.recipient)
            healthy = False
            try:
                try:
                    await self._transact(client, rendered, reused=reused)
                except _StaleConnection:
                    client.close()
                    client = await self._connect(rendered.recipient)
                    await self._transact(client, rendered, reused=False)
                healthy = True
            except _TransactionFailed as failure:
                healthy = await self._recover(client, failure.error)
                raise translate_smtp_error(failure.error, server=self.server,
                                           stage=failure.stage,
                                           recipient=rendered.recipient) from failure.error
            finally:
                pool.give_back(client, healthy)
        return rendered.message_id

    async def _transact(self, client: aiosmtplib.SMTP, rendered: RenderedEmail, *,
                        reused: bool) -> None:
        stage = "mail"
        try:
            options = [f"SIZE={len(rendered.data)}"] if client.supports_extension("size") else []
            await client.mail(rendered.sender, options=options)  # SIZE: RFC 1870
            stage = "rcpt"
            await client.rcpt(rendered.recipient)
            stage = "data"
            await client.data(rendered.data)
        except _SMTP_ERRORS as exc:
            if reused and stage == "mail" and _stale(exc):
                raise _StaleConnection from exc
            raise _TransactionFailed(stage, exc) from exc

    async def _recover(self, client: aiosmtplib.SMTP, error: BaseException) -> bool:
        """After a failed transaction: whether the connection can serve the next message.
        A refusal (4xx/5xx other than 421) leaves the session usable once RSET clears the
        envelope (RFC 5321 section 4.1.1.5); anything else closes it."""
        if not client.is_connected or not isinstance(error, aiosmtplib.SMTPResponseException):
            return False
        if error.code == 421:
            return False
        try:
            await client.rset()
        except _SMTP_ERRORS:
            return False
        return client.is_connected

    # -- connections --------------------------------------------------------------------------

    def _pool(self) -> _Pool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)  # one dict read: no lock needed to find an open pool
        if pool is not None and not pool.closed:
            return pool
        with self._lock:
            for gone in [other for other in self._pools if other.is_closed()]:
                del self._pools[gone]
            pool = self._pools.get(loop)
            if pool is None:
                pool = self._pools[loop] = _Pool(self.pool_size)
            return pool

    async def _ehlo_name(self) -> str:
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        return self._local_hostname

    async def _connect(self, recipient: str | None) -> aiosmtplib.SMTP:
        """A new connection: greeting, EHLO, STARTTLS and AUTH as configured."""
        client = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, username=self.username,
            password=self._password, use_tls=self.tls == "ssl",
            start_tls=self.tls == "starttls", timeout=self.timeout,
            local_hostname=await self._ehlo_name(), validate_certs=self.validate_certs,
            cert_bundle=self.cert_bundle)
        try:
            await client.connect()
        except _SMTP_ERRORS as exc:
            client.close()
            raise translate_smtp_error(exc, server=self.server, stage="connect",
                                       recipient=recipient) from exc
        return client

    async def ping(self) -> dict[str, Any]:
        """Open a new connection (TLS and AUTH included), send NOOP and QUIT.

        Returns:
            ``{"adapter": "smtp", "server": "host:port", "tls": ..., "latency_ms": ...}``.

        Raises:
            DeliveryFailed: as :meth:`send` does at the ``connect`` or ``noop`` stage.
        """
        started = time.perf_counter()
        client = await self._connect(None)
        try:
            await client.noop()
            with contextlib.suppress(*_SMTP_ERRORS):
                await client.quit(timeout=QUIT_TIMEOUT)
        except _SMTP_ERRORS as exc:
            raise translate_smtp_error(exc, server=self.server, stage="noop") from exc
        finally:
            client.close()
        return {"adapter": "smtp", "server": self.server, "tls": self.tls,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2)}

    async def close(self) -> None:
        """QUIT and close the idle connections of this loop's pool; connections in use close
        when their send ends. Pools of other, still running loops are closed in their loop.
        A later send opens new connections."""
        with self._lock:
            pools, self._pools = self._pools, {}
        current = asyncio.get_running_loop()
        for loop, pool in pools.items():
            pool.closed = True
            idle, pool.idle = pool.idle, []
            if loop is current:
                await asyncio.gather(*(_quit(client) for client in idle))
            elif not loop.is_closed():
                for client in idle:
                    with contextlib.suppress(RuntimeError):  # that loop closed meanwhile
                        loop.call_soon_threadsafe(client.close)


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        with contextlib.suppress(*_SMTP_ERRORS):
            await client.quit(timeout=QUIT_TIMEOUT)
    finally:
        client.close()
