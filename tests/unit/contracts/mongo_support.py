"""Run contract suites against the MongoDB adapters.

Two backends:

- ``mongomock``: mongomock-motor, in memory, always. The patches it needs are applied only
  for the duration of one test, by :func:`mongomock_patches` (listed there with the reason
  for each); production code is never patched.
- ``mongodb``: a real server, only when ``NOTIBOT_TEST_MONGODB_URL`` is set, e.g.
  ``NOTIBOT_TEST_MONGODB_URL=mongodb://localhost:27017 scripts/test tests/unit/contracts``.
  Each test gets a fresh database ``notibot_test_<random>`` (indexes created as at start-up)
  that is dropped afterwards. Without the variable these params are not generated at all.

A contract suite adds the Mongo adapters with
``ADAPTERS = [..., *mongo_adapters(MongoCustomerRepository)]``: each param is a zero-argument
callable returning an async context manager that yields ``build(database)``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager, contextmanager
from typing import Any, TypeVar
from unittest import mock

import mongomock.collection
import pytest
from mongomock_motor import AsyncMongoMockClient, enabled_gridfs_integration

from notibot.adapters.mongo import create_client, ensure_indexes

T = TypeVar("T")

#: The real server's URL, or None: then no real-server params exist.
REAL_MONGODB_URL = os.environ.get("NOTIBOT_TEST_MONGODB_URL") or None


# -- mongomock --------------------------------------------------------------------------------


def _create_indexes(self: mongomock.collection.Collection, indexes: Any,
                    session: Any = None) -> list[str]:
    """mongomock's ``create_indexes`` keeps only unique/sparse/expireAfterSeconds/name of each
    IndexModel and drops ``partialFilterExpression``; forward every option instead."""
    names = []
    for index in indexes:
        document = dict(index.document)
        keys = list(document.pop("key").items())
        names.append(self.create_index(keys, session=session, **document))
    return names


def _without_sort(original: Callable[..., Any]) -> Callable[..., Any]:
    """pymongo 4.20 passes ``sort=`` to the bulk builder for ReplaceOne, which mongomock's
    builder does not accept; drop it when unused (it is in notibot)."""

    def method(self: Any, *args: Any, sort: Any = None, **kwargs: Any) -> Any:
        if sort is not None:
            raise NotImplementedError("mongomock cannot sort a bulk replace/update")
        return original(self, *args, **kwargs)

    return method


@contextmanager
def mongomock_patches(*, gridfs: bool = False) -> Iterator[None]:
    """What mongomock 4.3 / mongomock-motor 0.0.36 lack for notibot, patched in the test
    process only while a test runs:

    1. ``Collection.create_indexes`` forwards ``partialFilterExpression`` (else the partial
       unique indexes on email/phone would make every customer without an email collide).
    2. ``BulkOperationBuilder.add_replace`` accepts pymongo 4.20's ``sort`` keyword (else
       ``bulk_write`` with ReplaceOne fails with TypeError).
    3. with ``gridfs=True``: mongomock-motor's ``enabled_gridfs_integration()``, so that
       pymongo's GridFS (which motor's GridFS bucket delegates to) accepts mongomock databases.
    """
    builder = mongomock.collection.BulkOperationBuilder
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(
            mongomock.collection.Collection, "create_indexes", _create_indexes))
        stack.enter_context(mock.patch.object(
            builder, "add_replace", _without_sort(builder.add_replace)))
        if gridfs:
            stack.enter_context(enabled_gridfs_integration())
        yield


@asynccontextmanager
async def mongomock_database(*, gridfs: bool = False) -> AsyncIterator[Any]:
    """A fresh mongomock-motor database (timezone-aware client, indexes created), with
    :func:`mongomock_patches` applied while the context is open."""
    with mongomock_patches(gridfs=gridfs):
        client = AsyncMongoMockClient(tz_aware=True)
        database = client["notibot_test"]
        await ensure_indexes(database)
        yield database


# -- a real server ----------------------------------------------------------------------------


@asynccontextmanager
async def real_database(url: str | None = None) -> AsyncIterator[Any]:
    """A fresh database ``notibot_test_<random>`` on the server at ``url`` (default
    NOTIBOT_TEST_MONGODB_URL) with the indexes created; dropped on exit."""
    client = create_client(url or REAL_MONGODB_URL or "")
    name = f"notibot_test_{uuid.uuid4().hex[:12]}"
    try:
        database = client[name]
        await ensure_indexes(database)  # ServiceUnavailable when the server does not answer
        try:
            yield database
        finally:
            await client.drop_database(name)
    finally:
        client.close()


# -- params for contract suites ---------------------------------------------------------------


def database_params(*, gridfs: bool = False) -> list[Any]:
    """pytest params yielding a fresh database: ``mongomock`` always, ``mongodb`` (a real
    server, marked ``integration``) only when NOTIBOT_TEST_MONGODB_URL is set."""
    params = [pytest.param(lambda: mongomock_database(gridfs=gridfs), id="mongomock")]
    if REAL_MONGODB_URL:
        params.append(pytest.param(real_database, id="mongodb", marks=pytest.mark.integration))
    return params


def mongo_adapters(build: Callable[[Any], T], *,
                   gridfs: bool = False) -> list[Any]:
    """Contract-suite params for an adapter built from a database (``build(db)``), one per
    backend of :func:`database_params`, ids ``mongomock`` and ``mongodb``."""

    def factory(open_database: Callable[[], AbstractAsyncContextManager[Any]]) -> Callable[
            [], AbstractAsyncContextManager[T]]:
        @asynccontextmanager
        async def adapter() -> AsyncIterator[T]:
            async with open_database() as database:
                yield build(database)

        return adapter

    return [pytest.param(factory(p.values[0]), id=p.id, marks=p.marks)
            for p in database_params(gridfs=gridfs)]
