"""Customer: a person notibot notifies and chats with."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from notibot.domain.errors import InvalidInput
from notibot.domain.rules import (
    check_e164,
    normalize_email,
    normalize_language,
    normalize_tags,
    optional_text,
    require_text,
)

#: Fields an operator may set on a customer (create, PUT, PATCH).
EDITABLE_FIELDS = (
    "full_name", "email", "phone", "company", "position", "address", "city", "country",
    "language", "tags", "attributes", "subscribed",
)


@dataclass(slots=True)
class Customer:
    """A customer record.

    Rules (enforced by :meth:`create` and :meth:`with_changes`, not by the plain constructor,
    which mappers use for stored, already valid data):

    - ``full_name`` is required; at least one of ``email`` and ``phone``.
    - ``email`` is lower-cased and matches :data:`notibot.domain.rules.EMAIL_PATTERN`.
    - ``phone`` is E.164 (``+84912345678``); parsing free-form numbers is the
      ``PhoneNumberParser`` port's job, before the value reaches this class.
    - ``subscribed`` is the customer's consent to notifications; imports never overwrite it.
    - ``tags`` are lower-cased and unique; ``attributes`` is free string data.
    """

    id: str
    full_name: str
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    position: str | None = None
    address: str | None = None
    city: str | None = None
    country: str | None = None
    language: str | None = None
    tags: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    subscribed: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def create(cls, *, id: str, now: datetime, **values: Any) -> Customer:
        """Build a new customer from operator input, normalising and validating every field.

        Parameters:
            id: the new customer's id.
            now: creation time (UTC).
            values: any of :data:`EDITABLE_FIELDS`; ``phone`` must already be E.164.

        Raises:
            InvalidInput: a rule above is broken (codes ``missing_full_name``,
                ``invalid_email``, ``invalid_phone``, ``no_contact``, ...).
        """
        customer = cls(id=id, full_name="", created_at=now, updated_at=now)
        return customer.with_changes(now=now, **values)

    def with_changes(self, *, now: datetime, **changes: Any) -> Customer:
        """Return a copy with ``changes`` applied and every rule checked again.

        A change to ``None`` clears an optional field. Unknown field names are refused.

        Raises:
            InvalidInput: unknown field or a broken rule.
        """
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise InvalidInput(
                f"unknown customer field(s): {', '.join(sorted(unknown))}",
                code="unknown_field", details={"fields": sorted(unknown)},
            )
        data: dict[str, Any] = {}
        for name, value in changes.items():
            data[name] = _normalize_field(name, value)
        updated = replace(self, **data, updated_at=now)
        updated.full_name = require_text(updated.full_name, "full_name", max_length=200)
        if not updated.email and not updated.phone:
            raise InvalidInput("a customer needs an email or a phone number",
                               code="no_contact", details={"fields": ["email", "phone"]})
        return updated

    def merged_with(self, values: dict[str, Any], *, now: datetime) -> Customer:
        """Return a copy updated by an import row: every non-empty value in ``values`` replaces
        the field (``tags`` too), ``attributes`` are merged key by key, and ``subscribed`` is
        never touched (consent is the customer's, not the file's). ``values`` must already be
        normalised (the import reader applies the same rules as :meth:`create`)."""
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if name == "subscribed" or value is None or value == "" or value == []:
                continue
            if name == "attributes":
                if value:
                    changes[name] = {**self.attributes, **value}
            elif name in EDITABLE_FIELDS:
                changes[name] = value
        return replace(self, **changes, updated_at=now)


def _normalize_field(name: str, value: Any) -> Any:
    if name == "full_name":
        return value if value is None else str(value).strip()
    expected = (str, list, tuple) if name == "tags" else str
    if name not in ("attributes", "subscribed") and value is not None \
            and not isinstance(value, expected):
        raise InvalidInput(f"{name} has the wrong type", code=f"invalid_{name}",
                           details={"field": name})
    if name == "email":
        text = optional_text(value)
        return normalize_email(text) if text else None
    if name == "phone":
        text = optional_text(value)
        return check_e164(text) if text else None
    if name == "language":
        text = optional_text(value)
        return normalize_language(text) if text else None
    if name == "tags":
        return normalize_tags(value or [])
    if name == "attributes":
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InvalidInput("attributes must be an object", code="invalid_attributes",
                               details={"field": "attributes"})
        return dict(value)
    if name == "subscribed":
        if not isinstance(value, bool):
            raise InvalidInput("subscribed must be true or false", code="invalid_subscribed",
                               details={"field": "subscribed"})
        return value
    return optional_text(value)
