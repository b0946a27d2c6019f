"""System adapters: the real clock and id generator."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

from notibot.application.ports import Clock, IdGenerator

#: Byte -> the same byte with its top four bits set to the UUID version (4), and with its two
#: top bits set to the RFC 9562 variant (10).
_VERSION = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))


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
        ``os.urandom`` call without a Python step per id: the version and variant bits are
        set on every 16th byte at once (``bytes.translate`` on an extended slice), and the
        hex text is split into ids at a separator ``bytes.hex`` puts after every 16 bytes."""
        if count <= 0:
            return []
        raw = bytearray(os.urandom(16 * count))
        raw[6::16] = raw[6::16].translate(_VERSION)  # byte 6: version in the high nibble
        raw[8::16] = raw[8::16].translate(_VARIANT)  # byte 8: variant in the two top bits
        return raw.hex(" ", 16).split(" ")


__all__ = ["SystemClock", "UuidIdGenerator"]
