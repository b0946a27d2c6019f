"""System adapters: the real clock and id generator."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

from notibot.application.ports import Clock, IdGenerator


class SystemClock(Clock):
    """The machine's clock, in UTC."""

    async def now(self) -> datetime:
        return datetime.now(UTC)


class UuidIdGenerator(IdGenerator):
    """Random UUID4 ids as 32 lower-case hex digits (RFC 9562 section 5.4)."""

    async def new_id(self) -> str:
        return uuid.uuid4().hex

    async def new_ids(self, count: int) -> list[str]:
        """Same format as :meth:`new_id` (version 4, RFC 9562 variant bits), built from one
        ``os.urandom`` call: a million ids in a fraction of a second."""
        raw = os.urandom(16 * count)
        ids = []
        for i in range(0, 16 * count, 16):
            n = int.from_bytes(raw[i:i + 16], "big")
            n = (n & ~(0xF000 << 64) | (0x4000 << 64)) & ~(0xC000 << 48) | (0x8000 << 48)
            ids.append(f"{n:032x}")
        return ids


__all__ = ["SystemClock", "UuidIdGenerator"]
