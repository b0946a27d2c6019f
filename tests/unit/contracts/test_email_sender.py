"""Contract of the EmailSender port: every adapter must pass these tests.

Add an adapter by appending a factory to ``ADAPTERS``: a zero-argument callable returning an
async context manager that yields a :class:`Harness`: the sender, and a way to read back what
it delivered, parsed (RFC 5322). The outbox is read back from its folder; SMTP from a real
aiosmtpd server running in this process (a thread), on a free port, for this module only.
Failure replies, TLS and AUTH of the SMTP adapter are in tests/integration/test_smtp.py.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import email.utils
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from notibot.adapters.outbox import OutboxEmailSender, eml_file_name
from notibot.adapters.smtp import SmtpEmailSender
from notibot.application.ports import EmailMessage, EmailSender
from notibot.domain import DeliveryFailed

FROM = "Cửa hàng An <news@shop.example.vn>"
SUBJECT_VI = "Khuyến mãi tháng 12: giảm 30% cho khách hàng thân thiết"
TEXT_VI = ("Xin chào Nguyễn Thị Hồng Nhung,\n\nCảm ơn chị đã đồng hành cùng chúng tôi.\n"
           "Ưu đãi có hiệu lực đến hết ngày 31/12.")
HTML_VI = "<p>Xin chào <b>Nguyễn Thị Hồng Nhung</b>,</p><p>Ưu đãi đến 31/12 — đừng bỏ lỡ!</p>"
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://shop.example.vn/unsubscribe?token=abc123>, "
                        "<mailto:unsubscribe@shop.example.vn?subject=unsubscribe>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


@dataclass
class Harness:
    """A sender and what reached the other side of it, in arrival order."""

    sender: EmailSender
    delivered: Callable[[], list[MimeMessage]]


# -- the SMTP server of this module: accepts everything, keeps the bytes ---------------------


class _Sink:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.data: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.data.append(envelope.original_content or envelope.content)
        return "250 2.0.0 OK"

    def take(self) -> list[bytes]:
        with self._lock:
            return list(self.data)


@dataclass
class _Server:
    port: int
    sink: _Sink


@pytest.fixture(scope="module")
def smtp_sink() -> Iterator[_Server]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port, server_hostname="smtp.test")
    controller.start()
    try:
        yield _Server(port, sink)
    finally:
        controller.stop()


def parse(data: bytes) -> MimeMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, MimeMessage)
    return message


@asynccontextmanager
async def outbox(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    folder: Path = request.getfixturevalue("tmp_path") / "outbox"
    sender = OutboxEmailSender(folder, FROM)

    def delivered() -> list[MimeMessage]:
        return [parse(path.read_bytes()) for path in sender.files()]

    try:
        yield Harness(sender, delivered)
    finally:
        await sender.close()


@asynccontextmanager
async def smtp(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    server: _Server = request.getfixturevalue("smtp_sink")
    already = len(server.sink.take())
    sender = SmtpEmailSender("127.0.0.1", server.port, tls="none", from_address=FROM,
                             pool_size=3, timeout=5, local_hostname="client.test")

    def delivered() -> list[MimeMessage]:
        return [parse(data) for data in server.sink.take()[already:]]

    try:
        yield Harness(sender, delivered)
    finally:
        await sender.close()


ADAPTERS = [pytest.param(outbox, id="outbox"), pytest.param(smtp, id="smtp")]


@pytest.fixture(params=ADAPTERS)
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with request.param(request) as built:
        yield built


def plain_text(message: MimeMessage) -> str:
    """The text/plain body with the wire's CRLF line ends made LF again."""
    body = message.get_body(("plain",))
    assert body is not None
    return body.get_content().replace("\r\n", "\n")


def html_text(message: MimeMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    return body.get_content().replace("\r\n", "\n")


# -- the contract -----------------------------------------------------------------------------


async def test_a_sent_message_arrives_with_its_headers_and_body(harness: Harness) -> None:
    message_id = await harness.sender.send(EmailMessage(
        to="an.nguyen@example.vn", subject="Your order has shipped", text="Hello An,\nIt ships."))

    [delivered] = harness.delivered()
    assert delivered["To"] == "an.nguyen@example.vn"
    assert delivered["Subject"] == "Your order has shipped"
    assert delivered["Message-ID"] == message_id
    assert delivered["From"].addresses[0].addr_spec == "news@shop.example.vn"
    assert delivered.get_content_type() == "text/plain"
    assert plain_text(delivered) == "Hello An,\nIt ships.\n"


async def test_the_message_id_is_generated_in_rfc_5322_form(harness: Harness) -> None:
    first = await harness.sender.send(EmailMessage(to="a@example.vn", subject="s", text="t"))
    second = await harness.sender.send(EmailMessage(to="a@example.vn", subject="s", text="t"))

    assert re.fullmatch(r"<[^<>@\s]+@shop\.example\.vn>", first)
    assert first != second
    assert [m["Message-ID"] for m in harness.delivered()] == [first, second]


async def test_a_given_message_id_is_used(harness: Harness) -> None:
    returned = await harness.sender.send(EmailMessage(
        to="a@example.vn", subject="s", text="t", message_id="<delivery-42@notibot.example>"))
    bare = await harness.sender.send(EmailMessage(
        to="a@example.vn", subject="s", text="t", message_id="delivery-43@notibot.example"))

    assert returned == "<delivery-42@notibot.example>"
    assert bare == "<delivery-43@notibot.example>"
    assert [m["Message-ID"] for m in harness.delivered()] == [returned, bare]


async def test_vietnamese_subject_and_bodies_arrive_intact(harness: Harness) -> None:
    await harness.sender.send(EmailMessage(
        to="nhung@example.vn", subject=SUBJECT_VI, text=TEXT_VI, html=HTML_VI))

    [delivered] = harness.delivered()
    assert delivered["Subject"] == SUBJECT_VI
    assert plain_text(delivered) == TEXT_VI + "\n"
    assert html_text(delivered) == HTML_VI + "\n"
    assert delivered["From"].addresses[0].display_name == "Cửa hàng An"


async def test_body_lines_that_smtp_or_mbox_treat_specially_arrive_unchanged(
        harness: Harness) -> None:
    text = "From now on:\n.\n..two dots\n.leading dot\nline\u2028with a Unicode separator"

    await harness.sender.send(EmailMessage(to="a@example.vn", subject="s", text=text))

    [delivered] = harness.delivered()
    assert plain_text(delivered) == text + "\n"


async def test_html_makes_a_multipart_alternative_with_the_text_first(
        harness: Harness) -> None:
    await harness.sender.send(EmailMessage(
        to="a@example.vn", subject="s", text="plain version", html="<p>html version</p>"))

    [delivered] = harness.delivered()
    assert delivered.get_content_type() == "multipart/alternative"
    parts = list(delivered.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert [p.get_content_charset() for p in parts] == ["utf-8", "utf-8"]
    assert html_text(delivered) == "<p>html version</p>\n"
    assert plain_text(delivered) == "plain version\n"


async def test_list_unsubscribe_headers_arrive_unchanged(harness: Harness) -> None:
    await harness.sender.send(EmailMessage(
        to="a@example.vn", subject="s", text="t", headers=dict(UNSUBSCRIBE)))

    [delivered] = harness.delivered()
    assert delivered["List-Unsubscribe"] == UNSUBSCRIBE["List-Unsubscribe"]
    assert delivered["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


async def test_a_date_header_is_set(harness: Harness) -> None:
    await harness.sender.send(EmailMessage(to="a@example.vn", subject="s", text="t"))

    [delivered] = harness.delivered()
    date = email.utils.parsedate_to_datetime(delivered["Date"])
    assert date.tzinfo is not None


async def test_the_message_on_the_wire_is_7_bit_ascii_with_crlf(harness: Harness) -> None:
    await harness.sender.send(EmailMessage(
        to="a@example.vn", subject=SUBJECT_VI, text=TEXT_VI, html=HTML_VI))

    [delivered] = harness.delivered()
    raw = delivered.as_bytes(policy=email.policy.SMTP)
    assert raw.isascii()
    assert all(part["Content-Transfer-Encoding"] in ("base64", "quoted-printable")
               for part in delivered.iter_parts())


async def test_from_address_of_the_message_overrides_the_default(harness: Harness) -> None:
    await harness.sender.send(EmailMessage(
        to="a@example.vn", subject="s", text="t", from_address="Support <help@shop.example.vn>"))

    [delivered] = harness.delivered()
    assert delivered["From"].addresses[0].addr_spec == "help@shop.example.vn"
    assert delivered["From"].addresses[0].display_name == "Support"


@pytest.mark.parametrize("message", [
    EmailMessage(to="a@example.vn", subject="hi\r\nBcc: victim@example.org", text="t"),
    EmailMessage(to="a@example.vn", subject="s", text="t",
                 headers={"X-Campaign": "x\nBcc: victim@example.org"}),
    EmailMessage(to="a@example.vn, b@example.vn", subject="s", text="t"),
    EmailMessage(to="not an address", subject="s", text="t"),
    EmailMessage(to="a@example.vn", subject="s", text="t", headers={"From": "x@evil.example"}),
    EmailMessage(to="a@example.vn", subject="s", text="t",
                 headers={"Content-Type": "text/html"}),
    EmailMessage(to="a@example.vn", subject="s", text="t", message_id="<two words@x.vn>"),
    EmailMessage(to="a@example.vn", subject="s", text="t", message_id="<a:b@x.vn>"),
], ids=["crlf-in-subject", "lf-in-header", "two-recipients", "bad-to", "reserved-from",
        "reserved-content-type", "space-in-message-id", "colon-in-message-id"])
async def test_a_message_that_cannot_be_built_fails_permanently_and_sends_nothing(
        harness: Harness, message: EmailMessage) -> None:
    with pytest.raises(DeliveryFailed) as raised:
        await harness.sender.send(message)

    assert raised.value.transient is False
    assert raised.value.code == "invalid_email_message"
    assert harness.delivered() == []


async def test_concurrent_sends_each_arrive_once(harness: Harness) -> None:
    recipients = [f"customer{i}@example.vn" for i in range(25)]

    ids = await asyncio.gather(*(harness.sender.send(
        EmailMessage(to=to, subject=f"Hi {to}", text="t")) for to in recipients))

    delivered = harness.delivered()
    assert sorted(m["To"] for m in delivered) == sorted(recipients)
    assert sorted(m["Message-ID"] for m in delivered) == sorted(ids)
    assert all(m["Subject"] == f"Hi {m['To']}" for m in delivered)


async def test_sending_works_again_after_close(harness: Harness) -> None:
    await harness.sender.send(EmailMessage(to="a@example.vn", subject="one", text="t"))
    await harness.sender.close()
    await harness.sender.send(EmailMessage(to="a@example.vn", subject="two", text="t"))
    await harness.sender.close()

    assert [m["Subject"] for m in harness.delivered()] == ["one", "two"]


# -- outbox only ------------------------------------------------------------------------------


async def test_outbox_files_are_named_by_time_and_message_id(tmp_path: Path) -> None:
    sender = OutboxEmailSender(tmp_path / "out", FROM)

    message_id = await sender.send(EmailMessage(
        to="a@example.vn", subject="s", text="t", message_id="<Delivery/7=x@notibot.example>"))

    [path] = sender.files()
    assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-Delivery-7-x-notibot\.example\.eml", path.name)
    assert parse(path.read_bytes())["Message-ID"] == message_id
    assert path.read_bytes().count(b"\r\n") > 5  # RFC 5322 line ends


async def test_outbox_creates_its_folder_on_first_send_only(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b" / "outbox"
    sender = OutboxEmailSender(folder, FROM)
    assert not folder.exists()

    await sender.send(EmailMessage(to="a@example.vn", subject="s", text="t"))

    assert folder.is_dir()
    assert [p.suffix for p in folder.iterdir()] == [".eml"]  # no temporary file left


async def test_outbox_keeps_both_messages_with_the_same_id_and_time(tmp_path: Path) -> None:
    sender = OutboxEmailSender(tmp_path, FROM)
    message = EmailMessage(to="a@example.vn", subject="s", text="t", message_id="<same@x.vn>")

    await asyncio.gather(sender.send(message), sender.send(message), sender.send(message))

    assert len(sender.files()) == 3


async def test_outbox_is_safe_from_several_threads_and_loops(tmp_path: Path) -> None:
    sender = OutboxEmailSender(tmp_path, FROM)

    def worker(n: int) -> None:
        async def send_some() -> None:
            await asyncio.gather(*(sender.send(EmailMessage(
                to=f"t{n}-{i}@example.vn", subject="s", text="t")) for i in range(20)))
        asyncio.run(send_some())

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    recipients = {parse(p.read_bytes())["To"] for p in sender.files()}
    assert len(recipients) == 80


async def test_an_outbox_that_cannot_be_written_fails_transiently(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    sender = OutboxEmailSender(blocker / "outbox", FROM)

    with pytest.raises(DeliveryFailed) as raised:
        await sender.send(EmailMessage(to="a@example.vn", subject="s", text="t"))

    assert raised.value.transient is True
    assert raised.value.code == "outbox_unavailable"


def test_eml_file_name_keeps_only_safe_characters() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

    assert eml_file_name("<a/b\\c:d*e@x.vn>", when) == "20260102T030405.678901Z-a-b-c-d-e-x.vn.eml"
    assert eml_file_name("<>", when) == "20260102T030405.678901Z-message.eml"
