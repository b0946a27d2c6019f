"""aiosmtplib and socket errors as the domain's :class:`~notibot.domain.DeliveryFailed`.

The rule (RFC 5321 section 4.2.1): a reply whose first digit is 4 is a transient negative
completion ("try again later": 421 service closing, 450 mailbox busy, 451 local error, 452
storage full), a reply whose first digit is 5 a permanent one (550 mailbox unavailable, 553
bad address, 554 transaction failed). Not reaching the server, losing the connection or a
timeout are transient too. Configuration that a retry cannot fix (the server offers no
STARTTLS or AUTH, the certificate is refused) is permanent.
"""

from __future__ import annotations

import ssl
from typing import Any

import aiosmtplib

from notibot.domain import DeliveryFailed

#: Error codes carried by the DeliveryFailed raised by the SMTP adapter.
REJECTED = "smtp_rejected"  # 5xx reply
DEFERRED = "smtp_deferred"  # 4xx reply
UNAVAILABLE = "smtp_unavailable"  # no connection, connection lost, timeout
AUTH_FAILED = "smtp_auth_failed"  # AUTH refused (535 permanent, 454 transient)
MISCONFIGURED = "smtp_misconfigured"  # no STARTTLS/AUTH offered, certificate refused


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def is_transient_code(code: int) -> bool:
    """True unless ``code`` is a 5xx reply (RFC 5321 section 4.2.1); replies outside 4xx/5xx
    (a server answering out of protocol) count as transient."""
    return not 500 <= code <= 599


def translate_smtp_error(exc: BaseException, *, server: str, stage: str,
                         recipient: str | None = None) -> DeliveryFailed:
    """The DeliveryFailed for an aiosmtplib (or socket) exception.

    Parameters:
        exc: what aiosmtplib raised.
        server: ``host:port``, for the message.
        stage: ``connect``, ``mail``, ``rcpt`` or ``data``: the step that failed.
        recipient: the envelope recipient, when known.

    Returns:
        DeliveryFailed whose ``message`` holds the server's reply code and text, whose
        ``transient`` follows the rule of this module, and whose ``details`` hold
        ``smtp_code`` (or None), ``reply``, ``stage``, ``server`` and ``recipient``.
    """
    details: dict[str, Any] = {"smtp_code": None, "reply": str(exc), "stage": stage,
                               "server": server, "recipient": recipient}
    to = f" to {recipient}" if recipient else ""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        details.update(smtp_code=exc.code, reply=exc.message)
        transient = is_transient_code(exc.code)
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            code = AUTH_FAILED
        else:
            code = DEFERRED if transient else REJECTED
        verb = "deferred" if transient else "refused"
        return DeliveryFailed(f"SMTP server {server} {verb} the message{to} at {stage}: "
                              f"{exc.code} {exc.message}", transient=transient, code=code,
                              details=details)
    if type(exc) in (aiosmtplib.SMTPException, aiosmtplib.SMTPNotSupported) or _caused_by(
            exc, ssl.SSLCertVerificationError):
        # aiosmtplib raises the bare SMTPException when the server offers no STARTTLS or AUTH
        return DeliveryFailed(f"SMTP server {server} cannot be used as configured ({stage}): "
                              f"{exc}", transient=False, code=MISCONFIGURED, details=details)
    return DeliveryFailed(f"SMTP server {server} failed at {stage}{to}: "
                          f"{type(exc).__name__}: {exc}", transient=True, code=UNAVAILABLE,
                          details=details)
