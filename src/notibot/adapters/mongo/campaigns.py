"""MongoDB adapters (motor) of the campaign ports: campaigns, deliveries, conversations
(long-term memory) and the idempotency store.

Each takes an ``AsyncIOMotorDatabase`` (or the container's ``LazyDatabase``) and uses the
collections and indexes of :mod:`notibot.adapters.mongo.indexes`; the document shapes are in
:mod:`notibot.adapters.mongo.campaign_mappers`. Uniqueness and atomicity come from the server
(unique indexes, single-document updates), so they hold across processes. Semantics are
those of the in-memory adapters (:mod:`notibot.adapters.memory.campaigns`; the contract
suites check both). Driver errors become ``ServiceUnavailable`` (``mongodb_unavailable`` /
``mongodb_error``) through :func:`~notibot.adapters.mongo.errors.translate_errors`.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from notibot.adapters.mongo.campaign_mappers import (
    campaign_name_key,
    campaign_to_document,
    conversation_to_document,
    delivery_to_document,
    document_to_campaign,
    document_to_conversation,
    document_to_delivery,
    idempotency_id,
    message_to_document,
)
from notibot.adapters.mongo.errors import duplicate_key_field, translate_errors
from notibot.adapters.mongo.indexes import (
    CAMPAIGNS,
    CONVERSATIONS,
    DELIVERIES,
    IDEMPOTENCY_KEYS,
    UNIQUE_INDEX_KEYS,
)
from notibot.application.ports import (
    CampaignRepository,
    ConversationRepository,
    DeliveryCounts,
    DeliveryFilter,
    DeliveryRepository,
    IdempotencyStore,
    Page,
)
from notibot.domain import (
    Campaign,
    Conflict,
    Conversation,
    Delivery,
    DeliveryStatus,
    Message,
    NotFound,
    ServiceUnavailable,
)

_CAMPAIGN_ORDER = [("created_at", ASCENDING), ("_id", ASCENDING)]
_DELIVERY_ORDER = [("created_at", DESCENDING), ("_id", DESCENDING)]
_CONVERSATION_ORDER = [("updated_at", DESCENDING), ("created_at", DESCENDING),
                       ("_id", DESCENDING)]
#: The server's code of a write refused by a unique index.
_DUPLICATE_KEY = 11000


async def _page_of(collection: Any, query: dict[str, Any], order: list[tuple[str, int]],
                   limit: int, offset: int) -> tuple[builtins.list[dict[str, Any]], int]:
    """The documents of one page and the total matching ``query``."""
    total = await collection.count_documents(query)
    if limit <= 0 or offset >= total:
        return [], total
    cursor = collection.find(query).sort(order).skip(max(0, offset)).limit(limit)
    return await cursor.to_list(length=None), total


# -- campaigns -------------------------------------------------------------------------------


class MongoCampaignRepository(CampaignRepository):
    """Campaigns in the ``campaigns`` collection; names are unique case-insensitively through
    the unique index on the case-folded ``name_key``.

    Raises ``Conflict`` ``campaign_name_taken`` (details ``field: "name"``, ``existing_id``)
    for a taken name, ``campaign_conflict`` (details ``field: "id"``) for a taken id, and
    ``NotFound`` ``campaign_not_found``.

    Parameters:
        database: an ``AsyncIOMotorDatabase``.
    """

    def __init__(self, database: Any) -> None:
        self._campaigns = database[CAMPAIGNS]

    async def _name_taken(self, campaign: Campaign, exc: DuplicateKeyError) -> Conflict:
        owner = await self._campaigns.find_one({"name_key": campaign_name_key(campaign.name)},
                                               {"_id": 1})
        return Conflict(f"campaign name {campaign.name!r} is taken", code="campaign_name_taken",
                        details={"field": "name",
                                 "existing_id": owner["_id"] if owner else None})

    async def add(self, campaign: Campaign) -> None:
        document = campaign_to_document(campaign)
        with translate_errors("add a campaign", conflict_code="campaign_name_taken"):
            try:
                await self._campaigns.insert_one(document)
            except DuplicateKeyError as exc:
                hint = duplicate_key_field(exc.details or {}, str(exc), UNIQUE_INDEX_KEYS)
                if hint != "name_key" and await self._campaigns.find_one(
                        {"_id": campaign.id}, {"_id": 1}) is not None:
                    raise Conflict(f"campaign {campaign.id} exists", code="campaign_conflict",
                                   details={"field": "id", "existing_id": campaign.id}
                                   ) from exc
                raise await self._name_taken(campaign, exc) from exc

    async def get(self, campaign_id: str) -> Campaign:
        with translate_errors("read a campaign"):
            document = await self._campaigns.find_one({"_id": campaign_id})
        if document is None:
            raise NotFound("campaign", campaign_id)
        return document_to_campaign(document)

    async def update(self, campaign: Campaign) -> None:
        document = campaign_to_document(campaign)
        with translate_errors("update a campaign", conflict_code="campaign_name_taken"):
            try:
                result = await self._campaigns.replace_one({"_id": campaign.id}, document)
            except DuplicateKeyError as exc:
                raise await self._name_taken(campaign, exc) from exc
        if result.matched_count == 0:
            raise NotFound("campaign", campaign.id)

    async def delete(self, campaign_id: str) -> None:
        with translate_errors("delete a campaign"):
            result = await self._campaigns.delete_one({"_id": campaign_id})
        if result.deleted_count == 0:
            raise NotFound("campaign", campaign_id)

    async def list(self, *, limit: int, offset: int,
                   active: bool | None = None) -> Page[Campaign]:
        query: dict[str, Any] = {} if active is None else {"active": active}
        with translate_errors("list campaigns"):
            documents, total = await _page_of(self._campaigns, query, _CAMPAIGN_ORDER,
                                              limit, offset)
        return Page(items=[document_to_campaign(d) for d in documents], total=total,
                    limit=limit, offset=offset)


# -- deliveries ------------------------------------------------------------------------------


def delivery_query(f: DeliveryFilter) -> dict[str, Any]:
    """The MongoDB query of a delivery filter: equality on customer, campaign, job and
    status; ``since`` (inclusive) and ``until`` (exclusive) on ``created_at``."""
    query: dict[str, Any] = {}
    for name in ("customer_id", "campaign_id", "job_id"):
        value = getattr(f, name)
        if value is not None:
            query[name] = value
    if f.status is not None:
        query["status"] = DeliveryStatus(f.status).value
    created: dict[str, datetime] = {}
    if f.since is not None:
        created["$gte"] = f.since
    if f.until is not None:
        created["$lt"] = f.until
    if created:
        query["created_at"] = created
    return query


def _empty_counts() -> dict[str, int]:
    return {s.value: 0 for s in DeliveryStatus}


class MongoDeliveryRepository(DeliveryRepository):
    """Deliveries in the ``deliveries`` collection.

    :meth:`add_if_absent` inserts and lets the unique index ``job_customer_unique`` decide:
    on a duplicate key it reads and returns the delivery that won (``created`` False), so
    concurrent calls from any number of processes store exactly one delivery per
    ``(job_id, customer_id)``; :meth:`add_many_if_absent` does the same for a whole batch
    with one unordered ``insert_many``. A write that would reuse another delivery's id, or
    move a delivery onto a taken ``(job_id, customer_id)``, raises ``Conflict``
    ``delivery_conflict``; unknown ids raise ``NotFound`` ``delivery_not_found``.

    Parameters:
        database: an ``AsyncIOMotorDatabase``.
    """

    def __init__(self, database: Any) -> None:
        self._deliveries = database[DELIVERIES]

    async def add_if_absent(self, delivery: Delivery) -> tuple[Delivery, bool]:
        document = delivery_to_document(delivery)
        key = {"job_id": delivery.job_id, "customer_id": delivery.customer_id}
        with translate_errors("add a delivery", conflict_code="delivery_conflict"):
            try:
                await self._deliveries.insert_one(document)
            except DuplicateKeyError as exc:
                existing = await self._deliveries.find_one(key)
                if existing is not None:
                    return document_to_delivery(existing), False
                raise Conflict(f"delivery {delivery.id} exists", code="delivery_conflict",
                               details={"field": "id", "existing_id": delivery.id}) from exc
        return document_to_delivery(document), True

    async def add_many_if_absent(self, deliveries: Sequence[Delivery]
                                 ) -> builtins.list[tuple[Delivery, bool]]:
        """One unordered ``insert_many``; the deliveries the unique index refused are read
        back with one query per job (``customer_id`` ``$in``)."""
        if not deliveries:
            return []
        documents = [delivery_to_document(d) for d in deliveries]
        refused: set[int] = set()
        with translate_errors("add deliveries", conflict_code="delivery_conflict"):
            try:
                await self._deliveries.insert_many(documents, ordered=False)
            except BulkWriteError as exc:
                details = exc.details or {}
                if details.get("writeConcernErrors"):
                    raise ServiceUnavailable("MongoDB did not confirm the deliveries' insert",
                                             code="mongodb_unavailable") from exc
                for error in details.get("writeErrors") or []:
                    if error.get("code") != _DUPLICATE_KEY:
                        raise  # translate_errors logs it: ServiceUnavailable mongodb_error
                    refused.add(int(error["index"]))
            winners = await self._by_job_and_customer(
                [deliveries[i] for i in sorted(refused)])
        results: builtins.list[tuple[Delivery, bool]] = []
        conflict: Delivery | None = None
        for index, (delivery, document) in enumerate(zip(deliveries, documents, strict=True)):
            if index not in refused:
                results.append((document_to_delivery(document), True))
                continue
            winner = winners.get((delivery.job_id, delivery.customer_id))
            if winner is None:  # refused for its id, not for its (job, customer)
                conflict = conflict or delivery
                continue
            results.append((winner, False))
        if conflict is not None:
            raise Conflict(f"delivery {conflict.id} exists", code="delivery_conflict",
                           details={"field": "id", "existing_id": conflict.id})
        return results

    async def _by_job_and_customer(self, deliveries: Sequence[Delivery]
                                   ) -> dict[tuple[str, str], Delivery]:
        """The stored deliveries of the ``(job_id, customer_id)`` of ``deliveries``."""
        customers: dict[str, set[str]] = {}
        for delivery in deliveries:
            customers.setdefault(delivery.job_id, set()).add(delivery.customer_id)
        found: dict[tuple[str, str], Delivery] = {}
        for job_id, customer_ids in customers.items():
            cursor = self._deliveries.find(
                {"job_id": job_id, "customer_id": {"$in": sorted(customer_ids)}})
            for document in await cursor.to_list(length=None):
                stored = document_to_delivery(document)
                found[(stored.job_id, stored.customer_id)] = stored
        return found

    async def get(self, delivery_id: str) -> Delivery:
        with translate_errors("read a delivery"):
            document = await self._deliveries.find_one({"_id": delivery_id})
        if document is None:
            raise NotFound("delivery", delivery_id)
        return document_to_delivery(document)

    async def update(self, delivery: Delivery) -> None:
        document = delivery_to_document(delivery)
        with translate_errors("update a delivery", conflict_code="delivery_conflict"):
            try:
                result = await self._deliveries.replace_one({"_id": delivery.id}, document)
            except DuplicateKeyError as exc:
                owner = await self._deliveries.find_one(
                    {"job_id": delivery.job_id, "customer_id": delivery.customer_id},
                    {"_id": 1})
                raise Conflict(
                    f"a delivery exists for job {delivery.job_id} and customer "
                    f"{delivery.customer_id}", code="delivery_conflict",
                    details={"field": "job_id",
                             "existing_id": owner["_id"] if owner else None}) from exc
        if result.matched_count == 0:
            raise NotFound("delivery", delivery.id)

    async def list(self, filter: DeliveryFilter, *, limit: int,
                   offset: int) -> Page[Delivery]:
        with translate_errors("list deliveries"):
            documents, total = await _page_of(self._deliveries, delivery_query(filter),
                                              _DELIVERY_ORDER, limit, offset)
        return Page(items=[document_to_delivery(d) for d in documents], total=total,
                    limit=limit, offset=offset)

    async def counts(self, *, since: datetime | None = None,
                     campaign_id: str | None = None) -> DeliveryCounts:
        query = delivery_query(DeliveryFilter(campaign_id=campaign_id, since=since))
        pipeline = [{"$match": query}, {"$group": {"_id": "$status", "count": {"$sum": 1}}}]
        by_status = _empty_counts()
        with translate_errors("count deliveries"):
            async for row in self._deliveries.aggregate(pipeline):
                by_status[row["_id"]] = by_status.get(row["_id"], 0) + int(row["count"])
        return DeliveryCounts(by_status=by_status, total=sum(by_status.values()))

    async def counts_by_campaign(self, *, since: datetime | None = None
                                 ) -> dict[str, DeliveryCounts]:
        query = delivery_query(DeliveryFilter(since=since))
        pipeline = [
            {"$match": query},
            {"$group": {"_id": {"campaign_id": "$campaign_id", "status": "$status"},
                        "count": {"$sum": 1}}},
        ]
        found: dict[str, dict[str, int]] = {}
        with translate_errors("count deliveries by campaign"):
            async for row in self._deliveries.aggregate(pipeline):
                by_status = found.setdefault(row["_id"]["campaign_id"], _empty_counts())
                status = row["_id"]["status"]
                by_status[status] = by_status.get(status, 0) + int(row["count"])
        return {cid: DeliveryCounts(by_status=by_status, total=sum(by_status.values()))
                for cid, by_status in found.items()}


# -- conversations ---------------------------------------------------------------------------


class _Tiebreaks:
    """Increasing numbers for the ``order`` of stored messages: nanoseconds of the wall
    clock, forced to grow within the process. Messages of the same millisecond thus keep the
    order in which this process stored them; across processes, the order of their clocks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def take(self, count: int = 1) -> builtins.list[int]:
        """``count`` new numbers, each larger than every number taken before."""
        with self._lock:
            first = max(self._last + 1, time.time_ns())
            self._last = first + count - 1
        return list(range(first, first + count))


_TIEBREAKS = _Tiebreaks()


def _tail_projection(tail: int | None) -> dict[str, Any] | None:
    """The projection keeping the conversation's fields and its newest ``tail`` messages
    (``$slice`` of the array, which is kept in time order), or None for the whole document.
    The fields are named (an inclusion projection): MongoDB and mongomock agree on it."""
    if tail is None:
        return None
    if tail < 0:
        raise ValueError("tail must be >= 0")
    fields: dict[str, Any] = {"customer_id": 1, "created_at": 1, "updated_at": 1, "summary": 1}
    if tail:
        fields["messages"] = {"$slice": -tail}
    return fields


class MongoConversationRepository(ConversationRepository):
    """Conversations in the ``conversations`` collection, messages embedded in time order.

    :meth:`append` is one atomic ``update_one``: ``$push`` of the message with ``$sort`` on
    its ``order`` field (its time, then the order in which messages were stored) and ``$max``
    on ``updated_at``; concurrent appends from any number of tasks or processes all land,
    and ``updated_at`` only moves forward. :meth:`append_to_latest` is the same update in
    one ``find_one_and_update`` (sorted by recency, upserting the new conversation); two
    running at once for a customer without a conversation may both create one, as two
    callers of ``latest_for_customer`` then ``add`` could. A conversation is one document,
    so it holds at most 16 MB of messages (tens of thousands of chat messages).

    Raises ``Conflict`` ``conversation_conflict`` for a taken id and ``NotFound``
    ``conversation_not_found`` for an unknown one.

    Parameters:
        database: an ``AsyncIOMotorDatabase``.
    """

    def __init__(self, database: Any) -> None:
        self._conversations = database[CONVERSATIONS]

    async def add(self, conversation: Conversation) -> None:
        document = conversation_to_document(conversation,
                                            _TIEBREAKS.take(len(conversation.messages)))
        with translate_errors("add a conversation", conflict_code="conversation_conflict"):
            try:
                await self._conversations.insert_one(document)
            except DuplicateKeyError as exc:
                raise Conflict(f"conversation {conversation.id} exists",
                               code="conversation_conflict",
                               details={"field": "id", "existing_id": conversation.id}
                               ) from exc

    async def get(self, conversation_id: str, *, tail: int | None = None) -> Conversation:
        with translate_errors("read a conversation"):
            document = await self._conversations.find_one({"_id": conversation_id},
                                                          _tail_projection(tail))
        if document is None:
            raise NotFound("conversation", conversation_id)
        return document_to_conversation(document)

    async def latest_for_customer(self, customer_id: str, *,
                                  tail: int | None = None) -> Conversation | None:
        with translate_errors("find a customer's conversation"):
            documents = await self._conversations.find(
                {"customer_id": customer_id}, _tail_projection(tail)).sort(
                _CONVERSATION_ORDER).limit(1).to_list(length=None)
        return document_to_conversation(documents[0]) if documents else None

    async def append(self, conversation_id: str, message: Message) -> None:
        pushed = message_to_document(message, _TIEBREAKS.take()[0])
        update = {
            "$push": {"messages": {"$each": [pushed], "$sort": {"order": ASCENDING}}},
            "$max": {"updated_at": message.created_at},
        }
        with translate_errors("append a message"):
            result = await self._conversations.update_one({"_id": conversation_id}, update)
        if result.matched_count == 0:
            raise NotFound("conversation", conversation_id)

    async def append_to_latest(self, customer_id: str, message: Message, *,
                               new_conversation_id: str) -> str:
        """One ``find_one_and_update`` on the customer's latest conversation, an upsert that
        creates the new one (the same document :meth:`add` would store) when there is
        none."""
        pushed = message_to_document(message, _TIEBREAKS.take()[0])
        update = {
            "$push": {"messages": {"$each": [pushed], "$sort": {"order": ASCENDING}}},
            "$max": {"updated_at": message.created_at},
            "$setOnInsert": {"_id": new_conversation_id, "created_at": message.created_at,
                             "summary": None},
        }
        with translate_errors("append a message", conflict_code="conversation_conflict"):
            try:
                document = await self._conversations.find_one_and_update(
                    {"customer_id": customer_id}, update, projection={"_id": 1},
                    sort=_CONVERSATION_ORDER, upsert=True,
                    return_document=ReturnDocument.AFTER)
            except DuplicateKeyError as exc:
                raise Conflict(f"conversation {new_conversation_id} exists",
                               code="conversation_conflict",
                               details={"field": "id", "existing_id": new_conversation_id}
                               ) from exc
        return str(document["_id"])

    async def list_for_customer(self, customer_id: str, *, limit: int,
                                offset: int) -> Page[Conversation]:
        with translate_errors("list a customer's conversations"):
            documents, total = await _page_of(self._conversations, {"customer_id": customer_id},
                                              _CONVERSATION_ORDER, limit, offset)
        return Page(items=[document_to_conversation(d) for d in documents], total=total,
                    limit=limit, offset=offset)

    async def delete(self, conversation_id: str) -> None:
        with translate_errors("delete a conversation"):
            result = await self._conversations.delete_one({"_id": conversation_id})
        if result.deleted_count == 0:
            raise NotFound("conversation", conversation_id)


# -- idempotency -----------------------------------------------------------------------------


class MongoIdempotencyStore(IdempotencyStore):
    """Claims in the ``idempotency_keys`` collection, one document per ``(scope, key)`` with
    ``_id`` ``"<scope>:<key>"`` (see
    :func:`~notibot.adapters.mongo.campaign_mappers.idempotency_id`).

    :meth:`claim` inserts and lets the ``_id`` index decide: on a duplicate key it reads the
    winner's value, so concurrent claims in any number of processes all get the one stored
    value. Claims are kept (no expiry); each records ``claimed_at`` so that a TTL index can
    be added later.

    Parameters:
        database: an ``AsyncIOMotorDatabase``.
    """

    #: Insert-then-read rounds before giving up (a claim only vanishes if someone deletes
    #: it by hand between the two).
    ATTEMPTS = 3

    def __init__(self, database: Any) -> None:
        self._claims = database[IDEMPOTENCY_KEYS]

    async def claim(self, scope: str, key: str, fingerprint: str,
                    value: str) -> tuple[str, str]:
        document = {"_id": idempotency_id(scope, key), "scope": scope, "key": key,
                    "value": value, "fingerprint": fingerprint,
                    "claimed_at": datetime.now(UTC)}
        with translate_errors("claim an idempotency key"):
            for _ in range(self.ATTEMPTS):
                try:
                    await self._claims.insert_one(dict(document))
                    return value, fingerprint
                except DuplicateKeyError:
                    stored = await self._claims.find_one({"_id": document["_id"]})
                if stored is not None:
                    return stored["value"], stored["fingerprint"]
        raise ServiceUnavailable("an idempotency key kept vanishing while being claimed",
                                 code="mongodb_error")
