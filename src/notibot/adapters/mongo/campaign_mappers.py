"""Explicit data mappers of the campaign collections (conventions of
:mod:`notibot.adapters.mongo.mappers`: ``_id`` is the entity id, BSON dates in UTC with
millisecond precision, enums as their values, free-form maps with escaped keys).

Shapes::

    campaigns      {_id, name, name_key, description, channel, content: content,
                    variants: [{language, subject, text_body, html_body}], default_data: {},
                    active, created_at, updated_at}
                   (name_key: the case-folded name, unique; variants are a list so that a
                    language code is never a field name)
    content        {subject, text_body, html_body}
    deliveries     {_id, job_id, campaign_id, customer_id, channel, status, attempts,
                    last_error, skip_reason, message_id, language, created_at, sent_at,
                    updated_at}
    conversations  {_id, customer_id, created_at, updated_at, summary, messages: [message]}
    message        {id, role, content, created_at, metadata: {}, order}
                   (order: the message's place in time order, see :func:`message_order`;
                    never reaches an entity)
    idempotency_keys {_id: "<escaped scope>:<key>", scope, key, value, fingerprint, claimed_at}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from notibot.adapters.mongo.mappers import as_utc, escape_keys, fold, unescape_keys
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

# -- campaigns -------------------------------------------------------------------------------


def campaign_name_key(name: str) -> str:
    """The case-folded name that the unique index ``name_key_unique`` holds."""
    return fold(name) or ""


def content_to_document(content: CampaignContent) -> dict[str, Any]:
    """The embedded document of one language's templates."""
    return {"subject": content.subject, "text_body": content.text_body,
            "html_body": content.html_body}


def document_to_content(document: dict[str, Any]) -> CampaignContent:
    """The templates stored as ``document``."""
    return CampaignContent(subject=document["subject"], text_body=document["text_body"],
                           html_body=document.get("html_body"))


def campaign_to_document(campaign: Campaign) -> dict[str, Any]:
    """The document of ``campaign`` (a new dict sharing nothing mutable with the entity)."""
    return {
        "_id": campaign.id,
        "name": campaign.name,
        "name_key": campaign_name_key(campaign.name),
        "description": campaign.description,
        "channel": campaign.channel.value,
        "content": content_to_document(campaign.content),
        "variants": [{"language": language, **content_to_document(content)}
                     for language, content in campaign.variants.items()],
        "default_data": escape_keys(campaign.default_data),
        "active": campaign.active,
        "created_at": campaign.created_at,
        "updated_at": campaign.updated_at,
    }


def document_to_campaign(document: dict[str, Any]) -> Campaign:
    """The campaign stored as ``document``."""
    created_at = as_utc(document.get("created_at"))
    updated_at = as_utc(document.get("updated_at")) or created_at
    assert created_at is not None and updated_at is not None, "campaigns have times"
    return Campaign(
        id=document["_id"],
        name=document["name"],
        channel=Channel(document["channel"]),
        content=document_to_content(document["content"]),
        created_at=created_at,
        updated_at=updated_at,
        description=document.get("description"),
        variants={v["language"]: document_to_content(v) for v in document.get("variants") or []},
        default_data=unescape_keys(document.get("default_data") or {}),
        active=bool(document.get("active", True)),
    )


# -- deliveries ------------------------------------------------------------------------------


def delivery_to_document(delivery: Delivery) -> dict[str, Any]:
    """The document of ``delivery``."""
    return {
        "_id": delivery.id,
        "job_id": delivery.job_id,
        "campaign_id": delivery.campaign_id,
        "customer_id": delivery.customer_id,
        "channel": delivery.channel.value,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "last_error": delivery.last_error,
        "skip_reason": delivery.skip_reason,
        "message_id": delivery.message_id,
        "language": delivery.language,
        "subject": delivery.subject,
        "created_at": delivery.created_at,
        "sent_at": delivery.sent_at,
        "updated_at": delivery.updated_at,
    }


def document_to_delivery(document: dict[str, Any]) -> Delivery:
    """The delivery stored as ``document``."""
    created_at = as_utc(document.get("created_at"))
    assert created_at is not None, "deliveries always have a creation time"
    return Delivery(
        id=document["_id"],
        job_id=document["job_id"],
        campaign_id=document["campaign_id"],
        customer_id=document["customer_id"],
        channel=Channel(document["channel"]),
        created_at=created_at,
        status=DeliveryStatus(document["status"]),
        attempts=int(document.get("attempts") or 0),
        last_error=document.get("last_error"),
        skip_reason=document.get("skip_reason"),
        message_id=document.get("message_id"),
        language=document.get("language"),
        subject=document.get("subject"),
        sent_at=as_utc(document.get("sent_at")),
        updated_at=as_utc(document.get("updated_at")),
    )


# -- conversations ---------------------------------------------------------------------------

#: Added to milliseconds since 1970 so that every datetime (year 1 on) gives a non-negative
#: number: 1970-01-01 minus 0001-01-01, in milliseconds.
_EPOCH_SHIFT_MS = 62_135_596_800_000


def message_order(created_at: datetime, tiebreak: int) -> str:
    """The ``order`` field of a stored message: one string that sorts (binary comparison)
    by ``created_at`` at BSON's millisecond precision, then by ``tiebreak``.

    ``$push`` sorts the messages array by it. One field, because a ``$sort`` on two fields
    is not supported everywhere (mongomock sorts by one), and a total order, because the
    server's ``$sort`` is not stable: messages of the same millisecond keep the order in
    which they were stored only through ``tiebreak`` (increasing with each stored message).
    """
    aware = created_at if created_at.tzinfo is not None else created_at.replace(tzinfo=UTC)
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    millis = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    return f"{millis + _EPOCH_SHIFT_MS:015d}.{tiebreak:020d}"


def message_to_document(message: Message, tiebreak: int) -> dict[str, Any]:
    """The embedded document of ``message`` (``tiebreak``: see :func:`message_order`)."""
    return {
        "id": message.id,
        "role": message.role.value,
        "content": message.content,
        "created_at": message.created_at,
        "metadata": escape_keys(message.metadata),
        "order": message_order(message.created_at, tiebreak),
    }


def document_to_message(document: dict[str, Any]) -> Message:
    """The message stored as ``document``."""
    created_at = as_utc(document.get("created_at"))
    assert created_at is not None, "messages always have a time"
    return Message(
        id=document["id"],
        role=MessageRole(document["role"]),
        content=document["content"],
        created_at=created_at,
        metadata=unescape_keys(document.get("metadata") or {}),
    )


def conversation_to_document(conversation: Conversation,
                             tiebreaks: list[int]) -> dict[str, Any]:
    """The document of ``conversation``; ``tiebreaks`` holds one increasing number per
    message (see :func:`message_order`)."""
    return {
        "_id": conversation.id,
        "customer_id": conversation.customer_id,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "summary": conversation.summary,
        "messages": [message_to_document(m, t)
                     for m, t in zip(conversation.messages, tiebreaks, strict=True)],
    }


def document_to_conversation(document: dict[str, Any]) -> Conversation:
    """The conversation stored as ``document``, messages in their stored (time) order."""
    created_at = as_utc(document.get("created_at"))
    updated_at = as_utc(document.get("updated_at")) or created_at
    assert created_at is not None and updated_at is not None, "conversations have times"
    return Conversation(
        id=document["_id"],
        customer_id=document["customer_id"],
        created_at=created_at,
        updated_at=updated_at,
        messages=[document_to_message(m) for m in document.get("messages") or []],
        summary=document.get("summary"),
    )


# -- idempotency -----------------------------------------------------------------------------


def idempotency_id(scope: str, key: str) -> str:
    """The ``_id`` of a claim: ``"<scope>:<key>"`` with ``%`` and ``:`` of the scope
    percent-escaped, so that no two ``(scope, key)`` pairs share an id."""
    escaped = scope.replace("%", "%25").replace(":", "%3A")
    return f"{escaped}:{key}"
