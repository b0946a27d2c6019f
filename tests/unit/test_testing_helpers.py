"""notibot.testing: the helpers users write their own tests with."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from notibot.application.services import JobContext
from notibot.domain import InvalidInput, Job, JobStatus
from notibot.testing import (
    TEST_JWT_SECRET,
    FakeClock,
    IsolatedSettings,
    SequentialIdGenerator,
    batched_job,
    fast_password_hasher,
    memory_notibot,
)


@pytest.fixture
def hostile_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """NOTIBOT_* variables and a .env file that would change or break every setting."""
    for name in list(os.environ):
        if name.upper().startswith("NOTIBOT_"):
            monkeypatch.delenv(name)
    values = {
        "NOTIBOT_JWT_SECRET": "too-short",
        "NOTIBOT_ALLOW_SIGNUP": "true",
        "NOTIBOT_DEFAULT_REGION": "US",
        "NOTIBOT_ADMIN_USERNAME": "env-admin",
        "NOTIBOT_STORE": "mongo",
        "NOTIBOT_JOB_CONCURRENCY": "0",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    (tmp_path / ".env").write_text("NOTIBOT_ACCESS_TOKEN_TTL=61\nNOTIBOT_QUEUE=dramatiq\n",
                                   encoding="utf-8")
    monkeypatch.chdir(tmp_path)


@pytest.mark.usefixtures("hostile_environment")
async def test_memory_notibot_ignores_notibot_environment_variables_and_dot_env() -> None:
    app = memory_notibot()

    settings = app.settings
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == TEST_JWT_SECRET
    assert settings.allow_signup is False
    assert settings.default_region == "VN"
    assert settings.admin_username is None
    assert (settings.store, settings.queue) == ("memory", "inline")
    assert settings.access_token_ttl == 1800
    await app.start()
    assert app.generated_admin_password is not None
    await app.stop()


@pytest.mark.usefixtures("hostile_environment")
def test_isolated_settings_read_constructor_arguments_only() -> None:
    settings = IsolatedSettings(allow_signup=False, default_region="gb")

    assert settings.allow_signup is False
    assert settings.default_region == "GB"
    assert settings.jwt_secret is None


def test_isolated_settings_validate_like_settings() -> None:
    with pytest.raises(ValidationError, match="32 bytes"):
        IsolatedSettings(jwt_secret="short")
    with pytest.raises(ValidationError):
        IsolatedSettings(admin_username="root")


async def test_memory_notibot_applies_settings_admin_and_overrides() -> None:
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    app = memory_notibot(admin=("root", "root-password"), settings={"allow_signup": True},
                         clock=clock)
    await app.start()

    user = await app.auth.register(None, "newbie", "newbie-password")

    assert app.settings.allow_signup is True
    assert user.created_at == clock.current
    await app.auth.login("root", "root-password")
    await app.stop()


async def test_memory_notibot_uses_the_cheap_hasher() -> None:
    app = memory_notibot(admin=("root", "root-password"))
    await app.start()

    stored = await app.container.user_repository().get_by_username("root")

    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    await app.stop()


async def test_memory_notibot_job_handlers_replace_the_test_kind_beside_the_built_ins(
) -> None:
    async def echo(ctx: JobContext) -> dict[str, object]:
        return {"echo": ctx.params["text"]}

    app = memory_notibot(admin=("root", "root-password"), job_handlers={"echo": echo})
    await app.start()

    job = await app.jobs.submit("echo", {"text": "hi"})
    await asyncio.wait_for(app.container.job_queue().join(), timeout=5)

    assert (await app.jobs.get(job.id)).result == {"echo": "hi"}
    with pytest.raises(InvalidInput) as exc:
        await app.jobs.submit("test")
    assert exc.value.code == "unknown_job_kind"
    assert {"echo", "csv_import"} <= set(exc.value.details["kinds"])
    await app.stop()


async def test_fake_clock_starts_at_a_fixed_utc_time_and_moves_when_told() -> None:
    clock = FakeClock()

    assert await clock.now() == datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
    clock.advance(3600)
    assert await clock.now() == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


async def test_sequential_ids_are_readable() -> None:
    ids = SequentialIdGenerator("job-")

    assert [await ids.new_id(), await ids.new_id()] == ["job-1", "job-2"]


async def test_fast_password_hasher_round_trips() -> None:
    hasher = fast_password_hasher()

    encoded = await hasher.hash("password1")

    assert await hasher.verify(encoded, "password1")
    assert not await hasher.verify(encoded, "password2")


async def test_batched_job_reports_total_and_progress_per_batch() -> None:
    app = memory_notibot(admin=("root", "root-password"),
                         job_handlers={"batched": batched_job(batches=3, delay=0,
                                                              batch_size=4)})
    await app.start()

    job = await app.jobs.submit("batched")
    await asyncio.wait_for(app.container.job_queue().join(), timeout=5)

    done: Job = await app.jobs.get(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert (done.total, done.counters, done.result) == (12, {"processed": 12}, {"batches": 3})
    await app.stop()
