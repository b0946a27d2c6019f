"""``/tasks``: background jobs."""

from __future__ import annotations

from typing import Any

import falcon
from falcon.asgi import Request, Response

from notibot.application.ports import JobFilter
from notibot.application.services import JobService
from notibot.domain import Job
from notibot.entrypoints.http.middleware import ADMIN
from notibot.entrypoints.http.openapi import TAG_TASKS, endpoint
from notibot.entrypoints.http.schemas import (
    JobOut,
    JobPage,
    JobQuery,
    JobStatsOut,
    job_json,
    job_stats_json,
)
from notibot.entrypoints.http.validation import parse_query


async def _job_json(jobs: JobService, job: Job) -> dict[str, Any]:
    return job_json(job, await jobs.eta_seconds(job))


class TaskCollection:
    """``GET /tasks``."""

    def __init__(self, jobs: JobService) -> None:
        self._jobs = jobs

    @endpoint(tag=TAG_TASKS, operation_id="listTasks", query=JobQuery, response=JobPage)
    async def on_get(self, req: Request, resp: Response) -> None:
        """List jobs

        Jobs matching every filter given, newest first, with the total number of matches.
        """
        query = parse_query(req, JobQuery)
        page = await self._jobs.list(
            JobFilter(status=query.status, kind=query.kind, created_by=query.created_by),
            limit=query.limit, offset=query.offset)
        resp.media = {"items": [await _job_json(self._jobs, job) for job in page.items],
                      "total": page.total, "limit": page.limit, "offset": page.offset}


class TaskStats:
    """``GET /tasks/stats``."""

    def __init__(self, jobs: JobService) -> None:
        self._jobs = jobs

    @endpoint(tag=TAG_TASKS, operation_id="getTaskStats", response=JobStatsOut)
    async def on_get(self, req: Request, resp: Response) -> None:
        """Job counts

        How many jobs there are by status (every status listed) and by kind.
        """
        resp.media = job_stats_json(await self._jobs.stats())


class TaskItem:
    """``GET`` and ``DELETE /tasks/{job_id}``."""

    access = {"DELETE": ADMIN}

    def __init__(self, jobs: JobService) -> None:
        self._jobs = jobs

    @endpoint(tag=TAG_TASKS, operation_id="getTask", response=JobOut, errors=[404])
    async def on_get(self, req: Request, resp: Response, job_id: str) -> None:
        """Get a job

        The job with its progress (0 to 1, null while its total is unknown), estimated
        seconds left, counters and first errors.
        """
        resp.media = await _job_json(self._jobs, await self._jobs.get(job_id))

    @endpoint(tag=TAG_TASKS, operation_id="deleteTask", status=204, errors=[404, 409])
    async def on_delete(self, req: Request, resp: Response, job_id: str) -> None:
        """Delete a finished job

        A queued or running job answers 409 `job_not_finished`: cancel it and wait until
        it finishes.
        """
        await self._jobs.delete(job_id)
        resp.status = falcon.HTTP_204


class TaskCancel:
    """``POST /tasks/{job_id}/cancel``."""

    def __init__(self, jobs: JobService) -> None:
        self._jobs = jobs

    @endpoint(tag=TAG_TASKS, operation_id="cancelTask", response=JobOut, errors=[404, 409])
    async def on_post(self, req: Request, resp: Response, job_id: str) -> None:
        """Cancel a job

        A queued job is cancelled at once and never starts. A running job gets
        `cancel_requested: true` and stops at its next checkpoint (between batches). A
        finished job answers 409.
        """
        resp.media = await _job_json(self._jobs, await self._jobs.cancel(job_id))
