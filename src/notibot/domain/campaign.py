"""Campaign (the "notification config" of the HTTP API) and Delivery."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from notibot.domain.errors import InvalidInput, InvalidTransition
from notibot.domain.rules import normalize_language, require_text


class Channel(StrEnum):
    """How a campaign reaches a customer. ``chat`` only appends to the conversation."""

    EMAIL = "email"
    CHAT = "chat"


@dataclass(slots=True, frozen=True)
class CampaignContent:
    """The templates of one language: subject, plain-text body, optional HTML body.
    Template syntax is checked by the template renderer port, not here."""

    subject: str
    text_body: str
    html_body: str | None = None


@dataclass(slots=True)
class Campaign:
    """A reusable notification.

    Rules: ``name`` is non-empty (uniqueness is the repository's); the default ``content`` has
    a subject and a text body; ``variants`` are keyed by lower-case language code.
    """

    id: str
    name: str
    channel: Channel
    content: CampaignContent
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    variants: dict[str, CampaignContent] = field(default_factory=dict)
    default_data: dict[str, Any] = field(default_factory=dict)
    active: bool = True

    def __post_init__(self) -> None:
        self.name = require_text(self.name, "name", max_length=200)
        for content in (self.content, *self.variants.values()):
            require_text(content.subject, "subject", max_length=998)  # RFC 5322 line limit
            require_text(content.text_body, "text_body", max_length=1_000_000)
        self.variants = {normalize_language(k): v for k, v in self.variants.items()}

    def content_for(self, language: str | None) -> tuple[str | None, CampaignContent]:
        """Return ``(language, content)`` for a customer language: the exact variant, else the
        variant of its primary subtag (``pt-br`` -> ``pt``), else ``(None, default)``."""
        if language:
            lang = language.lower()
            for key in (lang, lang.split("-")[0]):
                if key in self.variants:
                    return key, self.variants[key]
        return None, self.content


class DeliveryStatus(StrEnum):
    """State of one campaign message to one customer."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(slots=True)
class Delivery:
    """One campaign message to one customer within one send job; unique per
    ``(job_id, customer_id)``, which makes sending idempotent."""

    id: str
    job_id: str
    campaign_id: str
    customer_id: str
    channel: Channel
    created_at: datetime
    status: DeliveryStatus = DeliveryStatus.QUEUED
    attempts: int = 0
    last_error: str | None = None
    skip_reason: str | None = None
    message_id: str | None = None
    language: str | None = None
    #: the rendered subject line, once rendered for sending (what the customer saw)
    subject: str | None = None
    sent_at: datetime | None = None
    updated_at: datetime | None = None

    def _require_open(self, action: str) -> None:
        if self.status is DeliveryStatus.SENT or self.status is DeliveryStatus.SKIPPED:
            raise InvalidTransition(f"cannot {action} delivery {self.id}: it is {self.status}",
                                    details={"delivery_id": self.id})

    def mark_sent(self, now: datetime, message_id: str | None) -> None:
        """queued|failed -> sent, counting the attempt."""
        self._require_open("send")
        self.status = DeliveryStatus.SENT
        self.attempts += 1
        self.message_id = message_id
        self.sent_at = self.updated_at = now
        self.last_error = None

    def mark_failed(self, now: datetime, error: str) -> None:
        """queued|failed -> failed with the server's reply, counting the attempt."""
        self._require_open("fail")
        self.status = DeliveryStatus.FAILED
        self.attempts += 1
        self.last_error = error
        self.updated_at = now

    def mark_skipped(self, now: datetime, reason: str) -> None:
        """queued -> skipped (no email, unsubscribed, ...)."""
        if self.status is not DeliveryStatus.QUEUED:
            raise InvalidTransition(f"cannot skip delivery {self.id}: it is {self.status}",
                                    details={"delivery_id": self.id})
        self.status = DeliveryStatus.SKIPPED
        self.skip_reason = reason
        self.updated_at = now


def check_channel(value: str) -> Channel:
    """Return the :class:`Channel` named ``value``. Raises InvalidInput (``invalid_channel``)."""
    try:
        return Channel(value)
    except ValueError:
        raise InvalidInput(f"channel must be one of: {', '.join(c.value for c in Channel)}",
                           code="invalid_channel", details={"field": "channel"}) from None
