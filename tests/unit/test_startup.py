"""Start-up duties of the Notibot facade: admin creation, jobs left behind, final stop."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from notibot.domain import Conflict, JobStatus
from notibot.settings import Settings
from notibot.testing import IsolatedSettings, memory_notibot


async def test_queued_jobs_are_handed_to_the_queue_again_at_start():
    app = memory_notibot()
    jobs = app.container.job_repository()
    # a job left queued by a previous process (its inline task died with it)
    from notibot.domain import Job

    clock = app.container.clock()
    await jobs.add(Job(id="left-behind", kind="test", created_at=await clock.now()))
    await app.start()
    await app.container.job_queue().join()
    job = await app.jobs.get("left-behind")
    assert job.status is JobStatus.SUCCEEDED
    assert job.result == {"batches": 5}
    await app.stop()


async def test_start_without_running_jobs_leaves_queued_jobs_alone():
    app = memory_notibot()
    from notibot.domain import Job

    clock = app.container.clock()
    await app.container.job_repository().add(
        Job(id="left-behind", kind="test", created_at=await clock.now()))
    await app.start(run_jobs=False)
    await app.container.job_queue().join()
    assert (await app.jobs.get("left-behind")).status is JobStatus.QUEUED
    await app.stop()


async def test_start_without_admin_step_creates_no_user():
    app = memory_notibot()
    await app.start(ensure_admin=False)
    assert await app.auth.admin_count() == 0
    assert app.generated_admin_password is None
    await app.stop()


async def test_admin_username_of_an_operator_fails_start_up():
    app = memory_notibot()
    await app.start(ensure_admin=False)
    await app.auth.create_user("boss", "operator-password", "operator")
    await app.stop()
    # same store, next start with NOTIBOT_ADMIN_USERNAME=boss
    settings = IsolatedSettings(jwt_secret="x" * 40, admin_username="boss",
                                admin_password="another-password")
    again = memory_notibot(settings=settings.model_dump(),
                           user_repository=app.container.user_repository())
    with pytest.raises(Conflict) as caught:
        await again.start()
    assert caught.value.code == "admin_username_taken"


async def test_a_stopped_instance_cannot_start_again():
    app = memory_notibot()
    await app.start()
    await app.stop()
    with pytest.raises(RuntimeError):
        await app.start()


@pytest.mark.parametrize("region", ["ZZ", "V1", "xx"])
def test_default_region_must_have_phone_metadata(region, monkeypatch):
    monkeypatch.setenv("NOTIBOT_DEFAULT_REGION", region)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    assert "default_region" in str(caught.value)


def test_default_region_is_upper_cased(monkeypatch):
    monkeypatch.setenv("NOTIBOT_DEFAULT_REGION", "us")
    assert Settings(_env_file=None).default_region == "US"
