"""Broker construction by URL, the retry policy, settings validation, the container's wiring
of NOTIBOT_QUEUE=dramatiq and the worker entrypoint. Nothing here connects to a server."""

from __future__ import annotations

import subprocess
import sys

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import AsyncIO, Retries, ShutdownNotifications, TimeLimit
from dramatiq.middleware.shutdown import Shutdown
from pydantic import ValidationError
from redis import exceptions as redis_errors

from notibot.adapters.dramatiq import (
    DEFAULT_QUEUE,
    RUN_JOB,
    STUB_URL,
    BrokerHealthCheck,
    DramatiqJobQueue,
    ExecutorRuntime,
    TransientRetries,
    WorkerLifecycle,
    broker_kind,
    configure_broker,
    is_transient,
)
from notibot.adapters.redis import RedisHealthCheck
from notibot.domain import DeliveryFailed, InvalidInput, JobCancelled, ServiceUnavailable
from notibot.entrypoints.worker import (
    NotibotRuntime,
    check_worker_settings,
    run_worker,
    setup,
    worker_arguments,
    worker_broker,
)
from notibot.testing import TEST_JWT_SECRET, IsolatedSettings, memory_notibot

# -- brokers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "kind", "cls"), [
    ("redis://127.0.0.1:6379/0", "redis", RedisBroker),
    ("rediss://user:pw@redis.example.org:6380/1", "redis", RedisBroker),
    ("amqp://guest:guest@127.0.0.1:5672/%2F", "rabbitmq", RabbitmqBroker),
    ("amqps://rabbit.example.org:5671/", "rabbitmq", RabbitmqBroker),
    (STUB_URL, "stub", StubBroker),
])
def test_the_url_scheme_chooses_the_broker(url: str, kind: str, cls: type) -> None:
    broker = configure_broker(url)  # opens no connection: the hosts above need not exist

    assert broker_kind(url) == kind
    assert isinstance(broker, cls)
    actor = broker.get_actor(RUN_JOB)
    assert actor.queue_name == DEFAULT_QUEUE
    assert actor.options["notify_shutdown"] is True


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="redis://, rediss://, amqp://"):
        configure_broker("http://127.0.0.1:6379")


def test_the_redis_broker_uses_its_namespace_and_timeouts() -> None:
    broker = configure_broker("redis://127.0.0.1:6379/3", namespace="tenant-a")

    assert broker.namespace == "tenant-a"
    kwargs = broker.client.connection_pool.connection_kwargs
    assert kwargs["db"] == 3
    assert kwargs["socket_connect_timeout"] > 0 and kwargs["socket_timeout"] > 0


def test_the_middleware_runs_async_actors_retries_and_interrupts_on_shutdown() -> None:
    runtime = ExecutorRuntime(lambda job_id: None)  # type: ignore[arg-type, return-value]
    broker = configure_broker(STUB_URL, runtime=runtime, max_retries=3, min_backoff=100,
                              max_backoff=1000)
    kinds = [type(m) for m in broker.middleware]

    assert kinds == [ShutdownNotifications, Retries, AsyncIO, WorkerLifecycle]
    assert TimeLimit not in kinds  # jobs may run for hours; heartbeats watch them
    retries = next(m for m in broker.middleware if isinstance(m, Retries))
    assert (retries.min_backoff, retries.max_backoff) == (100, 1000)
    assert isinstance(retries.retry_when, TransientRetries)
    assert retries.retry_when.max_retries == 3
    assert broker.middleware[-1].runtime is runtime


def test_a_broker_that_only_sends_has_no_worker_lifecycle() -> None:
    broker = configure_broker(STUB_URL)

    assert not any(isinstance(m, WorkerLifecycle) for m in broker.middleware)


# -- retry policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "transient"), [
    (ServiceUnavailable("store down"), True),
    (DeliveryFailed("421 try later", transient=True), True),
    (DeliveryFailed("550 no such user", transient=False), False),
    (InvalidInput("bad email"), False),
    (JobCancelled("cancelled"), False),
    (ConnectionRefusedError("refused"), True),
    (TimeoutError("slow"), True),
    (redis_errors.ConnectionError("gone"), True),
    (redis_errors.TimeoutError("slow"), True),
    (redis_errors.ResponseError("WRONGTYPE"), False),
    (ConnectionClosed(OSError("closed")), True),
    (Shutdown(), False),
    (RuntimeError("bug"), False),
    (KeyError("bug"), False),
])
def test_only_transient_errors_are_retried(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient
    assert TransientRetries(max_retries=2)(0, error) is transient


def test_retries_stop_at_the_maximum() -> None:
    retry = TransientRetries(max_retries=2)
    error = ServiceUnavailable("store down")

    assert [retry(n, error) for n in range(4)] == [True, True, False, False]


# -- settings --------------------------------------------------------------------------------


def test_the_broker_defaults_to_the_redis_url() -> None:
    settings = IsolatedSettings(queue="dramatiq", jwt_secret=TEST_JWT_SECRET,
                                redis_url="redis://cache:6379/2")

    assert settings.broker_url is None
    assert settings.resolved_broker_url == "redis://cache:6379/2"
    assert not settings.is_embedded_default


@pytest.mark.parametrize("url", ["redis://h:6379/0", "rediss://h:6380/0",
                                 "amqp://guest:guest@h:5672/%2F", "amqps://h/"])
def test_broker_urls_of_supported_schemes_are_accepted(url: str) -> None:
    settings = IsolatedSettings(queue="dramatiq", broker_url=url, jwt_secret=TEST_JWT_SECRET)

    assert settings.resolved_broker_url == url


@pytest.mark.parametrize("url", ["http://h:5672", "h:6379", "kafka://h:9092"])
def test_dramatiq_with_a_bad_broker_url_fails_naming_the_variable(url: str) -> None:
    with pytest.raises(ValidationError, match="NOTIBOT_BROKER_URL"):
        IsolatedSettings(queue="dramatiq", broker_url=url, jwt_secret=TEST_JWT_SECRET)


def test_a_bad_broker_url_is_ignored_by_the_inline_queue() -> None:
    assert IsolatedSettings(broker_url="http://nowhere").queue == "inline"


def test_a_redis_url_of_another_scheme_is_refused() -> None:
    with pytest.raises(ValidationError, match="Redis URL"):
        IsolatedSettings(redis_url="http://127.0.0.1:6379")


def test_the_dramatiq_queue_needs_a_jwt_secret_like_every_non_default_set_up() -> None:
    with pytest.raises(ValidationError, match="NOTIBOT_JWT_SECRET"):
        IsolatedSettings(queue="dramatiq")


def test_urls_stay_out_of_the_settings_repr() -> None:
    settings = IsolatedSettings(redis_url="redis://:s3cret@h:6379/0",
                                broker_url="amqp://u:s3cret@h/")

    assert "s3cret" not in repr(settings)


# -- container wiring ------------------------------------------------------------------------


def checks_of(app: object) -> list[tuple[str, type]]:
    service = app.container.health_service()  # type: ignore[attr-defined]
    return [(check.name, type(check)) for check in service._checks]


def test_the_embedded_default_has_no_redis_or_broker_check() -> None:
    app = memory_notibot()

    assert [name for name, _ in checks_of(app)] == ["store"]


def test_the_dramatiq_queue_over_redis_reports_redis_and_the_broker() -> None:
    app = memory_notibot(settings={"queue": "dramatiq"})

    assert checks_of(app)[1:] == [("redis", RedisHealthCheck), ("broker", BrokerHealthCheck)]
    queue = app.container.job_queue()
    assert isinstance(queue, DramatiqJobQueue)
    assert isinstance(queue.broker, RedisBroker)
    assert queue.broker is app.container.dramatiq_broker()


def test_a_rabbitmq_broker_reports_the_broker_only() -> None:
    app = memory_notibot(settings={"queue": "dramatiq",
                                   "broker_url": "amqp://guest:guest@127.0.0.1:5672/%2F"})

    assert checks_of(app)[1:] == [("broker", BrokerHealthCheck)]
    assert isinstance(app.container.dramatiq_broker(), RabbitmqBroker)


def test_the_embedded_default_never_loads_redis_or_dramatiq() -> None:
    code = (
        "import asyncio, sys\n"
        "from notibot.testing import memory_notibot\n"
        "async def main():\n"
        "    app = memory_notibot()\n"
        "    await app.start()\n"
        "    await app.health.readiness()\n"
        "    await app.jobs.submit('test')\n"
        "    await app.container.job_queue().join()\n"
        "    await app.stop()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'dramatiq', 'pika')"
        " or m.startswith(('notibot.adapters.redis', 'notibot.adapters.dramatiq'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- worker entrypoint -----------------------------------------------------------------------


def test_worker_arguments_name_the_setup_function_and_the_options() -> None:
    assert worker_arguments(2, 4, None) == [
        "notibot.entrypoints.worker:setup", "--processes", "2", "--threads", "4"]
    assert worker_arguments(1, 1, ["notibot", "bulk"])[-3:] == ["--queues", "notibot", "bulk"]


@pytest.mark.parametrize(("processes", "threads", "queues"),
                         [(0, 1, None), (1, 0, None), (1, 1, [" "])])
def test_worker_arguments_refuse_nonsense(processes: int, threads: int,
                                          queues: list[str] | None) -> None:
    with pytest.raises(ValueError):
        worker_arguments(processes, threads, queues)


def test_a_worker_needs_the_dramatiq_queue_and_a_shared_store() -> None:
    with pytest.raises(ValueError, match="NOTIBOT_QUEUE must be dramatiq"):
        check_worker_settings(IsolatedSettings())
    with pytest.raises(ValueError, match="NOTIBOT_STORE=memory"):
        check_worker_settings(IsolatedSettings(queue="dramatiq", jwt_secret=TEST_JWT_SECRET))


def test_run_worker_refuses_bad_settings_before_starting_any_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIBOT_QUEUE", "inline")

    with pytest.raises(ValueError, match="NOTIBOT_QUEUE must be dramatiq"):
        run_worker(1, 1, None)


def test_setup_reads_the_environment_and_refuses_a_store_workers_cannot_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIBOT_QUEUE", "dramatiq")
    monkeypatch.setenv("NOTIBOT_JWT_SECRET", TEST_JWT_SECRET)

    with pytest.raises(ValueError, match="NOTIBOT_STORE=memory"):
        setup()


def test_the_worker_broker_carries_a_notibot_runtime() -> None:
    settings = IsolatedSettings(queue="dramatiq", jwt_secret=TEST_JWT_SECRET,
                                broker_url="amqp://guest:guest@127.0.0.1:5672/%2F")

    broker = worker_broker(settings)

    assert isinstance(broker, RabbitmqBroker)
    lifecycle = broker.middleware[-1]
    assert isinstance(lifecycle, WorkerLifecycle)
    assert isinstance(lifecycle.runtime, NotibotRuntime)
    assert lifecycle.runtime.app is None  # built on the worker's loop when the worker boots


def test_importing_the_worker_module_sets_no_global_broker() -> None:
    code = ("import dramatiq.broker as b\n"
            "import notibot.entrypoints.worker\n"
            "print(b.global_broker)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"
