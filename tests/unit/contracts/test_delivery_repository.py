"""Contract of the DeliveryRepository port: every adapter must pass these tests.

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

from notibot.adapters.memory import MemoryDeliveryRepository
from notibot.adapters.mongo import MongoDeliveryRepository
from notibot.application.ports import DeliveryCounts, DeliveryFilter, DeliveryRepository
from notibot.domain import Channel, Conflict, Delivery, DeliveryStatus, NotFound


@asynccontextmanager
async def memory_repository() -> AsyncIterator[DeliveryRepository]:
    yield MemoryDeliveryRepository()


ADAPTERS = [pytest.param(memory_repository, id="memory"),
            *mongo_adapters(MongoDeliveryRepository)]

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
ZERO = {"queued": 0, "sent": 0, "failed": 0, "skipped": 0}


@pytest.fixture(params=ADAPTERS)
async def repo(request: pytest.FixtureRequest) -> AsyncIterator[DeliveryRepository]:
    async with request.param() as repository:
        yield repository


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def make(id: str, *, job: str = "j1", customer: str | None = None, campaign: str = "camp1",
         minute: float = 0, status: DeliveryStatus = DeliveryStatus.QUEUED) -> Delivery:
    """A delivery created ``minute`` minutes after T0, brought to ``status`` by the domain."""
    delivery = Delivery(id=id, job_id=job, campaign_id=campaign,
                        customer_id=customer or f"cust-{id}", channel=Channel.EMAIL,
                        created_at=at(minute), language="vi")
    later = at(minute + 1)
    if status is DeliveryStatus.SENT:
        delivery.mark_sent(later, f"<{id}@notibot>")
    elif status is DeliveryStatus.FAILED:
        delivery.mark_failed(later, "550 mailbox unavailable")
    elif status is DeliveryStatus.SKIPPED:
        delivery.mark_skipped(later, "unsubscribed")
    return delivery


def counts(**by_status: int) -> DeliveryCounts:
    return DeliveryCounts(by_status={**ZERO, **by_status}, total=sum(by_status.values()))


# -- add_if_absent / get ---------------------------------------------------------------------


async def test_add_if_absent_stores_a_new_delivery(repo: DeliveryRepository) -> None:
    delivery = make("d1", status=DeliveryStatus.FAILED)

    stored, created = await repo.add_if_absent(delivery)

    assert created is True
    assert stored == delivery
    assert await repo.get("d1") == delivery


async def test_add_if_absent_returns_the_existing_delivery_of_a_job_and_customer(
    repo: DeliveryRepository,
) -> None:
    first = make("d1", job="j1", customer="alice", status=DeliveryStatus.SENT)
    await repo.add_if_absent(first)

    stored, created = await repo.add_if_absent(make("d2", job="j1", customer="alice"))

    assert created is False
    assert stored == first
    with pytest.raises(NotFound):
        await repo.get("d2")
    assert (await repo.list(DeliveryFilter(), limit=10, offset=0)).total == 1


async def test_the_same_customer_in_another_job_gets_another_delivery(
    repo: DeliveryRepository,
) -> None:
    _, first = await repo.add_if_absent(make("d1", job="j1", customer="alice"))
    _, second = await repo.add_if_absent(make("d2", job="j2", customer="alice"))
    _, third = await repo.add_if_absent(make("d3", job="j1", customer="bob"))

    assert (first, second, third) == (True, True, True)
    assert (await repo.list(DeliveryFilter(), limit=10, offset=0)).total == 3


async def test_a_taken_id_for_another_job_and_customer_raises_conflict(
    repo: DeliveryRepository,
) -> None:
    await repo.add_if_absent(make("d1", job="j1", customer="alice"))

    with pytest.raises(Conflict) as exc:
        await repo.add_if_absent(make("d1", job="j2", customer="bob"))

    assert exc.value.code == "delivery_conflict"
    assert (await repo.get("d1")).job_id == "j1"


async def test_get_unknown_raises_delivery_not_found(repo: DeliveryRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.get("ghost")

    assert exc.value.code == "delivery_not_found"


async def test_returned_deliveries_are_copies(repo: DeliveryRepository) -> None:
    delivery = make("d1")
    stored, _ = await repo.add_if_absent(delivery)
    stored.mark_failed(at(5), "boom")
    delivery.attempts = 99  # the caller's own object is not the stored one either
    got = await repo.get("d1")
    got.status = DeliveryStatus.SENT
    again, _ = await repo.add_if_absent(make("d9", job="j1", customer="cust-d1"))
    again.attempts = 7
    listed = (await repo.list(DeliveryFilter(), limit=10, offset=0)).items[0]
    listed.last_error = "tampered"

    assert await repo.get("d1") == make("d1")


# -- add_many_if_absent ----------------------------------------------------------------------


async def test_add_many_if_absent_stores_the_new_and_returns_the_existing_in_order(
    repo: DeliveryRepository,
) -> None:
    sent = make("d1", job="j1", customer="alice", status=DeliveryStatus.SENT)
    await repo.add_if_absent(sent)
    failed = make("d2", job="j2", customer="bob", status=DeliveryStatus.FAILED)
    await repo.add_if_absent(failed)
    batch = [make("n1", job="j1", customer="carol"), make("n2", job="j1", customer="alice"),
             make("n3", job="j2", customer="bob"), make("n4", job="j2", customer="alice")]

    results = await repo.add_many_if_absent(batch)

    assert results == [(batch[0], True), (sent, False), (failed, False), (batch[3], True)]
    assert await repo.get("n1") == batch[0] and await repo.get("n4") == batch[3]
    for absent in ("n2", "n3"):
        with pytest.raises(NotFound):
            await repo.get(absent)
    assert (await repo.list(DeliveryFilter(), limit=10, offset=0)).total == 4
    again = await repo.add_many_if_absent([make("z1", job="j1", customer="carol")])
    assert again == [(batch[0], False)]


async def test_add_many_if_absent_of_nothing_returns_nothing(repo: DeliveryRepository) -> None:
    assert await repo.add_many_if_absent([]) == []
    assert (await repo.counts()).total == 0


async def test_add_many_if_absent_stores_one_of_a_job_and_customer_given_twice(
    repo: DeliveryRepository,
) -> None:
    first, second = make("d1", customer="alice"), make("d2", customer="alice")

    results = await repo.add_many_if_absent([first, second])

    assert results == [(first, True), (first, False)]
    assert [d.id for d in (await repo.list(DeliveryFilter(), limit=10, offset=0)).items] \
        == ["d1"]


async def test_add_many_if_absent_with_a_taken_id_raises_conflict_and_stores_the_others(
    repo: DeliveryRepository,
) -> None:
    await repo.add_if_absent(make("d1", job="j1", customer="alice"))

    with pytest.raises(Conflict) as exc:
        await repo.add_many_if_absent([make("d2", job="j2", customer="carol"),
                                       make("d1", job="j2", customer="bob"),
                                       make("d3", job="j2", customer="dave")])

    assert exc.value.code == "delivery_conflict"
    assert (await repo.get("d1")).customer_id == "alice"
    assert {d.id for d in (await repo.list(DeliveryFilter(job_id="j2"), limit=10,
                                           offset=0)).items} == {"d2", "d3"}


async def test_add_many_if_absent_returns_and_keeps_copies(repo: DeliveryRepository) -> None:
    delivery = make("d1")
    [(stored, _)] = await repo.add_many_if_absent([delivery])
    stored.mark_failed(at(5), "boom")
    delivery.attempts = 99
    [(again, created)] = await repo.add_many_if_absent([make("d9", customer="cust-d1")])
    again.attempts = 7

    assert created is False
    assert await repo.get("d1") == make("d1")


async def test_concurrent_add_many_if_absent_of_overlapping_batches_create_one_each(
    repo: DeliveryRepository,
) -> None:
    customers = [f"c{i}" for i in range(12)]
    batches = [[make(f"d{b}-{c}", customer=c) for c in customers[b:b + 6]] for b in range(0, 7)]

    results = await asyncio.gather(*(repo.add_many_if_absent(batch) for batch in batches))

    winners: dict[str, Delivery] = {}
    for batch_results in results:
        for delivery, created in batch_results:
            if created:
                assert delivery.customer_id not in winners
                winners[delivery.customer_id] = delivery
    assert set(winners) == set(customers)
    for batch_results in results:
        assert all(d == winners[d.customer_id] for d, _ in batch_results)
    assert (await repo.counts()).total == len(customers)


# -- update ----------------------------------------------------------------------------------


async def test_update_replaces_the_stored_delivery(repo: DeliveryRepository) -> None:
    await repo.add_if_absent(make("d1"))
    delivery = await repo.get("d1")
    delivery.mark_failed(at(1), "451 try later")
    delivery.mark_sent(at(2), "<m1@example.org>")

    await repo.update(delivery)

    stored = await repo.get("d1")
    assert stored == delivery
    assert (stored.status, stored.attempts, stored.sent_at) == (DeliveryStatus.SENT, 2, at(2))
    assert (await repo.counts()).by_status["sent"] == 1


async def test_update_unknown_raises_not_found(repo: DeliveryRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.update(make("ghost"))

    assert exc.value.code == "delivery_not_found"


async def test_update_keeps_the_delivery_found_by_its_job_and_customer(
    repo: DeliveryRepository,
) -> None:
    await repo.add_if_absent(make("d1", job="j1", customer="alice"))
    delivery = await repo.get("d1")
    delivery.mark_skipped(at(1), "no email")
    await repo.update(delivery)

    stored, created = await repo.add_if_absent(make("d2", job="j1", customer="alice"))

    assert created is False
    assert stored.status is DeliveryStatus.SKIPPED and stored.skip_reason == "no email"


# -- list ------------------------------------------------------------------------------------


async def _seed(repo: DeliveryRepository) -> None:
    for delivery in (
        make("d1", job="j1", customer="alice", campaign="camp1", minute=1,
             status=DeliveryStatus.SENT),
        make("d2", job="j1", customer="bob", campaign="camp1", minute=2,
             status=DeliveryStatus.FAILED),
        make("d3", job="j2", customer="alice", campaign="camp2", minute=3,
             status=DeliveryStatus.SKIPPED),
        make("d4", job="j2", customer="carol", campaign="camp2", minute=4),
        make("d5", job="j3", customer="alice", campaign="camp1", minute=5,
             status=DeliveryStatus.SENT),
    ):
        await repo.add_if_absent(delivery)


@pytest.mark.parametrize(("filter", "expected"), [
    (DeliveryFilter(), ["d5", "d4", "d3", "d2", "d1"]),
    (DeliveryFilter(customer_id="alice"), ["d5", "d3", "d1"]),
    (DeliveryFilter(campaign_id="camp2"), ["d4", "d3"]),
    (DeliveryFilter(job_id="j1"), ["d2", "d1"]),
    (DeliveryFilter(status=DeliveryStatus.SENT), ["d5", "d1"]),
    (DeliveryFilter(customer_id="alice", status=DeliveryStatus.SENT, campaign_id="camp1",
                    job_id="j3"), ["d5"]),
    (DeliveryFilter(since=at(2)), ["d5", "d4", "d3", "d2"]),  # since is inclusive
    (DeliveryFilter(until=at(4)), ["d3", "d2", "d1"]),  # until is exclusive
    (DeliveryFilter(since=at(2), until=at(4), customer_id="alice"), ["d3"]),
    (DeliveryFilter(customer_id="nobody"), []),
], ids=["all", "customer", "campaign", "job", "status", "everything", "since", "until",
        "range", "none"])
async def test_list_filters_newest_first(repo: DeliveryRepository, filter: DeliveryFilter,
                                         expected: list[str]) -> None:
    await _seed(repo)

    page = await repo.list(filter, limit=50, offset=0)

    assert [d.id for d in page.items] == expected
    assert page.total == len(expected)


async def test_list_pages_with_the_total_and_breaks_time_ties_by_id(
    repo: DeliveryRepository,
) -> None:
    for id in ("a", "c", "b", "e", "d"):
        await repo.add_if_absent(make(id, minute=1))
    await repo.add_if_absent(make("z", minute=0))

    first = await repo.list(DeliveryFilter(), limit=4, offset=0)
    rest = await repo.list(DeliveryFilter(), limit=4, offset=4)
    beyond = await repo.list(DeliveryFilter(), limit=4, offset=6)

    assert [d.id for d in first.items] == ["e", "d", "c", "b"]
    assert [d.id for d in rest.items] == ["a", "z"]
    assert beyond.items == []
    assert first.total == rest.total == beyond.total == 6
    assert (rest.limit, rest.offset) == (4, 4)


# -- counts ----------------------------------------------------------------------------------


async def test_counts_of_an_empty_store_name_every_status(repo: DeliveryRepository) -> None:
    assert await repo.counts() == counts()
    assert await repo.counts_by_campaign() == {}


async def test_counts_by_status_since_and_per_campaign(repo: DeliveryRepository) -> None:
    await _seed(repo)

    assert await repo.counts() == counts(sent=2, failed=1, skipped=1, queued=1)
    assert await repo.counts(since=at(3)) == counts(sent=1, skipped=1, queued=1)
    assert await repo.counts(campaign_id="camp1") == counts(sent=2, failed=1)
    assert await repo.counts(campaign_id="camp1", since=at(2)) == counts(sent=1, failed=1)
    assert await repo.counts(campaign_id="ghost") == counts()


async def test_counts_by_campaign(repo: DeliveryRepository) -> None:
    await _seed(repo)

    assert await repo.counts_by_campaign() == {
        "camp1": counts(sent=2, failed=1),
        "camp2": counts(skipped=1, queued=1),
    }
    assert await repo.counts_by_campaign(since=at(4)) == {
        "camp1": counts(sent=1),
        "camp2": counts(queued=1),
    }
    assert await repo.counts_by_campaign(since=at(6)) == {}


async def test_counts_follow_updates(repo: DeliveryRepository) -> None:
    await repo.add_if_absent(make("d1"))
    delivery = await repo.get("d1")
    delivery.mark_sent(at(1), None)
    await repo.update(delivery)

    assert await repo.counts() == counts(sent=1)


# -- races -----------------------------------------------------------------------------------


async def test_concurrent_add_if_absent_of_one_job_and_customer_creates_one(
    repo: DeliveryRepository,
) -> None:
    results = await asyncio.gather(
        *(repo.add_if_absent(make(f"d{i}", job="j1", customer="alice")) for i in range(20)))

    assert sum(created for _, created in results) == 1
    winner = next(d for d, created in results if created)
    assert all(d == winner for d, _ in results)
    page = await repo.list(DeliveryFilter(), limit=50, offset=0)
    assert [d.id for d in page.items] == [winner.id]


def test_threads_adding_one_job_and_customer_create_one_in_memory() -> None:
    repo = MemoryDeliveryRepository()
    threads = 16
    barrier = threading.Barrier(threads)
    results: list[tuple[Delivery, bool] | None] = [None] * threads

    def add(i: int) -> None:
        barrier.wait()
        results[i] = asyncio.run(repo.add_if_absent(make(f"d{i}", customer="alice")))

    workers = [threading.Thread(target=add, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)

    assert all(r is not None for r in results)
    assert sum(r[1] for r in results if r is not None) == 1
    assert len({r[0].id for r in results if r is not None}) == 1
    assert asyncio.run(repo.counts()).total == 1
