"""The composition root (build_container) and the Notibot embedding facade."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from notibot import CustomerFilter, Notibot, build_container
from notibot.adapters.memory import InlineJobQueue, MemoryJobRepository, MemoryUserRepository
from notibot.application.services import JobContext
from notibot.domain import (
    AuthenticationFailed,
    InvalidInput,
    Job,
    JobStatus,
    Role,
    ServiceUnavailable,
)
from notibot.testing import (
    TEST_JWT_SECRET,
    FakeClock,
    IsolatedSettings,
    fast_password_hasher,
    memory_notibot,
)


async def users_of(app: Notibot) -> list[tuple[str, Role]]:
    page = await app.container.user_repository().list(limit=50, offset=0)
    return [(u.username, u.role) for u in page.items]


# -- build_container -------------------------------------------------------------------------


async def test_overrides_replace_providers(clock: FakeClock) -> None:
    container = build_container(IsolatedSettings(jwt_secret=TEST_JWT_SECRET), clock=clock)

    customer = await container.customer_service().create(
        {"full_name": "An", "phone": "0912 345 678"})

    assert container.clock() is clock
    assert customer.created_at == clock.current
    assert customer.phone == "+84912345678"


async def test_the_default_region_setting_reaches_the_customer_service() -> None:
    container = build_container(IsolatedSettings(default_region="us"))

    customer = await container.customer_service().create(
        {"full_name": "Dave", "phone": "(650) 253-0000"})

    assert customer.phone == "+16502530000"


async def test_each_container_has_its_own_in_memory_store() -> None:
    one = build_container(IsolatedSettings())
    other = build_container(IsolatedSettings())

    await one.customer_service().create({"full_name": "An", "email": "an@example.org"})

    assert one.customer_repository() is one.customer_repository()
    assert (await one.customer_service().list(CustomerFilter())).total == 1
    assert (await other.customer_service().list(CustomerFilter())).total == 0


async def test_without_a_jwt_secret_each_embedded_instance_signs_with_its_own_random_key(
) -> None:
    one = build_container(IsolatedSettings())
    other = build_container(IsolatedSettings())
    token = await one.token_service().issue("u1", "access", 60)

    assert (await one.token_service().verify(token, "access")).subject == "u1"
    with pytest.raises(AuthenticationFailed) as exc:
        await other.token_service().verify(token, "access")
    assert exc.value.code == "invalid_token"


async def test_a_configured_jwt_secret_is_shared_by_instances() -> None:
    settings = IsolatedSettings(jwt_secret=TEST_JWT_SECRET)
    token = await build_container(settings).token_service().issue("u1", "access", 60)

    claims = await build_container(settings).token_service().verify(token, "access")

    assert claims.subject == "u1"


def test_the_inline_queue_gets_the_configured_concurrency() -> None:
    container = build_container(IsolatedSettings(job_concurrency=2))

    queue = container.job_queue()

    assert isinstance(queue, InlineJobQueue)
    assert queue is container.job_queue()


# -- Notibot.start / stop --------------------------------------------------------------------


async def test_embedded_default_start_creates_admin_with_a_generated_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = memory_notibot()

    await app.start()

    password = app.generated_admin_password
    assert password is not None and len(password) >= 16
    assert await users_of(app) == [("admin", Role.ADMIN)]
    assert password in capsys.readouterr().err
    pair = await app.auth.login("admin", password)
    assert (await app.auth.authenticate(pair.access_token)).username == "admin"
    await app.stop()


async def test_generated_passwords_differ_between_instances() -> None:
    one, other = memory_notibot(), memory_notibot()
    await one.start()
    await other.start()

    assert one.generated_admin_password != other.generated_admin_password
    await one.stop()
    await other.stop()


async def test_admin_from_settings_is_created_instead_of_a_generated_one() -> None:
    app = memory_notibot(admin=("root", "root-password"))

    await app.start()

    assert app.generated_admin_password is None
    assert await users_of(app) == [("root", Role.ADMIN)]
    await app.auth.login("root", "root-password")
    await app.stop()


async def test_start_is_idempotent(capsys: pytest.CaptureFixture[str]) -> None:
    app = memory_notibot()

    await app.start()
    password = app.generated_admin_password
    await app.start()

    assert app.generated_admin_password == password
    assert await users_of(app) == [("admin", Role.ADMIN)]
    assert capsys.readouterr().err.count("created user 'admin'") == 1
    await app.stop()


async def test_admin_from_settings_is_created_once_across_restarts() -> None:
    users = MemoryUserRepository()
    first = memory_notibot(admin=("root", "first-password"), user_repository=users)
    await first.start()
    await first.stop()

    second = memory_notibot(admin=("root", "changed-password"), user_repository=users)
    await second.start()

    assert await users_of(second) == [("root", Role.ADMIN)]
    await second.auth.login("root", "first-password")  # the stored admin is kept as it is
    with pytest.raises(AuthenticationFailed):
        await second.auth.login("root", "changed-password")
    await second.stop()


async def test_a_weak_admin_password_from_settings_fails_start() -> None:
    app = memory_notibot(admin=("root", "short"))

    with pytest.raises(InvalidInput) as exc:
        await app.start()

    assert exc.value.code == "weak_password"


async def test_start_marks_jobs_abandoned_by_a_dead_process_failed(clock: FakeClock) -> None:
    jobs = MemoryJobRepository()
    dead = Job(id="dead", kind="test", created_at=clock.current)
    dead.start(clock.current)
    await jobs.add(dead)
    clock.advance(3600)
    app = memory_notibot(settings={"job_stale_after": 60}, job_repository=jobs, clock=clock)

    await app.start()

    stored = await jobs.get("dead")
    assert stored.status is JobStatus.FAILED
    assert (stored.failure_reason or "").startswith("abandoned")
    assert stored.finished_at == clock.current
    await app.stop()


async def test_jobs_submitted_through_the_facade_run_inline() -> None:
    app = memory_notibot(admin=("root", "root-password"))
    await app.start()

    job = await app.jobs.submit("test")
    await asyncio.wait_for(app.container.job_queue().join(), timeout=5)

    done = await app.jobs.get(job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"batches": 5}
    await app.stop()


async def test_stop_interrupts_running_jobs_and_closes_the_queue() -> None:
    started = asyncio.Event()

    async def forever(ctx: JobContext) -> None:
        started.set()
        await asyncio.Event().wait()

    app = memory_notibot(admin=("root", "root-password"), job_handlers={"forever": forever})
    await app.start()
    job = await app.jobs.submit("forever")
    await asyncio.wait_for(started.wait(), timeout=5)

    await app.stop()

    interrupted = await app.jobs.get(job.id)
    assert interrupted.status is JobStatus.FAILED
    assert "interrupted" in (interrupted.failure_reason or "")
    with pytest.raises(ServiceUnavailable) as exc:
        await app.jobs.submit("forever")
    assert exc.value.code == "queue_closed"


async def test_stop_before_start_does_nothing() -> None:
    app = memory_notibot()

    await app.stop()
    await app.start()

    job = await app.jobs.submit("test")
    assert job.status is JobStatus.QUEUED
    await app.stop()


async def test_from_settings_builds_a_working_instance(clock: FakeClock) -> None:
    app = Notibot.from_settings(
        IsolatedSettings(jwt_secret=TEST_JWT_SECRET, admin_username="root",
                         admin_password="root-password", access_token_ttl=120),
        password_hasher=fast_password_hasher(), clock=clock)
    await app.start()

    pair = await app.auth.login("root", "root-password")
    clock.advance(timedelta(minutes=2).total_seconds())

    assert pair.expires_in == 120
    with pytest.raises(AuthenticationFailed) as exc:
        await app.auth.authenticate(pair.access_token)
    assert exc.value.code == "token_expired"
    assert app.settings.admin_username == "root"
    await app.stop()
