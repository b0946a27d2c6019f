"""The production set-up end to end: NOTIBOT_STORE=mongo, NOTIBOT_QUEUE=dramatiq on a real
Redis, the HTTP API in one event loop and a separate Dramatiq worker (its own container, its
own event loop, its own MongoDB client) in another thread.

MongoDB is mongomock-motor here (no server can be installed on this machine): the API's and
the worker's clients share one mongomock server store, as two processes share a database.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mongomock
import pytest
import redis
from dramatiq import Broker, Worker
from falcon import testing
from mongomock_motor import AsyncMongoMockClient

from notibot.adapters.dramatiq import DramatiqJobQueue, configure_broker
from notibot.adapters.mongo import MongoClientFactory
from notibot.container import Notibot, build_container
from notibot.entrypoints.http import create_app
from notibot.entrypoints.worker import NotibotRuntime
from notibot.testing import TEST_JWT_SECRET, IsolatedSettings, fast_password_hasher

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "contracts"))
from mongo_support import mongomock_patches

pytestmark = pytest.mark.integration

SAMPLES = [Path(__file__).resolve().parents[2].parent / "shared" / "data",
           Path("/work/shared/data")]
WAIT_SECONDS = 30.0


def sample(name: str) -> bytes:
    for folder in SAMPLES:
        if (folder / name).exists():
            return (folder / name).read_bytes()
    raise AssertionError(f"sample {name} not found in {SAMPLES}")


class MongomockClientFactory(MongoClientFactory):
    """One mongomock-motor client per event loop, all over one shared server store."""

    def __init__(self, store: Any) -> None:
        super().__init__("mongodb://mongomock.invalid", "notibot")
        self._store = store
        self._mock: AsyncMongoMockClient | None = None

    @property
    def client(self) -> Any:
        if self._mock is None:
            self._mock = AsyncMongoMockClient(tz_aware=True, _store=self._store)
        return self._mock

    async def close(self) -> None:
        self._mock = None


@contextlib.asynccontextmanager
async def production_stack(redis_url: str, **settings_values: Any
                           ) -> AsyncIterator[dict[str, Any]]:
    """The API (``{"http": ASGIConductor, "container": the API's container}``) and a
    separate Dramatiq worker over one mongomock store and a real Redis; ``settings_values``
    add or override settings of both (``email="smtp"``, ...)."""
    namespace = f"notibot-test-{uuid.uuid4().hex[:12]}"
    store = mongomock.store.ServerStore()
    settings = IsolatedSettings(**{
        "store": "mongo", "mongodb_url": "mongodb://mongomock.invalid", "queue": "dramatiq",
        "redis_url": redis_url, "jwt_secret": TEST_JWT_SECRET, "admin_username": "admin",
        "admin_password": "admin-password", "import_chunk_rows": 200, **settings_values})

    def container(broker: Broker, **extra: Any) -> Any:
        return build_container(settings, mongo_factory=MongomockClientFactory(store),
                               dramatiq_broker=broker, password_hasher=fast_password_hasher(),
                               **extra)

    def worker_app(broker: Broker) -> Notibot:
        return Notibot(container(broker, job_queue=DramatiqJobQueue(broker,
                                                                     close_broker=False)))

    runtime = NotibotRuntime(factory=worker_app, sweep_interval=0)
    queue_name = f"jobs-{uuid.uuid4().hex[:8]}"
    broker = configure_broker(redis_url, runtime=runtime, namespace=namespace,
                              queue_name=queue_name, min_backoff=10, max_backoff=50)
    api_container = container(broker)
    with mongomock_patches(gridfs=True):
        worker = Worker(broker, worker_threads=2, worker_timeout=100)
        await asyncio.to_thread(worker.start)
        try:
            async with testing.ASGIConductor(create_app(api_container)) as conductor:
                yield {"http": conductor, "container": api_container}
        finally:
            await asyncio.to_thread(worker.stop)
            client = redis.Redis.from_url(redis_url)
            try:
                keys = list(client.scan_iter(match=f"{namespace}:*", count=500))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()


@pytest.fixture
async def stack(redis_url: str) -> AsyncIterator[dict[str, Any]]:
    async with production_stack(redis_url) as running:
        yield running


async def login(http: testing.ASGIConductor) -> dict[str, str]:
    result = await http.simulate_post("/auth/login", json={"username": "admin",
                                                          "password": "admin-password"})
    assert result.status_code == 200, result.json
    return {"Authorization": f"Bearer {result.json['access_token']}"}


async def wait_for_import(http: testing.ASGIConductor, auth: dict[str, str],
                          job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        status = await http.simulate_get(f"/customers/import/{job_id}/status", headers=auth)
        assert status.status_code == 200, status.json
        if status.json["status"] in ("succeeded", "failed", "cancelled"):
            return status.json
        assert time.monotonic() < deadline, f"import still {status.json['status']}"
        await asyncio.sleep(0.05)


async def test_a_csv_import_over_http_is_run_by_a_separate_worker(stack: dict[str, Any]):
    http = stack["http"]
    auth = await login(http)

    ready = await http.simulate_get("/health/ready")
    assert ready.status_code == 200, ready.json
    assert {"mongodb", "redis", "broker"} <= set(ready.json["checks"])
    assert all(check["status"] == "ok" for check in ready.json["checks"].values())

    boundary = "notibot-stack-test"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"customers.csv\"\r\nContent-Type: text/csv\r\n\r\n").encode()
    body += sample("customers_1k_dirty.csv") + f"\r\n--{boundary}--\r\n".encode()
    upload = await http.simulate_post(
        "/customers/import", body=body,
        headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert upload.status_code == 202, upload.json
    job_id = upload.json["job_id"]

    status = await wait_for_import(http, auth, job_id)
    assert status["status"] == "succeeded", status
    counters = status["counters"]
    assert counters["total_rows"] == 1000
    assert (counters["created"] + counters["updated"] + counters["skipped"]
            + counters["failed"]) == 1000
    assert counters["created"] > 900

    customers = await http.simulate_get("/customers", headers=auth, params={"limit": 1})
    assert customers.json["total"] == counters["created"]

    errors = await http.simulate_get(f"/customers/import/{job_id}/errors.csv", headers=auth)
    assert errors.status_code == 200
    rows = errors.text.strip().splitlines()[1:]
    assert len(rows) == counters["failed"] + counters["skipped"]

    # the job ran in the worker's container, not in the API's event loop
    task = await http.simulate_get(f"/tasks/{job_id}", headers=auth)
    assert task.json["status"] == "succeeded"
    assert task.json["attempts"] == 1


async def test_an_import_cancelled_while_queued_never_runs(stack: dict[str, Any]):
    http = stack["http"]
    auth = await login(http)
    jobs = stack["container"].job_service()
    # take the job out of the worker's reach before it can start: cancel right after submit
    imports = stack["container"].import_service()
    job = await imports.submit(sample("customers_seed_sample.csv"), filename="seed.csv")
    cancelled = await jobs.cancel(job.id)
    if cancelled.status.value == "cancelled":  # the usual case: it was still queued
        await asyncio.sleep(0.5)  # give the worker time to receive (and skip) the message
        status = await http.simulate_get(f"/customers/import/{job.id}/status", headers=auth)
        assert status.json["status"] == "cancelled"
        assert status.json["counters"].get("created", 0) == 0
        customers = await http.simulate_get("/customers", headers=auth)
        assert customers.json["total"] == 0
    else:  # the worker had already started it: it must stop at its next checkpoint or finish
        status = await wait_for_import(http, auth, job.id)
        assert status["status"] in ("cancelled", "succeeded")
