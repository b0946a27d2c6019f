"""``/tasks``: background jobs submitted through the service, watched over HTTP."""

from __future__ import annotations

import pytest
from http_support import Api, MakeApi, error_of

JOB_FIELDS = {
    "id", "kind", "status", "created_by", "params", "created_at", "started_at", "finished_at",
    "heartbeat_at", "total", "counters", "progress", "eta_seconds", "errors", "error_count",
    "cancel_requested", "attempts", "result", "failure_reason",
}


async def test_a_finished_job_in_detail(api: Api, operator_token: str) -> None:
    job = await api.notibot.jobs.submit("test", {"source": "unit"}, created_by="u1")
    await api.jobs_done()

    result = await api.get(f"/tasks/{job.id}", token=operator_token)

    assert result.status_code == 200
    body = result.json
    assert set(body) == JOB_FIELDS
    assert body["id"] == job.id
    assert body["kind"] == "test"
    assert body["status"] == "succeeded"
    assert body["created_by"] == "u1"
    assert body["params"] == {"source": "unit"}
    assert body["total"] == 30
    assert body["counters"] == {"processed": 30}
    assert body["progress"] == 1.0
    assert body["eta_seconds"] is None
    assert body["result"] == {"batches": 3}
    assert body["attempts"] == 1
    assert body["errors"] == [] and body["error_count"] == 0
    assert body["created_at"] == body["started_at"] == body["finished_at"] \
        == "2026-01-01T09:00:00Z"


async def test_a_running_job_shows_progress_and_eta(api: Api, operator_token: str) -> None:
    job = await api.notibot.jobs.submit("gated")
    await api.gate.wait_reached()
    api.clock.advance(8)

    result = await api.get(f"/tasks/{job.id}", token=operator_token)

    body = result.json
    assert body["status"] == "running"
    assert body["total"] == 10
    assert body["progress"] == pytest.approx(0.4)
    assert body["eta_seconds"] == pytest.approx(12.0)  # 8 s for 40 %: 12 s for the rest
    assert body["finished_at"] is None


async def test_get_an_unknown_job_is_404(api: Api, operator_token: str) -> None:
    result = await api.get("/tasks/nope", token=operator_token)

    assert result.status_code == 404
    assert error_of(result)["code"] == "job_not_found"


async def test_tasks_need_a_token(api: Api) -> None:
    for path in ("/tasks", "/tasks/stats", "/tasks/x"):
        assert (await api.get(path)).status_code == 401
    assert (await api.post("/tasks/x/cancel")).status_code == 401
    assert (await api.delete("/tasks/x")).status_code == 401


# -- list and stats --------------------------------------------------------------------------


@pytest.fixture
async def three_jobs(api: Api) -> list[str]:
    """Jobs a (test, by u1), b (test, by u2), c (gated, by u1, left running), in that order."""
    ids = []
    for kind, user in (("test", "u1"), ("test", "u2"), ("gated", "u1")):
        ids.append((await api.notibot.jobs.submit(kind, created_by=user)).id)
        api.clock.advance(1)
    await api.gate.wait_reached()
    for job_id in ids[:2]:
        await api.wait_for_status(job_id, "succeeded")
    return ids


async def listed(api: Api, token: str, **params: str) -> list[str]:
    result = await api.get("/tasks", token=token, params=params)
    assert result.status_code == 200, result.json
    return [item["id"] for item in result.json["items"]]


async def test_list_is_newest_first_and_filters(
        api: Api, operator_token: str, three_jobs: list[str]) -> None:
    a, b, c = three_jobs

    assert await listed(api, operator_token) == [c, b, a]
    assert await listed(api, operator_token, kind="test") == [b, a]
    assert await listed(api, operator_token, status="running") == [c]
    assert await listed(api, operator_token, status="succeeded", created_by="u1") == [a]
    assert await listed(api, operator_token, created_by="u2") == [b]
    assert await listed(api, operator_token, kind="csv_import") == []


async def test_list_pages(api: Api, operator_token: str, three_jobs: list[str]) -> None:
    result = await api.get("/tasks", token=operator_token, params={"limit": "1",
                                                                   "offset": "1"})

    body = result.json
    assert (body["total"], body["limit"], body["offset"]) == (3, 1, 1)
    assert [item["id"] for item in body["items"]] == [three_jobs[1]]
    assert set(body["items"][0]) == {*JOB_FIELDS}


@pytest.mark.parametrize("params, field", [
    ({"status": "sleeping"}, "status"),
    ({"limit": "201"}, "limit"),
    ({"offset": "x"}, "offset"),
    ({"owner": "u1"}, "owner"),
])
async def test_list_refuses_bad_query_parameters(
        api: Api, operator_token: str, params: dict[str, str], field: str) -> None:
    result = await api.get("/tasks", token=operator_token, params=params)

    assert result.status_code == 422
    assert [item["field"] for item in error_of(result)["details"]] == [field]


async def test_stats_counts_by_status_and_kind(
        api: Api, operator_token: str, three_jobs: list[str]) -> None:
    result = await api.get("/tasks/stats", token=operator_token)

    assert result.status_code == 200
    assert result.json == {
        "by_status": {"queued": 0, "running": 1, "succeeded": 2, "failed": 0, "cancelled": 0},
        "by_kind": {"test": 2, "gated": 1},
        "total": 3,
    }


async def test_stats_is_not_taken_for_a_job_id(api: Api, operator_token: str) -> None:
    result = await api.get("/tasks/stats", token=operator_token)

    assert result.status_code == 200
    assert result.json["total"] == 0


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_a_queued_job_cancels_it_at_once(make_api: MakeApi) -> None:
    api = await make_api(settings={"job_concurrency": 1})
    token = await api.new_user_token("operator2", "operator")
    await api.notibot.jobs.submit("gated")  # takes the only slot
    await api.gate.wait_reached()
    queued = await api.notibot.jobs.submit("test")
    before = await api.get(f"/tasks/{queued.id}", token=token)
    assert before.json["status"] == "queued"
    assert before.json["progress"] is None  # total unknown until the job reports it

    result = await api.post(f"/tasks/{queued.id}/cancel", token=token)

    assert result.status_code == 200
    assert result.json["status"] == "cancelled"
    assert result.json["cancel_requested"] is True
    assert result.json["finished_at"] == "2026-01-01T09:00:00Z"
    api.gate.opened.set()
    await api.jobs_done()
    later = await api.get(f"/tasks/{queued.id}", token=token)
    assert later.json["status"] == "cancelled"
    assert later.json["started_at"] is None  # it never ran


async def test_cancel_a_running_job_asks_it_to_stop(api: Api, operator_token: str) -> None:
    job = await api.notibot.jobs.submit("gated")
    await api.gate.wait_reached()

    result = await api.post(f"/tasks/{job.id}/cancel", token=operator_token)

    assert result.status_code == 200
    assert result.json["status"] == "running"
    assert result.json["cancel_requested"] is True
    api.gate.opened.set()
    await api.jobs_done()
    later = await api.get(f"/tasks/{job.id}", token=operator_token)
    assert later.json["status"] == "cancelled"
    assert later.json["counters"] == {"processed": 10}
    assert later.json["result"] is None


async def test_cancel_a_finished_job_is_409(api: Api, operator_token: str) -> None:
    job = await api.notibot.jobs.submit("test")
    await api.jobs_done()

    result = await api.post(f"/tasks/{job.id}/cancel", token=operator_token)

    assert result.status_code == 409
    error = error_of(result)
    assert error["code"] == "job_succeeded"
    assert error["details"]["status"] == "succeeded"
    assert (await api.get(f"/tasks/{job.id}", token=operator_token)).json["status"] \
        == "succeeded"


async def test_cancel_an_unknown_job_is_404(api: Api, operator_token: str) -> None:
    result = await api.post("/tasks/nope/cancel", token=operator_token)

    assert result.status_code == 404
    assert error_of(result)["code"] == "job_not_found"


# -- delete ----------------------------------------------------------------------------------


async def test_delete_a_running_job_is_409_job_not_finished(api: Api, admin_token: str) -> None:
    job = await api.notibot.jobs.submit("gated")
    await api.gate.wait_reached()

    result = await api.delete(f"/tasks/{job.id}", token=admin_token)

    assert result.status_code == 409
    assert error_of(result)["code"] == "job_not_finished"
    assert (await api.get(f"/tasks/{job.id}", token=admin_token)).status_code == 200


async def test_admin_deletes_a_finished_job(api: Api, admin_token: str) -> None:
    job = await api.notibot.jobs.submit("test")
    await api.jobs_done()

    result = await api.delete(f"/tasks/{job.id}", token=admin_token)

    assert result.status_code == 204
    assert (await api.get(f"/tasks/{job.id}", token=admin_token)).status_code == 404
    assert (await api.get("/tasks/stats", token=admin_token)).json["total"] == 0
    assert (await api.delete(f"/tasks/{job.id}", token=admin_token)).status_code == 404


async def test_an_operator_may_not_delete_a_job(api: Api, operator_token: str) -> None:
    job = await api.notibot.jobs.submit("test")
    await api.jobs_done()

    result = await api.delete(f"/tasks/{job.id}", token=operator_token)

    assert result.status_code == 403
    assert error_of(result)["code"] == "permission_denied"
    assert (await api.get(f"/tasks/{job.id}", token=operator_token)).status_code == 200
