"""Building the motor client: one per event loop, created inside that loop, never at import.

Motor clients belong to the event loop they were created in; the API server and each
Dramatiq worker run their own loops, so each builds its own client (a
:class:`MongoClientFactory` per container/loop, or the :func:`open_database` resource).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pymongo.errors import ConfigurationError, InvalidName

from notibot.adapters.mongo.indexes import ensure_indexes
from notibot.domain import InvalidInput

#: Default bound on server selection: a down server fails a call within 5 s (a
#: ``serverSelectionTimeoutMS`` in the URL wins).
DEFAULT_SERVER_SELECTION_TIMEOUT_MS = 5000
#: Database used when neither the caller nor the URL names one.
DEFAULT_DATABASE = "notibot"


def _url_sets(url: str, option: str) -> bool:
    query = url.partition("?")[2]
    names = {part.partition("=")[0].strip().lower() for part in query.replace(";", "&").split("&")}
    return option.lower() in names


def create_client(
    url: str,
    *,
    server_selection_timeout_ms: int = DEFAULT_SERVER_SELECTION_TIMEOUT_MS,
    app_name: str = "notibot",
    **options: Any,
) -> AsyncIOMotorClient:
    """Return a new motor client for ``url`` bound to the running event loop.

    The client is timezone-aware (``tz_aware=True``: dates come back as aware UTC datetimes)
    and gives up server selection after ``server_selection_timeout_ms`` unless the URL sets
    ``serverSelectionTimeoutMS``. No I/O happens here; the driver connects in the background.

    Parameters:
        url: a ``mongodb://`` or ``mongodb+srv://`` URL (NOTIBOT_MONGODB_URL).
        options: further ``MongoClient`` keyword options.

    Raises:
        RuntimeError: no event loop is running.
        InvalidInput: ``invalid_mongodb_url`` when the URL or an option is invalid.
    """
    loop = asyncio.get_running_loop()
    kwargs: dict[str, Any] = {"appname": app_name, **options, "tz_aware": True,
                              "io_loop": loop}
    if not _url_sets(url, "serverSelectionTimeoutMS"):
        kwargs.setdefault("serverSelectionTimeoutMS", server_selection_timeout_ms)
    try:
        return AsyncIOMotorClient(url, **kwargs)
    except (ConfigurationError, ValueError, TypeError) as exc:
        raise InvalidInput(f"invalid MongoDB URL or option: {exc}", code="invalid_mongodb_url",
                           details={"setting": "NOTIBOT_MONGODB_URL"}) from exc


def get_database(client: AsyncIOMotorClient, name: str | None = None) -> AsyncIOMotorDatabase:
    """The database ``name`` of ``client``; without a name, the URL's database, else
    :data:`DEFAULT_DATABASE`.

    Raises:
        InvalidInput: ``invalid_mongodb_db`` when the name is not a valid database name.
    """
    try:
        if name:
            return client[name]
        return client.get_default_database(DEFAULT_DATABASE)
    except (InvalidName, ConfigurationError, TypeError) as exc:
        raise InvalidInput(f"invalid MongoDB database name {name!r}: {exc}",
                           code="invalid_mongodb_db",
                           details={"setting": "NOTIBOT_MONGODB_DB"}) from exc


class MongoClientFactory:
    """Builds, on first use inside the running event loop, the one motor client of that loop,
    and closes it. Constructing the factory does nothing (safe at import or in a container).

    Parameters:
        url: NOTIBOT_MONGODB_URL.
        database: NOTIBOT_MONGODB_DB; None uses the URL's database, else ``notibot``.
        server_selection_timeout_ms: see :func:`create_client`.
        options: further ``MongoClient`` options.

    Usage::

        factory = MongoClientFactory("mongodb://localhost:27017", "notibot")
        db = factory.database           # inside the loop
        await ensure_indexes(db)
        customers = MongoCustomerRepository(db)
        ...
        await factory.close()
    """

    def __init__(
        self,
        url: str,
        database: str | None = None,
        *,
        server_selection_timeout_ms: int = DEFAULT_SERVER_SELECTION_TIMEOUT_MS,
        **options: Any,
    ) -> None:
        self.url = url
        self.database_name = database
        self._timeout_ms = server_selection_timeout_ms
        self._options = options
        self._client: AsyncIOMotorClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def client(self) -> AsyncIOMotorClient:
        """The client of the running loop, created on first access.

        Raises:
            RuntimeError: no loop is running, or the client was created in another loop.
            InvalidInput: ``invalid_mongodb_url``.
        """
        loop = asyncio.get_running_loop()
        if self._client is None:
            self._client = create_client(
                self.url, server_selection_timeout_ms=self._timeout_ms, **self._options)
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError("this MongoDB client belongs to another event loop; build one "
                               "MongoClientFactory per loop (per process or worker thread)")
        return self._client

    @property
    def database(self) -> AsyncIOMotorDatabase:
        """The configured database of :attr:`client` (see :func:`get_database`)."""
        return get_database(self.client, self.database_name)

    async def close(self) -> None:
        """Close the client (if one was built); a later access builds a new one."""
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            client.close()


async def database_resource(
    url: str,
    database: str | None = None,
    *,
    create_indexes: bool = True,
    server_selection_timeout_ms: int = DEFAULT_SERVER_SELECTION_TIMEOUT_MS,
    **options: Any,
) -> AsyncIterator[AsyncIOMotorDatabase]:
    """Async generator: open the database for the running loop, create the indexes, yield
    the database, close the client when resumed. Made for a dependency-injector
    ``providers.Resource`` (initialised and shut down with the container's resources);
    :func:`open_database` is the same as an async context manager.

    Raises:
        InvalidInput: ``invalid_mongodb_url`` / ``invalid_mongodb_db``.
        ServiceUnavailable: the server does not answer while the indexes are created.
    """
    factory = MongoClientFactory(url, database,
                                 server_selection_timeout_ms=server_selection_timeout_ms,
                                 **options)
    try:
        db = factory.database
        if create_indexes:
            await ensure_indexes(db)
        yield db
    finally:
        await factory.close()


#: ``async with open_database(url, name) as db: ...`` (see :func:`database_resource`).
open_database = asynccontextmanager(database_resource)


class LazyDatabase:
    """A stand-in for the database of a :class:`MongoClientFactory`, usable before the event
    loop runs: ``lazy["customers"]`` is a :class:`LazyCollection`, any other attribute is read
    from the loop's real database when used. Lets a container build repositories at
    composition time (no loop yet) while the motor client is made inside the loop."""

    def __init__(self, factory: MongoClientFactory) -> None:
        self.factory = factory

    def resolve(self) -> AsyncIOMotorDatabase:
        """The real database of the running loop (see :attr:`MongoClientFactory.database`)."""
        return self.factory.database

    def __getitem__(self, name: str) -> LazyCollection:
        return LazyCollection(self, name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resolve(), name)


class LazyCollection:
    """A collection of a :class:`LazyDatabase`: every attribute (``find_one``,
    ``bulk_write``, ...) is read from the real collection at the moment it is used."""

    def __init__(self, database: LazyDatabase, name: str) -> None:
        self._database = database
        self.name = name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._database.resolve()[self.name], name)
