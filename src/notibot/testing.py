"""Helpers for tests of code that embeds notibot: an all-in-memory instance and fakes.

Example::

    from notibot.testing import memory_notibot

    async def test_my_service():
        app = memory_notibot(admin=("admin", "admin-password"))
        await app.start()
        ...
        await app.stop()

Nothing here opens a socket or touches the disk.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from notibot.adapters.security import Argon2PasswordHasher
from notibot.application.ports import Clock, EmailMessage, EmailSender, IdGenerator
from notibot.application.services.jobs import JobContext, JobHandler
from notibot.container import Notibot, build_container
from notibot.settings import Settings

#: JWT secret of test instances (32+ bytes); never use it in production.
TEST_JWT_SECRET = "notibot-test-secret-0123456789abcdef"


class FakeClock(Clock):
    """A clock that only moves when told. ``now`` starts at ``start`` (UTC)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

    async def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.current += timedelta(seconds=seconds)


class SequentialIdGenerator(IdGenerator):
    """Ids ``"<prefix>1"``, ``"<prefix>2"``, ... in order: readable in test failures."""

    def __init__(self, prefix: str = "id") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)

    async def new_id(self) -> str:
        return f"{self._prefix}{next(self._counter)}"


class RecordingEmailSender(EmailSender):
    """An EmailSender that keeps every message in :attr:`sent` (in order) instead of sending
    it; Message-IDs are ``<n@notibot.test>`` unless the message brings its own."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> str:
        message_id = message.message_id or f"<{len(self.sent) + 1}@notibot.test>"
        self.sent.append(message)
        return message_id

    async def close(self) -> None:
        return None

    def to(self, address: str) -> list[EmailMessage]:
        """The messages sent to ``address``."""
        return [m for m in self.sent if m.to == address]


def fast_password_hasher() -> Argon2PasswordHasher:
    """argon2id with the cheapest parameters: fast tests, never production."""
    return Argon2PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def batched_job(batches: int = 5, delay: float = 0.01, batch_size: int = 10) -> JobHandler:
    """A trivial job handler for tests: ``batches`` batches of ``batch_size`` units, sleeping
    ``delay`` seconds in each and reporting progress (so cancellation is checked) after each.
    Returns ``{"batches": n}``."""

    async def handler(ctx: JobContext) -> dict[str, Any]:
        await ctx.report(total=batches * batch_size)
        for _ in range(batches):
            await asyncio.sleep(delay)
            await ctx.report(processed=batch_size)
        return {"batches": batches}

    return handler


def memory_notibot(
    *,
    admin: tuple[str, str] | None = None,
    job_handlers: dict[str, JobHandler] | None = None,
    settings: dict[str, Any] | None = None,
    **overrides: Any,
) -> Notibot:
    """An all-in-memory :class:`~notibot.container.Notibot` for tests.

    Parameters:
        admin: ``(username, password)`` of an admin created at start.
        job_handlers: extra job kinds -> handler, beside the built-in ones (default:
            ``{"test": batched_job()}``).
        settings: extra settings fields (``{"allow_signup": True}``); env vars are ignored.
        overrides: provider name -> object (``clock=FakeClock()``). Emails go to a
            :class:`RecordingEmailSender` (``app.container.email_sender().sent``) unless
            ``email_sender=`` says otherwise.
    """
    values: dict[str, Any] = {"jwt_secret": TEST_JWT_SECRET, **(settings or {})}
    if admin is not None:
        values.update(admin_username=admin[0], admin_password=admin[1])
    resolved = IsolatedSettings(**values)
    overrides.setdefault("password_hasher", fast_password_hasher())
    overrides.setdefault("email_sender", RecordingEmailSender())
    container = build_container(resolved, **overrides)
    container.job_handlers.add_kwargs(**(job_handlers or {"test": batched_job()}))
    return Notibot(container)


class IsolatedSettings(Settings):
    """Settings from constructor arguments only: the environment and ``.env`` are ignored, so
    a developer's NOTIBOT_* variables never leak into tests. Same validation as
    :class:`~notibot.settings.Settings`."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        return (init_settings,)
