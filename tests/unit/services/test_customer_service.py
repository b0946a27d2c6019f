"""CustomerService on the in-memory repository and the phonenumbers parser."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from notibot.adapters.memory import MemoryCustomerRepository
from notibot.adapters.phone import PhonenumbersParser
from notibot.application.ports import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, CustomerFilter
from notibot.application.services import CustomerService
from notibot.domain import Conflict, Customer, InvalidInput, NotFound
from notibot.testing import FakeClock, SequentialIdGenerator


@pytest.fixture
def repo() -> MemoryCustomerRepository:
    return MemoryCustomerRepository()


def build(repo: MemoryCustomerRepository, clock: FakeClock, region: str = "VN"
          ) -> CustomerService:
    return CustomerService(repo, PhonenumbersParser(), SequentialIdGenerator("c"), clock,
                           default_region=region)


@pytest.fixture
def service(repo: MemoryCustomerRepository, clock: FakeClock) -> CustomerService:
    return build(repo, clock)


@pytest.fixture
async def an(service: CustomerService) -> Customer:
    return await service.create({
        "full_name": "Nguyen Van An", "email": "an@example.org", "phone": "0912 345 678",
        "company": "Acme", "city": "Hanoi", "tags": ["vip"], "attributes": {"plan": "gold"},
        "language": "vi", "subscribed": False,
    })


async def invalid(call: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as exc:
        await call
    return exc.value


# -- create ----------------------------------------------------------------------------------


async def test_create_normalises_phone_and_email_and_stores_the_customer(
    service: CustomerService, repo: MemoryCustomerRepository, clock: FakeClock
) -> None:
    customer = await service.create({"full_name": " An ", "email": " AN@Example.ORG ",
                                     "phone": "(+84) 91-234-5678"})

    assert customer.id == "c1"
    assert customer.full_name == "An"
    assert customer.email == "an@example.org"
    assert customer.phone == "+84912345678"
    assert customer.created_at == customer.updated_at == clock.current
    assert await repo.get("c1") == customer


async def test_create_reads_national_numbers_in_the_default_region(
    repo: MemoryCustomerRepository, clock: FakeClock
) -> None:
    service = build(repo, clock, region="US")

    customer = await service.create({"full_name": "Dave", "phone": "(650) 253-0000"})

    assert customer.phone == "+16502530000"


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ({"full_name": "An", "phone": "12345"}, "invalid_phone"),
        ({"full_name": "An", "email": "not-an-email"}, "invalid_email"),
        ({"full_name": "An"}, "no_contact"),
        ({"full_name": "An", "phone": "   "}, "no_contact"),
        ({"email": "an@example.org"}, "missing_full_name"),
        ({"full_name": "An", "email": "an@example.org", "vip": True}, "unknown_field"),
    ],
)
async def test_create_refuses_invalid_input_and_stores_nothing(
    service: CustomerService, repo: MemoryCustomerRepository, values: dict[str, Any],
    code: str,
) -> None:
    assert (await invalid(service.create(values))).code == code
    assert (await repo.list(CustomerFilter(), limit=10, offset=0)).total == 0


async def test_create_with_a_taken_email_raises_conflict(
    service: CustomerService, repo: MemoryCustomerRepository, an: Customer
) -> None:
    with pytest.raises(Conflict) as exc:
        await service.create({"full_name": "Other", "email": "AN@example.org"})

    assert exc.value.code == "customer_conflict"
    assert exc.value.details["existing_id"] == an.id
    assert (await repo.list(CustomerFilter(), limit=10, offset=0)).total == 1


async def test_the_same_phone_written_another_way_is_a_conflict(
    service: CustomerService, an: Customer
) -> None:
    with pytest.raises(Conflict) as exc:
        await service.create({"full_name": "Other", "phone": "+84 912345678"})

    assert exc.value.details["field"] == "phone"
    assert exc.value.details["existing_id"] == an.id


# -- get / delete ----------------------------------------------------------------------------


async def test_get_and_delete(service: CustomerService, an: Customer) -> None:
    assert await service.get(an.id) == an

    await service.delete(an.id)

    for call in (service.get(an.id), service.delete(an.id)):
        with pytest.raises(NotFound) as exc:
            await call
        assert exc.value.code == "customer_not_found"


# -- replace (PUT) ---------------------------------------------------------------------------


async def test_replace_resets_every_field_left_out(
    service: CustomerService, an: Customer, clock: FakeClock
) -> None:
    clock.advance(60)

    replaced = await service.replace(an.id, {"full_name": "An N.", "phone": "0912 345 678"})

    assert replaced.full_name == "An N."
    assert replaced.phone == "+84912345678"
    assert replaced.email is None
    assert replaced.company is None
    assert replaced.city is None
    assert replaced.language is None
    assert replaced.tags == []
    assert replaced.attributes == {}
    assert replaced.created_at == an.created_at
    assert replaced.updated_at == an.created_at + timedelta(seconds=60)
    assert await service.get(an.id) == replaced


async def test_replace_keeps_consent_unless_the_body_sets_it(
    service: CustomerService, an: Customer
) -> None:
    assert an.subscribed is False

    kept = await service.replace(an.id, {"full_name": "An", "email": "an@example.org"})
    changed = await service.replace(an.id, {"full_name": "An", "email": "an@example.org",
                                            "subscribed": True})

    assert kept.subscribed is False
    assert changed.subscribed is True


async def test_replace_without_any_contact_is_refused_and_changes_nothing(
    service: CustomerService, an: Customer
) -> None:
    assert (await invalid(service.replace(an.id, {"full_name": "An"}))).code == "no_contact"
    assert await service.get(an.id) == an


async def test_replace_unknown_customer_raises_not_found(service: CustomerService) -> None:
    with pytest.raises(NotFound):
        await service.replace("ghost", {"full_name": "An", "email": "an@example.org"})


# -- patch -----------------------------------------------------------------------------------


async def test_patch_changes_only_the_given_fields(
    service: CustomerService, an: Customer, clock: FakeClock
) -> None:
    clock.advance(30)

    patched = await service.patch(an.id, {"city": "Hue", "phone": "0987 654 321"})

    assert patched.city == "Hue"
    assert patched.phone == "+84987654321"
    assert (patched.email, patched.company, patched.tags, patched.attributes,
            patched.subscribed) == ("an@example.org", "Acme", ["vip"], {"plan": "gold"}, False)
    assert patched.updated_at == an.updated_at + timedelta(seconds=30)
    assert await service.get(an.id) == patched


async def test_patch_none_clears_a_field(service: CustomerService, an: Customer) -> None:
    patched = await service.patch(an.id, {"company": None, "phone": None})

    assert patched.company is None
    assert patched.phone is None
    assert patched.email == "an@example.org"


async def test_patch_cannot_remove_the_last_contact(service: CustomerService,
                                                    an: Customer) -> None:
    error = await invalid(service.patch(an.id, {"email": None, "phone": None}))

    assert error.code == "no_contact"
    assert await service.get(an.id) == an


async def test_patch_with_an_invalid_phone_changes_nothing(service: CustomerService,
                                                          an: Customer) -> None:
    assert (await invalid(service.patch(an.id, {"phone": "12"}))).code == "invalid_phone"
    assert await service.get(an.id) == an


async def test_patch_that_takes_another_customers_email_is_a_conflict(
    service: CustomerService, an: Customer
) -> None:
    binh = await service.create({"full_name": "Binh", "email": "binh@example.org"})

    with pytest.raises(Conflict) as exc:
        await service.patch(binh.id, {"email": "An@Example.org"})

    assert exc.value.details["existing_id"] == an.id
    assert (await service.get(binh.id)).email == "binh@example.org"


async def test_patch_unknown_customer_raises_not_found(service: CustomerService) -> None:
    with pytest.raises(NotFound):
        await service.patch("ghost", {"city": "Hue"})


# -- list ------------------------------------------------------------------------------------


async def test_list_applies_filters_and_paging(
    service: CustomerService, clock: FakeClock
) -> None:
    for n in range(5):
        clock.advance(1)
        await service.create({"full_name": f"Customer {n}", "email": f"c{n}@example.org",
                              "tags": ["even" if n % 2 == 0 else "odd"]})

    page = await service.list(CustomerFilter(tag="even"), limit=2, offset=1)
    everyone = await service.list(CustomerFilter())

    assert [c.full_name for c in page.items] == ["Customer 2", "Customer 4"]
    assert page.total == 3
    assert (everyone.limit, everyone.offset, everyone.total) == (DEFAULT_PAGE_SIZE, 0, 5)


@pytest.mark.parametrize(
    ("limit", "offset", "field"),
    [(0, 0, "limit"), (MAX_PAGE_SIZE + 1, 0, "limit"), (-5, 0, "limit"), (10, -1, "offset")],
)
async def test_list_refuses_bad_paging(
    service: CustomerService, limit: int, offset: int, field: str
) -> None:
    error = await invalid(service.list(CustomerFilter(), limit=limit, offset=offset))

    assert error.code == "invalid_paging"
    assert error.details == {"field": field}


async def test_list_accepts_the_largest_page(service: CustomerService) -> None:
    page = await service.list(CustomerFilter(), limit=MAX_PAGE_SIZE, offset=0)

    assert page.limit == MAX_PAGE_SIZE
