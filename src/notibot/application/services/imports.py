"""Customer import: a CSV file becomes a csv_import job that creates and updates customers.

Flow: :meth:`CustomerImportService.submit` checks the file (encoding, header) and keeps it in
the UploadStore, then queues a job; the job (:meth:`CustomerImportService.run`) reads it in
batches through the CustomerFileReader, de-duplicates inside the file and against the store,
writes each batch in bulk, and reports progress and rejected rows after every batch, which is
also where a cancel takes effect.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import itertools
import operator
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from notibot.application.ports import (
    CUSTOMER_FILE_FIELDS,
    Clock,
    CustomerBatch,
    CustomerFileOptions,
    CustomerFileReader,
    CustomerRepository,
    IdGenerator,
    JobRepository,
    UploadStore,
)
from notibot.application.services.jobs import JobContext, JobService
from notibot.domain import (
    Customer,
    FileTooLarge,
    InvalidInput,
    Job,
    JobCancelled,
    JobError,
    JobKind,
    NotFound,
)


class ImportMode(StrEnum):
    """What an import does with a row that matches an existing customer.

    ``upsert`` fills and updates its non-empty fields (never ``subscribed``); ``skip`` leaves
    it untouched and counts it as skipped; ``dry_run`` writes nothing at all and reports what
    ``upsert`` would have done.
    """

    UPSERT = "upsert"
    SKIP = "skip"
    DRY_RUN = "dry_run"


def parse_mode(value: str | None) -> ImportMode:
    """Return the :class:`ImportMode` named ``value`` (default upsert).

    Raises:
        InvalidInput: code ``invalid_mode``.
    """
    try:
        return ImportMode(value or ImportMode.UPSERT)
    except ValueError:
        raise InvalidInput(f"mode must be one of: {', '.join(m.value for m in ImportMode)}",
                           code="invalid_mode", details={"field": "mode"}) from None


@dataclass(slots=True)
class _Tally:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[JobError] = field(default_factory=list)


@dataclass(slots=True)
class _ImportState:
    """What one import remembers across batches: the first line of every email and phone
    seen, and which stored customer each line already updated."""

    mode: ImportMode
    email_lines: dict[str, int] = field(default_factory=dict)
    phone_lines: dict[str, int] = field(default_factory=dict)
    matched_lines: dict[str, int] = field(default_factory=dict)


def file_options(delimiter: str | None, region: str, chunk_rows: int) -> CustomerFileOptions:
    """Validated reading options (``"\\t"`` written out means tab).

    Raises:
        InvalidInput: ``invalid_region`` when ``region`` is not two letters.
    """
    region = region.strip().upper()
    if len(region) != 2 or not region.isalpha():
        raise InvalidInput("default_region must be an ISO 3166-1 alpha-2 code such as VN",
                           code="invalid_region", details={"field": "default_region"})
    if delimiter == "\\t":
        delimiter = "\t"
    return CustomerFileOptions(delimiter=delimiter or None, default_region=region,
                               chunk_rows=chunk_rows)


class CustomerImportService:
    """Starting and watching customer file imports.

    Parameters:
        max_upload_bytes: largest file accepted (NOTIBOT_MAX_UPLOAD_MB).
        default_region: region for phones without a country code when the upload names none.
        chunk_rows: rows per batch.
    """

    def __init__(
        self,
        jobs: JobService,
        job_repository: JobRepository,
        uploads: UploadStore,
        reader: CustomerFileReader,
        *,
        max_upload_bytes: int = 50 * 1024 * 1024,
        default_region: str = "VN",
        chunk_rows: int = 50_000,
    ) -> None:
        self._jobs = jobs
        self._job_repository = job_repository
        self._uploads = uploads
        self._reader = reader
        self.max_upload_bytes = max_upload_bytes
        self._default_region = default_region
        self._chunk_rows = chunk_rows

    async def submit(
        self,
        content: bytes,
        *,
        filename: str,
        mode: str | None = None,
        delimiter: str | None = None,
        default_region: str | None = None,
        created_by: str | None = None,
        content_type: str | None = None,
    ) -> Job:
        """Check the file, keep it in the UploadStore and queue a csv_import job.

        The whole file is checked first, so a file that cannot be imported is refused now
        rather than failing as a job later.

        Raises:
            FileTooLarge: over ``max_upload_bytes``.
            UnsupportedFile: binary data or not UTF-8.
            InvalidInput: empty file, bad mode/delimiter/region, missing or duplicate columns.
        """
        if len(content) > self.max_upload_bytes:
            raise FileTooLarge(
                f"the file is {len(content)} bytes; the limit is {self.max_upload_bytes}",
                details={"limit_bytes": self.max_upload_bytes, "size_bytes": len(content)})
        import_mode = parse_mode(mode)
        options = file_options(delimiter, default_region or self._default_region,
                               self._chunk_rows)
        summary = await self._reader.inspect(io.BytesIO(content), options)
        upload = await self._uploads.save(content, filename=filename, content_type=content_type)
        params = {
            "upload_id": upload.id, "filename": filename, "size_bytes": upload.size,
            "mode": import_mode.value, "delimiter": summary.delimiter,
            "default_region": options.default_region, "columns": summary.columns,
        }
        try:
            job = await self._jobs.submit(JobKind.CSV_IMPORT, params, created_by=created_by,
                                          total=summary.estimated_rows)
        except Exception:
            await self._uploads.delete(upload.id)
            raise
        return job

    async def status(self, job_id: str) -> Job:
        """The import job ``job_id``. Raises NotFound (``import_not_found``) when there is no
        such job or it is not a csv_import."""
        try:
            job = await self._jobs.get(job_id)
        except NotFound:
            job = None
        if job is None or job.kind != JobKind.CSV_IMPORT:
            raise NotFound("import", job_id)
        return job

    async def rejected_rows_csv(self, job_id: str, *, page: int = 5000) -> AsyncIterator[str]:
        """The rejected rows of import ``job_id`` as CSV text, in pieces: columns ``line``,
        ``code``, ``message``, then the file's columns (rows rejected for invalid values carry
        their original cells; duplicates carry their normalised fields).

        Raises:
            NotFound: ``import_not_found``.
        """
        job = await self.status(job_id)
        columns: list[str] = list(job.params.get("columns") or [])
        out = io.StringIO()
        writer = csv.writer(out)
        offset = 0
        header_done = False
        while True:
            errors = await self._job_repository.list_errors(job_id, offset=offset, limit=page)
            if not header_done:
                for error in errors:
                    for key in error.values or {}:
                        if key not in columns:
                            columns.append(key)
                writer.writerow(["line", "code", "message", *columns])
                header_done = True
            for error in errors:
                values = error.values or {}
                writer.writerow([error.line or "", error.code, error.message,
                                 *(values.get(c, "") for c in columns)])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if len(errors) < page:
                return
            offset += page


class CustomerImporter:
    """The csv_import job handler (register :meth:`run` for ``JobKind.CSV_IMPORT``).

    Parameters:
        chunk_rows: rows per batch, i.e. between two progress reports and cancel checks.
    """

    def __init__(
        self,
        customers: CustomerRepository,
        uploads: UploadStore,
        reader: CustomerFileReader,
        ids: IdGenerator,
        clock: Clock,
        *,
        chunk_rows: int = 50_000,
    ) -> None:
        self._customers = customers
        self._uploads = uploads
        self._reader = reader
        self._ids = ids
        self._clock = clock
        self._chunk_rows = chunk_rows

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        """The csv_import job handler: import the uploaded file batch by batch.

        Returns the summary ``{total_rows, created, updated, skipped, failed, mode}``.

        Raises:
            JobCancelled: at a batch boundary after a cancel request.
            InvalidInput: the file turned out unreadable (the job fails with that message).
        """
        params = ctx.params
        state = _ImportState(mode=ImportMode(params["mode"]))
        options = file_options(params.get("delimiter"), params.get("default_region") or "VN",
                               self._chunk_rows)
        upload_id = params["upload_id"]
        file = await self._uploads.open(upload_id)
        rows = 0
        finished = False
        try:
            ctx.job.counters.setdefault("total_rows", ctx.job.total or 0)
            async for batch in self._reader.batches(file, options):
                with _gc_paused():
                    tally = await self._import_batch(batch, state)
                rows += batch.rows
                await ctx.report(processed=batch.rows, created=tally.created,
                                 updated=tally.updated, skipped=tally.skipped,
                                 failed=tally.failed, errors=tally.errors)
            finished = True
        except (JobCancelled, InvalidInput):
            finished = True
            raise
        finally:
            file.close()
            if finished:
                await self._uploads.delete(upload_id)
        ctx.job.total = rows
        ctx.job.counters["total_rows"] = rows
        counters = ctx.job.counters
        return {"total_rows": rows, "mode": state.mode.value,
                **{k: counters.get(k, 0) for k in ("created", "updated", "skipped", "failed")}}

    async def _import_batch(self, batch: CustomerBatch, state: _ImportState) -> _Tally:
        tally = _Tally(failed=len(batch.errors), errors=list(batch.errors))
        fresh = self._dedupe_in_file(batch, state, tally)
        if not fresh:
            return tally
        emails, phones = batch.columns["email"], batch.columns["phone"]
        wanted_emails = [emails[i] for i in fresh if emails[i]]
        wanted_phones = [phones[i] for i in fresh if phones[i]]
        by_email = await self._customers.find_by_emails(wanted_emails) if wanted_emails else {}
        by_phone = await self._customers.find_by_phones(wanted_phones) if wanted_phones else {}
        if not by_email and not by_phone:
            new, updates = fresh, []  # nothing stored matches: every row is a new customer
        else:
            new, updates = self._match(batch, fresh, by_email, by_phone, state, tally)
        if state.mode is ImportMode.DRY_RUN:
            tally.created += len(new)
            tally.updated += len(updates)
            return tally
        await self._write(batch, new, updates, tally)
        return tally

    @staticmethod
    def _match(
        batch: CustomerBatch, fresh: list[int], by_email: dict[str, Customer],
        by_phone: dict[str, Customer], state: _ImportState, tally: _Tally,
    ) -> tuple[list[int], list[tuple[int, Customer]]]:
        """Split rows into new customers and updates of stored ones (email first, then
        phone); rows whose email and phone point at two customers fail as conflicts."""
        lines, emails, phones = batch.lines, batch.columns["email"], batch.columns["phone"]
        new: list[int] = []
        updates: list[tuple[int, Customer]] = []
        for i in fresh:
            email, phone = emails[i], phones[i]
            match = by_email.get(email) if email else None
            owner = by_phone.get(phone) if phone else None
            if match is None:
                match = owner
            elif owner is not None and owner.id != match.id:
                tally.failed += 1
                tally.errors.append(_row_error(
                    batch, i, "conflict", f"email {email} belongs to customer {match.id} "
                    f"but phone {phone} belongs to customer {owner.id}"))
                continue
            if match is None:
                new.append(i)
                continue
            first = state.matched_lines.get(match.id)
            if first is not None:
                tally.skipped += 1
                tally.errors.append(_row_error(
                    batch, i, "duplicate_in_file",
                    f"matches the same customer ({match.id}) as line {first}"))
                continue
            state.matched_lines[match.id] = lines[i]
            if state.mode is ImportMode.SKIP:
                tally.skipped += 1
            else:
                updates.append((i, match))
        return new, updates

    @staticmethod
    def _dedupe_in_file(batch: CustomerBatch, state: _ImportState, tally: _Tally) -> list[int]:
        """Indexes of the rows that are not duplicates of an earlier row: same email, or else
        same phone, as an earlier row makes a row its duplicate (skipped, reported)."""
        email_lines, phone_lines = state.email_lines, state.phone_lines
        fresh = []
        for i, (line, email, phone) in enumerate(
            zip(batch.lines, batch.columns["email"], batch.columns["phone"], strict=True)
        ):
            first = email_lines.get(email) if email else None
            if first is None and phone:
                first = phone_lines.get(phone)
            if first is not None:
                tally.skipped += 1
                tally.errors.append(_row_error(batch, i, "duplicate_in_file",
                                               f"duplicate of line {first}"))
                continue
            if email:
                email_lines[email] = line
            if phone:
                phone_lines[phone] = line
            fresh.append(i)
        return fresh

    async def _write(
        self, batch: CustomerBatch, new: list[int], updates: list[tuple[int, Customer]],
        tally: _Tally,
    ) -> None:
        now = await self._clock.now()
        ids = await self._ids.new_ids(len(new))
        cols = batch.columns
        if len(new) == len(batch.lines):
            picked = [cols[name] for name in CUSTOMER_FILE_FIELDS]
        else:
            take = operator.itemgetter(*new) if len(new) > 1 else (lambda c: (c[new[0]],))
            picked = [list(take(cols[name])) if new else [] for name in CUSTOMER_FILE_FIELDS]
        *fields, tags, attributes = picked
        creates = list(map(
            Customer, ids, *fields,
            [t if t is not None else [] for t in tags],
            [a if a is not None else {} for a in attributes],
            itertools.repeat(True), itertools.repeat(now), itertools.repeat(now)))
        del ids, picked, fields, tags, attributes
        merged = [match.merged_with(batch.row(i), now=now) for i, match in updates]
        result = await self._customers.bulk_upsert(creates, merged)
        tally.created += result.created
        tally.updated += result.updated
        if result.rejected:
            rows = {c.id: i for c, i in zip(creates, new, strict=True)}
            rows.update({c.id: i for c, (i, _) in zip(merged, updates, strict=True)})
            for cid, reason in result.rejected.items():
                tally.failed += 1
                tally.errors.append(_row_error(batch, rows[cid], "conflict", reason))

@contextlib.contextmanager
def _gc_paused() -> Any:
    """Pause the cyclic garbage collector while one batch builds and stores its customers.

    A batch allocates tens of thousands of objects that all survive (they go into the
    store); letting the collector trace them again and again costs a third of an import's
    time. Reference counting still frees everything as usual, and the collector resumes
    (and catches up) right after the batch, so at most one batch's worth of cyclic garbage
    waits a fraction of a second.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _row_error(batch: CustomerBatch, index: int, code: str, message: str) -> JobError:
    values = {name: _cell(value) for name, value in batch.row(index).items() if value}
    return JobError(code=code, message=message, line=batch.lines[index], values=values)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in value.items())
    return str(value)
