"""Turning an :class:`~notibot.application.ports.EmailMessage` into the bytes of an Internet
message: the one function both email adapters use, so the outbox keeps exactly what SMTP sends.

Standards followed:

- RFC 5322 (Internet Message Format): header fields Date, From, To, Subject, Message-ID
  (section 3.6.4, ``<id-left@id-right>``); lines end with CRLF and are at most 78 characters
  where the header folding allows it.
- RFC 2045/2046 (MIME): ``text/plain; charset="utf-8"`` alone, or ``multipart/alternative``
  with the plain text first and the HTML last (the last part is the preferred one).
- RFC 2047: non-ASCII header text (a Vietnamese subject, a display name) as encoded-words.
- Bodies use a 7-bit transfer encoding (none for short-lined ASCII, else base64), so any
  server takes them without the 8BITMIME extension (RFC 6152).
- RFC 2369 / RFC 8058: ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` pass through the
  extra headers unchanged.
"""

from __future__ import annotations

import base64
import email.policy
import email.utils
import functools
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from typing import Any

from notibot.application.ports import EmailMessage
from notibot.domain import DeliveryFailed


class WirePolicy(email.policy.Compat32):
    """The compat32 policy, writing a header line that already fits in 78 characters (ASCII,
    no line break) as it is instead of running the folding algorithm over it: the output is
    the same, at a fraction of the cost."""

    def _fits(self, name: str, value: Any) -> bool:
        return (isinstance(value, str) and value.isascii() and "\r" not in value
                and "\n" not in value
                and len(name) + 2 + len(value) <= (self.max_line_length or _MAX_LINE))

    def fold(self, name: str, value: Any) -> str:
        if self._fits(name, value):
            return f"{name}: {value}{self.linesep}"
        return super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        if self._fits(name, value):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


#: How messages are serialised: CRLF line ends (RFC 5322 section 2.1), header lines folded at
#: 78 characters, body lines never changed (no "From " mangling). The email package's compat32
#: API (``email.mime``, ``email.header``) is used rather than ``email.message.EmailMessage``:
#: it writes the same standard message several times faster (0.2 ms instead of 2.4 ms per
#: campaign message here), and a campaign builds one message per recipient.
POLICY = WirePolicy(linesep="\r\n", mangle_from_=False)

#: Header names the builder writes itself (or MIME structure needs): refused in ``headers``.
RESERVED_HEADERS = frozenset({
    "from", "to", "subject", "date", "message-id", "mime-version", "content-type",
    "content-transfer-encoding", "content-disposition",
})

#: RFC 5322 section 2.2 field-name: printable ASCII except ":".
_FIELD_NAME = re.compile(r"[!-9;-~]+")
#: What ends a line in a body: CRLF, LF or CR (not the other Unicode line separators).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: RFC 5321 section 4.5.3.1.6: at most 998 octets per line, CRLF excluded.
_MAX_LINE = 998
#: RFC 5322 section 3.6.4 msg-id: "<" dot-atom-text "@" (dot-atom-text / no-fold-literal) ">".
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_MSG_ID = re.compile(rf"<{_ATOM}(?:\.{_ATOM})*@(?:{_ATOM}(?:\.{_ATOM})*|\[[!-Z^-~]*\])>")

#: Error code of a message that cannot be built (bad header, address, reserved name).
INVALID_MESSAGE = "invalid_email_message"


@dataclass(slots=True, frozen=True)
class RenderedEmail:
    """A message ready for the wire.

    Attributes:
        message_id: the Message-ID header, with its angle brackets (``<id@domain>``).
        sender: the envelope sender (SMTP ``MAIL FROM``, RFC 5321 section 4.1.1.2): the bare
            address of From.
        recipient: the envelope recipient (``RCPT TO``): the bare address of To.
        data: the RFC 5322 message, CRLF line ends, ASCII only, ending with CRLF.
    """

    message_id: str
    sender: str
    recipient: str
    data: bytes


def _invalid(reason: str, **details: object) -> DeliveryFailed:
    return DeliveryFailed(f"the message cannot be built: {reason}", transient=False,
                          code=INVALID_MESSAGE, details=details or None)


@functools.lru_cache(maxsize=64)  # the From of a campaign is the same for every message
def _mailbox(value: str, header: str) -> tuple[str, str]:
    """``(header value, bare address)`` of one mailbox (``"An <an@x.vn>"``): the display name
    RFC 2047-encoded when not ASCII; the address must be ASCII (SMTPUTF8, RFC 6531, is not
    used)."""
    if "\r" in value or "\n" in value:
        raise _invalid(f"{header} contains a line break", header=header)
    pairs = email.utils.getaddresses([value])
    name, address = pairs[0] if len(pairs) == 1 else ("", "")
    if not address or "@" not in address or not address.isascii() or any(
            ch.isspace() or ch in "<>,\"" for ch in address):
        raise _invalid(f"{header} is not one email address: {value!r}", header=header)
    return email.utils.formataddr((name, address), charset="utf-8"), address


def _text_header(value: str, name: str) -> str | Header:
    """A free-text header value (Subject, List-Unsubscribe, ...): as it is when ASCII, else
    RFC 2047 encoded-words (UTF-8). Line breaks are refused (header injection)."""
    if "\r" in value or "\n" in value:
        raise _invalid(f"{name} contains a line break", header=name)
    if value.isascii():
        return value
    return Header(value, "utf-8", header_name=name)


def _message_id(given: str | None, domain: str) -> str:
    if given is None or not given.strip():
        return email.utils.make_msgid(domain=domain)
    value = given.strip()
    if not (value.startswith("<") and value.endswith(">")):
        value = f"<{value}>"
    if not _MSG_ID.fullmatch(value):
        raise _invalid(f"Message-ID must look like <id@domain> (RFC 5322 section 3.6.4): "
                       f"{given!r}", header="Message-ID")
    return value


def _text_part(content: str, subtype: str) -> Message:
    """A ``text/<subtype>; charset="utf-8"`` part in canonical form (CRLF line ends, RFC 2046
    section 4.1.1), ending with a line break: as it is when ASCII with lines of at most 998
    octets ("7bit"), else base64 (RFC 2045 section 6.8)."""
    lines = _LINE_BREAK.split(content.removesuffix("\r\n").removesuffix("\n"))
    body = "\r\n".join(lines) + "\r\n"
    part = Message(policy=POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    if body.isascii() and all(len(line) <= _MAX_LINE for line in lines):
        part["Content-Transfer-Encoding"] = "7bit"
        part.set_payload(body)
    else:
        part["Content-Transfer-Encoding"] = "base64"
        part.set_payload(base64.encodebytes(body.encode("utf-8")).decode("ascii"))
    return part


def render_email(message: EmailMessage, *, default_from: str, message_id_domain: str,
                 now: datetime | None = None) -> RenderedEmail:
    """Build the RFC 5322 message for ``message``.

    Parameters:
        message: what to send; ``message.from_address`` overrides ``default_from``.
        default_from: the From of the sender (NOTIBOT_EMAIL_FROM), e.g.
            ``"Notibot <no-reply@example.com>"``.
        message_id_domain: the right-hand side of generated Message-IDs (RFC 5322 section
            3.6.4 asks for a domain the sender controls).
        now: the Date header's time (timezone-aware); the current UTC time when None.

    Returns:
        The rendered message with its Message-ID (the given one, bracketed, or a new one from
        :func:`email.utils.make_msgid`) and envelope addresses.

    Raises:
        DeliveryFailed: ``transient=False``, code ``invalid_email_message``, when the message
            cannot be built: a From/To that is not one address, a line break in a header
            value (header injection), a header name that is not RFC 5322 field-name or is
            reserved (From, To, Subject, Date, Message-ID, MIME-Version, Content-*), a
            malformed Message-ID.
    """
    from_header, sender = _mailbox(message.from_address or default_from, "From")
    to_header, recipient = _mailbox(message.to, "To")
    message_id = _message_id(message.message_id, message_id_domain)
    subject: Any = _text_header(message.subject, "Subject")
    extra: list[tuple[str, Any]] = []  # str or email.header.Header
    for name, value in message.headers.items():
        if not _FIELD_NAME.fullmatch(name):
            raise _invalid(f"{name!r} is not a header name", header=name)
        if name.lower() in RESERVED_HEADERS:
            raise _invalid(f"headers may not set {name}: the EmailMessage fields do",
                           header=name)
        extra.append((name, _text_header(value, name)))

    mime: Message
    if message.html is None:
        mime = _text_part(message.text, "plain")
        mime["MIME-Version"] = "1.0"
    else:
        # text first: the last part is the preferred one. A boundary of our own: 96 random
        # bits after "=_", which neither base64 nor the 7bit bodies can contain by chance
        # (and the generator need not search the bodies for a free one)
        mime = MIMEMultipart("alternative", boundary=f"=_{uuid.uuid4().hex[:24]}",
                             policy=POLICY)
        mime.attach(_text_part(message.text, "plain"))
        mime.attach(_text_part(message.html, "html"))
    mime["Date"] = email.utils.format_datetime(now or datetime.now(UTC))
    mime["From"] = from_header
    mime["To"] = to_header
    mime["Subject"] = subject
    mime["Message-ID"] = message_id
    for name, value in extra:
        mime[name] = value
    data = mime.as_bytes(policy=POLICY)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return RenderedEmail(message_id=message_id, sender=sender, recipient=recipient, data=data)


def domain_of(address: str, default: str = "localhost") -> str:
    """The domain of ``address`` (``"Shop <news@shop.vn>"`` -> ``shop.vn``), or ``default``."""
    _name, bare = email.utils.parseaddr(address)
    _, at, domain = bare.rpartition("@")
    return domain.lower() if at and domain else default
