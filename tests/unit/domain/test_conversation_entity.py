"""Conversation: ordered messages and their validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notibot.domain import Conversation, InvalidInput, Message, MessageRole
from notibot.domain.conversation import MESSAGE_MAX_LENGTH

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def message(id: str, second: float, role: MessageRole = MessageRole.CUSTOMER,
            content: str | None = None) -> Message:
    return Message(id=id, role=role, content=content or f"text {id}", created_at=at(second))


def conversation() -> Conversation:
    return Conversation(id="s1", customer_id="c1", created_at=T0, updated_at=T0)


def test_messages_are_kept_in_time_order_whatever_the_append_order() -> None:
    chat = conversation()

    for m in (message("m3", 30), message("m1", 10), message("m4", 40), message("m2", 20)):
        chat.append(m)

    assert [m.id for m in chat.messages] == ["m1", "m2", "m3", "m4"]


def test_messages_with_equal_times_keep_their_append_order() -> None:
    chat = conversation()

    chat.append(message("a", 10))
    chat.append(message("b", 10, MessageRole.ASSISTANT))
    chat.append(message("c", 5))
    chat.append(message("d", 10))

    assert [m.id for m in chat.messages] == ["c", "a", "b", "d"]


def test_updated_at_follows_the_newest_message_only() -> None:
    chat = conversation()

    chat.append(message("m2", 20))
    chat.append(message("m1", 10))

    assert chat.updated_at == at(20)


@pytest.mark.parametrize("content", ["", "   ", "\n\t"])
def test_empty_messages_are_refused(content: str) -> None:
    chat = conversation()

    with pytest.raises(InvalidInput) as exc:
        chat.append(Message(id="m1", role=MessageRole.CUSTOMER, content=content,
                            created_at=at(1)))

    assert exc.value.code == "missing_message"
    assert chat.messages == []
    assert chat.updated_at == T0


@pytest.mark.parametrize("role", [MessageRole.CUSTOMER, MessageRole.ASSISTANT,
                                  MessageRole.OPERATOR])
def test_chat_messages_are_limited_in_length(role: MessageRole) -> None:
    chat = conversation()
    chat.append(message("ok", 1, role, "x" * MESSAGE_MAX_LENGTH))

    with pytest.raises(InvalidInput) as exc:
        chat.append(message("long", 2, role, "x" * (MESSAGE_MAX_LENGTH + 1)))

    assert exc.value.code == "invalid_message"
    assert [m.id for m in chat.messages] == ["ok"]


def test_notifications_may_be_longer_than_chat_messages() -> None:
    chat = conversation()

    chat.append(message("n1", 1, MessageRole.NOTIFICATION, "x" * (MESSAGE_MAX_LENGTH * 5)))

    assert chat.messages[0].role is MessageRole.NOTIFICATION


def test_tail_returns_the_last_messages_oldest_first() -> None:
    chat = conversation()
    for i in range(5):
        chat.append(message(f"m{i}", i))

    assert [m.id for m in chat.tail(2)] == ["m3", "m4"]
    assert [m.id for m in chat.tail(10)] == ["m0", "m1", "m2", "m3", "m4"]
    assert chat.tail(0) == []
    with pytest.raises(InvalidInput):
        chat.tail(-1)
