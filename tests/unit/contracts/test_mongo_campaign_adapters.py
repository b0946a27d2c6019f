"""What the MongoDB campaign adapters promise beyond the port contracts: document shapes and
key escaping, the message ``order`` key, unique indexes, and error translation (a down server
is ServiceUnavailable).

Tests taking ``db`` run on mongomock-motor and, when NOTIBOT_TEST_MONGODB_URL is set, on a
real server (see mongo_support). The down-server test needs no server: it points the real
driver at a closed port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mongo_support import database_params

from notibot.adapters.mongo import (
    MongoCampaignRepository,
    MongoConversationRepository,
    MongoDeliveryRepository,
    MongoIdempotencyStore,
    create_client,
)
from notibot.adapters.mongo.campaign_mappers import (
    campaign_to_document,
    conversation_to_document,
    delivery_to_document,
    document_to_campaign,
    document_to_conversation,
    document_to_delivery,
    idempotency_id,
    message_order,
)
from notibot.application.ports import DeliveryFilter
from notibot.domain import (
    Campaign,
    CampaignContent,
    Channel,
    Conversation,
    Delivery,
    DeliveryStatus,
    Message,
    MessageRole,
)

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
DOWN_URL = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=150"
ODD_KEYS = {"plan.tier": "gold", "$price": "9", "100%": "yes", "a%2Eb": "literal",
            "nested": {"x.y": [{"$z": "1"}]}}


@pytest.fixture(params=database_params())
async def db(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    async with request.param() as database:
        yield database


def campaign(id: str = "c1", name: str = "Tet") -> Campaign:
    return Campaign(id=id, name=name, channel=Channel.EMAIL,
                    content=CampaignContent(subject="S", text_body="T", html_body="<p>H</p>"),
                    created_at=T0, updated_at=T0, variants={
                        "vi": CampaignContent(subject="Chào", text_body="Xin chào")},
                    default_data=dict(ODD_KEYS))


def delivery(id: str = "d1") -> Delivery:
    return Delivery(id=id, job_id="j1", campaign_id="c1", customer_id="alice",
                    channel=Channel.EMAIL, created_at=T0)


def message(id: str, second: float, **metadata: Any) -> Message:
    return Message(id=id, role=MessageRole.ASSISTANT, content=f"text {id}",
                   created_at=T0 + timedelta(seconds=second), metadata=metadata)


# -- mappers ---------------------------------------------------------------------------------


def test_the_campaign_mapper_round_trips_with_a_name_key_and_escaped_data() -> None:
    original = campaign(name="Tết SALE")

    document = campaign_to_document(original)

    assert document["name_key"] == "tết sale"
    assert document["variants"] == [{"language": "vi", "subject": "Chào",
                                     "text_body": "Xin chào", "html_body": None}]
    assert all("." not in k and not k.startswith("$") for k in document["default_data"])
    assert document_to_campaign(document) == original


def test_the_delivery_mapper_round_trips() -> None:
    original = delivery()
    original.mark_failed(T0 + timedelta(seconds=1), "451 later")

    document = delivery_to_document(original)

    assert document["status"] == "failed" and document["channel"] == "email"
    assert document_to_delivery(document) == original


def test_the_conversation_mapper_escapes_metadata_and_hides_the_order_key() -> None:
    original = Conversation(id="s1", customer_id="alice", created_at=T0, updated_at=T0)
    original.append(message("m1", 1, **{"usage.tokens": 3, "$model": "x"}))

    document = conversation_to_document(original, [7])

    stored = document["messages"][0]
    assert set(stored["metadata"]) == {"usage%2Etokens", "%24model"}
    assert stored["order"] == message_order(original.messages[0].created_at, 7)
    assert document_to_conversation(document) == original


def test_the_message_order_sorts_by_millisecond_then_tiebreak() -> None:
    early = T0 - timedelta(days=365 * 60)  # before 1970
    keys = [
        message_order(early, 5),
        message_order(T0, 9),
        message_order(T0 + timedelta(microseconds=999), 10),  # same BSON millisecond
        message_order(T0 + timedelta(milliseconds=1), 1),
        message_order(datetime(9999, 12, 31, tzinfo=UTC), 0),
    ]

    assert keys == sorted(keys)
    assert message_order(datetime(1, 1, 1, tzinfo=UTC), 0) < keys[0]


def test_idempotency_ids_escape_the_separator_in_the_scope() -> None:
    assert idempotency_id("send:u1", "k") == "send%3Au1:k"
    assert idempotency_id("a:b", "c") != idempotency_id("a", "b:c")
    assert idempotency_id("a%3Ab", "c") != idempotency_id("a:b", "c")


# -- documents and indexes -------------------------------------------------------------------


async def test_unique_indexes_back_names_and_job_customer_pairs(db: Any) -> None:
    campaigns = await db["campaigns"].index_information()
    deliveries = await db["deliveries"].index_information()

    assert campaigns["name_key_unique"]["unique"] is True
    assert deliveries["job_customer_unique"]["unique"] is True
    assert deliveries["job_customer_unique"]["key"] == [("job_id", 1), ("customer_id", 1)]


async def test_stored_messages_carry_escaped_metadata_and_dates_come_back_utc(db: Any) -> None:
    repo = MongoConversationRepository(db)
    await repo.add(Conversation(id="s1", customer_id="alice", created_at=T0, updated_at=T0))
    await repo.append("s1", message("m1", 1, **ODD_KEYS))

    raw = await db["conversations"].find_one({"_id": "s1"})
    got = await repo.get("s1")

    assert "plan%2Etier" in raw["messages"][0]["metadata"]
    assert got.messages[0].metadata == ODD_KEYS
    assert got.updated_at == T0 + timedelta(seconds=1)
    assert got.updated_at.utcoffset() == timedelta(0)
    assert got.messages[0].created_at.utcoffset() == timedelta(0)


async def test_a_conversation_started_by_append_to_latest_is_the_document_add_writes(
    db: Any,
) -> None:
    repo = MongoConversationRepository(db)
    first = message("m1", 1, **ODD_KEYS)
    await repo.append_to_latest("alice", first, new_conversation_id="s1")
    await repo.add(Conversation(id="s2", customer_id="alice", created_at=first.created_at,
                                updated_at=first.created_at, messages=[first]))

    upserted = await db["conversations"].find_one({"_id": "s1"})
    added = await db["conversations"].find_one({"_id": "s2"})

    for document in (upserted, added):
        del document["_id"]
        document["messages"][0]["order"] = document["messages"][0]["order"].split(".")[0]
    assert upserted == added


async def test_campaign_default_data_with_any_key_round_trips_through_updates(db: Any) -> None:
    repo = MongoCampaignRepository(db)
    await repo.add(campaign())
    changed = await repo.get("c1")
    changed.default_data = {**ODD_KEYS, "new.key": {"$x": 1}}

    await repo.update(changed)

    assert (await repo.get("c1")).default_data == {**ODD_KEYS, "new.key": {"$x": 1}}


# -- a server that does not answer -----------------------------------------------------------


@pytest.fixture
async def down_db() -> AsyncIterator[Any]:
    client = create_client(DOWN_URL)
    try:
        yield client["notibot_down"]
    finally:
        client.close()


CALLS: dict[str, Callable[[Any], Awaitable[Any]]] = {
    "campaigns.add": lambda db: MongoCampaignRepository(db).add(campaign()),
    "campaigns.list": lambda db: MongoCampaignRepository(db).list(limit=10, offset=0),
    "deliveries.add_if_absent": lambda db: MongoDeliveryRepository(db).add_if_absent(
        delivery()),
    "deliveries.add_many_if_absent": lambda db: MongoDeliveryRepository(
        db).add_many_if_absent([delivery()]),
    "deliveries.list": lambda db: MongoDeliveryRepository(db).list(
        DeliveryFilter(status=DeliveryStatus.SENT), limit=10, offset=0),
    "deliveries.counts_by_campaign": lambda db: MongoDeliveryRepository(db).counts_by_campaign(),
    "conversations.append": lambda db: MongoConversationRepository(db).append(
        "s1", message("m1", 1)),
    "conversations.latest_for_customer": lambda db: MongoConversationRepository(
        db).latest_for_customer("alice"),
    "conversations.append_to_latest": lambda db: MongoConversationRepository(
        db).append_to_latest("alice", message("m1", 1), new_conversation_id="s9"),
    "idempotency.claim": lambda db: MongoIdempotencyStore(db).claim("s", "k", "fp", "v"),
}


async def test_a_down_server_turns_every_call_into_service_unavailable(down_db: Any) -> None:
    started = time.monotonic()

    outcomes = await asyncio.gather(*(call(down_db) for call in CALLS.values()),
                                    return_exceptions=True)

    codes = {name: (type(outcome).__name__, getattr(outcome, "code", None))
             for name, outcome in zip(CALLS, outcomes, strict=True)}
    assert codes == {name: ("ServiceUnavailable", "mongodb_unavailable") for name in CALLS}
    assert time.monotonic() - started < 3
