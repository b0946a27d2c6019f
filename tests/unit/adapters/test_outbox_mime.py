"""The message builder shared by the outbox and SMTP adapters writes exactly what the email
package writes for the same message (``email.mime`` objects flattened by
``email.generator.BytesGenerator`` under the plain compat32 policy, CRLF line ends): its
shortcuts (direct writing, quick header folding) change the speed, never a byte."""

from __future__ import annotations

import base64
import email.policy
import random
import re
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notibot.adapters.outbox import mime
from notibot.adapters.outbox.mime import POLICY, _Utf8Header, render_email
from notibot.application.ports import EmailMessage

#: The email package as it is: no shortcut.
REFERENCE = email.policy.Compat32(linesep="\r\n", mangle_from_=False)
BOUNDARY = "=_0123456789abcdef01234567"
NOW = datetime(2026, 12, 1, 8, 30, 15, tzinfo=UTC)


def reference_part(content: str, subtype: str) -> Message:
    lines = re.split(r"\r\n|\r|\n", content.removesuffix("\r\n").removesuffix("\n"))
    body = "\r\n".join(lines) + "\r\n"
    part = Message(policy=REFERENCE)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    if body.isascii() and all(len(line) <= 998 for line in lines):
        part["Content-Transfer-Encoding"] = "7bit"
        part.set_payload(body)
    else:
        part["Content-Transfer-Encoding"] = "base64"
        part.set_payload(base64.encodebytes(body.encode("utf-8")).decode("ascii"))
    return part


def text_value(value: str, name: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8", header_name=name)


def reference_bytes(message: EmailMessage, *, default_from: str, domain: str) -> bytes:
    """The message built with ``email.mime`` and flattened by the email package."""
    from_header, _ = mime._mailbox(message.from_address or default_from, "From")
    to_header, _ = mime._mailbox(message.to, "To")
    built: Message
    if message.html is None:
        built = reference_part(message.text, "plain")
        built["MIME-Version"] = "1.0"
    else:
        built = MIMEMultipart("alternative", boundary=BOUNDARY, policy=REFERENCE)
        built.attach(reference_part(message.text, "plain"))
        built.attach(reference_part(message.html, "html"))
    built["Date"] = email.utils.format_datetime(NOW)
    built["From"] = from_header
    built["To"] = to_header
    built["Subject"] = text_value(message.subject, "Subject")
    built["Message-ID"] = mime._message_id(message.message_id, domain)
    for name, value in message.headers.items():
        built[name] = text_value(value, name)
    data = built.as_bytes(policy=REFERENCE)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


WORDS = ["Ưu", "đãi", "tháng", "12", "dành", "cho", "Khách", "hàng", "Nguyễn", "Thị",
         "Hồng", "Nhung", "mã", "giảm", "giá", "GIAM30", "order", "shipped", "😀", "日本",
         "a" * 90, "x" * 1000, "ƯỚC", "<b>đậm</b>", "&amp;", ".", "..", "From", "\t", "é"]
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiJjMDAwMDAxIn0" * 8 + ".sig_-"


def random_text(rnd: random.Random, *, words: int, breaks: bool) -> str:
    parts = []
    for _ in range(rnd.randint(1, words)):
        parts.append(rnd.choice(WORDS))
        parts.append(rnd.choice(["\r\n", "\n", "\r", "\n\n"]) if breaks and rnd.random() < 0.15
                     else " ")
    return "".join(parts).strip(" ") or "x"


def random_message(rnd: random.Random) -> EmailMessage:
    headers: dict[str, str] = {}
    if rnd.random() < 0.7:
        url = rnd.choice([f"https://shop.example.vn/unsubscribe?token={TOKEN}",
                          "https://shop.example.vn/u/1", f"mailto:u@x.vn?subject={TOKEN[:40]}"])
        headers["List-Unsubscribe"] = f"<{url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if rnd.random() < 0.3:
        headers["X-Campaign"] = random_text(rnd, words=12, breaks=False)
    if rnd.random() < 0.1:
        headers["X-" + "Long-Name" * rnd.randint(1, 9)] = random_text(rnd, words=6,
                                                                      breaks=False)
    return EmailMessage(
        to=rnd.choice(["customer000001@example.vn", "Nhung <nhung@example.vn>",
                       "\"Hồng, Nhung\" <hong.nhung+vip@mail.example.vn>"]),
        subject=random_text(rnd, words=rnd.choice([3, 12, 40]), breaks=False),
        text=random_text(rnd, words=60, breaks=True),
        html=None if rnd.random() < 0.3 else random_text(rnd, words=60, breaks=True),
        message_id=rnd.choice([None, "<d-42@notibot.example>", "d-43@notibot.example"]),
        from_address=rnd.choice([None, "Support <help@shop.example.vn>",
                                 "Cửa hàng An Bình Minh Phát Đạt <news@shop.example.vn>"]),
        headers=headers)


@pytest.fixture
def fixed_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mime, "_new_boundary", lambda: BOUNDARY)


@pytest.mark.usefixtures("fixed_boundary")
@pytest.mark.parametrize("seed", range(8))
def test_render_email_writes_what_the_email_package_writes(seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(100):
        message = random_message(rnd)
        if message.message_id is None:  # a generated one: use the one rendered
            rendered = render_email(message, default_from="Shop <news@shop.example.vn>",
                                    message_id_domain="shop.example.vn", now=NOW)
            message = EmailMessage(**{**vars_of(message), "message_id": rendered.message_id})

        rendered = render_email(message, default_from="Shop <news@shop.example.vn>",
                                message_id_domain="shop.example.vn", now=NOW)

        assert rendered.data == reference_bytes(message,
                                                default_from="Shop <news@shop.example.vn>",
                                                domain="shop.example.vn")


def vars_of(message: EmailMessage) -> dict[str, Any]:
    return {name: getattr(message, name) for name in (
        "to", "subject", "text", "html", "message_id", "from_address", "headers")}


def test_a_multipart_message_has_a_fresh_boundary_each_time() -> None:
    message = EmailMessage(to="a@example.vn", subject="s", text="t", html="<p>h</p>")
    boundaries = {re.search(rb'boundary="([^"]+)"', render_email(
        message, default_from="a@shop.vn", message_id_domain="shop.vn").data).group(1)
        for _ in range(20)}

    assert len(boundaries) == 20
    assert all(re.fullmatch(rb"=_[0-9a-f]{24}", b) for b in boundaries)


# -- header folding ---------------------------------------------------------------------------


HEADER_NAMES = ["Subject", "X", "List-Unsubscribe", "X-A-Rather-Long-Header-Name-Here",
                "X-" + "n" * 50, "X-" + "n" * 70]
ALPHABETS = ["abc xyz", "Ưu đãi tháng 12 dành cho Khách hàng ", "日本語テキスト",
             "😀🎉 emoji ", "ÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚĂĐĨŨƠàáâãèéêìíòóôõùúăđĩũơƯẠẢẤẦẨẪẬẮẰẲẴẶẸẺẼỀ",
             "x\u00e9\u0800\U0001F600", "mostly ascii with one é"]
URL_CHARS = "abcdefghijklmnopqrstuvwxyzABC0123456789-._~:/?#[]@!$&'()*+,;=%<>"


@pytest.mark.parametrize("max_line_length", [78, 60, 100, 998])
def test_header_folding_shortcuts_write_what_compat32_writes(max_line_length: int) -> None:
    rnd = random.Random(max_line_length)
    policy = POLICY.clone(max_line_length=max_line_length)
    reference = REFERENCE.clone(max_line_length=max_line_length)
    for _ in range(1500):
        name = rnd.choice(HEADER_NAMES)
        value: Any
        if rnd.random() < 0.5:
            alphabet = rnd.choice(ALPHABETS)
            text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 250)))
            text = text if not text.isascii() else text + "é"
            value = _Utf8Header(text, name)
            expected = reference.fold_binary(name, Header(text, "utf-8", header_name=name))
        else:
            chars = URL_CHARS + rnd.choice(["", " ", "\t", " \t"])
            value = "".join(rnd.choice(chars) for _ in range(rnd.randint(0, 400)))
            expected = reference.fold_binary(name, value)

        assert policy.fold_binary(name, value) == expected
        assert policy.fold(name, value) == expected.decode("ascii")


def test_a_long_unsubscribe_url_goes_on_a_line_of_its_own() -> None:
    url = f"<https://shop.example.vn/unsubscribe?token={TOKEN}>"

    folded = POLICY.fold_binary("List-Unsubscribe", url)

    assert folded == f"List-Unsubscribe: \r\n {url}\r\n".encode("ascii")


def test_a_vietnamese_subject_becomes_base64_encoded_words_within_78_characters() -> None:
    subject = "Ưu đãi tháng 12 dành cho Khách hàng Nguyễn Thị Hồng Nhung " * 3

    folded = POLICY.fold_binary("Subject", _Utf8Header(subject, "Subject"))

    lines = folded.decode("ascii").removesuffix("\r\n").split("\r\n")
    assert len(lines) > 1 and all(len(line) <= 78 for line in lines)
    assert all(re.fullmatch(r"(Subject:)? =\?utf-8\?b\?[A-Za-z0-9+/=]+\?=", line)
               for line in lines)
    decoded = email.header.decode_header(folded.decode("ascii").partition(": ")[2])
    assert "".join(part.decode("utf-8") for part, _ in decoded) == subject


def test_the_date_is_written_as_given() -> None:
    message = EmailMessage(to="a@example.vn", subject="s", text="t",
                           message_id="<m@shop.vn>")
    for now in (NOW, NOW + timedelta(days=40, seconds=3),
                NOW.astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))):
        data = render_email(message, default_from="a@shop.vn", message_id_domain="shop.vn",
                            now=now).data
        assert f"Date: {email.utils.format_datetime(now)}\r\n".encode() in data


def test_a_bare_address_is_taken_as_the_address_parser_takes_it() -> None:
    rnd = random.Random(7)
    atom = "abcXYZ019!#$%&'*+/=?^_`{|}~-"

    def dot_atom() -> str:
        return ".".join("".join(rnd.choice(atom) for _ in range(rnd.randint(1, 6)))
                        for _ in range(rnd.randint(1, 3)))

    for _ in range(500):
        address = f"{dot_atom()}@{dot_atom()}"
        assert mime._mailbox(address, "To") == (address, address)
        assert mime._parsed_mailbox.__wrapped__(address, "To") == (address, address)
