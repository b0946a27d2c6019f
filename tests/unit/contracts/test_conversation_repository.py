"""Contract of the ConversationRepository port (long-term memory): every adapter must pass
these tests.

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
from typing import Any

import pytest
from mongo_support import mongo_adapters

from notibot.adapters.memory import MemoryConversationRepository
from notibot.adapters.mongo import MongoConversationRepository
from notibot.application.ports import ConversationRepository
from notibot.domain import Conflict, Conversation, Message, MessageRole, NotFound


@asynccontextmanager
async def memory_repository() -> AsyncIterator[ConversationRepository]:
    yield MemoryConversationRepository()


ADAPTERS = [pytest.param(memory_repository, id="memory"),
            *mongo_adapters(MongoConversationRepository)]

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=ADAPTERS)
async def repo(request: pytest.FixtureRequest) -> AsyncIterator[ConversationRepository]:
    async with request.param() as repository:
        yield repository


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def msg(id: str, second: float, *, role: MessageRole = MessageRole.CUSTOMER,
        content: str | None = None, metadata: dict[str, Any] | None = None) -> Message:
    return Message(id=id, role=role, content=content or f"message {id}", created_at=at(second),
                   metadata=metadata or {})


def make(id: str, customer: str = "alice", *, second: float = 0,
         messages: list[Message] | None = None) -> Conversation:
    conversation = Conversation(id=id, customer_id=customer, created_at=at(second),
                                updated_at=at(second))
    for message in messages or []:
        conversation.append(message)
    return conversation


# -- add / get / copies ----------------------------------------------------------------------


async def test_add_then_get_returns_an_equal_conversation(
    repo: ConversationRepository,
) -> None:
    conversation = make("s1", messages=[
        msg("m1", 1, content="Xin chào"),
        msg("m2", 2.5, role=MessageRole.ASSISTANT,
            metadata={"model": "gemini", "usage": {"input.tokens": 12, "$cost": 0.5},
                      "100%": [1, {"a.b": None}]}),
        msg("m3", 3, role=MessageRole.NOTIFICATION,
            metadata={"delivery_id": "d1", "campaign": "Tet"}),
    ])
    conversation.summary = "greeting"
    await repo.add(conversation)

    assert await repo.get("s1") == conversation


async def test_get_and_latest_with_tail_return_only_the_newest_messages(
    repo: ConversationRepository,
) -> None:
    conversation = make("s1", messages=[msg(f"m{n}", n) for n in range(1, 8)])
    conversation.summary = "seven"
    await repo.add(conversation)
    await repo.append("s1", msg("m0", 0.5))  # lands first in time order

    three = await repo.get("s1", tail=3)
    assert [m.id for m in three.messages] == ["m5", "m6", "m7"]
    assert (three.id, three.customer_id, three.summary) == ("s1", "alice", "seven")
    assert three.updated_at == at(7)
    assert [m.id for m in (await repo.get("s1", tail=100)).messages] == [
        "m0", *(f"m{n}" for n in range(1, 8))]
    assert (await repo.get("s1", tail=0)).messages == []
    latest = await repo.latest_for_customer("alice", tail=2)
    assert latest is not None and [m.id for m in latest.messages] == ["m6", "m7"]
    assert len((await repo.get("s1")).messages) == 8  # the stored conversation is whole


async def test_a_taken_id_raises_conversation_conflict(repo: ConversationRepository) -> None:
    await repo.add(make("s1", "alice"))

    with pytest.raises(Conflict) as exc:
        await repo.add(make("s1", "bob"))

    assert exc.value.code == "conversation_conflict"
    assert (await repo.get("s1")).customer_id == "alice"


async def test_get_unknown_raises_conversation_not_found(repo: ConversationRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.get("ghost")

    assert exc.value.code == "conversation_not_found"


async def test_returned_conversations_are_copies(repo: ConversationRepository) -> None:
    original = make("s1", messages=[msg("m1", 1, metadata={"tags": ["a"]})])
    await repo.add(original)
    original.messages.append(msg("m9", 9))

    got = await repo.get("s1")
    got.messages[0].metadata["tags"].append("b")
    got.messages.clear()
    got.summary = "tampered"
    latest = await repo.latest_for_customer("alice")
    assert latest is not None
    latest.messages.append(msg("m8", 8))
    listed = (await repo.list_for_customer("alice", limit=10, offset=0)).items[0]
    listed.updated_at = at(99)

    assert await repo.get("s1") == make("s1", messages=[msg("m1", 1, metadata={"tags": ["a"]})])


# -- append ----------------------------------------------------------------------------------


async def test_append_keeps_time_order_and_moves_updated_at_forward(
    repo: ConversationRepository,
) -> None:
    await repo.add(make("s1", messages=[msg("m1", 1), msg("m3", 3)]))

    await repo.append("s1", msg("m4", 4, role=MessageRole.ASSISTANT))
    await repo.append("s1", msg("m2", 2, role=MessageRole.OPERATOR))  # late: goes to its place

    stored = await repo.get("s1")
    assert [m.id for m in stored.messages] == ["m1", "m2", "m3", "m4"]
    assert stored.messages[1].role is MessageRole.OPERATOR
    assert stored.updated_at == at(4)  # never moved back by the older message


async def test_append_matches_the_domain(repo: ConversationRepository) -> None:
    expected = make("s1", messages=[msg("m1", 5)])
    await repo.add(make("s1", messages=[msg("m1", 5)]))
    for message in (msg("m2", 2), msg("m3", 7), msg("m4", 5), msg("m5", 7)):
        expected.append(message)
        await repo.append("s1", message)

    assert await repo.get("s1") == expected


async def test_messages_of_the_same_time_keep_the_order_they_were_stored_in(
    repo: ConversationRepository,
) -> None:
    await repo.add(make("s1", messages=[msg("a", 1), msg("b", 1)]))
    for id in "cdefghijkl":
        await repo.append("s1", msg(id, 1))
    await repo.append("s1", msg("first", 0))

    stored = await repo.get("s1")
    assert [m.id for m in stored.messages] == ["first", *"abcdefghijkl"]


async def test_append_to_unknown_raises_not_found(repo: ConversationRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.append("ghost", msg("m1", 1))

    assert exc.value.code == "conversation_not_found"


async def test_the_appended_message_is_a_copy(repo: ConversationRepository) -> None:
    await repo.add(make("s1"))
    message = msg("m1", 1, metadata={"usage": {"tokens": 3}})

    await repo.append("s1", message)
    message.metadata["usage"]["tokens"] = 999

    assert (await repo.get("s1")).messages[0].metadata == {"usage": {"tokens": 3}}


async def test_concurrent_appends_all_land_in_time_order(repo: ConversationRepository) -> None:
    await repo.add(make("s1"))
    seconds = [7, 3, 11, 1, 19, 5, 13, 2, 17, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67]

    await asyncio.gather(*(repo.append("s1", msg(f"m{s}", s)) for s in seconds))

    stored = await repo.get("s1")
    assert [m.id for m in stored.messages] == [f"m{s}" for s in sorted(seconds)]
    assert stored.updated_at == at(max(seconds))


# -- per customer ----------------------------------------------------------------------------


async def test_latest_for_customer_is_the_most_recently_updated(
    repo: ConversationRepository,
) -> None:
    await repo.add(make("old", "alice", second=0))
    await repo.add(make("new", "alice", second=10))
    await repo.add(make("other", "bob", second=20))

    latest = await repo.latest_for_customer("alice")
    assert latest is not None and latest.id == "new"

    await repo.append("old", msg("m1", 30))

    latest = await repo.latest_for_customer("alice")
    assert latest is not None and latest.id == "old"
    assert [m.id for m in latest.messages] == ["m1"]
    assert await repo.latest_for_customer("nobody") is None


async def test_list_for_customer_most_recently_updated_first_with_paging(
    repo: ConversationRepository,
) -> None:
    for id, second in (("s1", 1), ("s2", 2), ("s3", 3), ("s4", 4)):
        await repo.add(make(id, "alice", second=second, messages=[msg(f"{id}-m", second)]))
    await repo.add(make("b1", "bob", second=5))
    await repo.append("s2", msg("s2-late", 10))

    first = await repo.list_for_customer("alice", limit=3, offset=0)
    rest = await repo.list_for_customer("alice", limit=3, offset=3)
    none = await repo.list_for_customer("nobody", limit=3, offset=0)

    assert [c.id for c in first.items] == ["s2", "s4", "s3"]
    assert [c.id for c in rest.items] == ["s1"]
    assert first.total == rest.total == 4
    assert [m.id for m in first.items[0].messages] == ["s2-m", "s2-late"]
    assert none.items == [] and none.total == 0


# -- append_to_latest ------------------------------------------------------------------------


async def test_append_to_latest_appends_to_the_most_recently_updated(
    repo: ConversationRepository,
) -> None:
    await repo.add(make("old", "alice", second=0, messages=[msg("m1", 1)]))
    await repo.add(make("new", "alice", second=10))
    await repo.add(make("other", "bob", second=20))
    await repo.append("old", msg("m2", 30))  # "old" is now the latest
    expected = await repo.get("old")
    notification = msg("n1", 25, role=MessageRole.NOTIFICATION,
                       metadata={"delivery_id": "d1", "campaign.name": "Tết"})
    expected.append(notification)

    used = await repo.append_to_latest("alice", notification, new_conversation_id="unused")

    assert used == "old"
    assert await repo.get("old") == expected  # in time order, updated_at not moved back
    assert [m.id for m in (await repo.get("old")).messages] == ["m1", "n1", "m2"]
    assert (await repo.get("new")).messages == []
    assert (await repo.get("other")).messages == []
    with pytest.raises(NotFound):
        await repo.get("unused")


async def test_append_to_latest_moves_updated_at_forward(repo: ConversationRepository) -> None:
    await repo.add(make("s1", "alice", second=0))
    await repo.add(make("s2", "alice", second=5))

    assert await repo.append_to_latest("alice", msg("m1", 40),
                                       new_conversation_id="x1") == "s2"
    assert await repo.append_to_latest("alice", msg("m2", 41),
                                       new_conversation_id="x2") == "s2"

    latest = await repo.latest_for_customer("alice")
    assert latest is not None and latest.id == "s2" and latest.updated_at == at(41)
    assert [m.id for m in latest.messages] == ["m1", "m2"]


async def test_append_to_latest_starts_a_conversation_when_there_is_none(
    repo: ConversationRepository,
) -> None:
    await repo.add(make("b1", "bob", second=0))
    notification = msg("n1", 7, role=MessageRole.NOTIFICATION, content="Ưu đãi\n\nXin chào",
                       metadata={"delivery_id": "d1", "message_id": None})

    used = await repo.append_to_latest("alice", notification, new_conversation_id="a1")

    expected = Conversation(id="a1", customer_id="alice", created_at=at(7), updated_at=at(7),
                            messages=[notification])
    assert used == "a1"
    assert await repo.get("a1") == expected
    assert await repo.latest_for_customer("alice") == expected
    assert (await repo.list_for_customer("alice", limit=10, offset=0)).total == 1
    assert await repo.append_to_latest("alice", msg("n2", 8),
                                       new_conversation_id="a2") == "a1"
    assert [m.id for m in (await repo.get("a1")).messages] == ["n1", "n2"]


async def test_append_to_latest_with_a_taken_new_id_raises_conflict(
    repo: ConversationRepository,
) -> None:
    await repo.add(make("s1", "bob", messages=[msg("m1", 1)]))

    with pytest.raises(Conflict) as exc:
        await repo.append_to_latest("alice", msg("n1", 2), new_conversation_id="s1")

    assert exc.value.code == "conversation_conflict"
    assert await repo.latest_for_customer("alice") is None
    assert [m.id for m in (await repo.get("s1")).messages] == ["m1"]
    assert (await repo.get("s1")).customer_id == "bob"


async def test_the_message_given_to_append_to_latest_is_copied(
    repo: ConversationRepository,
) -> None:
    message = msg("n1", 1, metadata={"usage": {"tokens": 3}})
    await repo.append_to_latest("alice", message, new_conversation_id="a1")
    message.metadata["usage"]["tokens"] = 999
    got = await repo.get("a1")
    got.messages[0].metadata["usage"]["tokens"] = 7

    assert (await repo.get("a1")).messages[0].metadata == {"usage": {"tokens": 3}}


async def test_concurrent_append_to_latest_of_one_customer_all_land(
    repo: ConversationRepository,
) -> None:
    await repo.add(make("s1", "alice"))
    seconds = [7, 3, 11, 1, 19, 5, 13, 2, 17, 23]

    used = await asyncio.gather(*(repo.append_to_latest("alice", msg(f"m{s}", s),
                                                        new_conversation_id=f"x{s}")
                                  for s in seconds))

    assert set(used) == {"s1"}
    stored = await repo.get("s1")
    assert [m.id for m in stored.messages] == [f"m{s}" for s in sorted(seconds)]
    assert stored.updated_at == at(max(seconds))


# -- delete ----------------------------------------------------------------------------------


async def test_delete_removes_the_conversation(repo: ConversationRepository) -> None:
    await repo.add(make("s1", "alice", messages=[msg("m1", 1)]))
    await repo.add(make("s2", "alice"))

    await repo.delete("s1")

    with pytest.raises(NotFound):
        await repo.get("s1")
    with pytest.raises(NotFound):
        await repo.append("s1", msg("m2", 2))
    assert [c.id for c in (await repo.list_for_customer("alice", limit=10, offset=0)).items] \
        == ["s2"]


async def test_after_delete_append_to_latest_uses_the_conversations_left(
    repo: ConversationRepository,
) -> None:
    await repo.add(make("s1", "alice", second=1))
    await repo.add(make("s2", "alice", second=2))

    await repo.delete("s2")
    assert await repo.append_to_latest("alice", msg("m1", 3), new_conversation_id="x1") == "s1"
    await repo.delete("s1")
    assert await repo.append_to_latest("alice", msg("m2", 4), new_conversation_id="x2") == "x2"

    assert [c.id for c in (await repo.list_for_customer("alice", limit=10, offset=0)).items] \
        == ["x2"]


async def test_delete_unknown_raises_not_found(repo: ConversationRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.delete("ghost")

    assert exc.value.code == "conversation_not_found"


# -- threads (memory) ------------------------------------------------------------------------


def test_threads_appending_to_one_conversation_all_land_in_memory() -> None:
    repo = MemoryConversationRepository()
    asyncio.run(repo.add(make("s1")))
    threads = 16
    barrier = threading.Barrier(threads)

    def append(i: int) -> None:
        barrier.wait()
        for j in range(10):
            asyncio.run(repo.append("s1", msg(f"m{i}-{j}", threads * j + i)))

    workers = [threading.Thread(target=append, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)

    stored = asyncio.run(repo.get("s1"))
    assert len(stored.messages) == threads * 10
    assert [m.created_at for m in stored.messages] == sorted(m.created_at
                                                             for m in stored.messages)
    assert stored.updated_at == at(threads * 10 - 1)
