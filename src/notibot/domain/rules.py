"""Validation rules that the standard library can state, defined once for the whole project.

The HTTP API, the services and the CSV import all use these patterns, so a value accepted in
one place is accepted everywhere.
"""

from __future__ import annotations

import re

from notibot.domain.errors import InvalidInput

#: Maximum length of an email address: 254 characters (RFC 5321 section 4.5.3.1.3, the
#: 256-octet path limit minus the angle brackets).
EMAIL_MAX_LENGTH = 254

#: The WHATWG HTML "valid e-mail address" production
#: (https://html.spec.whatwg.org/multipage/input.html#valid-e-mail-address), tightened to
#: require at least one dot in the domain: notifications go to internet addresses, never to
#: a bare host name. Applied to the lower-cased, trimmed value.
EMAIL_PATTERN = (
    r"[a-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+"
)
EMAIL_RE = re.compile(rf"^{EMAIL_PATTERN}$")

#: E.164 number as stored: "+" then 8 to 15 digits, the first not 0 (ITU-T E.164 section 6.1
#: allows at most 15 digits; 8 is the shortest international number in use).
E164_PATTERN = r"\+[1-9][0-9]{7,14}"
E164_RE = re.compile(rf"^{E164_PATTERN}$")

#: Language code: a lower-cased BCP 47 tag (RFC 5646), e.g. "vi", "en", "pt-br".
LANGUAGE_PATTERN = r"[a-z]{2,3}(?:-[a-z0-9]{2,8})*"
LANGUAGE_RE = re.compile(rf"^{LANGUAGE_PATTERN}$")


def normalize_email(value: str) -> str:
    """Return ``value`` trimmed and lower-cased when it is a valid email address.

    Raises:
        InvalidInput: code ``invalid_email`` when the address does not match
            :data:`EMAIL_PATTERN` or is longer than :data:`EMAIL_MAX_LENGTH`.
    """
    email = value.strip().lower()
    if len(email) > EMAIL_MAX_LENGTH or not EMAIL_RE.match(email):
        raise InvalidInput(
            f"{value!r} is not a valid email address", code="invalid_email",
            details={"field": "email"},
        )
    return email


def check_e164(value: str) -> str:
    """Return ``value`` when it is already in E.164 form (``+84912345678``).

    Turning free-form numbers into E.164 needs the phone-number metadata of the
    ``PhoneNumberParser`` port; this only checks the stored form.

    Raises:
        InvalidInput: code ``invalid_phone``.
    """
    if not E164_RE.match(value):
        raise InvalidInput(
            f"{value!r} is not an E.164 phone number", code="invalid_phone",
            details={"field": "phone"},
        )
    return value


def normalize_language(value: str) -> str:
    """Return the trimmed, lower-cased language tag (``"VI"`` -> ``"vi"``, ``"pt_BR"`` ->
    ``"pt-br"``).

    Raises:
        InvalidInput: code ``invalid_language`` when it is not a BCP 47 style tag.
    """
    lang = value.strip().lower().replace("_", "-")
    if not LANGUAGE_RE.match(lang):
        raise InvalidInput(
            f"{value!r} is not a language code such as 'vi' or 'en'", code="invalid_language",
            details={"field": "language"},
        )
    return lang


def normalize_tags(values: list[str] | tuple[str, ...] | str) -> list[str]:
    """Return tags trimmed, lower-cased, without empties or repeats, in first-seen order.

    A string is split on commas (``"vip, new"`` -> ``["vip", "new"]``).
    """
    items = values.split(",") if isinstance(values, str) else list(values)
    seen: dict[str, None] = {}
    for item in items:
        tag = str(item).strip().lower()
        if tag:
            seen.setdefault(tag, None)
    return list(seen)


def require_text(value: str | None, field: str, *, max_length: int = 10_000) -> str:
    """Return ``value`` trimmed; it must be non-empty and at most ``max_length`` characters.

    Raises:
        InvalidInput: code ``missing_<field>`` when empty, ``invalid_<field>`` when too long.
    """
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{field} must not be empty", code=f"missing_{field}",
                           details={"field": field})
    if len(text) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters",
                           code=f"invalid_{field}", details={"field": field})
    return text


def optional_text(value: str | None) -> str | None:
    """Return ``value`` trimmed, or None when it is None or blank."""
    if value is None:
        return None
    text = value.strip()
    return text or None
