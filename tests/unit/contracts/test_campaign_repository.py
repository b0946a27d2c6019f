"""Contract of the CampaignRepository port: every adapter must pass these tests.

Add an adapter by appending a factory to ``ADAPTERS``: a zero-argument callable returning an
async context manager that yields an empty repository and cleans up on exit. Times are whole
milliseconds (BSON's precision).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from mongo_support import mongo_adapters

from notibot.adapters.memory import MemoryCampaignRepository
from notibot.adapters.mongo import MongoCampaignRepository
from notibot.application.ports import CampaignRepository
from notibot.domain import Campaign, CampaignContent, Channel, Conflict, NotFound


@asynccontextmanager
async def memory_repository() -> AsyncIterator[CampaignRepository]:
    yield MemoryCampaignRepository()


ADAPTERS = [pytest.param(memory_repository, id="memory"),
            *mongo_adapters(MongoCampaignRepository)]

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=ADAPTERS)
async def repo(request: pytest.FixtureRequest) -> AsyncIterator[CampaignRepository]:
    async with request.param() as repository:
        yield repository


def make(id: str, name: str | None = None, *, minute: int = 0, active: bool = True,
         channel: Channel = Channel.EMAIL) -> Campaign:
    created = T0 + timedelta(minutes=minute)
    return Campaign(
        id=id, name=name or f"Campaign {id}", channel=channel,
        content=CampaignContent(subject="Hello {{ customer.full_name }}",
                                text_body="Hi {{ customer.full_name }}", html_body=None),
        created_at=created, updated_at=created,
    )


def rich(id: str = "c1", name: str = "Tet sale") -> Campaign:
    campaign = make(id, name)
    campaign.description = "Lunar new year"
    campaign.content = CampaignContent(subject="Sale", text_body="Text",
                                       html_body="<p>{{ data.code }}</p>")
    campaign.variants = {"vi": CampaignContent(subject="Khuyến mãi", text_body="Chào"),
                         "pt-br": CampaignContent(subject="Oferta", text_body="Olá",
                                                  html_body="<b>Olá</b>")}
    campaign.default_data = {"code": "TET", "price.vnd": 10, "$weird": {"a.b": [1, 2]},
                             "50%": None}
    campaign.updated_at = T0 + timedelta(seconds=1, milliseconds=250)
    return campaign


# -- add / get / copies ----------------------------------------------------------------------


async def test_add_then_get_returns_an_equal_campaign(repo: CampaignRepository) -> None:
    campaign = rich()
    await repo.add(campaign)

    assert await repo.get("c1") == campaign


async def test_get_unknown_raises_campaign_not_found(repo: CampaignRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.get("ghost")

    assert exc.value.code == "campaign_not_found"


async def test_a_name_taken_in_another_case_raises_conflict(repo: CampaignRepository) -> None:
    await repo.add(make("c1", "Tet Sale"))

    with pytest.raises(Conflict) as exc:
        await repo.add(make("c2", "TET sale"))

    assert exc.value.code == "campaign_name_taken"
    assert exc.value.details["field"] == "name"
    assert exc.value.details["existing_id"] == "c1"
    with pytest.raises(NotFound):
        await repo.get("c2")


async def test_a_taken_id_raises_conflict_and_keeps_the_stored_one(
    repo: CampaignRepository,
) -> None:
    await repo.add(make("c1", "first"))

    with pytest.raises(Conflict):
        await repo.add(make("c1", "second"))

    assert (await repo.get("c1")).name == "first"
    assert (await repo.list(limit=10, offset=0)).total == 1


async def test_returned_campaigns_are_copies(repo: CampaignRepository) -> None:
    await repo.add(rich())

    got = await repo.get("c1")
    got.active = False
    got.variants["en"] = CampaignContent(subject="x", text_body="y")
    got.default_data["$weird"]["a.b"].append(3)
    listed = (await repo.list(limit=10, offset=0)).items[0]
    listed.default_data.clear()

    assert await repo.get("c1") == rich()


async def test_changing_the_added_campaign_changes_nothing_stored(
    repo: CampaignRepository,
) -> None:
    campaign = rich()
    await repo.add(campaign)

    campaign.name = "changed"
    campaign.default_data["code"] = "changed"
    campaign.variants.clear()

    assert await repo.get("c1") == rich()


# -- update / delete -------------------------------------------------------------------------


async def test_update_replaces_the_stored_campaign(repo: CampaignRepository) -> None:
    await repo.add(make("c1", "Tet sale"))
    campaign = await repo.get("c1")
    campaign.name = "TET SALE"  # its own name in another case is not a conflict
    campaign.active = False
    campaign.variants = {"en": CampaignContent(subject="Sale", text_body="Hi")}
    campaign.updated_at = T0 + timedelta(hours=1)

    await repo.update(campaign)

    assert await repo.get("c1") == campaign


async def test_update_unknown_raises_not_found(repo: CampaignRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.update(make("ghost"))

    assert exc.value.code == "campaign_not_found"


async def test_update_to_a_taken_name_raises_conflict(repo: CampaignRepository) -> None:
    await repo.add(make("c1", "alpha"))
    await repo.add(make("c2", "beta"))
    beta = await repo.get("c2")
    beta.name = "Alpha"

    with pytest.raises(Conflict) as exc:
        await repo.update(beta)

    assert exc.value.code == "campaign_name_taken"
    assert exc.value.details["existing_id"] == "c1"
    assert (await repo.get("c2")).name == "beta"


async def test_a_rename_frees_the_old_name(repo: CampaignRepository) -> None:
    await repo.add(make("c1", "alpha"))
    alpha = await repo.get("c1")
    alpha.name = "gamma"
    await repo.update(alpha)

    await repo.add(make("c2", "ALPHA"))

    assert (await repo.get("c2")).name == "ALPHA"
    with pytest.raises(Conflict):
        await repo.add(make("c3", "Gamma"))


async def test_delete_removes_the_campaign_and_frees_its_name(repo: CampaignRepository) -> None:
    await repo.add(make("c1", "alpha"))

    await repo.delete("c1")

    with pytest.raises(NotFound):
        await repo.get("c1")
    await repo.add(make("c2", "alpha"))
    assert (await repo.list(limit=10, offset=0)).total == 1


async def test_delete_unknown_raises_not_found(repo: CampaignRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.delete("ghost")

    assert exc.value.code == "campaign_not_found"


# -- list ------------------------------------------------------------------------------------


async def test_list_oldest_first_with_paging_and_total(repo: CampaignRepository) -> None:
    await repo.add(make("c3", minute=3))
    await repo.add(make("c1", minute=1))
    await repo.add(make("c2b", minute=2))
    await repo.add(make("c2a", minute=2))  # same time: by id

    first = await repo.list(limit=3, offset=0)
    rest = await repo.list(limit=3, offset=3)
    beyond = await repo.list(limit=3, offset=10)

    assert [c.id for c in first.items] == ["c1", "c2a", "c2b"]
    assert [c.id for c in rest.items] == ["c3"]
    assert beyond.items == []
    assert first.total == rest.total == beyond.total == 4
    assert (first.limit, first.offset, rest.offset) == (3, 0, 3)


async def test_list_filters_by_active(repo: CampaignRepository) -> None:
    await repo.add(make("c1", minute=1))
    inactive = make("c2", minute=2)
    inactive.active = False
    await repo.add(inactive)
    await repo.add(make("c3", minute=3))

    active = await repo.list(limit=10, offset=0, active=True)
    inactive_page = await repo.list(limit=10, offset=0, active=False)
    every = await repo.list(limit=10, offset=0)

    assert [c.id for c in active.items] == ["c1", "c3"] and active.total == 2
    assert [c.id for c in inactive_page.items] == ["c2"] and inactive_page.total == 1
    assert every.total == 3


async def test_list_of_an_empty_store(repo: CampaignRepository) -> None:
    page = await repo.list(limit=10, offset=0)

    assert page.items == [] and page.total == 0


# -- races -----------------------------------------------------------------------------------


async def test_concurrent_adds_of_one_name_let_exactly_one_win(repo: CampaignRepository) -> None:
    results = await asyncio.gather(
        *(repo.add(make(f"c{i}", "Same" if i % 2 else "same")) for i in range(12)),
        return_exceptions=True,
    )

    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) and r.code == "campaign_name_taken"
               for r in results if r is not None)
    assert (await repo.list(limit=50, offset=0)).total == 1


def test_threads_adding_one_name_let_exactly_one_win_in_memory() -> None:
    repo = MemoryCampaignRepository()
    threads = 16
    barrier = threading.Barrier(threads)
    results: list[BaseException | None] = [None] * threads

    def add(i: int) -> None:
        barrier.wait()
        try:
            asyncio.run(repo.add(make(f"c{i}", "Shared name")))
        except Exception as exc:
            results[i] = exc

    workers = [threading.Thread(target=add, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)

    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    assert asyncio.run(repo.list(limit=50, offset=0)).total == 1
