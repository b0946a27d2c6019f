"""Contract of the CustomerRepository port: every adapter must pass these tests.

Add an adapter by appending a factory to ``ADAPTERS``: a zero-argument callable returning an
async context manager that yields an empty repository and cleans up on exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mongo_support import mongo_adapters

from notibot.adapters.memory import MemoryCustomerRepository
from notibot.adapters.mongo import MongoCustomerRepository
from notibot.application.ports import CustomerFilter, CustomerRepository
from notibot.domain import Conflict, Customer, NotFound


@asynccontextmanager
async def memory_repository() -> AsyncIterator[CustomerRepository]:
    yield MemoryCustomerRepository()


ADAPTERS = [pytest.param(memory_repository, id="memory"), *mongo_adapters(MongoCustomerRepository)]

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=ADAPTERS)
async def repo(request: pytest.FixtureRequest) -> AsyncIterator[CustomerRepository]:
    async with request.param() as repository:
        yield repository


def make(id: str, *, minute: int = 0, **values: Any) -> Customer:
    """A valid customer created ``minute`` minutes after T0 (email ``<id>@example.org``
    unless an email or phone is given)."""
    values.setdefault("full_name", f"Customer {id}")
    if "email" not in values and "phone" not in values:
        values["email"] = f"{id}@example.org"
    return Customer.create(id=id, now=T0 + timedelta(minutes=minute), **values)


async def ids_of(repo: CustomerRepository, filter: CustomerFilter = CustomerFilter(),
                 limit: int = 200, offset: int = 0) -> list[str]:
    page = await repo.list(filter, limit=limit, offset=offset)
    return [c.id for c in page.items]


# -- add / get / copies ----------------------------------------------------------------------


async def test_add_then_get_returns_an_equal_customer(repo: CustomerRepository) -> None:
    stored = make("c1", phone="+84912345678", tags=["vip"], attributes={"plan": "gold"},
                  city="Hanoi", language="vi", subscribed=False)
    await repo.add(stored)

    assert await repo.get("c1") == stored


async def test_get_unknown_raises_customer_not_found(repo: CustomerRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.get("nope")

    assert exc.value.code == "customer_not_found"
    assert exc.value.details["key"] == "nope"


async def test_changing_a_returned_customer_changes_nothing_stored(
    repo: CustomerRepository,
) -> None:
    await repo.add(make("c1", tags=["vip"], attributes={"plan": "gold"}))

    got = await repo.get("c1")
    got.full_name = "Changed"
    got.tags.append("new")
    got.attributes["plan"] = "free"

    again = await repo.get("c1")
    assert again.full_name == "Customer c1"
    assert again.tags == ["vip"]
    assert again.attributes == {"plan": "gold"}


async def test_changing_the_added_object_afterwards_changes_nothing_stored(
    repo: CustomerRepository,
) -> None:
    customer = make("c1", tags=["vip"])
    await repo.add(customer)

    customer.full_name = "Changed"
    customer.tags.append("new")

    assert (await repo.get("c1")).tags == ["vip"]
    assert (await repo.get("c1")).full_name == "Customer c1"


async def test_listed_customers_are_copies(repo: CustomerRepository) -> None:
    await repo.add(make("c1", tags=["vip"]))

    page = await repo.list(CustomerFilter(), limit=10, offset=0)
    page.items[0].tags.clear()

    assert (await repo.get("c1")).tags == ["vip"]


# -- uniqueness ------------------------------------------------------------------------------


async def test_add_with_a_taken_email_raises_conflict_naming_field_and_owner(
    repo: CustomerRepository,
) -> None:
    await repo.add(make("c1", email="an@example.org"))

    with pytest.raises(Conflict) as exc:
        await repo.add(make("c2", email="an@example.org"))

    assert exc.value.code == "customer_conflict"
    assert exc.value.details["field"] == "email"
    assert exc.value.details["existing_id"] == "c1"
    with pytest.raises(NotFound):
        await repo.get("c2")


async def test_add_with_a_taken_phone_raises_conflict_naming_field_and_owner(
    repo: CustomerRepository,
) -> None:
    await repo.add(make("c1", phone="+84912345678"))

    with pytest.raises(Conflict) as exc:
        await repo.add(make("c2", email="other@example.org", phone="+84912345678"))

    assert exc.value.code == "customer_conflict"
    assert exc.value.details["field"] == "phone"
    assert exc.value.details["existing_id"] == "c1"
    assert await repo.find_by_email("other@example.org") is None


async def test_add_with_a_taken_id_raises_conflict(repo: CustomerRepository) -> None:
    await repo.add(make("c1", email="a@example.org"))

    with pytest.raises(Conflict) as exc:
        await repo.add(make("c1", email="b@example.org"))

    assert exc.value.code == "customer_conflict"
    assert (await repo.get("c1")).email == "a@example.org"


async def test_customers_without_email_or_without_phone_do_not_conflict(
    repo: CustomerRepository,
) -> None:
    await repo.add(make("c1", phone="+84912345671"))
    await repo.add(make("c2", phone="+84912345672"))
    await repo.add(make("c3", email="c3@example.org"))
    await repo.add(make("c4", email="c4@example.org"))

    assert (await repo.list(CustomerFilter(), limit=10, offset=0)).total == 4


async def test_update_that_steals_another_customers_email_raises_and_writes_nothing(
    repo: CustomerRepository,
) -> None:
    await repo.add(make("c1", email="a@example.org"))
    await repo.add(make("c2", email="b@example.org"))
    thief = (await repo.get("c2")).with_changes(now=T0, email="a@example.org", city="Hue")

    with pytest.raises(Conflict) as exc:
        await repo.update(thief)

    assert exc.value.code == "customer_conflict"
    assert exc.value.details["field"] == "email"
    assert exc.value.details["existing_id"] == "c1"
    stored = await repo.get("c2")
    assert stored.email == "b@example.org"
    assert stored.city is None
    assert (await repo.find_by_email("a@example.org")).id == "c1"


async def test_update_that_steals_another_customers_phone_raises(
    repo: CustomerRepository,
) -> None:
    await repo.add(make("c1", phone="+84912345671"))
    await repo.add(make("c2", phone="+84912345672"))

    with pytest.raises(Conflict) as exc:
        await repo.update((await repo.get("c2")).with_changes(now=T0, phone="+84912345671"))

    assert exc.value.details["field"] == "phone"
    assert (await repo.get("c2")).phone == "+84912345672"


async def test_update_keeping_its_own_email_and_phone_is_no_conflict(
    repo: CustomerRepository,
) -> None:
    await repo.add(make("c1", email="a@example.org", phone="+84912345671"))

    await repo.update((await repo.get("c1")).with_changes(now=T0, city="Hue"))

    assert (await repo.get("c1")).city == "Hue"


async def test_update_that_changes_email_frees_the_old_one(repo: CustomerRepository) -> None:
    await repo.add(make("c1", email="old@example.org", phone="+84912345671"))

    await repo.update((await repo.get("c1")).with_changes(
        now=T0, email="new@example.org", phone="+84912345672"))

    assert await repo.find_by_email("old@example.org") is None
    assert await repo.find_by_phone("+84912345671") is None
    assert (await repo.find_by_email("new@example.org")).id == "c1"
    assert (await repo.find_by_phone("+84912345672")).id == "c1"
    await repo.add(make("c2", email="old@example.org", phone="+84912345671"))
    assert (await repo.find_by_email("old@example.org")).id == "c2"


async def test_concurrent_adds_with_one_email_let_exactly_one_win(
    repo: CustomerRepository,
) -> None:
    results = await asyncio.gather(
        *(repo.add(make(f"c{i}", email="shared@example.org")) for i in range(20)),
        return_exceptions=True,
    )

    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    assert (await repo.list(CustomerFilter(), limit=50, offset=0)).total == 1


# -- update / delete -------------------------------------------------------------------------


async def test_update_replaces_the_stored_customer(repo: CustomerRepository) -> None:
    await repo.add(make("c1", tags=["vip"]))
    later = T0 + timedelta(hours=1)

    changed = (await repo.get("c1")).with_changes(now=later, full_name="An Nguyen", tags=[],
                                                  subscribed=False)
    await repo.update(changed)

    stored = await repo.get("c1")
    assert stored == changed
    assert stored.updated_at == later
    assert stored.created_at == T0


async def test_update_unknown_raises_not_found(repo: CustomerRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.update(make("ghost"))

    assert exc.value.code == "customer_not_found"
    with pytest.raises(NotFound):
        await repo.get("ghost")


async def test_delete_removes_the_customer_and_frees_email_and_phone(
    repo: CustomerRepository,
) -> None:
    await repo.add(make("c1", email="a@example.org", phone="+84912345671"))

    await repo.delete("c1")

    with pytest.raises(NotFound):
        await repo.get("c1")
    assert await repo.find_by_email("a@example.org") is None
    assert await repo.find_by_phone("+84912345671") is None
    await repo.add(make("c2", email="a@example.org", phone="+84912345671"))


async def test_delete_unknown_raises_not_found(repo: CustomerRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.delete("ghost")

    assert exc.value.code == "customer_not_found"


# -- finders ---------------------------------------------------------------------------------


async def test_find_by_email_ignores_case_of_the_argument(repo: CustomerRepository) -> None:
    await repo.add(make("c1", email="An@Example.org"))

    found = await repo.find_by_email("AN@EXAMPLE.ORG")

    assert found is not None and found.id == "c1"
    assert await repo.find_by_email("other@example.org") is None


async def test_find_by_phone(repo: CustomerRepository) -> None:
    await repo.add(make("c1", phone="+84912345678"))

    found = await repo.find_by_phone("+84912345678")

    assert found is not None and found.id == "c1"
    assert await repo.find_by_phone("+84912345679") is None


async def test_found_customers_are_copies(repo: CustomerRepository) -> None:
    await repo.add(make("c1", email="a@example.org"))

    found = await repo.find_by_email("a@example.org")
    assert found is not None
    found.full_name = "Changed"

    assert (await repo.get("c1")).full_name == "Customer c1"


# -- list ------------------------------------------------------------------------------------


async def test_list_is_oldest_first_then_by_id(repo: CustomerRepository) -> None:
    await repo.add(make("b", minute=5))
    await repo.add(make("z", minute=1))
    await repo.add(make("a", minute=5))
    await repo.add(make("m", minute=3))

    assert await ids_of(repo) == ["z", "m", "a", "b"]


async def test_list_puts_customers_without_creation_time_first(
    repo: CustomerRepository,
) -> None:
    await repo.add(make("dated", minute=1))
    await repo.add(Customer(id="undated", full_name="Old import", email="old@example.org"))

    assert await ids_of(repo) == ["undated", "dated"]


async def test_list_pages_with_total(repo: CustomerRepository) -> None:
    for i in range(5):
        await repo.add(make(f"c{i}", minute=i))

    first = await repo.list(CustomerFilter(), limit=2, offset=0)
    last = await repo.list(CustomerFilter(), limit=2, offset=4)
    beyond = await repo.list(CustomerFilter(), limit=2, offset=10)

    assert [c.id for c in first.items] == ["c0", "c1"]
    assert (first.total, first.limit, first.offset) == (5, 2, 0)
    assert [c.id for c in last.items] == ["c4"]
    assert last.total == 5
    assert beyond.items == []
    assert beyond.total == 5


async def test_list_of_an_empty_store(repo: CustomerRepository) -> None:
    page = await repo.list(CustomerFilter(), limit=10, offset=0)

    assert page.items == []
    assert page.total == 0


@pytest.fixture
async def audience(repo: CustomerRepository) -> CustomerRepository:
    """Four customers differing in every filtered field."""
    await repo.add(make("an", minute=1, full_name="Nguyen Van An", email="an@example.org",
                        phone="+84912345671", tags=["vip", "hanoi"], city="Hanoi",
                        country="Vietnam", language="vi"))
    await repo.add(make("binh", minute=2, full_name="Tran Binh", email="binh@corp.example",
                        phone="+84987654321", tags=["new"], city="Ho Chi Minh City",
                        country="Vietnam", language="vi", subscribed=False))
    await repo.add(make("carol", minute=3, full_name="Carol Smith", email="carol@example.com",
                        tags=["VIP"], city="Boston", country="USA", language="en"))
    await repo.add(make("dave", minute=4, full_name="Dave", phone="+16502530000",
                        language="en-us"))
    return repo


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        pytest.param(CustomerFilter(), ["an", "binh", "carol", "dave"], id="none"),
        pytest.param(CustomerFilter(tag="vip"), ["an", "carol"], id="tag"),
        pytest.param(CustomerFilter(tag="VIP"), ["an", "carol"], id="tag-case"),
        pytest.param(CustomerFilter(tag="nobody"), [], id="tag-unknown"),
        pytest.param(CustomerFilter(city="hanoi"), ["an"], id="city-case"),
        pytest.param(CustomerFilter(city="Han"), [], id="city-not-substring"),
        pytest.param(CustomerFilter(country="VIETNAM"), ["an", "binh"], id="country"),
        pytest.param(CustomerFilter(language="en"), ["carol"], id="language-exact"),
        pytest.param(CustomerFilter(language="EN-US"), ["dave"], id="language-case"),
        pytest.param(CustomerFilter(subscribed=False), ["binh"], id="unsubscribed"),
        pytest.param(CustomerFilter(subscribed=True), ["an", "carol", "dave"],
                     id="subscribed"),
        pytest.param(CustomerFilter(q="NGUYEN"), ["an"], id="q-name"),
        pytest.param(CustomerFilter(q="smi"), ["carol"], id="q-name-substring"),
        pytest.param(CustomerFilter(q="CORP.EXAMPLE"), ["binh"], id="q-email"),
        pytest.param(CustomerFilter(q="example"), ["an", "binh", "carol"], id="q-email-many"),
        pytest.param(CustomerFilter(q="+1650"), ["dave"], id="q-phone"),
        pytest.param(CustomerFilter(q="0000"), ["dave"], id="q-phone-digits"),
        pytest.param(CustomerFilter(q="zzz"), [], id="q-nothing"),
        pytest.param(CustomerFilter(country="vietnam", subscribed=True), ["an"], id="and"),
        pytest.param(CustomerFilter(tag="vip", language="en", q="carol"), ["carol"],
                     id="and-three"),
    ],
)
async def test_list_filters(
    audience: CustomerRepository, filter: CustomerFilter, expected: list[str]
) -> None:
    page = await audience.list(filter, limit=50, offset=0)

    assert [c.id for c in page.items] == expected
    assert page.total == len(expected)


async def test_filtered_total_counts_every_match_not_the_page(
    audience: CustomerRepository,
) -> None:
    page = await audience.list(CustomerFilter(q="example"), limit=1, offset=1)

    assert [c.id for c in page.items] == ["binh"]
    assert page.total == 3


# -- bulk reads and writes (imports) ---------------------------------------------------------


async def test_find_by_emails_and_phones_return_the_owners_keyed_by_value(
    repo: CustomerRepository,
) -> None:
    await repo.add(make("c1", email="a@example.org", phone="+84912345671"))
    await repo.add(make("c2", email="b@example.org"))

    by_email = await repo.find_by_emails(["a@example.org", "b@example.org", "x@example.org"])
    by_phone = await repo.find_by_phones(["+84912345671", "+84912345679"])

    assert {k: c.id for k, c in by_email.items()} == {"a@example.org": "c1",
                                                      "b@example.org": "c2"}
    assert {k: c.id for k, c in by_phone.items()} == {"+84912345671": "c1"}
    assert await repo.find_by_emails([]) == {}


async def test_bulk_found_customers_are_copies(repo: CustomerRepository) -> None:
    await repo.add(make("c1", email="a@example.org", tags=["vip"]))

    (await repo.find_by_emails(["a@example.org"]))["a@example.org"].tags.append("x")

    assert (await repo.get("c1")).tags == ["vip"]


async def test_bulk_upsert_writes_the_valid_rows_and_reports_the_others(
    repo: CustomerRepository,
) -> None:
    await repo.add(make("old1", email="old1@example.org", phone="+84912345671"))
    await repo.add(make("old2", email="old2@example.org"))
    await repo.add(make("old3", email="old3@example.org"))
    await repo.add(make("gone", email="gone@example.org"))
    vanished = (await repo.get("gone")).with_changes(now=T0, city="Hue")
    await repo.delete("gone")

    result = await repo.bulk_upsert(
        creates=[
            make("new1", email="new1@example.org"),
            make("new2", email="old2@example.org"),  # email taken in the store
            make("new3", email="new3@example.org", phone="+84912345671"),  # phone taken
            make("dup1", email="dup@example.org"),  # the same email twice in one batch:
            make("dup2", email="dup@example.org"),  # one of them is written (unordered)
            make("old3", email="other@example.org"),  # id taken
        ],
        updates=[
            (await repo.get("old1")).with_changes(now=T0, email="renamed@example.org"),
            (await repo.get("old2")).with_changes(now=T0, email="old3@example.org"),
            vanished,
        ],
    )

    dup_winner = (await repo.find_by_email("dup@example.org")).id
    dup_loser = ({"dup1", "dup2"} - {dup_winner}).pop()
    assert (result.created, result.updated) == (2, 1)
    assert set(result.rejected) == {"new2", "new3", dup_loser, "old3", "old2", "gone"}
    assert all(isinstance(reason, str) and reason for reason in result.rejected.values())
    assert await repo.count() == 5
    assert (await repo.get("new1")).email == "new1@example.org"
    assert (await repo.get("old1")).email == "renamed@example.org"
    assert (await repo.get("old2")).email == "old2@example.org"
    assert (await repo.get("old3")).email == "old3@example.org"
    assert await repo.find_by_email("old1@example.org") is None
    assert await repo.find_by_email("other@example.org") is None
    assert (await repo.find_by_email("renamed@example.org")).id == "old1"
    assert (await repo.find_by_phone("+84912345671")).id == "old1"
    for missing in ("gone", "new2", "new3", dup_loser):
        with pytest.raises(NotFound):
            await repo.get(missing)


async def test_bulk_upsert_of_nothing_writes_nothing(repo: CustomerRepository) -> None:
    result = await repo.bulk_upsert([], [])

    assert (result.created, result.updated, result.rejected) == (0, 0, {})
    assert await repo.count() == 0


async def test_count(repo: CustomerRepository) -> None:
    assert await repo.count() == 0
    await repo.add(make("c1"))
    await repo.add(make("c2"))
    await repo.delete("c1")

    assert await repo.count() == 1
