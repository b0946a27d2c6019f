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
import email.base64mime
import email.policy
import email.quoprimime
import email.utils
import functools
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from typing import Any

from notibot.application.ports import EmailMessage
from notibot.domain import DeliveryFailed


class _Utf8Header(Header):
    """A non-ASCII header value (:func:`_text_header`): a :class:`~email.header.Header` in
    UTF-8 that also keeps its text and name, so :class:`WirePolicy` can fold it quickly."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text, "utf-8", header_name=name)
        self.text = text
        self.name = name


class WirePolicy(email.policy.Compat32):
    """The compat32 policy with shortcuts for the header lines a campaign message has, each
    writing exactly what compat32's folding algorithm writes, at a fraction of the cost:

    - a line that already fits in 78 characters (ASCII, no line break): as it is;
    - a longer ASCII value without white space (a ``List-Unsubscribe`` URL with a token),
      which cannot be folded: on a continuation line of its own;
    - a non-ASCII text (:class:`_Utf8Header`: a Vietnamese subject): RFC 2047 encoded-words,
      UTF-8 and base64, as many characters in each as fit in the line, found in one pass
      where :meth:`email.charset.Charset.header_encode_lines` re-encodes the growing line
      for every character.

    Anything else goes through compat32's folding."""

    def _fast_fold(self, name: str, value: Any) -> str | None:
        """The folded header line(s) with their line ends, or None when no shortcut applies."""
        limit = self.max_line_length
        if isinstance(value, str):
            if not value.isascii() or "\r" in value or "\n" in value:
                return None
            if len(name) + 2 + len(value) <= (limit or _MAX_LINE):
                return f"{name}: {value}{self.linesep}"
            if limit and len(name) + 2 < limit and value.isprintable() and " " not in value:
                return f"{name}: {self.linesep} {value}{self.linesep}"
            return None
        if type(value) is _Utf8Header and value.name == name and limit:
            words = _encoded_words(value.text, limit - len(name) - 2, limit - 1)
            if words is not None:
                return f"{name}: " + f"{self.linesep} ".join(words) + self.linesep
        return None

    def fold(self, name: str, value: Any) -> str:
        folded = self._fast_fold(name, value)
        return folded if folded is not None else super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        folded = self._fast_fold(name, value)
        if folded is not None:
            return folded.encode("ascii")
        return super().fold_binary(name, value)


#: What the RFC 2047 chrome ``=?utf-8?b?`` ... ``?=`` adds to an encoded-word.
_CHROME = len("=?utf-8?b??=")
#: Characters that end a line for :meth:`str.splitlines` (which Header applies to its text).
_LINE_ENDS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _encoded_words(text: str, first_room: int, room: int) -> list[str] | None:
    """``text`` as UTF-8 base64 encoded-words, split as ``Header(text, "utf-8").encode()``
    splits it: each word takes characters while its base64 still fits in the room of its
    line (``first_room`` after the header name, ``room`` on continuation lines, less the
    chrome). None when that algorithm would do something else: an empty text, a line break
    inside, a character UTF-8 cannot encode (a lone surrogate), a line too short for one
    character, or a text for which quoted-printable ("Q") is not longer than base64 (mostly
    ASCII: the email package then writes "Q" words)."""
    first, later = first_room - _CHROME, room - _CHROME
    if not text or first < 8 or later < 8 or _LINE_ENDS.search(text):
        return None
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        return None
    if email.base64mime.header_length(encoded) >= email.quoprimime.header_length(encoded):
        return None  # the email package picks the shorter encoding: here "Q", not "B"
    words: list[str] = []
    size = start = end = 0  # bytes of the current word; its slice of ``encoded``
    limit = first
    for char in text:
        code = ord(char)
        width = 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
        if 4 * -(-(size + width) // 3) > limit:  # its base64 length would not fit
            words.append(_word(encoded[start:end]))
            size, start, limit = 0, end, later
        size += width
        end += width
    words.append(_word(encoded[start:]))
    return words


def _word(data: bytes) -> str:
    """One RFC 2047 encoded-word of UTF-8 ``data``, base64 ("B") encoded."""
    return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="


#: How messages are serialised: CRLF line ends (RFC 5322 section 2.1), header lines folded at
#: 78 characters, body lines never changed (no "From " mangling). The email package's compat32
#: folding (``email.header``) is used rather than ``email.message.EmailMessage``'s: it writes
#: the same standard message several times faster, and a campaign builds one message per
#: recipient. For the same reason the two shapes of message built here (one text part, or
#: multipart/alternative) are written directly, byte for byte as ``email.mime`` objects and
#: ``email.generator.BytesGenerator`` under this policy write them (0.06 ms instead of 0.13 ms
#: per campaign message; ``tests/unit/adapters/test_outbox_mime.py`` compares the two).
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
#: A bare address, dot-atom "@" dot-atom (RFC 5322 section 3.4.1): no display name, nothing
#: to quote or encode.
_BARE_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*")

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


def _mailbox(value: str, header: str) -> tuple[str, str]:
    """``(header value, bare address)`` of one mailbox (``"An <an@x.vn>"``): the display name
    RFC 2047-encoded when not ASCII; the address must be ASCII (SMTPUTF8, RFC 6531, is not
    used). A bare address (the To of a campaign message) is both, as parsing it gives."""
    if _BARE_ADDRESS.fullmatch(value):
        return value, value
    return _parsed_mailbox(value, header)


@functools.lru_cache(maxsize=64)  # the From of a campaign is the same for every message
def _parsed_mailbox(value: str, header: str) -> tuple[str, str]:
    """:func:`_mailbox` by the email package's address parser."""
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
    return _Utf8Header(value, name)


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


def _text_part(content: str, subtype: str) -> tuple[list[tuple[str, Any]], str]:
    """A ``text/<subtype>; charset="utf-8"`` part in canonical form (CRLF line ends, RFC 2046
    section 4.1.1), ending with a line break: as it is when ASCII with lines of at most 998
    octets ("7bit"), else base64 (RFC 2045 section 6.8). Returns its header fields and its
    body, CRLF line ends."""
    lines = _LINE_BREAK.split(content.removesuffix("\r\n").removesuffix("\n"))
    body = "\r\n".join(lines) + "\r\n"
    if body.isascii() and all(len(line) <= _MAX_LINE for line in lines):
        encoding = "7bit"
    else:
        encoding = "base64"
        body = base64.encodebytes(body.encode("utf-8")).decode("ascii").replace("\n", "\r\n")
    return [("Content-Type", f'text/{subtype}; charset="utf-8"'),
            ("Content-Transfer-Encoding", encoding)], body


def _entity(headers: list[tuple[str, Any]], body: str) -> bytes:
    """One MIME entity as ``email.generator.BytesGenerator`` writes it under :data:`POLICY`:
    each header field folded, a blank line, the body (CRLF line ends already, ASCII)."""
    return b"".join([*(POLICY.fold_binary(name, value) for name, value in headers),
                     b"\r\n", body.encode("ascii")])


#: The last Date header written for the current time: ``(Unix second, header value)``.
_last_date: tuple[int, str] = (0, "")


def _date(now: datetime | None) -> str:
    """The Date header's value (RFC 5322 section 3.3) for ``now``, or for the current time
    (whole seconds, UTC; the same text for every message of one second)."""
    global _last_date
    if now is not None:
        return email.utils.format_datetime(now)
    second = int(time.time())
    last = _last_date
    if last[0] != second:
        last = _last_date = (second, email.utils.format_datetime(
            datetime.fromtimestamp(second, UTC)))
    return last[1]


def _new_boundary() -> str:
    """A multipart boundary: 96 random bits after "=_", which neither base64 nor the 7bit
    bodies can contain by chance (so nobody need search the bodies for a free one)."""
    return f"=_{secrets.token_hex(12)}"


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

    headers: list[tuple[str, Any]]
    if message.html is None:
        headers, body = _text_part(message.text, "plain")
        headers.append(("MIME-Version", "1.0"))
    else:
        # multipart/alternative, text first: the last part is the preferred one (RFC 2046
        # section 5.1.4); written as the email package writes it (RFC 2046 section 5.1.1)
        boundary = _new_boundary()
        headers = [("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
                   ("MIME-Version", "1.0")]
        text = _entity(*_text_part(message.text, "plain")).decode("ascii")
        html = _entity(*_text_part(message.html, "html")).decode("ascii")
        body = (f"--{boundary}\r\n{text}\r\n--{boundary}\r\n{html}"
                f"\r\n--{boundary}--\r\n")
    headers += [("Date", _date(now)),
                ("From", from_header), ("To", to_header), ("Subject", subject),
                ("Message-ID", message_id), *extra]
    data = _entity(headers, body)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return RenderedEmail(message_id=message_id, sender=sender, recipient=recipient, data=data)


def domain_of(address: str, default: str = "localhost") -> str:
    """The domain of ``address`` (``"Shop <news@shop.vn>"`` -> ``shop.vn``), or ``default``."""
    _name, bare = email.utils.parseaddr(address)
    _, at, domain = bare.rpartition("@")
    return domain.lower() if at and domain else default
