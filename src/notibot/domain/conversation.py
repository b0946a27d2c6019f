"""Conversation: one chat session of a customer, with its ordered messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from notibot.domain.errors import InvalidInput
from notibot.domain.rules import require_text

#: Longest message notibot accepts from a customer, in characters.
MESSAGE_MAX_LENGTH = 8_000


class MessageRole(StrEnum):
    """Who wrote a message. ``notification`` messages record delivered campaigns so the bot
    can refer to them; ``operator`` messages are written by a human agent."""

    CUSTOMER = "customer"
    ASSISTANT = "assistant"
    NOTIFICATION = "notification"
    OPERATOR = "operator"


@dataclass(slots=True, frozen=True)
class Message:
    """One message. ``metadata`` holds model, token usage, latency, delivery id, ..."""

    id: str
    role: MessageRole
    content: str
    created_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Conversation:
    """A chat session (``id`` is the session id) of one customer.

    Rules: messages are kept in time order; a message must have non-empty content of at most
    :data:`MESSAGE_MAX_LENGTH` characters (notifications may be longer: they are rendered
    campaign bodies).
    """

    id: str
    customer_id: str
    created_at: datetime
    updated_at: datetime
    messages: list[Message] = field(default_factory=list)
    summary: str | None = None

    def append(self, message: Message) -> None:
        """Add ``message`` at its place in time order (stable for equal times).

        Raises:
            InvalidInput: code ``missing_message`` or ``invalid_message``.
        """
        limit = None if message.role is MessageRole.NOTIFICATION else MESSAGE_MAX_LENGTH
        require_text(message.content, "message", max_length=limit or 10_000_000)
        index = len(self.messages)
        while index > 0 and self.messages[index - 1].created_at > message.created_at:
            index -= 1
        self.messages.insert(index, message)
        if message.created_at > self.updated_at:
            self.updated_at = message.created_at

    def tail(self, count: int) -> list[Message]:
        """The last ``count`` messages, oldest first."""
        if count < 0:
            raise InvalidInput("count must be >= 0")
        return self.messages[-count:] if count else []
