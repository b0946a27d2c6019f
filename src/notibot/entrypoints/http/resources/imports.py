"""``/customers/import``: customer files imported as background jobs (kind ``csv_import``).

The upload is a ``multipart/form-data`` form read part by part: the file part is streamed and
refused (HTTP 413) as soon as it grows past the import service's ``max_upload_bytes``, so an
oversized upload is never held in memory whole. Everything else about the file (empty, binary,
not UTF-8, missing columns) is checked by
:meth:`~notibot.application.services.imports.CustomerImportService.submit` before the job is
queued; the errors become HTTP responses in :mod:`~notibot.entrypoints.http.errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import PurePosixPath

import falcon
from falcon import MEDIA_MULTIPART, HTTPUnsupportedMediaType
from falcon.asgi import Request, Response
from falcon.asgi.multipart import BodyPart

from notibot.application.services import JobService
from notibot.application.services.imports import CustomerImportService
from notibot.domain import FileTooLarge
from notibot.entrypoints.http.errors import RequestValidationError
from notibot.entrypoints.http.openapi import TAG_CUSTOMERS, endpoint
from notibot.entrypoints.http.schemas import (
    ImportAccepted,
    ImportForm,
    ImportStatusOut,
    import_status_json,
)

#: Form fields beside ``file``; each is a short text value.
OPTION_FIELDS = ("mode", "delimiter", "default_region")
#: Largest value of an option field, bytes.
MAX_OPTION_BYTES = 256
#: Room for the form's boundaries, part headers and option fields when the request's
#: Content-Length is compared with the file size limit.
FORM_OVERHEAD_BYTES = 64 * 1024
#: Bytes read from the file part at a time.
READ_BYTES = 256 * 1024
#: Name given to a file part that has no filename.
DEFAULT_FILENAME = "upload.csv"


def import_urls(root_path: str, job_id: str) -> dict[str, str]:
    """The URLs of an import job: ``{status_url, errors_url, task_url}``."""
    base = f"{root_path}/customers/import/{job_id}"
    return {"status_url": f"{base}/status", "errors_url": f"{base}/errors.csv",
            "task_url": f"{root_path}/tasks/{job_id}"}


def _field_error(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(message, details=[{"field": field, "message": message}])


def _too_large(limit: int, **details: int) -> FileTooLarge:
    mib = limit / (1024 * 1024)
    shown = f"{mib:.4g} MiB" if mib >= 1 else f"{limit} bytes"
    return FileTooLarge(
        f"the upload is larger than the limit of {shown} (NOTIBOT_MAX_UPLOAD_MB)",
        details={"limit_bytes": limit, **details})


def _filename(part: BodyPart) -> str:
    """The file part's name without any directory a client may have sent."""
    name = PurePosixPath((part.filename or "").replace("\\", "/")).name.strip()
    return name[:255] or DEFAULT_FILENAME


async def read_file_part(part: BodyPart, limit: int) -> bytes:
    """Read the body part ``part`` whole, stopping as soon as it exceeds ``limit`` bytes.

    Raises:
        FileTooLarge: more than ``limit`` bytes (HTTP 413).
    """
    content = bytearray()
    while chunk := await part.stream.read(READ_BYTES):
        content += chunk
        if len(content) > limit:
            raise _too_large(limit)
    return bytes(content)


async def _read_option(part: BodyPart) -> str | None:
    data = await part.stream.read(MAX_OPTION_BYTES + 1)
    if len(data) > MAX_OPTION_BYTES:
        raise _field_error(part.name, f"`{part.name}` is longer than {MAX_OPTION_BYTES} bytes")
    try:
        value = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _field_error(part.name, f"`{part.name}` is not UTF-8 text") from None
    # a tab is a delimiter, not blank space
    value = value.strip(" \r\n") if part.name == "delimiter" else value.strip()
    return value or None


class CustomerImport:
    """``POST /customers/import``."""

    def __init__(self, imports: CustomerImportService) -> None:
        self._imports = imports

    @endpoint(tag=TAG_CUSTOMERS, operation_id="importCustomers", status=202, form=ImportForm,
              response=ImportAccepted, errors=[400, 413, 415],
              headers={"Location": "the import's status URL (`status_url`)"})
    async def on_post(self, req: Request, resp: Response) -> None:
        """Import customers from a CSV file

        Send a `multipart/form-data` form with the file in the field `file` and, optionally,
        `mode` (`upsert`, the default; `skip`; `dry_run`), `delimiter` (sniffed among `,` `;`
        tab `|` when omitted) and `default_region` (ISO country of phone numbers written
        without a country code; default NOTIBOT_DEFAULT_REGION).

        The file is checked, then imported by a background job of kind `csv_import`: the
        answer is 202 with the job's id and URLs (`Location` is the status URL). Follow it at
        `status_url` (counters, progress, the first rejected rows), download every rejected
        row at `errors_url`, cancel it with `POST /tasks/{job_id}/cancel`.

        Refused at once: a body that is not `multipart/form-data` or a file that is binary or
        not UTF-8 (415); a file over NOTIBOT_MAX_UPLOAD_MB (413 `file_too_large`); no `file`
        field, an empty file, a header without `full_name` or without both `email` and `phone`
        columns, a bad `mode`, `delimiter` or `default_region` (422); a malformed form (400
        `invalid_multipart`).
        """
        media_type = (req.content_type or "").partition(";")[0].strip().lower()
        if media_type != MEDIA_MULTIPART:
            raise HTTPUnsupportedMediaType(
                description=f"send the file as {MEDIA_MULTIPART} with the field `file`, not "
                            f"{media_type or 'a body without Content-Type'}")
        limit = self._imports.max_upload_bytes
        if req.content_length is not None and req.content_length > limit + FORM_OVERHEAD_BYTES:
            raise _too_large(limit, request_bytes=req.content_length)
        content: bytes | None = None
        filename = DEFAULT_FILENAME
        file_type: str | None = None
        options: dict[str, str | None] = {}
        form = await req.get_media()
        async for part in form:
            name = part.name
            if name == "file":
                if content is not None:
                    raise _field_error("file", "send one file per import (`file` came twice)")
                filename, file_type = _filename(part), part.content_type
                content = await read_file_part(part, limit)
            elif name in OPTION_FIELDS:
                options[name] = await _read_option(part)
            else:
                allowed = ", ".join(("file", *OPTION_FIELDS))
                raise _field_error(name or "", f"unknown form field `{name}` (fields: {allowed})")
        if content is None:
            raise _field_error("file", "the form has no `file` field: send the CSV file as "
                                       "the multipart field `file`")
        user = req.context.user
        job = await self._imports.submit(
            content, filename=filename, mode=options.get("mode"),
            delimiter=options.get("delimiter"), default_region=options.get("default_region"),
            created_by=user.id if user is not None else None, content_type=file_type)
        urls = import_urls(req.root_path, job.id)
        resp.status = falcon.HTTP_202
        resp.location = urls["status_url"]
        resp.media = ImportAccepted(job_id=job.id, **urls).model_dump(mode="json")


class ImportStatus:
    """``GET /customers/import/{job_id}/status``."""

    def __init__(self, imports: CustomerImportService, jobs: JobService) -> None:
        self._imports = imports
        self._jobs = jobs

    @endpoint(tag=TAG_CUSTOMERS, operation_id="getImportStatus", response=ImportStatusOut,
              errors=[404])
    async def on_get(self, req: Request, resp: Response, job_id: str) -> None:
        """Get an import's progress

        The import's state (`queued`, `running`, `succeeded`, `failed`, `cancelled`), its row
        counters (once it succeeded, `created + updated + skipped + failed == total_rows`),
        progress, estimated seconds left and the first 100 rejected rows with their line in
        the file. An unknown id, or a job that is not an import, answers 404
        `import_not_found`.
        """
        job = await self._imports.status(job_id)
        resp.media = import_status_json(job, await self._jobs.eta_seconds(job))


class ImportErrors:
    """``GET /customers/import/{job_id}/errors.csv``."""

    def __init__(self, imports: CustomerImportService) -> None:
        self._imports = imports

    @endpoint(tag=TAG_CUSTOMERS, operation_id="getImportErrors", media_type="text/csv",
              errors=[404], headers={"Content-Disposition": 'attachment; '
                                                            'filename="<job_id>-errors.csv"'})
    async def on_get(self, req: Request, resp: Response, job_id: str) -> None:
        """Download an import's rejected rows

        Every rejected row as CSV (UTF-8, header line first): `line` (1-based line in the
        uploaded file), `code` (`invalid_email`, `missing_name`, `no_contact`,
        `duplicate_in_file`, ...), `message`, then the file's columns with the row's values,
        so the rows can be fixed and imported again. While the import runs it lists the rows
        rejected so far. An unknown id answers 404 `import_not_found`.
        """
        await self._imports.status(job_id)  # 404 before the response starts
        resp.content_type = "text/csv; charset=utf-8"
        resp.downloadable_as = f"{job_id}-errors.csv"
        resp.stream = _encoded(self._imports.rejected_rows_csv(job_id))


async def _encoded(pieces: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for piece in pieces:
        if piece:
            yield piece.encode("utf-8")

