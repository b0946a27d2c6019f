"""Customer use cases: create, read, list, replace, patch, delete."""

from __future__ import annotations

from typing import Any

from notibot.application.ports import (
    Clock,
    CustomerFilter,
    CustomerRepository,
    IdGenerator,
    Page,
    PhoneNumberParser,
)
from notibot.application.services.paging import check_page
from notibot.domain import Customer
from notibot.domain.customer import EDITABLE_FIELDS

#: What PUT resets a field to when the body leaves it out.
_PUT_DEFAULTS: dict[str, Any] = {name: None for name in EDITABLE_FIELDS}
_PUT_DEFAULTS.update(tags=[], attributes={}, subscribed=True)


class CustomerService:
    """Customer use cases.

    Phones arrive as people write them and are turned into E.164 by the
    :class:`~notibot.application.ports.PhoneNumberParser`, with ``default_region`` (ISO 3166-1
    alpha-2) for numbers without a country code.
    """

    def __init__(
        self,
        customers: CustomerRepository,
        phones: PhoneNumberParser,
        ids: IdGenerator,
        clock: Clock,
        default_region: str = "VN",
    ) -> None:
        self._customers = customers
        self._phones = phones
        self._ids = ids
        self._clock = clock
        self._default_region = default_region

    async def _normalize_phone(self, values: dict[str, Any]) -> dict[str, Any]:
        phone = values.get("phone")
        if isinstance(phone, str) and phone.strip():
            values = {**values, "phone": await self._phones.to_e164(phone, self._default_region)}
        return values

    async def create(self, values: dict[str, Any]) -> Customer:
        """Create a customer from ``values`` (fields of
        :data:`notibot.domain.customer.EDITABLE_FIELDS`).

        Raises:
            InvalidInput: a field breaks a rule (see :meth:`Customer.create`).
            Conflict: ``customer_conflict``, the email or phone belongs to another customer.
        """
        values = await self._normalize_phone(values)
        customer = Customer.create(id=await self._ids.new_id(), now=await self._clock.now(),
                                   **values)
        await self._customers.add(customer)
        return customer

    async def get(self, customer_id: str) -> Customer:
        """Return a customer. Raises NotFound (``customer_not_found``)."""
        return await self._customers.get(customer_id)

    async def list(
        self, filter: CustomerFilter, *, limit: int | None = None, offset: int | None = None
    ) -> Page[Customer]:
        """A page of customers matching ``filter``. Raises InvalidInput on bad paging."""
        limit, offset = check_page(limit, offset)
        return await self._customers.list(filter, limit=limit, offset=offset)

    async def replace(self, customer_id: str, values: dict[str, Any]) -> Customer:
        """PUT semantics: every editable field takes the value given, or its default when left
        out, except ``subscribed`` (consent), which keeps its current value when omitted.

        Raises:
            NotFound, InvalidInput, Conflict: as :meth:`create`.
        """
        current = await self._customers.get(customer_id)
        values = await self._normalize_phone({**_PUT_DEFAULTS,
                                              "subscribed": current.subscribed, **values})
        updated = current.with_changes(now=await self._clock.now(), **values)
        await self._customers.update(updated)
        return updated

    async def patch(self, customer_id: str, changes: dict[str, Any]) -> Customer:
        """PATCH semantics: only the fields in ``changes`` change; ``None`` clears one.

        Raises:
            NotFound, InvalidInput, Conflict: as :meth:`create`.
        """
        current = await self._customers.get(customer_id)
        changes = await self._normalize_phone(changes)
        updated = current.with_changes(now=await self._clock.now(), **changes)
        await self._customers.update(updated)
        return updated

    async def delete(self, customer_id: str) -> None:
        """Delete a customer. Raises NotFound."""
        await self._customers.delete(customer_id)
