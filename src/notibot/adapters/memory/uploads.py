"""Uploaded files kept in this process's memory (the embedded default)."""

from __future__ import annotations

import io
import threading
import uuid
from typing import BinaryIO

from notibot.application.ports import StoredUpload, UploadStore
from notibot.domain import NotFound


class MemoryUploadStore(UploadStore):
    """Uploads as bytes in a dict. Only the process that received a file can read it, which
    is all the inline job queue needs; workers on other machines need GridFS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, tuple[StoredUpload, bytes]] = {}

    async def save(self, content: bytes, *, filename: str,
                   content_type: str | None = None) -> StoredUpload:
        upload = StoredUpload(id=uuid.uuid4().hex, filename=filename, size=len(content),
                              content_type=content_type)
        with self._lock:
            self._files[upload.id] = (upload, bytes(content))
        return upload

    async def open(self, upload_id: str) -> BinaryIO:
        with self._lock:
            entry = self._files.get(upload_id)
        if entry is None:
            raise NotFound("upload", upload_id)
        return io.BytesIO(entry[1])

    async def delete(self, upload_id: str) -> None:
        with self._lock:
            self._files.pop(upload_id, None)
