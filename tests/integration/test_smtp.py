"""SmtpEmailSender against a real SMTP server (aiosmtpd, started by the fixtures, in a thread
of this process): reply codes as transient or permanent failures, dropped connections, the
pool, STARTTLS and implicit TLS with a self-signed certificate made here, AUTH, readiness.

The server needs nothing installed, so these tests never skip.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from smtp_support import DROP, HOST, CertificateFiles, SmtpTestServer, make_certificate

from notibot.adapters.smtp import SmtpEmailSender, SmtpHealthCheck
from notibot.application.ports import EmailMessage
from notibot.domain import DeliveryFailed, ServiceUnavailable

pytestmark = pytest.mark.integration

FROM = "Notibot <news@shop.example.vn>"
USER, PASSWORD = "mailer", "s3cret-pässword"


def message(to: str, subject: str = "Thông báo đơn hàng") -> EmailMessage:
    return EmailMessage(to=to, subject=subject, text="Xin chào, đơn hàng đã được giao.",
                        headers={"List-Unsubscribe": "<https://shop.example.vn/u/1>"})


def make_sender(server: SmtpTestServer, **options: Any) -> SmtpEmailSender:
    settings: dict[str, Any] = {"tls": "none", "from_address": FROM, "pool_size": 2,
                                "timeout": 5, "local_hostname": "client.test"}
    settings.update(options)
    return SmtpEmailSender(server.host, server.port, **settings)


@pytest.fixture
def server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as running:
        yield running


@pytest.fixture
async def sender(server: SmtpTestServer) -> AsyncIterator[SmtpEmailSender]:
    built = make_sender(server)
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    return make_certificate(tmp_path_factory.mktemp("tls"))


# -- the pool ---------------------------------------------------------------------------------


async def test_messages_reuse_the_pooled_connections(server: SmtpTestServer,
                                                     sender: SmtpEmailSender) -> None:
    recipients = [f"c{i}@example.vn" for i in range(40)]

    await asyncio.gather(*(sender.send(message(to)) for to in recipients))

    assert server.connections <= sender.pool_size
    assert all(server.handler.count(to) == 1 for to in recipients)
    [first] = [m for m in server.handler.messages() if m.rcpt_tos == ("c0@example.vn",)]
    assert first.mail_from == "news@shop.example.vn"
    assert first.message()["Subject"] == "Thông báo đơn hàng"


async def test_building_the_sender_opens_no_connection(server: SmtpTestServer) -> None:
    make_sender(server)

    await asyncio.sleep(0.05)

    assert server.connections == 0


async def test_an_idle_connection_closed_by_the_server_is_replaced_transparently(
        server: SmtpTestServer, sender: SmtpEmailSender) -> None:
    await sender.send(message("a@example.vn"))
    assert server.drop_connections() == 1
    await asyncio.sleep(0.05)  # the client sees the close

    await sender.send(message("b@example.vn"))

    assert server.connections == 2
    assert server.handler.count("b@example.vn") == 1


async def test_a_connection_found_dead_at_mail_is_reconnected_once(
        server: SmtpTestServer, sender: SmtpEmailSender) -> None:
    await sender.send(message("a@example.vn"))
    server.drop_connections()  # no await after: the client has not noticed yet

    await sender.send(message("b@example.vn"))

    assert server.handler.count("b@example.vn") == 1
    assert server.connections == 2


async def test_close_says_quit_and_a_later_send_reconnects(
        server: SmtpTestServer, sender: SmtpEmailSender) -> None:
    await sender.send(message("a@example.vn"))
    await sender.close()
    await sender.send(message("b@example.vn"))

    assert server.connections == 2
    assert server.handler.count("b@example.vn") == 1


# -- failures: transient or permanent --------------------------------------------------------


@pytest.mark.parametrize("stage", ["rcpt", "data"])
@pytest.mark.parametrize("reply", [
    "421 4.3.2 Service shutting down", "450 4.2.1 Mailbox busy",
    "451 4.3.0 Local error in processing", "452 4.3.1 Insufficient system storage",
])
async def test_a_4xx_reply_is_a_transient_failure_with_the_servers_reply(
        server: SmtpTestServer, sender: SmtpEmailSender, stage: str, reply: str) -> None:
    server.handler.plan(stage, "a@example.vn", reply)

    with pytest.raises(DeliveryFailed) as raised:
        await sender.send(message("a@example.vn"))

    failure = raised.value
    code, text = reply.split(" ", 1)
    assert failure.transient is True
    assert failure.code == "smtp_deferred"
    assert text in failure.message
    assert failure.details["smtp_code"] == int(code)
    assert failure.details["stage"] == stage
    assert failure.details["recipient"] == "a@example.vn"
    assert server.handler.count("a@example.vn") == 0
    # the pool keeps working, and the next attempt goes through
    await sender.send(message("a@example.vn"))
    assert server.handler.count("a@example.vn") == 1


@pytest.mark.parametrize("stage", ["rcpt", "data"])
@pytest.mark.parametrize("reply", [
    "550 5.1.1 No such user here", "553 5.1.3 Mailbox name not allowed",
    "554 5.7.1 Message rejected as spam",
])
async def test_a_5xx_reply_is_a_permanent_failure_with_the_servers_reply(
        server: SmtpTestServer, sender: SmtpEmailSender, stage: str, reply: str) -> None:
    server.handler.plan(stage, "gone@example.vn", reply)

    with pytest.raises(DeliveryFailed) as raised:
        await sender.send(message("gone@example.vn"))

    failure = raised.value
    assert failure.transient is False
    assert failure.code == "smtp_rejected"
    assert reply.split(" ", 1)[1] in failure.message
    assert failure.details["smtp_code"] == int(reply[:3])
    assert server.handler.count("gone@example.vn") == 0


async def test_a_refused_recipient_leaves_the_connection_usable(
        server: SmtpTestServer) -> None:
    sender = make_sender(server, pool_size=1)
    server.handler.plan("rcpt", "gone@example.vn", "550 5.1.1 No such user")
    try:
        await sender.send(message("a@example.vn"))
        with pytest.raises(DeliveryFailed):
            await sender.send(message("gone@example.vn"))
        await sender.send(message("b@example.vn"))
    finally:
        await sender.close()

    assert server.connections == 1  # RSET cleared the envelope; no reconnect


async def test_a_421_closes_the_connection_and_the_next_send_opens_another(
        server: SmtpTestServer) -> None:
    sender = make_sender(server, pool_size=1)
    server.handler.plan("data", "a@example.vn", "421 4.3.2 Closing")
    try:
        with pytest.raises(DeliveryFailed):
            await sender.send(message("a@example.vn"))
        await sender.send(message("b@example.vn"))
    finally:
        await sender.close()

    assert server.connections == 2


@pytest.mark.parametrize("stage", ["rcpt", "data"])
async def test_a_connection_dropped_mid_transaction_is_transient_and_not_retried(
        server: SmtpTestServer, sender: SmtpEmailSender, stage: str) -> None:
    await sender.send(message("warm@example.vn"))  # the drop hits a reused connection
    server.handler.plan(stage, "a@example.vn", DROP)

    with pytest.raises(DeliveryFailed) as raised:
        await sender.send(message("a@example.vn"))

    assert raised.value.transient is True
    assert raised.value.code == "smtp_unavailable"
    assert server.handler.attempts[(stage, "a@example.vn")] == 1  # no retry by the adapter
    await sender.send(message("a@example.vn"))
    assert server.handler.count("a@example.vn") == 1


async def test_no_server_is_a_transient_failure(free_port: int) -> None:
    sender = SmtpEmailSender(HOST, free_port, tls="none", from_address=FROM, timeout=2,
                             local_hostname="client.test")

    with pytest.raises(DeliveryFailed) as raised:
        await sender.send(message("a@example.vn"))

    assert raised.value.transient is True
    assert raised.value.code == "smtp_unavailable"
    assert raised.value.details["stage"] == "connect"


async def test_a_server_that_never_greets_times_out_transiently() -> None:
    with socket.socket() as listener:  # accepts TCP connections (backlog) but never speaks
        listener.bind((HOST, 0))
        listener.listen(8)
        sender = SmtpEmailSender(HOST, listener.getsockname()[1], tls="none",
                                 from_address=FROM, timeout=0.3, local_hostname="client.test")

        with pytest.raises(DeliveryFailed) as raised:
            await sender.send(message("a@example.vn"))

    assert raised.value.transient is True
    assert raised.value.details["stage"] == "connect"


async def test_a_retry_loop_delivers_every_message_exactly_once(
        server: SmtpTestServer) -> None:
    """What the campaign job does: retry transient failures with exponential backoff, give
    up on permanent ones; the server answers 421/451, drops a connection once and refuses
    one recipient for good."""
    recipients = [f"customer{i:02d}@example.vn" for i in range(30)]
    handler = server.handler
    handler.plan("data", recipients[1], "421 4.3.2 Too busy, closing", "421 4.3.2 Still busy")
    handler.plan("rcpt", recipients[2], "451 4.3.0 Greylisted, try again later")
    handler.plan("data", recipients[3], "451 4.3.0 Temporary local problem")
    handler.plan("data", recipients[5], DROP)
    handler.plan("rcpt", recipients[8], "452 4.2.2 Mailbox full", "450 4.2.1 Busy")
    handler.plan("rcpt", recipients[13], "550 5.1.1 No such user")
    sender = make_sender(server, pool_size=3)
    outcome: dict[str, str] = {}
    attempts: dict[str, int] = {}

    async def deliver(to: str) -> None:
        for attempt in range(1, 6):
            attempts[to] = attempt
            try:
                await sender.send(message(to))
            except DeliveryFailed as failure:
                if not failure.transient:
                    outcome[to] = f"failed: {failure.details['smtp_code']}"
                    return
                await asyncio.sleep(0.01 * 2 ** attempt * (1 + random.random() / 10))
            else:
                outcome[to] = "sent"
                return
        outcome[to] = "gave up"

    try:
        await asyncio.gather(*(deliver(to) for to in recipients))
    finally:
        await sender.close()

    assert outcome[recipients[13]] == "failed: 550"
    assert attempts[recipients[13]] == 1
    assert {to for to, state in outcome.items() if state != "sent"} == {recipients[13]}
    assert {to: handler.count(to) for to in recipients} == {
        to: 0 if to == recipients[13] else 1 for to in recipients}
    assert attempts[recipients[1]] == 3
    assert attempts[recipients[5]] == 2
    assert attempts[recipients[8]] == 3


# -- TLS and AUTH -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
@pytest.mark.parametrize("tls", ["starttls", "ssl"])
async def test_tls_with_a_trusted_certificate_and_auth(certificate: CertificateFiles,
                                                      tls: str) -> None:
    with SmtpTestServer(tls=tls, certificate=certificate, credentials=(USER, PASSWORD)) as srv:
        sender = make_sender(srv, tls=tls, username=USER, password=PASSWORD,
                             cert_bundle=str(certificate.cert))
        try:
            await sender.send(message("a@example.vn"))
            await sender.send(message("b@example.vn"))
        finally:
            await sender.close()

        received = srv.handler.messages()
        assert [m.rcpt_tos for m in received] == [("a@example.vn",), ("b@example.vn",)]
        assert all(m.tls for m in received)
        assert all(m.authenticated_as == USER for m in received)
        assert srv.connections == 1


async def test_a_wrong_password_is_a_permanent_auth_failure(
        certificate: CertificateFiles) -> None:
    with SmtpTestServer(tls="starttls", certificate=certificate,
                        credentials=(USER, PASSWORD)) as srv:
        sender = make_sender(srv, tls="starttls", username=USER, password="wrong",
                             cert_bundle=str(certificate.cert))
        with pytest.raises(DeliveryFailed) as raised:
            await sender.send(message("a@example.vn"))

    assert raised.value.transient is False
    assert raised.value.code == "smtp_auth_failed"
    assert raised.value.details["smtp_code"] == 535
    assert raised.value.details["stage"] == "connect"


async def test_an_untrusted_certificate_is_a_permanent_failure(
        certificate: CertificateFiles) -> None:
    with SmtpTestServer(tls="starttls", certificate=certificate) as srv:
        sender = make_sender(srv, tls="starttls")  # no cert_bundle: the system CAs only
        with pytest.raises(DeliveryFailed) as raised:
            await sender.send(message("a@example.vn"))

        assert srv.handler.messages() == []
    assert raised.value.transient is False
    assert raised.value.code == "smtp_misconfigured"


async def test_starttls_required_but_not_offered_is_a_permanent_failure(
        server: SmtpTestServer) -> None:
    sender = make_sender(server, tls="starttls")

    with pytest.raises(DeliveryFailed) as raised:
        await sender.send(message("a@example.vn"))

    assert raised.value.transient is False
    assert raised.value.code == "smtp_misconfigured"
    assert server.handler.messages() == []


async def test_auth_without_a_server_that_offers_it_is_a_permanent_failure(
        server: SmtpTestServer) -> None:
    sender = make_sender(server, username=USER, password=PASSWORD)

    with pytest.raises(DeliveryFailed) as raised:
        await sender.send(message("a@example.vn"))

    assert raised.value.transient is False
    assert raised.value.code == "smtp_misconfigured"


# -- readiness --------------------------------------------------------------------------------


async def test_the_health_check_reports_a_ready_server(certificate: CertificateFiles) -> None:
    with SmtpTestServer(tls="starttls", certificate=certificate,
                        credentials=(USER, PASSWORD)) as srv:
        sender = make_sender(srv, tls="starttls", username=USER, password=PASSWORD,
                             cert_bundle=str(certificate.cert))
        check = SmtpHealthCheck(sender)

        details = await check.check()

    assert check.name == "smtp"
    assert details["adapter"] == "smtp"
    assert details["server"] == f"{HOST}:{srv.port}"
    assert details["tls"] == "starttls"
    assert details["latency_ms"] >= 0


async def test_the_health_check_raises_service_unavailable_when_down(free_port: int) -> None:
    sender = SmtpEmailSender(HOST, free_port, tls="none", from_address=FROM,
                             local_hostname="client.test")

    with pytest.raises(ServiceUnavailable) as raised:
        await SmtpHealthCheck(sender, timeout=2).check()

    assert raised.value.code == "smtp_unavailable"


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    {"tls": "tls"}, {"pool_size": 0}, {"timeout": 0}, {"password": "x"},
])
def test_bad_settings_are_refused_when_building(options: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"from_address": FROM}
    settings.update(options)

    with pytest.raises(ValueError):
        SmtpEmailSender("smtp.example.vn", **settings)


@pytest.mark.parametrize(("tls", "port"), [("none", 25), ("starttls", 587), ("ssl", 465)])
def test_the_port_defaults_to_the_tls_modes_port(tls: str, port: int) -> None:
    sender = SmtpEmailSender("smtp.example.vn", None, tls=tls, from_address=FROM)

    assert sender.port == port
    assert sender.hostname == "shop.example.vn"
    assert "password" not in repr(sender)


def test_the_support_server_writes_its_certificate_where_asked(tmp_path: Path) -> None:
    files = make_certificate(tmp_path)

    assert files.cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert files.server_context() is not None
