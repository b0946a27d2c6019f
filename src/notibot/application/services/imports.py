"""Customer import: a CSV file becomes a csv_import job that creates and updates customers.

Flow: :meth:`CustomerImportService.submit` checks the file (encoding, header) and keeps it in
the UploadStore, then queues a job; the job (:meth:`CustomerImportService.run`) reads it in
batches through the CustomerFileReader, de-duplicates inside the file and against the store,
writes each batch in bulk, and reports progress and rejected rows after every batch, which is
also where a cancel takes effect.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import gc
import io
import itertools
import operator
import threading
from collections.abc import AsyncIterator, Sequence
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
            "column_fields": summary.mapping,
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
        ``code``, ``message``, then the file's own columns, so the rows can be fixed and
        imported again. Rows rejected for an invalid value carry their original cells; rows
        skipped as duplicates or conflicts carry their normalised values (E.164 phone,
        lower-cased email), each under the file's column for that field.

        Raises:
            NotFound: ``import_not_found``.
        """
        job = await self.status(job_id)
        columns: list[str] = list(job.params.get("columns") or [])
        column_of = {field: column for column, field in
                     (job.params.get("column_fields") or {}).items()}
        column_of.update({column.strip(): column for column in columns})
        column_of.update({column: column for column in columns})
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["line", "code", "message", *columns])
        offset = 0
        while True:
            errors = await self._job_repository.list_errors(job_id, offset=offset, limit=page)
            for error in errors:
                cells = {column_of.get(key, key): value
                         for key, value in (error.values or {}).items()}
                writer.writerow([error.line or "", error.code, error.message,
                                 *(cells.get(c, "") for c in columns)])
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

    async def discard(self, job: Job) -> None:
        """Delete the uploaded file of an import cancelled before it started (the job
        runner calls this; nothing else would ever read the file)."""
        upload_id = job.params.get("upload_id")
        if upload_id:
            await self._uploads.delete(upload_id)

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
        # every row's values, duplicates' too (no Python step to leave them out): _match
        # only looks at the fresh rows
        wanted_emails = list(filter(None, batch.columns["email"]))
        wanted_phones = list(filter(None, batch.columns["phone"]))
        by_email = await self._customers.find_by_emails(wanted_emails) if wanted_emails else {}
        by_phone = await self._customers.find_by_phones(wanted_phones) if wanted_phones else {}
        updates: list[tuple[int, Customer]] = []
        if not by_email and not by_phone:
            new = fresh  # nothing stored matches: every row is a new customer
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
        size = len(lines)
        # rows whose email and phone both match nothing are new customers; only the others
        # go through the rules below, in file order
        none = itertools.repeat(None)
        hits = set(itertools.compress(fresh, map(
            operator.is_not, map(by_email.get, _pick(emails, fresh, size)), none)))
        hits.update(itertools.compress(fresh, map(
            operator.is_not, map(by_phone.get, _pick(phones, fresh, size)), none)))
        new = [i for i in fresh if i not in hits]
        updates: list[tuple[int, Customer]] = []
        for i in sorted(hits):
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
            if match is None:  # not reached: every hit matched a stored customer
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
        same phone, as an earlier row makes a row its duplicate (skipped, reported).

        Whole columns first, without a Python step per row: ``setdefault`` mapped over a
        column records each value's first line in one dictionary operation, and a row whose
        email and phone were both new is not a duplicate. The few other rows (suspects) are
        taken back out of the record and decided one by one, in file order, by the rule
        above; no other row shares a value with a suspect, so the outcome is the rule's, row
        by row.
        """
        lines = batch.lines
        emails, phones = batch.columns["email"], batch.columns["phone"]
        rows = range(len(lines))
        suspects: set[int] = set()
        for values, seen in ((emails, state.email_lines), (phones, state.phone_lines)):
            keyed: range | list[int] = rows
            keys, own = values, lines
            if not all(values):  # only the rows with a value
                keyed = list(itertools.compress(rows, values))
                keys = list(itertools.compress(values, values))
                own = list(itertools.compress(lines, values))
            firsts = map(seen.setdefault, keys, own)
            suspects.update(itertools.compress(keyed, map(operator.ne, firsts, own)))
        if not suspects:
            return list(rows)
        order = sorted(suspects)
        email_lines, phone_lines = state.email_lines, state.phone_lines
        for i in order:  # forget what the suspects recorded
            line, email, phone = lines[i], emails[i], phones[i]
            if email and email_lines.get(email) == line:
                del email_lines[email]
            if phone and phone_lines.get(phone) == line:
                del phone_lines[phone]
        duplicates: set[int] = set()
        for i in order:
            line, email, phone = lines[i], emails[i], phones[i]
            first = email_lines.get(email) if email else None
            if first is None and phone:
                first = phone_lines.get(phone)
            if first is not None:
                duplicates.add(i)
                tally.skipped += 1
                tally.errors.append(_row_error(batch, i, "duplicate_in_file",
                                               f"duplicate of line {first}"))
                continue
            if email:
                email_lines[email] = line
            if phone:
                phone_lines[phone] = line
        return list(itertools.filterfalse(duplicates.__contains__, rows))

    async def _write(
        self, batch: CustomerBatch, new: list[int], updates: list[tuple[int, Customer]],
        tally: _Tally,
    ) -> None:
        now = await self._clock.now()
        ids = await self._ids.new_ids(len(new))
        size = len(batch.lines)
        row_ids: Sequence[str | None] = ids
        if len(new) < size:
            # every row's customer is built from the whole columns and the new ones are kept:
            # one pass over the customers instead of picking rows out of every column
            scattered: list[str | None] = [None] * size
            collections.deque(map(scattered.__setitem__, new, ids), maxlen=0)
            row_ids = scattered
        *fields, tags, attributes = [batch.columns[name] for name in CUSTOMER_FILE_FIELDS]
        # Customers without tags or attributes share one empty list and dict (fewer objects
        # to allocate and for the collector to trace), as rows with equal tags may share one
        # list: the repository owns the objects and replaces a stored customer, it never
        # changes one in place.
        no_tags: list[str] = []
        no_attributes: dict[str, Any] = {}
        with _gc_paused():  # the batch's surviving objects are built here
            built = map(
                Customer, row_ids, *fields,
                [t if t is not None else no_tags for t in tags],
                itertools.repeat(no_attributes) if attributes.count(None) == size
                else [a if a is not None else no_attributes for a in attributes],
                itertools.repeat(True), itertools.repeat(now), itertools.repeat(now))
            creates = list(built if len(new) == size else itertools.compress(
                built, map(operator.is_not, row_ids, itertools.repeat(None))))
            merged = [match.merged_with(batch.row(i), now=now) for i, match in updates]
        del ids, row_ids, built, fields, tags, attributes
        result = await self._customers.bulk_upsert(creates, merged)
        tally.created += result.created
        tally.updated += result.updated
        if result.rejected:
            rows = {c.id: i for c, i in zip(creates, new, strict=True)}
            rows.update({c.id: i for c, (i, _) in zip(merged, updates, strict=True)})
            for cid, reason in result.rejected.items():
                tally.failed += 1
                tally.errors.append(_row_error(batch, rows[cid], "conflict", reason))


def _pick(values: list[Any], indexes: list[int], size: int) -> list[Any]:
    """``[values[i] for i in indexes]`` without a Python loop; ``values`` itself when
    ``indexes`` is every row (all ``size`` of them, in order)."""
    if len(indexes) == size:
        return values
    if not indexes:
        return []
    if len(indexes) == 1:
        return [values[indexes[0]]]
    return list(operator.itemgetter(*indexes)(values))


#: Overlapping _gc_paused blocks (tasks or threads) and whether the collector was on when
#: the outermost one began.
_gc_pause_lock = threading.Lock()
_gc_pause_depth = 0
_gc_was_enabled = False


@contextlib.contextmanager
def _gc_paused() -> Any:
    """Pause the cyclic garbage collector while a batch builds its customers.

    A batch allocates tens of thousands of objects that all survive (they go into the
    store); with the collector on, building a million customers takes several times as long:
    collections trace the growing heap again and again. Reference counting still frees
    everything as usual, and the collector resumes (and catches up) right after, so the
    pause covers synchronous code only (no await: other tasks never run with the collector
    off). Pauses may overlap (imports in several threads): the collector resumes when the
    last one ends, and only if it was on when the first one began.
    """
    global _gc_pause_depth, _gc_was_enabled
    with _gc_pause_lock:
        if _gc_pause_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pause_depth += 1
    try:
        yield
    finally:
        with _gc_pause_lock:
            _gc_pause_depth -= 1
            if _gc_pause_depth == 0 and _gc_was_enabled:
                gc.enable()


def _row_error(batch: CustomerBatch, index: int, code: str, message: str) -> JobError:
    """A rejected valid-looking row (duplicate, conflict) with its normalised values by field
    name, and its unknown columns by their own (stripped) names."""
    row = batch.row(index)
    attributes = row.pop("attributes", None) or {}
    values = {name: _cell(value) for name, value in row.items() if value}
    values.update({key: str(value) for key, value in attributes.items() if value})
    return JobError(code=code, message=message, line=batch.lines[index], values=values)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in value.items())
    return str(value)
