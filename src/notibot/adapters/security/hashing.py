"""Password hashing with argon2id (argon2-cffi)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from notibot.application.ports import PasswordHasher


class Argon2PasswordHasher(PasswordHasher):
    """argon2id (RFC 9106) with argon2-cffi's defaults, which follow the RFC's second
    recommended option. Hashing runs in a thread so the event loop keeps serving.

    Parameters:
        time_cost, memory_cost (KiB), parallelism: override the defaults (tests use cheap
            values; production keeps the defaults).
    """

    def __init__(self, *, time_cost: int | None = None, memory_cost: int | None = None,
                 parallelism: int | None = None) -> None:
        overrides = {k: v for k, v in (("time_cost", time_cost), ("memory_cost", memory_cost),
                                       ("parallelism", parallelism)) if v is not None}
        self._hasher = _Argon2(**overrides)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)
