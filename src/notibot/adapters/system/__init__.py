"""System adapters: the real clock and id generator."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

from notibot.application.ports import Clock, IdGenerator

#: Hex digit -> the same digit with the two top bits set to the RFC 9562 variant 10.
_VARIANT = {f"{n:x}": f"{8 | (n & 3):x}" for n in range(16)}


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
        digits = os.urandom(16 * count).hex()
        variant = _VARIANT
        # hex digit 12 is the version (4); digit 16 carries the variant bits (10xx)
        return [
            f"{digits[i:i + 12]}4{digits[i + 13:i + 16]}{variant[digits[i + 16]]}"
            f"{digits[i + 17:i + 32]}"
            for i in range(0, 32 * count, 32)
        ]


__all__ = ["SystemClock", "UuidIdGenerator"]
