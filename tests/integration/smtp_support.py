"""A real SMTP server for tests: aiosmtpd in a thread of its own, recording what it accepts.

:class:`SmtpTestServer` starts an aiosmtpd ``Controller`` on a free local port. Its
:class:`RecordingHandler` keeps every accepted message and can be told to answer chosen
recipients with chosen replies (``421``, ``451``, ``550`` ...) at ``RCPT`` or at the end of
``DATA``, for their next attempts only, or to drop the connection (:data:`DROP`) instead of
answering. :meth:`SmtpTestServer.drop_connections` closes every open connection from the
server side, as an idle timeout does. TLS (STARTTLS, RFC 3207, or implicit TLS, RFC 8314)
uses a self-signed certificate made by :func:`make_certificate`; AUTH (RFC 4954) checks one
username and password.

Nothing here runs at import time: a server exists only while a test holds it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

#: A planned "reply" that closes the connection instead of answering: the client sees the
#: connection lost, and the server keeps nothing.
DROP = "DROP"
HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class CertificateFiles:
    """PEM files of a self-signed certificate for ``localhost`` and ``127.0.0.1``; the
    certificate is its own CA (give ``cert`` as the client's ``cert_bundle``)."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_certificate(folder: Path) -> CertificateFiles:
    """Write a new self-signed certificate (EC P-256, valid one day) into ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    files = CertificateFiles(cert=folder / "smtp-cert.pem", key=folder / "smtp-key.pem")
    files.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return files


@dataclass(frozen=True)
class Received:
    """One message the server accepted: the envelope and the bytes of DATA."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    authenticated_as: str | None

    def message(self) -> MimeMessage:
        """The message parsed with the modern email API."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, MimeMessage)
        return parsed


@dataclass
class RecordingHandler:
    """aiosmtpd handler: accepts every message unless a plan says otherwise, and records it.

    Thread-safe: the server runs in its own thread while the test reads the record.
    """

    received: list[Received] = field(default_factory=list)
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _plans: dict[tuple[str, str], deque[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(self, stage: str, recipient: str, *replies: str) -> None:
        """Answer the next ``len(replies)`` attempts of ``recipient`` at ``stage`` (``"rcpt"``
        or ``"data"``) with ``replies`` in order (an SMTP reply line such as
        ``"451 4.3.0 try again later"``, or :data:`DROP`); later attempts succeed."""
        assert stage in ("rcpt", "data")
        with self._lock:
            self._plans.setdefault((stage, recipient.lower()), deque()).extend(replies)

    def count(self, recipient: str) -> int:
        """How many accepted messages went to ``recipient``."""
        with self._lock:
            return sum(recipient.lower() in (r.lower() for r in m.rcpt_tos)
                       for m in self.received)

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.attempts.clear()
            self._plans.clear()

    def _next(self, stage: str, recipient: str) -> str | None:
        with self._lock:
            self.attempts[(stage, recipient.lower())] += 1
            planned = self._plans.get((stage, recipient.lower()))
            return planned.popleft() if planned else None

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        reply = self._next("rcpt", address)
        if reply == DROP:
            _drop(server)
            return "421 4.4.2 dropped"  # never reaches the client
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        for recipient in envelope.rcpt_tos:
            reply = self._next("data", recipient)
            if reply == DROP:
                _drop(server)
                return "421 4.4.2 dropped"  # never reaches the client
            if reply is not None:
                return reply
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        with self._lock:
            self.received.append(Received(
                mail_from=str(envelope.mail_from), rcpt_tos=tuple(envelope.rcpt_tos),
                data=content, tls=_encrypted(server), authenticated_as=login))
        return "250 2.0.0 OK: queued"


def _encrypted(server: SMTP) -> bool:
    """Whether the connection runs over TLS (STARTTLS or implicit)."""
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


def _drop(server: SMTP) -> None:
    if server.transport is not None:
        server.transport.close()


class _CountingController(Controller):
    """A Controller that keeps the server protocol object of every connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        protocol = super().factory()
        self.sessions.append(protocol)
        return protocol


class SmtpTestServer:
    """An aiosmtpd server on ``127.0.0.1:<free port>`` in a thread; use as a context manager.

    Parameters:
        tls: ``"none"``, ``"starttls"`` (offered, and required before MAIL/AUTH) or
            ``"ssl"`` (implicit TLS); the last two need ``certificate``.
        certificate: the server's certificate files.
        credentials: ``(username, password)``: AUTH is then required.
    """

    def __init__(self, *, tls: str = "none", certificate: CertificateFiles | None = None,
                 credentials: tuple[str, str] | None = None) -> None:
        assert tls in ("none", "starttls", "ssl")
        assert tls == "none" or certificate is not None, "TLS needs a certificate"
        self.host = HOST
        self.port = free_port()
        self.tls = tls
        self.handler = RecordingHandler()
        self.credentials = credentials
        kwargs: dict[str, Any] = {"server_hostname": "smtp.test", "ident": "notibot-test"}
        if tls == "starttls":
            assert certificate is not None
            kwargs.update(tls_context=certificate.server_context(), require_starttls=True)
        elif tls == "ssl":
            assert certificate is not None
            kwargs["ssl_context"] = certificate.server_context()
        if credentials is not None:
            # with implicit TLS aiosmtpd does not know the connection is encrypted (it tracks
            # STARTTLS only), so it must not insist on TLS before AUTH itself
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=tls == "starttls")
        self._controller = _CountingController(self.handler, hostname=HOST, port=self.port,
                                               **kwargs)
        self._started = False

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        assert self.credentials is not None
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        username, password = self.credentials
        ok = (auth_data.login.decode(), auth_data.password.decode()) == (username, password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def start(self) -> SmtpTestServer:
        self._controller.start()
        self._started = True
        self._controller.sessions.clear()  # forget the Controller's own readiness probe
        return self

    def stop(self) -> None:
        if self._started:
            self._controller.stop()
            self._started = False

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connections(self) -> int:
        """Connections opened since the server started."""
        return len(self._controller.sessions)

    def drop_connections(self) -> int:
        """Close every open connection from the server side (as an idle timeout would),
        without a reply; return how many were open."""

        async def drop() -> int:
            open_ones = [s for s in self._controller.sessions
                         if s.transport is not None and not s.transport.is_closing()]
            for protocol in open_ones:
                _drop(protocol)
            await asyncio.sleep(0.05)  # let the FIN reach the clients
            return len(open_ones)

        return asyncio.run_coroutine_threadsafe(drop(), self._controller.loop).result(5)
