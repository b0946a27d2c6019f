"""Contract of the UploadStore port: every adapter must pass these tests.

Add an adapter by appending a factory to ``ADAPTERS``: a zero-argument callable returning an
async context manager that yields an empty store and cleans up on exit.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from mongo_support import mongo_adapters

from notibot.adapters.memory import MemoryUploadStore
from notibot.adapters.mongo import MongoUploadStore
from notibot.application.ports import UploadStore
from notibot.domain import NotFound


@asynccontextmanager
async def memory_store() -> AsyncIterator[UploadStore]:
    yield MemoryUploadStore()


ADAPTERS = [pytest.param(memory_store, id="memory"),
            *mongo_adapters(MongoUploadStore, gridfs=True)]

CONTENT = "email,full_name\nan@example.org,Nguyễn Văn An\n".encode()


@pytest.fixture(params=ADAPTERS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[UploadStore]:
    async with request.param() as adapter:
        yield adapter


async def read_all(store: UploadStore, upload_id: str) -> bytes:
    file = await store.open(upload_id)
    try:
        return file.read()
    finally:
        file.close()


async def test_save_describes_the_stored_file(store: UploadStore) -> None:
    upload = await store.save(CONTENT, filename="customers.csv", content_type="text/csv")

    assert upload.id
    assert upload.filename == "customers.csv"
    assert upload.size == len(CONTENT)
    assert upload.content_type == "text/csv"


async def test_content_type_is_optional(store: UploadStore) -> None:
    upload = await store.save(CONTENT, filename="x.csv")

    assert upload.content_type is None


async def test_each_save_gets_a_new_id(store: UploadStore) -> None:
    first = await store.save(CONTENT, filename="x.csv")
    second = await store.save(CONTENT, filename="x.csv")

    assert first.id != second.id


async def test_open_returns_the_same_bytes(store: UploadStore) -> None:
    upload = await store.save(CONTENT, filename="x.csv")

    assert await read_all(store, upload.id) == CONTENT


@pytest.mark.parametrize("size", [0, 1, 3 * 1024 * 1024 + 7])
async def test_any_size_round_trips(store: UploadStore, size: int) -> None:
    content = bytes(i % 251 for i in range(size))

    upload = await store.save(content, filename="blob.bin")

    assert upload.size == size
    assert await read_all(store, upload.id) == content


async def test_the_opened_file_is_a_seekable_readable_binary_file(store: UploadStore) -> None:
    upload = await store.save(CONTENT, filename="x.csv")
    file = await store.open(upload.id)
    try:
        assert file.readable()
        assert file.seekable()
        head = file.read(5)
        assert isinstance(head, bytes)
        assert head == CONTENT[:5]
        file.seek(0)
        assert file.read() == CONTENT
        file.seek(-4, io.SEEK_END)
        assert file.read() == CONTENT[-4:]
        assert file.tell() == len(CONTENT)
        file.seek(0)
        text = io.TextIOWrapper(file, encoding="utf-8", newline="")
        assert text.readline() == "email,full_name\n"
    finally:
        file.close()


async def test_two_opens_are_independent(store: UploadStore) -> None:
    upload = await store.save(CONTENT, filename="x.csv")
    first = await store.open(upload.id)
    second = await store.open(upload.id)
    try:
        assert first.read(10) == CONTENT[:10]
        assert second.read(3) == CONTENT[:3]
        first.close()
        assert second.read() == CONTENT[3:]
    finally:
        first.close()
        second.close()
    assert await read_all(store, upload.id) == CONTENT


async def test_the_upload_can_be_opened_again_after_a_file_is_closed(store: UploadStore) -> None:
    upload = await store.save(CONTENT, filename="x.csv")

    (await store.open(upload.id)).close()

    assert await read_all(store, upload.id) == CONTENT


async def test_open_of_an_unknown_id_raises_upload_not_found(store: UploadStore) -> None:
    with pytest.raises(NotFound) as exc:
        await store.open("no-such-upload")

    assert exc.value.code == "upload_not_found"


async def test_delete_then_open_raises_upload_not_found(store: UploadStore) -> None:
    upload = await store.save(CONTENT, filename="x.csv")

    await store.delete(upload.id)

    with pytest.raises(NotFound) as exc:
        await store.open(upload.id)
    assert exc.value.code == "upload_not_found"


async def test_delete_twice_or_unknown_is_fine(store: UploadStore) -> None:
    upload = await store.save(CONTENT, filename="x.csv")

    await store.delete(upload.id)
    await store.delete(upload.id)
    await store.delete("never-stored")

    with pytest.raises(NotFound):
        await store.open(upload.id)


async def test_delete_removes_only_that_upload(store: UploadStore) -> None:
    kept = await store.save(b"kept", filename="a.csv")
    gone = await store.save(b"gone", filename="b.csv")

    await store.delete(gone.id)

    assert await read_all(store, kept.id) == b"kept"


async def test_concurrent_saves_keep_every_file(store: UploadStore) -> None:
    contents = [f"file {i}\n".encode() * (i + 1) for i in range(20)]

    uploads = await asyncio.gather(
        *(store.save(c, filename=f"{i}.csv") for i, c in enumerate(contents)))

    assert len({u.id for u in uploads}) == 20
    for upload, content in zip(uploads, contents, strict=True):
        assert await read_all(store, upload.id) == content
