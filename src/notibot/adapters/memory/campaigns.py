"""In-memory adapters of the campaign ports: campaigns, deliveries, conversations (long-term
memory) and the idempotency store.

Like the other in-memory adapters they are thread-safe (one ``threading.Lock`` per store,
never held across an ``await``) and store copies: an entity changed by a caller without being
saved changes nothing stored, and what a method returns can be changed freely. Deliveries are
copied with :func:`dataclasses.replace` (a shallow copy: every field of a Delivery is
immutable), a stored message with a copy of its metadata, everything else with
:func:`copy.deepcopy`.
"""

from __future__ import annotations

import builtins
import copy
import dataclasses
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from notibot.adapters.memory.copies import copy_message, copy_value
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
)

T = TypeVar("T")


def _page(items: builtins.list[T], limit: int, offset: int,
          copy_item: Callable[[T], T] = copy.deepcopy) -> Page[T]:
    """The page ``[offset, offset + limit)`` of sorted ``items`` (copies) and the total."""
    start = max(0, offset)
    chosen = items[start:start + limit] if limit > 0 else []
    return Page(items=[copy_item(i) for i in chosen], total=len(items), limit=limit,
                offset=offset)



def _copy_campaign(campaign: Campaign) -> Campaign:
    """A copy of ``campaign``: its contents are frozen; ``variants`` and ``default_data``
    (JSON-like) are copied."""
    copied = copy.copy(campaign)
    copied.variants = dict(campaign.variants)
    copied.default_data = copy_value(campaign.default_data)
    return copied


def _copy_conversation(conversation: Conversation, tail: int | None) -> Conversation:
    """A copy of ``conversation`` holding copies of all its messages, or of the newest
    ``tail`` (messages are frozen but for their ``metadata``; a deep copy of a long
    conversation per chat turn would cost more than the turn)."""
    messages = conversation.messages
    if tail is not None:
        if tail < 0:
            raise ValueError("tail must be >= 0")
        messages = messages[-tail:] if tail else []
    return Conversation(id=conversation.id, customer_id=conversation.customer_id,
                        created_at=conversation.created_at,
                        updated_at=conversation.updated_at,
                        messages=[copy_message(m) for m in messages],
                        summary=conversation.summary)


def _copy_delivery(delivery: Delivery) -> Delivery:
    """A copy of ``delivery``: shallow is enough, as every field of a Delivery is immutable
    (strings, numbers, datetimes, enums, None); ten times cheaper than a deep copy, and a
    send stores three copies per recipient."""
    return dataclasses.replace(delivery)


def _counts(statuses: Iterable[DeliveryStatus]) -> DeliveryCounts:
    """Counts by status value, every :class:`DeliveryStatus` present (zero included)."""
    by_status = {s.value: 0 for s in DeliveryStatus}
    counted = Counter(s.value for s in statuses)
    by_status.update(counted)
    return DeliveryCounts(by_status=by_status, total=sum(counted.values()))


# -- campaigns -------------------------------------------------------------------------------


class MemoryCampaignRepository(CampaignRepository):
    """Campaigns in a dict; names unique by their case-folded form.

    Raises ``Conflict`` ``campaign_name_taken`` (details ``field: "name"``, ``existing_id``)
    for a taken name, ``campaign_conflict`` (details ``field: "id"``) for a taken id, and
    ``NotFound`` ``campaign_not_found``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Campaign] = {}
        self._by_name: dict[str, str] = {}  # case-folded name -> id

    def _stored(self, campaign_id: str) -> Campaign:
        try:
            return self._by_id[campaign_id]
        except KeyError:
            raise NotFound("campaign", campaign_id) from None

    def _check_name(self, campaign: Campaign) -> None:
        owner = self._by_name.get(campaign.name.casefold())
        if owner is not None and owner != campaign.id:
            raise Conflict(f"campaign name {campaign.name!r} is taken",
                           code="campaign_name_taken",
                           details={"field": "name", "existing_id": owner})

    async def add(self, campaign: Campaign) -> None:
        with self._lock:
            if campaign.id in self._by_id:
                raise Conflict(f"campaign {campaign.id} exists", code="campaign_conflict",
                               details={"field": "id", "existing_id": campaign.id})
            self._check_name(campaign)
            self._by_id[campaign.id] = copy.deepcopy(campaign)
            self._by_name[campaign.name.casefold()] = campaign.id

    async def get(self, campaign_id: str) -> Campaign:
        with self._lock:
            return _copy_campaign(self._stored(campaign_id))

    async def update(self, campaign: Campaign) -> None:
        with self._lock:
            old = self._stored(campaign.id)
            self._check_name(campaign)
            del self._by_name[old.name.casefold()]
            self._by_id[campaign.id] = copy.deepcopy(campaign)
            self._by_name[campaign.name.casefold()] = campaign.id

    async def delete(self, campaign_id: str) -> None:
        with self._lock:
            old = self._stored(campaign_id)
            del self._by_id[campaign_id]
            del self._by_name[old.name.casefold()]

    async def list(self, *, limit: int, offset: int,
                   active: bool | None = None) -> Page[Campaign]:
        with self._lock:
            found = [c for c in self._by_id.values()
                     if active is None or c.active is active]
            found.sort(key=lambda c: (c.created_at, c.id))
            return _page(found, limit, offset)


# -- deliveries ------------------------------------------------------------------------------


def delivery_matcher(f: DeliveryFilter) -> Callable[[Delivery], bool]:
    """A predicate for the deliveries matching ``f`` (``since`` inclusive, ``until``
    exclusive, on ``created_at``)."""

    def match(d: Delivery) -> bool:
        return ((f.customer_id is None or d.customer_id == f.customer_id)
                and (f.campaign_id is None or d.campaign_id == f.campaign_id)
                and (f.job_id is None or d.job_id == f.job_id)
                and (f.status is None or d.status is f.status)
                and (f.since is None or d.created_at >= f.since)
                and (f.until is None or d.created_at < f.until))

    return match


class MemoryDeliveryRepository(DeliveryRepository):
    """Deliveries in a dict with a unique index on ``(job_id, customer_id)``.

    :meth:`add_if_absent` is atomic under the lock, and so is :meth:`add_many_if_absent` as a
    whole. Writes that would give two deliveries the same id or the same ``(job_id,
    customer_id)`` raise ``Conflict`` ``delivery_conflict``; unknown ids raise ``NotFound``
    ``delivery_not_found``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Delivery] = {}
        self._by_key: dict[tuple[str, str], str] = {}  # (job_id, customer_id) -> id
        # customer id -> ids of their deliveries (a dict as an ordered set): a chat turn
        # lists one customer's newest deliveries
        self._by_customer: dict[str, dict[str, None]] = {}

    def _add_if_absent(self, delivery: Delivery) -> tuple[Delivery, bool]:
        """:meth:`add_if_absent` with the lock held."""
        key = (delivery.job_id, delivery.customer_id)
        existing = self._by_key.get(key)
        if existing is not None:
            return _copy_delivery(self._by_id[existing]), False
        if delivery.id in self._by_id:
            raise Conflict(f"delivery {delivery.id} exists", code="delivery_conflict",
                           details={"field": "id", "existing_id": delivery.id})
        self._by_id[delivery.id] = _copy_delivery(delivery)
        self._by_key[key] = delivery.id
        self._by_customer.setdefault(delivery.customer_id, {})[delivery.id] = None
        return _copy_delivery(delivery), True

    async def add_if_absent(self, delivery: Delivery) -> tuple[Delivery, bool]:
        with self._lock:
            return self._add_if_absent(delivery)

    async def add_many_if_absent(self, deliveries: Sequence[Delivery]
                                 ) -> builtins.list[tuple[Delivery, bool]]:
        with self._lock:
            results: builtins.list[tuple[Delivery, bool]] = []
            conflict: Conflict | None = None
            for delivery in deliveries:
                try:
                    results.append(self._add_if_absent(delivery))
                except Conflict as exc:  # the others are stored, as the port says
                    conflict = conflict or exc
            if conflict is not None:
                raise conflict
            return results

    async def get(self, delivery_id: str) -> Delivery:
        with self._lock:
            try:
                return _copy_delivery(self._by_id[delivery_id])
            except KeyError:
                raise NotFound("delivery", delivery_id) from None

    async def update(self, delivery: Delivery) -> None:
        key = (delivery.job_id, delivery.customer_id)
        with self._lock:
            old = self._by_id.get(delivery.id)
            if old is None:
                raise NotFound("delivery", delivery.id)
            owner = self._by_key.get(key)
            if owner is not None and owner != delivery.id:
                raise Conflict(
                    f"delivery {owner} exists for job {delivery.job_id} and customer "
                    f"{delivery.customer_id}", code="delivery_conflict",
                    details={"field": "job_id", "existing_id": owner})
            del self._by_key[(old.job_id, old.customer_id)]
            if old.customer_id != delivery.customer_id:
                del self._by_customer[old.customer_id][delivery.id]
                self._by_customer.setdefault(delivery.customer_id, {})[delivery.id] = None
            self._by_id[delivery.id] = _copy_delivery(delivery)
            self._by_key[key] = delivery.id

    async def list(self, filter: DeliveryFilter, *, limit: int,
                   offset: int) -> Page[Delivery]:
        match = delivery_matcher(filter)
        with self._lock:
            if filter.customer_id is not None:
                candidates: Any = (self._by_id[i]
                                   for i in self._by_customer.get(filter.customer_id, ()))
            else:
                candidates = self._by_id.values()
            found = [d for d in candidates if match(d)]
            found.sort(key=lambda d: (d.created_at, d.id), reverse=True)
            return _page(found, limit, offset, _copy_delivery)

    async def counts(self, *, since: datetime | None = None,
                     campaign_id: str | None = None) -> DeliveryCounts:
        match = delivery_matcher(DeliveryFilter(campaign_id=campaign_id, since=since))
        with self._lock:
            return _counts(d.status for d in self._by_id.values() if match(d))

    async def counts_by_campaign(self, *, since: datetime | None = None
                                 ) -> dict[str, DeliveryCounts]:
        with self._lock:
            statuses: dict[str, builtins.list[DeliveryStatus]] = {}
            for d in self._by_id.values():
                if since is None or d.created_at >= since:
                    statuses.setdefault(d.campaign_id, []).append(d.status)
        return {cid: _counts(found) for cid, found in statuses.items()}


# -- conversations ---------------------------------------------------------------------------


def insert_in_time_order(messages: builtins.list[Message], message: Message) -> None:
    """Insert ``message`` after every message not later than it (stable for equal times)."""
    index = len(messages)
    while index > 0 and messages[index - 1].created_at > message.created_at:
        index -= 1
    messages.insert(index, message)


class MemoryConversationRepository(ConversationRepository):
    """Conversations (with their messages) in a dict, indexed by customer.

    :meth:`append` inserts the message at its place in time order (after messages of the same
    time) and moves ``updated_at`` forward to the message's time, never back; it does not
    re-check the domain's content rules (the caller built the message through the domain).
    ``Conflict`` ``conversation_conflict`` for a taken id, ``NotFound``
    ``conversation_not_found`` for an unknown one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Conversation] = {}
        # customer id -> ids of their conversations (a dict as an ordered set)
        self._by_customer: dict[str, dict[str, None]] = {}

    def _stored(self, conversation_id: str) -> Conversation:
        try:
            return self._by_id[conversation_id]
        except KeyError:
            raise NotFound("conversation", conversation_id) from None

    def _add(self, conversation: Conversation) -> None:
        """Store ``conversation`` itself (the caller copied it), with the lock held."""
        if conversation.id in self._by_id:
            raise Conflict(f"conversation {conversation.id} exists",
                           code="conversation_conflict",
                           details={"field": "id", "existing_id": conversation.id})
        self._by_id[conversation.id] = conversation
        self._by_customer.setdefault(conversation.customer_id, {})[conversation.id] = None

    async def add(self, conversation: Conversation) -> None:
        stored = copy.deepcopy(conversation)
        with self._lock:
            self._add(stored)

    async def get(self, conversation_id: str, *, tail: int | None = None) -> Conversation:
        with self._lock:
            return _copy_conversation(self._stored(conversation_id), tail)

    def _of_customer(self, customer_id: str) -> builtins.list[Conversation]:
        """The customer's conversations, most recently updated first (then the newest
        created, then id descending)."""
        found = [self._by_id[i] for i in self._by_customer.get(customer_id, ())]
        found.sort(key=_recency, reverse=True)
        return found

    def _latest(self, customer_id: str) -> Conversation | None:
        """The first of :meth:`_of_customer`, without sorting them all."""
        ids = self._by_customer.get(customer_id)
        return max((self._by_id[i] for i in ids), key=_recency) if ids else None

    async def latest_for_customer(self, customer_id: str, *,
                                  tail: int | None = None) -> Conversation | None:
        with self._lock:
            found = self._latest(customer_id)
            return _copy_conversation(found, tail) if found is not None else None

    @staticmethod
    def _append(conversation: Conversation, message: Message) -> None:
        insert_in_time_order(conversation.messages, message)
        if message.created_at > conversation.updated_at:
            conversation.updated_at = message.created_at

    async def append(self, conversation_id: str, message: Message) -> None:
        stored_message = copy_message(message)
        with self._lock:
            self._append(self._stored(conversation_id), stored_message)

    async def append_to_latest(self, customer_id: str, message: Message, *,
                               new_conversation_id: str) -> str:
        stored_message = copy_message(message)
        with self._lock:
            conversation = self._latest(customer_id)
            if conversation is not None:
                self._append(conversation, stored_message)
                return conversation.id
            self._add(Conversation(id=new_conversation_id, customer_id=customer_id,
                                   created_at=message.created_at,
                                   updated_at=message.created_at, messages=[stored_message]))
            return new_conversation_id

    async def list_for_customer(self, customer_id: str, *, limit: int,
                                offset: int) -> Page[Conversation]:
        with self._lock:
            return _page(self._of_customer(customer_id), limit, offset)

    async def delete(self, conversation_id: str) -> None:
        with self._lock:
            conversation = self._stored(conversation_id)
            del self._by_id[conversation_id]
            ids = self._by_customer[conversation.customer_id]
            del ids[conversation_id]
            if not ids:
                del self._by_customer[conversation.customer_id]


def _recency(conversation: Conversation) -> tuple[datetime, datetime, str]:
    """How recently a conversation was used: its updated_at, then created_at, then id."""
    return conversation.updated_at, conversation.created_at, conversation.id


# -- idempotency -----------------------------------------------------------------------------


class MemoryIdempotencyStore(IdempotencyStore):
    """``(scope, key) -> (value, fingerprint)`` in a dict; :meth:`claim` is a put-if-absent
    under the lock. Entries are kept for the life of the store (no expiry)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claims: dict[tuple[str, str], tuple[str, str]] = {}

    async def claim(self, scope: str, key: str, fingerprint: str,
                    value: str) -> tuple[str, str]:
        with self._lock:
            return self._claims.setdefault((scope, key), (value, fingerprint))
