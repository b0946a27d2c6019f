"""Uploaded files on GridFS, so the API and workers on other machines share them."""

from __future__ import annotations

import tempfile
import uuid
from typing import Any, BinaryIO

from gridfs.errors import NoFile
from motor.motor_asyncio import AsyncIOMotorGridFSBucket

from notibot.adapters.mongo.client import LazyDatabase
from notibot.adapters.mongo.errors import translate_errors
from notibot.adapters.mongo.indexes import UPLOADS_BUCKET
from notibot.application.ports import StoredUpload, UploadStore
from notibot.domain import NotFound

#: Uploads up to this size are read back in memory; larger ones spill to a temporary file.
SPOOL_MAX_BYTES = 8 * 1024 * 1024


class MongoUploadStore(UploadStore):
    """Uploads in the GridFS bucket ``uploads`` (collections ``uploads.files`` and
    ``uploads.chunks``). Ids are random 32-hex-digit strings (the files' ``_id``); the
    filename and content type are kept on the file document (``metadata.content_type``).

    :meth:`open` downloads the whole file into a ``SpooledTemporaryFile`` (in memory up to
    ``spool_max_bytes``, on disk above) and returns it at position 0: the reader wants a
    seekable, synchronous binary file.

    Parameters:
        database: an ``AsyncIOMotorDatabase``.
        bucket_name: the GridFS bucket.
        spool_max_bytes: see above.

    Raises (every method):
        ServiceUnavailable: ``mongodb_unavailable`` / ``mongodb_error``.
    """

    def __init__(self, database: Any, *, bucket_name: str = UPLOADS_BUCKET,
                 spool_max_bytes: int = SPOOL_MAX_BYTES) -> None:
        self._database = database
        self._bucket_name = bucket_name
        self._spool_max_bytes = spool_max_bytes
        self._bucket: AsyncIOMotorGridFSBucket | None = None

    @property
    def bucket(self) -> AsyncIOMotorGridFSBucket:
        """The GridFS bucket, built on first use."""
        if self._bucket is None:
            database = self._database
            if isinstance(database, LazyDatabase):  # the running loop's real database
                database = database.resolve()
            self._bucket = AsyncIOMotorGridFSBucket(database, bucket_name=self._bucket_name)
        return self._bucket

    async def save(self, content: bytes, *, filename: str,
                   content_type: str | None = None) -> StoredUpload:
        upload = StoredUpload(id=uuid.uuid4().hex, filename=filename, size=len(content),
                              content_type=content_type)
        with translate_errors("store an upload"):
            await self.bucket.upload_from_stream_with_id(
                upload.id, filename, bytes(content), metadata={"content_type": content_type})
        return upload

    async def open(self, upload_id: str) -> BinaryIO:
        spool = tempfile.SpooledTemporaryFile(max_size=self._spool_max_bytes, mode="w+b")
        try:
            with translate_errors("read an upload"):
                try:
                    await self.bucket.download_to_stream(upload_id, spool)
                except NoFile:
                    raise NotFound("upload", upload_id) from None
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return spool  # type: ignore[return-value]

    async def delete(self, upload_id: str) -> None:
        with translate_errors("delete an upload"):
            try:
                await self.bucket.delete(upload_id)
            except NoFile:
                pass
