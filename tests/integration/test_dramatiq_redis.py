"""Jobs through real brokers: a Dramatiq RedisBroker (and one RabbitMQ round trip) with an
in-process Worker whose own Notibot runs on the worker's event loop and shares the API's
in-memory stores (as processes share a database).

Every test uses its own Redis namespace and queue name, and deletes them afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from dramatiq import Broker, Worker
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from notibot.adapters.dramatiq import (
    BrokerHealthCheck,
    DramatiqJobQueue,
    ExecutorRuntime,
    configure_broker,
)
from notibot.adapters.memory import (
    MemoryCustomerRepository,
    MemoryJobRepository,
    MemoryUploadStore,
)
from notibot.application.ports import CustomerFilter
from notibot.application.services import JobContext, JobRunner
from notibot.container import Notibot
from notibot.domain import Job, JobStatus, ServiceUnavailable
from notibot.entrypoints.worker import NotibotRuntime
from notibot.testing import TEST_JWT_SECRET, FakeClock, batched_job, memory_notibot

pytestmark = pytest.mark.integration

WAIT_SECONDS = 15.0


async def wait_until(jobs: MemoryJobRepository, job_id: str,
                     condition: Callable[[Job], bool]) -> Job:
    deadline = time.monotonic() + WAIT_SECONDS
    job = await jobs.get(job_id)
    while not condition(job):
        assert time.monotonic() < deadline, f"timed out: {job_id} is {job.status}"
        await asyncio.sleep(0.01)
        job = await jobs.get(job_id)
    return job


async def until(event: threading.Event) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not event.is_set():
        assert time.monotonic() < deadline, "timed out waiting for an event"
        await asyncio.sleep(0.005)


class Fleet:
    """An API Notibot sending to ``broker_url`` and an in-process Worker with its own Notibot
    (built by NotibotRuntime on the worker's loop) over the same stores."""

    def __init__(self, broker_url: str, handlers: dict[str, Any], *, namespace: str,
                 queue_name: str) -> None:
        self.jobs = MemoryJobRepository()
        self.shared = {"job_repository": self.jobs,
                       "customer_repository": MemoryCustomerRepository(),
                       "upload_store": MemoryUploadStore()}
        self.handlers = handlers
        # the broker on NOTIBOT_REDIS_URL (NOTIBOT_BROKER_URL unset), as in the default set-up
        self.settings = {"queue": "dramatiq", "redis_url": broker_url}
        self.runtime = NotibotRuntime(factory=self._worker_app, sweep_interval=0)
        self.broker = configure_broker(broker_url, runtime=self.runtime, namespace=namespace,
                                       queue_name=queue_name, min_backoff=10, max_backoff=50)
        self.api = memory_notibot(settings=self.settings, job_handlers=handlers,
                                  dramatiq_broker=self.broker, **self.shared)
        self.worker = Worker(self.broker, worker_threads=2, worker_timeout=100)

    def _worker_app(self, broker: Broker) -> Notibot:
        return memory_notibot(settings=self.settings, job_handlers=self.handlers,
                              dramatiq_broker=broker,
                              job_queue=DramatiqJobQueue(broker, close_broker=False),
                              **self.shared)

    async def start(self) -> None:
        await self.api.start()
        await asyncio.to_thread(self.worker.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.worker.stop)
        await self.api.stop()


@pytest.fixture
def namespace(redis_url: str) -> Any:
    """A Redis key namespace for one test; its keys are deleted afterwards."""
    name = f"notibot-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{name}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def redis_fleet(redis_url: str, namespace: str) -> AsyncIterator[Callable[..., Any]]:
    fleets: list[Fleet] = []

    async def make(handlers: dict[str, Any]) -> Fleet:
        fleet = Fleet(redis_url, handlers, namespace=namespace,
                      queue_name=f"jobs-{uuid.uuid4().hex[:8]}")
        fleets.append(fleet)
        await fleet.start()
        return fleet

    yield make
    for fleet in fleets:
        await fleet.stop()


async def test_a_job_submitted_over_redis_runs_to_succeeded(redis_fleet: Any) -> None:
    fleet = await redis_fleet({"batches": batched_job(batches=3, delay=0.001)})
    assert isinstance(fleet.broker, RedisBroker)

    job = await fleet.api.jobs.submit("batches")
    done = await wait_until(fleet.jobs, job.id, lambda j: j.is_finished)

    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"batches": 3}


async def test_a_csv_import_runs_in_the_worker(redis_fleet: Any) -> None:
    fleet = await redis_fleet({})
    content = (b"full_name,email,phone\n"
               b"An Nguyen,an@example.org,0912 345 678\n"
               b"Binh Tran,BINH@example.org,\n"
               b"No Contact,,\n")

    job = await fleet.api.imports.submit(content, filename="customers.csv")
    done = await wait_until(fleet.jobs, job.id, lambda j: j.is_finished)

    assert done.status is JobStatus.SUCCEEDED, done.failure_reason
    customers = await fleet.api.customers.list(CustomerFilter())
    assert sorted(c.email for c in customers.items) == ["an@example.org", "binh@example.org"]
    assert done.error_count == 1


async def test_a_running_job_is_cancelled_through_redis(redis_fleet: Any) -> None:
    fleet = await redis_fleet({"long": batched_job(batches=10_000, delay=0.002)})

    job = await fleet.api.jobs.submit("long")
    await wait_until(fleet.jobs, job.id, lambda j: j.counters.get("processed", 0) > 0)
    await fleet.api.jobs.cancel(job.id)
    done = await wait_until(fleet.jobs, job.id, lambda j: j.is_finished)

    assert done.status is JobStatus.CANCELLED
    assert done.counters["processed"] < 100_000


async def test_a_job_cancelled_while_queued_never_starts(redis_fleet: Any) -> None:
    ran: list[str] = []
    gate, started = threading.Event(), threading.Event()

    async def gated(ctx: JobContext) -> None:
        ran.append(ctx.job.id)
        started.set()
        await until(gate)

    fleet = await redis_fleet({"gated": gated, "quick": batched_job(batches=1, delay=0)})
    blockers = [await fleet.api.jobs.submit("gated") for _ in range(2)]  # both threads busy
    await wait_until(fleet.jobs, blockers[1].id, lambda j: j.status is JobStatus.RUNNING)
    waiting = await fleet.api.jobs.submit("quick")
    await fleet.api.jobs.cancel(waiting.id)
    sentinel = await fleet.api.jobs.submit("quick")
    gate.set()
    await wait_until(fleet.jobs, sentinel.id, lambda j: j.is_finished)

    stored = await fleet.jobs.get(waiting.id)
    assert stored.status is JobStatus.CANCELLED and stored.started_at is None
    assert sorted(ran) == sorted(b.id for b in blockers)


async def test_the_broker_health_check_answers(redis_fleet: Any, redis_url: str) -> None:
    fleet = await redis_fleet({})

    ready, report = await fleet.api.health.readiness()

    assert ready, report
    assert report["broker"]["status"] == "ok" and report["broker"]["broker"] == "redis"
    assert report["redis"]["status"] == "ok"


async def test_the_broker_health_check_reports_a_dead_broker(free_port: int) -> None:
    url = f"redis://127.0.0.1:{free_port}/0"
    broker = configure_broker(url)

    with pytest.raises(ServiceUnavailable) as exc:
        await BrokerHealthCheck(broker, url).check()

    assert exc.value.code == "broker_unavailable"


async def test_enqueue_to_a_dead_broker_raises_service_unavailable(free_port: int) -> None:
    queue = DramatiqJobQueue(configure_broker(f"redis://127.0.0.1:{free_port}/0"))
    job = Job(id="job1", kind="work", created_at=datetime(2026, 1, 1, tzinfo=UTC))
    try:
        with pytest.raises(ServiceUnavailable) as exc:
            await queue.enqueue(job)
    finally:
        await queue.close()

    assert exc.value.code == "broker_unavailable"


# -- a real worker process -------------------------------------------------------------------

BOOT_MODULE = """
import os

import dramatiq

from notibot.adapters.dramatiq import configure_broker
from notibot.entrypoints.worker import NotibotRuntime
from notibot.settings import Settings


def setup():
    # worker_broker() with a test namespace; the store check of setup() is left out because
    # the only store today is memory (a worker needs a shared one)
    settings = Settings()
    dramatiq.set_broker(configure_broker(settings.resolved_broker_url,
                                         runtime=NotibotRuntime(settings),
                                         namespace=os.environ["TEST_NAMESPACE"]))
"""


def test_a_worker_process_builds_its_own_notibot_and_stops_cleanly(
    redis_url: str, namespace: str, tmp_path: Path,
) -> None:
    (tmp_path / "notibot_boot_check.py").write_text(BOOT_MODULE, encoding="utf-8")
    env = {name: value for name, value in os.environ.items() if not name.startswith("NOTIBOT_")}
    env.update(NOTIBOT_QUEUE="dramatiq", NOTIBOT_REDIS_URL=redis_url,
               NOTIBOT_JWT_SECRET=TEST_JWT_SECRET, TEST_NAMESPACE=namespace)
    process = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "notibot_boot_check:setup", "--processes", "1",
         "--threads", "1", "--path", str(tmp_path)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any("ready for action" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    output = "".join(lines)

    assert code == 0, output
    assert "notibot worker runtime started" in output
    assert "notibot worker runtime stopped" in output


# -- RabbitMQ --------------------------------------------------------------------------------


def _delete_rabbitmq_queues(url: str, queue_name: str) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for name in (queue_name, f"{queue_name}.DQ", f"{queue_name}.XQ"):
            channel.queue_delete(name)
    finally:
        connection.close()


async def test_a_rabbitmq_url_builds_a_rabbitmq_broker_that_carries_a_job(
    rabbitmq_url: str,
) -> None:
    jobs = MemoryJobRepository()
    runner = JobRunner(jobs, FakeClock(), {"quick": batched_job(batches=1, delay=0)},
                       heartbeat_interval=0.05)
    queue_name = f"notibot-test-{uuid.uuid4().hex[:12]}"
    broker = configure_broker(rabbitmq_url, runtime=ExecutorRuntime(runner.run),
                              queue_name=queue_name)
    assert isinstance(broker, RabbitmqBroker)
    worker = Worker(broker, worker_threads=1, worker_timeout=100)
    queue = DramatiqJobQueue(broker)
    job = Job(id=f"job-{uuid.uuid4().hex}", kind="quick",
              created_at=datetime(2026, 1, 1, tzinfo=UTC))
    await jobs.add(job)
    try:
        await queue.enqueue(job)  # sent before any worker listens: it waits in RabbitMQ
        await asyncio.to_thread(worker.start)
        done = await wait_until(jobs, job.id, lambda j: j.is_finished)
        health = await BrokerHealthCheck(broker, rabbitmq_url).check()
    finally:
        await asyncio.to_thread(worker.stop)
        await queue.close()
        await asyncio.to_thread(_delete_rabbitmq_queues, rabbitmq_url, queue_name)

    assert done.status is JobStatus.SUCCEEDED
    assert health["broker"] == "rabbitmq"
    assert "guest@" not in health["url"] or ":***@" in health["url"]
