"""Customer.create and Customer.with_changes: normalisation and rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notibot.domain import Customer, InvalidInput
from notibot.domain.customer import EDITABLE_FIELDS

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)


def create(**values: Any) -> Customer:
    values.setdefault("full_name", "Nguyen Van An")
    return Customer.create(id="c1", now=T0, **values)


def rejected(**values: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as exc:
        create(**values)
    return exc.value


def test_create_normalises_every_field() -> None:
    customer = create(full_name="  Nguyen Van An ", email=" An@Example.ORG ",
                      phone="+84912345678", company="  ", city=" Hanoi ", language="VI",
                      tags="VIP, new, vip", attributes={"plan": "gold"})

    assert customer.id == "c1"
    assert customer.full_name == "Nguyen Van An"
    assert customer.email == "an@example.org"
    assert customer.phone == "+84912345678"
    assert customer.company is None
    assert customer.city == "Hanoi"
    assert customer.language == "vi"
    assert customer.tags == ["vip", "new"]
    assert customer.attributes == {"plan": "gold"}
    assert customer.subscribed is True
    assert customer.created_at == customer.updated_at == T0


def test_create_with_phone_only_or_email_only() -> None:
    assert create(phone="+84912345678").email is None
    assert create(email="an@example.org").phone is None


@pytest.mark.parametrize(
    "contact",
    [{}, {"email": None, "phone": None}, {"email": "  ", "phone": ""}],
)
def test_a_customer_needs_an_email_or_a_phone(contact: dict[str, Any]) -> None:
    error = rejected(**contact)

    assert error.code == "no_contact"
    assert error.details == {"fields": ["email", "phone"]}


@pytest.mark.parametrize("name", [None, "", "   "])
def test_full_name_is_required(name: str | None) -> None:
    error = rejected(full_name=name, email="an@example.org")

    assert error.code == "missing_full_name"


def test_full_name_is_at_most_200_characters() -> None:
    assert len(create(full_name="x" * 200, email="a@example.org").full_name) == 200
    assert rejected(full_name="x" * 201, email="a@example.org").code == "invalid_full_name"


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"email": "not-an-email"}, "invalid_email"),
        ({"phone": "0912 345 678"}, "invalid_phone"),  # parsing is the parser port's job
        ({"email": "a@example.org", "language": "english"}, "invalid_language"),
        ({"email": "a@example.org", "attributes": ["plan", "gold"]}, "invalid_attributes"),
        ({"email": "a@example.org", "attributes": "plan=gold"}, "invalid_attributes"),
        ({"email": "a@example.org", "subscribed": "yes"}, "invalid_subscribed"),
        ({"email": "a@example.org", "subscribed": 1}, "invalid_subscribed"),
        ({"email": "a@example.org", "subscribed": None}, "invalid_subscribed"),
        # values of the wrong JSON type are refused, not crashed on
        ({"phone": 84912345678}, "invalid_phone"),
        ({"email": 5}, "invalid_email"),
        ({"email": "a@example.org", "city": 7}, "invalid_city"),
        ({"email": "a@example.org", "tags": 5}, "invalid_tags"),
        ({"email": "a@example.org", "tags": {"vip": True}}, "invalid_tags"),
    ],
)
def test_broken_rules_raise_invalid_input_with_a_code(
    values: dict[str, Any], code: str
) -> None:
    assert rejected(**values).code == code


def test_unknown_fields_are_refused_by_name() -> None:
    error = rejected(email="a@example.org", nickname="An")

    assert error.code == "unknown_field"
    assert error.details == {"fields": ["nickname"]}


def test_unknown_fields_are_listed_sorted() -> None:
    customer = create(email="a@example.org")
    with pytest.raises(InvalidInput) as exc:
        customer.with_changes(now=T1, zeta=1, alpha=2, created_at=T1)

    assert exc.value.code == "unknown_field"
    assert exc.value.details == {"fields": ["alpha", "created_at", "zeta"]}


def test_attributes_are_copied_not_shared() -> None:
    attributes = {"plan": "gold"}
    customer = create(email="a@example.org", attributes=attributes)

    attributes["plan"] = "free"

    assert customer.attributes == {"plan": "gold"}


def test_with_changes_returns_a_new_customer_and_keeps_the_original() -> None:
    original = create(email="a@example.org", city="Hanoi")

    changed = original.with_changes(now=T1, city="Hue", email="B@Example.org")

    assert (changed.city, changed.email, changed.updated_at) == ("Hue", "b@example.org", T1)
    assert changed.created_at == T0
    assert (original.city, original.email, original.updated_at) == ("Hanoi", "a@example.org",
                                                                     T0)


def test_with_changes_none_clears_an_optional_field() -> None:
    customer = create(email="a@example.org", phone="+84912345678", company="Acme",
                      tags=["vip"], attributes={"a": 1}, language="vi")

    cleared = customer.with_changes(now=T1, company=None, phone=None, tags=None,
                                    attributes=None, language=None)

    assert cleared.company is None
    assert cleared.phone is None
    assert cleared.tags == []
    assert cleared.attributes == {}
    assert cleared.language is None


def test_with_changes_cannot_remove_the_last_contact() -> None:
    customer = create(email="a@example.org", phone="+84912345678")
    only_phone = customer.with_changes(now=T1, email=None)

    with pytest.raises(InvalidInput) as exc:
        only_phone.with_changes(now=T1, phone=None)

    assert exc.value.code == "no_contact"


def test_with_changes_checks_every_rule_again() -> None:
    customer = create(email="a@example.org")

    with pytest.raises(InvalidInput) as exc:
        customer.with_changes(now=T1, full_name="  ")

    assert exc.value.code == "missing_full_name"


def test_subscribed_false_is_kept() -> None:
    customer = create(email="a@example.org", subscribed=False)

    assert customer.subscribed is False
    assert customer.with_changes(now=T1, city="Hue").subscribed is False


def test_every_editable_field_is_accepted() -> None:
    values = {name: None for name in EDITABLE_FIELDS}
    values.update(full_name="An", email="a@example.org", tags=[], attributes={},
                  subscribed=True)

    assert create(**values).email == "a@example.org"
