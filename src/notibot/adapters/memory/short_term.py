"""In-memory short-term chat memory: the embedded default of :class:`ShortTermMemory` and the
fake for tests.

Expiry is measured with the injected :class:`~notibot.application.ports.Clock`, so a test with
a :class:`~notibot.testing.FakeClock` expires a window by advancing the clock, without
sleeping.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from notibot.adapters.memory.copies import frozen_message
from notibot.application.ports import Clock, ShortTermMemory, ShortTermStats
from notibot.domain import InvalidInput, Message

#: Expired windows of other conversations are dropped once every this many writes (a window
#: is also dropped as soon as its own conversation is read or written after it expired).
SWEEP_EVERY = 1000


def _require_json_metadata(messages: Sequence[Message]) -> None:
    """Raise InvalidInput unless every message's metadata survives a JSON round trip unchanged
    (what the Redis adapter stores), so this fake rejects what production would reject."""
    for message in messages:
        try:
            same = json.loads(json.dumps(message.metadata, allow_nan=False)) == message.metadata
        except (TypeError, ValueError):
            same = False
        if not same:
            raise InvalidInput(
                f"metadata of message {message.id} is not plain JSON (objects with string "
                "keys, lists, strings, finite numbers, booleans, null)",
                code="invalid_metadata", details={"message_id": message.id})


@dataclass(slots=True)
class _Window:
    messages: deque[Message]
    expires_at: datetime


class MemoryShortTermMemory(ShortTermMemory):
    """Windows in a dict: one ``deque(maxlen=max_messages)`` per conversation id and the time
    it expires.

    Thread-safe (one ``threading.Lock``, never held across an ``await``: the clock is read
    before the lock is taken). Stores read-only deep copies of the messages
    (:func:`~notibot.adapters.memory.copies.frozen_message`) and returns them in new lists:
    changing a message's ``metadata`` after writing it changes nothing stored, and the
    metadata of a returned message refuses changes (TypeError) instead of being copied on
    every read (a chat turn reads the whole window).

    Parameters:
        clock: the time source of expiry (a ``FakeClock`` in tests).
        max_messages: the cap of one window (NOTIBOT_SHORT_TERM_MAX), >= 1.
        ttl_seconds: seconds a window lives after its last write (NOTIBOT_SHORT_TERM_TTL),
            > 0.

    Raises:
        ValueError: ``max_messages`` < 1 or ``ttl_seconds`` <= 0.
    """

    def __init__(self, clock: Clock, *, max_messages: int = 50,
                 ttl_seconds: float = 1800) -> None:
        super().__init__(max_messages=max_messages, ttl_seconds=ttl_seconds)
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_seconds)
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}
        self._writes = 0

    def _live(self, conversation_id: str, now: datetime) -> _Window | None:
        """The unexpired window (call with the lock held); an expired one is dropped."""
        window = self._windows.get(conversation_id)
        if window is not None and window.expires_at <= now:
            del self._windows[conversation_id]
            return None
        return window

    def _wrote(self, now: datetime) -> None:
        """Count a write and drop every expired window now and then (lock held)."""
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            expired = [key for key, w in self._windows.items() if w.expires_at <= now]
            for key in expired:
                del self._windows[key]

    async def append(self, conversation_id: str, messages: Sequence[Message]) -> None:
        """Append ``messages`` (in order), keep the newest ``max_messages`` and set the window
        to expire ``ttl_seconds`` from now, in one step under the lock. An empty
        ``messages`` changes nothing (it neither creates a window nor refreshes its expiry).

        Raises:
            InvalidInput: code ``invalid_metadata`` when a message's metadata is not plain
                JSON; nothing is written then.
        """
        if not messages:
            return
        _require_json_metadata(messages)
        stored = [frozen_message(m) for m in messages[-self.max_messages:]]
        now = await self._clock.now()
        expires_at = now + self._ttl
        with self._lock:
            window = self._live(conversation_id, now)
            if window is None:
                window = self._windows[conversation_id] = _Window(
                    deque(maxlen=self.max_messages), expires_at)
            window.messages.extend(stored)
            # never move an expiry back (a caller that read the clock earlier but took the
            # lock later must not shorten what a later write set)
            window.expires_at = max(window.expires_at, expires_at)
            self._wrote(now)

    async def recent(self, conversation_id: str) -> list[Message]:
        """The window's messages, oldest first (a new list of read-only messages); ``[]`` when
        the window
        expired or never existed."""
        now = await self._clock.now()
        with self._lock:
            window = self._live(conversation_id, now)
            snapshot = list(window.messages) if window is not None else []
        return snapshot  # read-only messages: shared, never changed in place

    async def replace(self, conversation_id: str, messages: Sequence[Message]) -> None:
        """Make the window exactly the newest ``max_messages`` of ``messages``, expiring
        ``ttl_seconds`` from now; an empty ``messages`` deletes the window.

        Raises:
            InvalidInput: code ``invalid_metadata`` when a message's metadata is not plain
                JSON; the window is unchanged then.
        """
        if not messages:
            await self.delete(conversation_id)
            return
        _require_json_metadata(messages)
        stored = [frozen_message(m) for m in messages[-self.max_messages:]]
        now = await self._clock.now()
        with self._lock:
            self._windows[conversation_id] = _Window(
                deque(stored, maxlen=self.max_messages), now + self._ttl)
            self._wrote(now)

    async def delete(self, conversation_id: str) -> None:
        """Forget the window; no error when there is none."""
        with self._lock:
            self._windows.pop(conversation_id, None)

    async def stats(self, conversation_id: str) -> ShortTermStats:
        """``count`` of messages in the window and ``ttl_seconds`` left (float seconds);
        ``ShortTermStats(0, None)`` when the window expired or never existed."""
        now = await self._clock.now()
        with self._lock:
            window = self._live(conversation_id, now)
            if window is None:
                return ShortTermStats(count=0, ttl_seconds=None)
            return ShortTermStats(count=len(window.messages),
                                  ttl_seconds=(window.expires_at - now).total_seconds())
