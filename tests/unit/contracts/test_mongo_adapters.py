"""What the MongoDB adapters promise beyond the port contracts: error translation (a down
server is ServiceUnavailable), the client factory, indexes, key escaping, bulk batches and
compare-and-set under concurrency.

Tests taking ``db`` run on mongomock-motor and, when NOTIBOT_TEST_MONGODB_URL is set, on a
real server (see mongo_support). The down-server tests need no server: they point the real
driver at a closed port.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson.errors import InvalidDocument
from mongo_support import REAL_MONGODB_URL, database_params, real_database
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from notibot.adapters.mongo import (
    INDEXES,
    MongoClientFactory,
    MongoCustomerRepository,
    MongoHealthCheck,
    MongoJobRepository,
    MongoUploadStore,
    MongoUserRepository,
    create_client,
    customer_to_document,
    document_to_customer,
    ensure_indexes,
    open_database,
    translate_errors,
)
from notibot.application.ports import CustomerFilter
from notibot.domain import (
    Conflict,
    Customer,
    InvalidInput,
    Job,
    JobError,
    JobStatus,
    NotFound,
    Role,
    ServiceUnavailable,
    User,
)

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
#: Nothing listens on port 1; the URL's short server selection timeout makes calls fail fast.
DOWN_URL = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=150"


@pytest.fixture(params=database_params())
async def db(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    async with request.param() as database:
        yield database


def customer(id: str, **values: Any) -> Customer:
    values.setdefault("full_name", f"Customer {id}")
    if "email" not in values and "phone" not in values:
        values["email"] = f"{id}@example.org"
    return Customer.create(id=id, now=T0, **values)


# -- a server that does not answer -----------------------------------------------------------


@pytest.fixture
async def down_db() -> AsyncIterator[Any]:
    client = create_client(DOWN_URL)
    try:
        yield client["notibot_down"]
    finally:
        client.close()


CALLS: dict[str, Callable[[Any], Awaitable[Any]]] = {
    "customers.add": lambda db: MongoCustomerRepository(db).add(customer("c1")),
    "customers.list": lambda db: MongoCustomerRepository(db).list(
        CustomerFilter(q="x"), limit=10, offset=0),
    "customers.bulk_upsert": lambda db: MongoCustomerRepository(db).bulk_upsert(
        [customer("c1")], []),
    "users.get_by_username": lambda db: MongoUserRepository(db).get_by_username("alice"),
    "jobs.update": lambda db: MongoJobRepository(db).update(
        Job(id="j1", kind="k", created_at=T0), expected_status=JobStatus.QUEUED),
    "jobs.stats": lambda db: MongoJobRepository(db).stats(),
    "uploads.save": lambda db: MongoUploadStore(db).save(b"x", filename="x.csv"),
    "uploads.open": lambda db: MongoUploadStore(db).open("u1"),
    "health.check": lambda db: MongoHealthCheck(db).check(),
    "ensure_indexes": ensure_indexes,
}


async def test_a_down_server_turns_every_call_into_service_unavailable(down_db: Any) -> None:
    started = time.monotonic()

    outcomes = await asyncio.gather(*(call(down_db) for call in CALLS.values()),
                                    return_exceptions=True)

    codes = {name: (type(outcome).__name__, getattr(outcome, "code", None))
             for name, outcome in zip(CALLS, outcomes, strict=True)}
    assert codes == {name: ("ServiceUnavailable", "mongodb_unavailable") for name in CALLS}
    assert time.monotonic() - started < 3  # the URL's timeout, not the 5 s default


async def test_the_health_check_gives_up_after_its_own_timeout() -> None:
    client = create_client("mongodb://127.0.0.1:1/")  # 5 s server selection
    try:
        check = MongoHealthCheck(client["notibot_down"], timeout=0.1)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as exc:
            await check.check()
    finally:
        client.close()

    assert exc.value.code == "mongodb_unavailable"
    assert time.monotonic() - started < 2


async def test_opening_the_store_on_a_down_server_fails_at_start_up() -> None:
    with pytest.raises(ServiceUnavailable) as exc:
        async with open_database(DOWN_URL, "notibot"):
            pass

    assert exc.value.code == "mongodb_unavailable"


async def test_the_health_check_reports_adapter_and_database(db: Any) -> None:
    details = await MongoHealthCheck(db).check()

    assert details["adapter"] == "mongodb"
    assert details["database"] == db.name
    assert details["latency_ms"] >= 0
    assert MongoHealthCheck(db).name == "mongodb"


# -- error translation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        (ServerSelectionTimeoutError("no servers"), ServiceUnavailable, "mongodb_unavailable"),
        (AutoReconnect("connection reset"), ServiceUnavailable, "mongodb_unavailable"),
        (NetworkTimeout("timed out"), ServiceUnavailable, "mongodb_unavailable"),
        (ExecutionTimeout("operation exceeded time limit", 50), ServiceUnavailable,
         "mongodb_unavailable"),
        (OperationFailure("not authorized", 13), ServiceUnavailable, "mongodb_error"),
        (DuplicateKeyError("E11000", 11000, {"keyPattern": {"email": 1}}), Conflict,
         "thing_conflict"),
        (InvalidDocument("cannot encode object"), InvalidInput, "unstorable_value"),
        (OverflowError("MongoDB can only handle up to 8-byte ints"), InvalidInput,
         "unstorable_value"),
        (NotFound("thing", "t1"), NotFound, "thing_not_found"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None,
)
def test_translate_errors(error: Exception, expected: type[Exception], code: str) -> None:
    with pytest.raises(expected) as exc, translate_errors("do a thing",
                                                          conflict_code="thing_conflict"):
        raise error

    assert exc.value.code == code  # type: ignore[attr-defined]
    assert "not authorized" not in str(exc.value)  # driver details are logged, not shown


def test_translate_errors_names_the_field_of_a_duplicate_key() -> None:
    with pytest.raises(Conflict) as exc, translate_errors("add", conflict_code="c"):
        raise DuplicateKeyError("E11000", 11000, {"keyPattern": {"email": 1}})

    assert exc.value.details == {"field": "email"}


def test_translate_errors_leaves_other_exceptions_alone() -> None:
    with pytest.raises(KeyError), translate_errors("do a thing"):
        raise KeyError("bug")


# -- the client factory ----------------------------------------------------------------------


def test_the_factory_does_nothing_until_used_inside_a_loop() -> None:
    factory = MongoClientFactory(DOWN_URL, "notibot")  # no loop, no I/O

    with pytest.raises(RuntimeError):
        factory.client  # noqa: B018


async def test_the_factory_builds_one_timezone_aware_client_with_bounded_selection() -> None:
    factory = MongoClientFactory("mongodb://127.0.0.1:1/", "crm")
    try:
        client = factory.client

        assert factory.client is client
        assert client.codec_options.tz_aware is True
        assert client.options.server_selection_timeout == 5
        assert factory.database.name == "crm"
    finally:
        await factory.close()


async def test_the_urls_server_selection_timeout_and_database_win() -> None:
    factory = MongoClientFactory("mongodb://127.0.0.1:1/crm?serverSelectionTimeoutMS=150")
    try:
        assert factory.client.options.server_selection_timeout == 0.15
        assert factory.database.name == "crm"
    finally:
        await factory.close()


async def test_without_any_database_name_the_default_is_notibot() -> None:
    factory = MongoClientFactory("mongodb://127.0.0.1:1/")
    try:
        assert factory.database.name == "notibot"
    finally:
        await factory.close()


def test_a_client_is_never_shared_with_another_event_loop() -> None:
    factory = MongoClientFactory(DOWN_URL, "notibot")

    async def first() -> None:
        assert factory.client is not None

    async def second() -> None:
        with pytest.raises(RuntimeError, match="another event loop"):
            factory.client  # noqa: B018
        await factory.close()
        assert factory.client is not None  # a new client for this loop after close
        await factory.close()

    asyncio.run(first())
    asyncio.run(second())


async def test_an_invalid_url_or_database_name_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as url_error:
        create_client("http://localhost:27017")
    factory = MongoClientFactory("mongodb://127.0.0.1:1/", "bad.name")
    try:
        with pytest.raises(InvalidInput) as name_error:
            factory.database  # noqa: B018
    finally:
        await factory.close()

    assert url_error.value.code == "invalid_mongodb_url"
    assert name_error.value.code == "invalid_mongodb_db"


# -- indexes ---------------------------------------------------------------------------------


async def test_ensure_indexes_creates_every_index_and_is_idempotent(db: Any) -> None:
    again = await ensure_indexes(db)  # the fixture created them once already

    for collection, models in INDEXES.items():
        names = {m.document["name"] for m in models}
        assert set(again[collection]) == names
        info = await db[collection].index_information()
        assert names <= set(info)
    customers = await db["customers"].index_information()
    assert customers["email_unique"]["unique"] is True
    assert customers["email_unique"]["partialFilterExpression"] == {"email": {"$type": "string"}}
    assert customers["phone_unique"]["partialFilterExpression"] == {"phone": {"$type": "string"}}
    assert (await db["users"].index_information())["username_key_unique"]["unique"] is True


# -- documents -------------------------------------------------------------------------------


ODD_KEYS = {"plan.tier": "gold", "$price": "9", "100%": "yes", "a%2Eb": "literal",
            "nested": {"x.y": [{"$z": "1"}]}}


def test_the_customer_mapper_round_trips_and_escapes_keys() -> None:
    original = customer("c1", attributes=ODD_KEYS, city="Hà Nội", tags=["vip"])

    document = customer_to_document(original)

    assert document["_id"] == "c1"
    assert document["city_key"] == "hà nội"
    assert all("." not in k and not k.startswith("$") for k in document["attributes"])
    assert document_to_customer(document) == original


async def test_any_attribute_key_round_trips_through_the_store(db: Any) -> None:
    repo = MongoCustomerRepository(db)
    stored = customer("c1", attributes=ODD_KEYS)

    await repo.add(stored)
    await repo.update(stored.with_changes(now=T0, attributes={**ODD_KEYS, "new.key": "v"}))

    assert (await repo.get("c1")).attributes == {**ODD_KEYS, "new.key": "v"}


async def test_a_value_bson_cannot_hold_is_invalid_input(db: Any) -> None:
    repo = MongoCustomerRepository(db)

    with pytest.raises(InvalidInput) as exc:
        await repo.add(customer("c1", attributes={"big": 2**70}))

    assert exc.value.code == "unstorable_value"
    assert await repo.count() == 0


async def test_dates_come_back_timezone_aware_utc(db: Any) -> None:
    repo = MongoCustomerRepository(db)
    await repo.add(customer("c1"))

    got = await repo.get("c1")

    assert got.created_at == T0
    assert got.created_at is not None and got.created_at.utcoffset() == timedelta(0)


async def test_job_error_values_with_any_column_name_round_trip(db: Any) -> None:
    jobs = MongoJobRepository(db)
    job = Job(id="j1", kind="csv_import", created_at=T0)
    await jobs.add(job)
    error = JobError("invalid_email", "bad", line=2, values={"e.mail": "x", "$col": "y"})
    job.add_errors([error])

    await jobs.update(job)
    await jobs.add_errors("j1", [error])

    assert (await jobs.get("j1")).errors == [error]
    assert await jobs.list_errors("j1") == [error]
    assert await jobs.list_errors("j1", limit=0) == []


# -- bulk writes and races -------------------------------------------------------------------


async def test_bulk_upsert_across_batches_rejects_duplicates_of_earlier_batches(db: Any) -> None:
    repo = MongoCustomerRepository(db, batch_size=2)
    await repo.add(customer("old", email="old@example.org"))
    gone = await repo.get("old")
    await repo.add(customer("gone", email="gone@example.org"))
    vanished = (await repo.get("gone")).with_changes(now=T0, city="Hue")
    await repo.delete("gone")

    result = await repo.bulk_upsert(
        creates=[customer("n1", email="a@example.org"), customer("n2", email="b@example.org"),
                 customer("n3", email="a@example.org"), customer("n4", phone="+84912345671"),
                 customer("n5", phone="+84912345671")],
        updates=[gone.with_changes(now=T0, city="Hue"), vanished],
    )

    assert (result.created, result.updated) == (3, 1)
    assert result.rejected == {
        "n3": "email a@example.org belongs to customer n1",
        "n5": "phone +84912345671 belongs to customer n4",
        "gone": "customer gone no longer exists",
    }
    assert (await repo.get("old")).city == "Hue"
    assert await repo.count() == 4


async def test_bulk_finders_query_in_batches(db: Any) -> None:
    repo = MongoCustomerRepository(db, batch_size=3)
    for i in range(7):
        await repo.add(customer(f"c{i}", phone=f"+8491234567{i}"))

    found = await repo.find_by_phones([f"+8491234567{i}" for i in range(9)])

    assert sorted(c.id for c in found.values()) == [f"c{i}" for i in range(7)]


async def test_one_of_many_concurrent_compare_and_sets_wins(db: Any) -> None:
    jobs = MongoJobRepository(db)
    await jobs.add(Job(id="j1", kind="test", created_at=T0))
    copies = [await jobs.get("j1") for _ in range(20)]
    for i, job in enumerate(copies):
        job.start(T0 + timedelta(seconds=i))
        job.created_by = f"worker-{i}"

    results = await asyncio.gather(
        *(jobs.update(job, expected_status=JobStatus.QUEUED) for job in copies))

    assert results.count(True) == 1
    stored = await jobs.get("j1")
    assert stored.status is JobStatus.RUNNING
    assert stored.created_by == f"worker-{results.index(True)}"


async def test_a_taken_user_id_is_a_user_conflict_not_a_taken_username(db: Any) -> None:
    users = MongoUserRepository(db)
    await users.add(User(id="u1", username="alice", password_hash="h", role=Role.ADMIN,
                         created_at=T0))

    with pytest.raises(Conflict) as exc:
        await users.add(User(id="u1", username="bob", password_hash="h", role=Role.ADMIN,
                             created_at=T0))

    assert exc.value.code == "user_conflict"
    assert await users.get_by_username("bob") is None


# -- a real server only (not generated without NOTIBOT_TEST_MONGODB_URL) -----------------------

if REAL_MONGODB_URL:

    async def test_loops_in_threads_with_their_own_clients_race_one_compare_and_set() -> None:
        """As Dramatiq worker threads do: one event loop and one client per thread."""
        async with real_database() as db:
            await MongoJobRepository(db).add(Job(id="j1", kind="test", created_at=T0))

            def start_in_own_loop(i: int) -> bool:
                async def start() -> bool:
                    factory = MongoClientFactory(REAL_MONGODB_URL or "", db.name)
                    try:
                        jobs = MongoJobRepository(factory.database)
                        job = await jobs.get("j1")
                        job.start(T0)
                        job.created_by = f"worker-{i}"
                        return await jobs.update(job, expected_status=JobStatus.QUEUED)
                    finally:
                        await factory.close()

                return asyncio.run(start())

            results = await asyncio.gather(
                *(asyncio.to_thread(start_in_own_loop, i) for i in range(8)))

            assert results.count(True) == 1
            stored = await MongoJobRepository(db).get("j1")
            assert stored.created_by == f"worker-{results.index(True)}"

    async def test_open_database_creates_the_indexes_and_closes_its_client() -> None:
        async with real_database() as scratch:
            name = scratch.name
            async with open_database(REAL_MONGODB_URL or "", name) as db:
                assert "email_unique" in await db["customers"].index_information()
                await MongoCustomerRepository(db).add(customer("c1"))
            assert await MongoCustomerRepository(scratch).count() == 1
