"""System adapters: the real clock and id generator."""

from __future__ import annotations

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


__all__ = ["SystemClock", "UuidIdGenerator"]
