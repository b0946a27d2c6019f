"""The validation rules defined once in notibot.domain.rules."""

from __future__ import annotations

import pytest

from notibot.domain import InvalidInput
from notibot.domain.rules import (
    EMAIL_MAX_LENGTH,
    check_e164,
    normalize_email,
    normalize_language,
    normalize_tags,
    optional_text,
    require_text,
)


def email_of_length(length: int) -> str:
    """A valid-looking address of exactly ``length`` characters (labels stay <= 63)."""
    local = "a" * 64
    domain_len = length - len(local) - 1 - len(".com")
    labels = []
    while domain_len > 0:
        size = min(63, domain_len)
        if domain_len - size == 1:  # leave room for a label after the dot
            size -= 2
        labels.append("b" * size)
        domain_len -= size + 1
    domain = ".".join(labels) + ".com"
    address = f"{local}@{domain}"
    assert len(address) == length
    return address


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("an@example.org", "an@example.org"),
        ("An.Nguyen@Example.ORG", "an.nguyen@example.org"),
        ("  first.last+tag@sub.example.com  ", "first.last+tag@sub.example.com"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("user_name-1@my-company.co.uk", "user_name-1@my-company.co.uk"),
        ("x@xn--bcher-kva.example", "x@xn--bcher-kva.example"),
        ("#!$%&*=?^`{|}~@example.org", "#!$%&*=?^`{|}~@example.org"),
        ("1234567890@123.example", "1234567890@123.example"),
    ],
)
def test_valid_emails_are_trimmed_and_lower_cased(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "plainaddress",
        "@example.org",
        "an@",
        "an@localhost",  # no dot in the domain: not an internet address
        "an example@example.org",
        "an@exa mple.org",
        "an@@example.org",
        "an@example..org",
        "an@.example.org",
        "an@example.org.",
        "an@-example.org",
        "an@example-.org",
        "an@exa_mple.org",
        "ăn@example.org",
        "an@exämple.org",
        "an@example.org>",
        "<an@example.org>",
        "An Nguyen <an@example.org>",
        "an@example.org, bo@example.org",
        "an@" + "b" * 64 + ".org",  # a label longer than 63
    ],
)
def test_invalid_emails_raise_invalid_email(raw: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        normalize_email(raw)

    assert exc.value.code == "invalid_email"
    assert exc.value.details == {"field": "email"}


def test_email_length_limit_is_254_characters() -> None:
    assert EMAIL_MAX_LENGTH == 254
    longest = email_of_length(254)

    assert normalize_email(longest.upper()) == longest
    with pytest.raises(InvalidInput):
        normalize_email(email_of_length(255))


@pytest.mark.parametrize(
    "value", ["+84912345678", "+16502530000", "+12345678", "+123456789012345"]
)
def test_e164_numbers_pass_unchanged(value: str) -> None:
    assert check_e164(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "84912345678",  # no plus
        "+1234567",  # 7 digits
        "+1234567890123456",  # 16 digits
        "+0912345678",  # country codes never start with 0
        "+84 912 345 678",
        "+84-912-345-678",
        "0912345678",
        "+84912345678 ",
        "",
        "+",
    ],
)
def test_non_e164_numbers_raise_invalid_phone(value: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_e164(value)

    assert exc.value.code == "invalid_phone"
    assert exc.value.details == {"field": "phone"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("vi", "vi"),
        ("VI", "vi"),
        (" en ", "en"),
        ("pt_BR", "pt-br"),
        ("pt-BR", "pt-br"),
        ("zh-Hant-TW", "zh-hant-tw"),
        ("fil", "fil"),
        ("es-419", "es-419"),
    ],
)
def test_language_codes_are_normalised(raw: str, expected: str) -> None:
    assert normalize_language(raw) == expected


@pytest.mark.parametrize("raw", ["", "e", "english", "vi-", "1a", "en--us", "en us", "việt"])
def test_invalid_language_codes_raise_invalid_language(raw: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        normalize_language(raw)

    assert exc.value.code == "invalid_language"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("vip, new ,VIP,,", ["vip", "new"]),
        ("single", ["single"]),
        ("", []),
        (" , ,", []),
        ([" VIP ", "vip", "b", "", "  "], ["vip", "b"]),
        (("z", "a", "Z"), ["z", "a"]),
        ([], []),
    ],
)
def test_tags_are_split_trimmed_lower_cased_and_deduplicated_in_order(
    raw: str | list[str] | tuple[str, ...], expected: list[str]
) -> None:
    assert normalize_tags(raw) == expected


def test_require_text_trims_and_checks_emptiness_and_length() -> None:
    assert require_text("  An  ", "full_name") == "An"
    assert require_text("x" * 5, "name", max_length=5) == "xxxxx"

    with pytest.raises(InvalidInput) as empty:
        require_text("   ", "full_name")
    with pytest.raises(InvalidInput) as none:
        require_text(None, "full_name")
    with pytest.raises(InvalidInput) as long:
        require_text("x" * 6, "name", max_length=5)

    assert empty.value.code == none.value.code == "missing_full_name"
    assert long.value.code == "invalid_name"
    assert long.value.details == {"field": "name"}


def test_optional_text_maps_blank_to_none() -> None:
    assert optional_text(None) is None
    assert optional_text("  ") is None
    assert optional_text(" Hue ") == "Hue"
