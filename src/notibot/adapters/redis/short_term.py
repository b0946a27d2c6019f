"""Short-term chat memory in Redis: one capped, expiring list per conversation.

Every process that talks to the same Redis (the API server, any number of workers) shares the
windows. The client is the per-event-loop client of a
:class:`~notibot.adapters.redis.RedisConnection`: building the adapter opens nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from notibot.adapters.redis.client import RedisConnection, redis_errors_translated
from notibot.application.ports import ShortTermMemory, ShortTermStats
from notibot.domain import InvalidInput, Message, MessageRole, ServiceUnavailable

#: Prefix of the Redis keys: the window of conversation ``c`` is the list ``<prefix>c``.
DEFAULT_KEY_PREFIX = "notibot:stm:"

#: Target named in the messages of translated errors.
_TARGET = "the short-term memory's redis"


def message_to_document(message: Message) -> str:
    """The JSON document of ``message`` stored as one list element:
    ``{"id", "role", "content", "created_at", "metadata"}`` with ``created_at`` in ISO-8601
    with its UTC offset (``2026-01-01T16:00:00.123456+07:00``) and ``metadata`` as a JSON
    object. Non-ASCII text is escaped (``\\u`` and four hex digits, e.g. ``\\u1ebf``
    for "ế"), so any Python string, even one holding a lone surrogate, is stored and read
    back unchanged.

    Raises:
        InvalidInput: code ``invalid_metadata`` when the metadata is not plain JSON, i.e. would
            not come back equal (tuples, non-string keys, NaN, dates, other objects).
    """
    problem = InvalidInput(
        f"metadata of message {message.id} is not plain JSON (objects with string keys, lists, "
        "strings, finite numbers, booleans, null)",
        code="invalid_metadata", details={"message_id": message.id})
    document = {"id": message.id, "role": str(message.role), "content": message.content,
                "created_at": message.created_at.isoformat(), "metadata": message.metadata}
    try:
        text = json.dumps(document, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise problem from None
    if json.loads(text)["metadata"] != message.metadata:
        raise problem
    return text


def document_to_message(document: str | bytes) -> Message:
    """The message stored as ``document`` (see :func:`message_to_document`).

    Raises:
        ServiceUnavailable: code ``redis_error`` when the element is not such a document
            (written by something else).
    """
    try:
        data: dict[str, Any] = json.loads(document)
        return Message(id=data["id"], role=MessageRole(data["role"]), content=data["content"],
                       created_at=datetime.fromisoformat(data["created_at"]),
                       metadata=data.get("metadata") or {})
    except (ValueError, KeyError, TypeError) as exc:
        raise ServiceUnavailable(
            f"{_TARGET} holds a short-term memory element that is not a message document",
            code="redis_error", details={"error": type(exc).__name__}) from exc


class RedisShortTermMemory(ShortTermMemory):
    """Windows as Redis lists: the window of a conversation is the list
    ``<key_prefix><conversation_id>``, one JSON document per message (see
    :func:`message_to_document`), oldest first, capped with LTRIM and expiring with PEXPIRE.

    Atomicity: every write is one MULTI/EXEC transaction pipeline (one round trip).
    ``append`` is RPUSH + LTRIM ``-max_messages -1`` + PEXPIRE and ``replace`` is DEL + RPUSH
    + PEXPIRE: no command depends on the reply of another, so a transaction is enough and
    there is no Lua script to load, cache (NOSCRIPT after a restart or failover) or keep in
    step with Python. Redis runs a transaction's commands with no other client's command in
    between, so concurrent appends from any number of clients never lose a message below the
    cap, and a window never exists without its expiry. (MULTI/EXEC does not roll back: if
    the key held another type, RPUSH would fail and the error would be raised.) Reads are
    LRANGE, and LLEN + PTTL in one transaction for :meth:`stats`.

    Parameters:
        connection: the container's :class:`RedisConnection` (one client per event loop).
        max_messages: the cap of one window (NOTIBOT_SHORT_TERM_MAX), >= 1.
        ttl_seconds: seconds a window lives after its last write (NOTIBOT_SHORT_TERM_TTL),
            > 0; stored in whole milliseconds (at least 1).
        key_prefix: prefix of the Redis keys; adapters with the same prefix share windows.

    Raises:
        ValueError: ``max_messages`` < 1 or ``ttl_seconds`` <= 0.

    Every method raises :class:`~notibot.domain.ServiceUnavailable` with code
    ``redis_unavailable`` when Redis cannot be reached or times out, and ``redis_error``
    when it answers with an error.
    """

    def __init__(self, connection: RedisConnection, *, max_messages: int = 50,
                 ttl_seconds: float = 1800, key_prefix: str = DEFAULT_KEY_PREFIX) -> None:
        super().__init__(max_messages=max_messages, ttl_seconds=ttl_seconds)
        self.key_prefix = key_prefix
        self._connection = connection
        self._ttl_ms = max(1, round(ttl_seconds * 1000))

    def __repr__(self) -> str:
        return (f"RedisShortTermMemory({self._connection!r}, max_messages={self.max_messages}, "
                f"ttl_seconds={self.ttl_seconds:g}, key_prefix={self.key_prefix!r})")

    def redis_key(self, conversation_id: str) -> str:
        """The Redis key of the window of ``conversation_id``."""
        return f"{self.key_prefix}{conversation_id}"

    def _documents(self, messages: Sequence[Message]) -> list[str]:
        """The documents of the newest ``max_messages`` of ``messages`` (all are checked)."""
        documents = [message_to_document(m) for m in messages]
        return documents[-self.max_messages:]

    async def append(self, conversation_id: str, messages: Sequence[Message]) -> None:
        """Append ``messages`` (in order), keep the newest ``max_messages`` and set the window
        to expire ``ttl_seconds`` from now: RPUSH + LTRIM + PEXPIRE in one transaction. An
        empty ``messages`` changes nothing (it neither creates a window nor refreshes its
        expiry).

        Raises:
            InvalidInput: code ``invalid_metadata`` (nothing is written then).
            ServiceUnavailable: ``redis_unavailable`` or ``redis_error``.
        """
        if not messages:
            return
        documents = self._documents(messages)
        key = self.redis_key(conversation_id)
        with redis_errors_translated(_TARGET):
            async with self._connection.client().pipeline(transaction=True) as pipe:
                pipe.rpush(key, *documents)
                pipe.ltrim(key, -self.max_messages, -1)
                pipe.pexpire(key, self._ttl_ms)
                await pipe.execute()

    async def recent(self, conversation_id: str) -> list[Message]:
        """The window's messages, oldest first; ``[]`` when it expired or never existed.

        Raises:
            ServiceUnavailable: ``redis_unavailable``, or ``redis_error`` (also when an
                element is not a message document).
        """
        with redis_errors_translated(_TARGET):
            documents = await self._connection.client().lrange(
                self.redis_key(conversation_id), 0, -1)
        return [document_to_message(d) for d in documents]

    async def replace(self, conversation_id: str, messages: Sequence[Message]) -> None:
        """Make the window exactly the newest ``max_messages`` of ``messages``, expiring
        ``ttl_seconds`` from now: DEL + RPUSH + PEXPIRE in one transaction. An empty
        ``messages`` deletes the window (a single DEL).

        Raises:
            InvalidInput: code ``invalid_metadata`` (the window is unchanged then).
            ServiceUnavailable: ``redis_unavailable`` or ``redis_error``.
        """
        if not messages:
            await self.delete(conversation_id)
            return
        documents = self._documents(messages)
        key = self.redis_key(conversation_id)
        with redis_errors_translated(_TARGET):
            async with self._connection.client().pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.rpush(key, *documents)
                pipe.pexpire(key, self._ttl_ms)
                await pipe.execute()

    async def delete(self, conversation_id: str) -> None:
        """Forget the window (DEL); no error when there is none.

        Raises:
            ServiceUnavailable: ``redis_unavailable`` or ``redis_error``.
        """
        with redis_errors_translated(_TARGET):
            await self._connection.client().delete(self.redis_key(conversation_id))

    async def stats(self, conversation_id: str) -> ShortTermStats:
        """``count`` (LLEN) and ``ttl_seconds`` left (PTTL / 1000, millisecond precision), read
        in one transaction; ``ShortTermStats(0, None)`` when there is no window. A list
        without expiry (never written by this adapter) reports ``ttl_seconds`` None.

        Raises:
            ServiceUnavailable: ``redis_unavailable`` or ``redis_error``.
        """
        key = self.redis_key(conversation_id)
        with redis_errors_translated(_TARGET):
            async with self._connection.client().pipeline(transaction=True) as pipe:
                pipe.llen(key)
                pipe.pttl(key)
                count, pttl = await pipe.execute()
        return ShortTermStats(count=int(count),
                              ttl_seconds=pttl / 1000 if pttl is not None and pttl >= 0
                              else None)
