"""Customer CSV files read with pandas in chunks, validated a whole column at a time.

The rules are the domain's (:mod:`notibot.domain.rules`: the email pattern, language codes,
tag splitting) and the phone adapter's (:func:`notibot.adapters.phone.vectorised.e164_column`),
applied to pandas Series instead of one value at a time.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import io
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from notibot.adapters.phone.vectorised import e164_column
from notibot.application.ports import (
    CUSTOMER_FILE_FIELDS,
    CustomerBatch,
    CustomerFileOptions,
    CustomerFileReader,
    CustomerFileSummary,
)
from notibot.domain import InvalidInput, JobError, UnsupportedFile
from notibot.domain.rules import EMAIL_MAX_LENGTH, EMAIL_PATTERN, LANGUAGE_PATTERN, normalize_tags

#: Delimiters the reader accepts and sniffs among.
DELIMITERS = (",", ";", "\t", "|")

#: Header aliases, after trimming, case-folding and turning spaces/hyphens into underscores.
ALIASES = {
    "full_name": "full_name", "fullname": "full_name", "name": "full_name",
    "customer_name": "full_name",
    "email": "email", "e_mail": "email", "mail": "email", "email_address": "email",
    "phone": "phone", "mobile": "phone", "phone_number": "phone", "tel": "phone",
    "telephone": "phone", "mobile_phone": "phone", "cell": "phone",
    "company": "company", "position": "position", "title": "position",
    "address": "address", "city": "city", "country": "country",
    "language": "language", "lang": "language",
    "tags": "tags", "tag": "tags",
}
FIELDS = ("full_name", "email", "phone", "company", "position", "address", "city", "country",
          "language", "tags")
_BLOCK = 1 << 20


@dataclass(slots=True)
class _FileFacts:
    delimiter: str
    header: list[str]
    physical_lines: int
    bom: bool


def _canonical(header: str) -> str:
    key = re.sub(r"[\s\-]+", "_", header.strip().casefold())
    return ALIASES.get(key, key)


def inspect_file(file: BinaryIO, delimiter: str | None) -> _FileFacts:
    """Check the whole file once (UTF-8 with or without BOM, no NUL bytes, not empty), count
    its lines and find the delimiter and header. Leaves the file at its start.

    Raises:
        InvalidInput: ``empty_file``, ``binary_file``, ``not_utf8``, ``invalid_delimiter``.
    """
    file.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    first = b""
    offset = 0
    lines = 0
    last = b""
    while block := file.read(_BLOCK):
        if not first:
            first = block[:65536]
        if b"\x00" in block:
            raise UnsupportedFile("the file contains binary data (NUL bytes); upload a CSV "
                                  "text file", code="binary_file")
        try:
            decoder.decode(block)
        except UnicodeDecodeError as exc:
            raise UnsupportedFile(
                f"the file is not UTF-8 text (invalid byte at offset {offset + exc.start}); "
                "save it as UTF-8 CSV", code="not_utf8",
                details={"offset": offset + exc.start}) from None
        lines += block.count(b"\n")
        last = block[-1:]
        offset += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise UnsupportedFile("the file ends in the middle of a UTF-8 character",
                              code="not_utf8",
                           details={"offset": offset}) from None
    file.seek(0)
    bom = first.startswith(codecs.BOM_UTF8)
    text = first[3:] if bom else first
    header_line = text.decode("utf-8", errors="ignore").splitlines()[0] if text.strip() else ""
    if not header_line.strip():
        raise InvalidInput("the file is empty: it needs a header line and data rows",
                           code="empty_file")
    if last and last != b"\n":
        lines += 1
    if delimiter is None:
        counts = {d: header_line.count(d) for d in DELIMITERS}
        delimiter = max(counts, key=lambda d: counts[d])
        if counts[delimiter] == 0:
            delimiter = ","
    elif delimiter not in DELIMITERS:
        raise InvalidInput(
            f"delimiter must be one of {', '.join(repr(d) for d in DELIMITERS)}",
            code="invalid_delimiter", details={"field": "delimiter"})
    return _FileFacts(delimiter=delimiter, header=header_line.split(delimiter),
                      physical_lines=lines, bom=bom)


def map_columns(header: list[str]) -> tuple[dict[str, str], list[str]]:
    """Return ``({file column: field}, extra columns)`` for a header row.

    Raises:
        InvalidInput: ``missing_columns`` (no full_name, or neither email nor phone) or
            ``duplicate_columns`` (two columns mean the same field).
    """
    mapping: dict[str, str] = {}
    extra: list[str] = []
    seen: dict[str, str] = {}
    for column in header:
        field = _canonical(column)
        if field in FIELDS:
            if field in seen:
                raise InvalidInput(
                    f"columns {seen[field]!r} and {column!r} both mean {field}",
                    code="duplicate_columns", details={"columns": [seen[field], column]})
            seen[field] = column
            mapping[column] = field
        elif column.strip():
            extra.append(column)
    missing = []
    if "full_name" not in seen:
        missing.append("full_name")
    if "email" not in seen and "phone" not in seen:
        missing.append("email or phone")
    if missing:
        raise InvalidInput(
            f"the file has no {' and no '.join(missing)} column (found: "
            f"{', '.join(c.strip() for c in header) or 'nothing'})",
            code="missing_columns", details={"missing": missing, "found": header})
    return mapping, extra


class PandasCustomerFileReader(CustomerFileReader):
    """:class:`~notibot.application.ports.CustomerFileReader` on ``pandas.read_csv`` with
    ``dtype=str`` and ``keep_default_na=False`` (no NaN guessing, leading zeros kept), UTF-8
    with or without BOM. Chunks are parsed in a worker thread so the event loop keeps serving.

    Line numbers count physical lines (header = 1), including blank lines and line breaks
    inside quoted cells. Rows whose cells are all empty are skipped and not counted.
    """

    async def inspect(self, file: BinaryIO, options: CustomerFileOptions) -> CustomerFileSummary:
        facts = await asyncio.to_thread(inspect_file, file, options.delimiter)
        mapping, extra = map_columns(facts.header)
        return CustomerFileSummary(
            delimiter=facts.delimiter, columns=facts.header, mapping=mapping,
            extra_columns=extra, estimated_rows=max(0, facts.physical_lines - 1))

    async def batches(
        self, file: BinaryIO, options: CustomerFileOptions
    ) -> AsyncIterator[CustomerBatch]:
        facts = await asyncio.to_thread(inspect_file, file, options.delimiter)
        mapping, extra = map_columns(facts.header)
        chunks = _read_chunks(file, facts, options.chunk_rows)

        def read(first_line: int) -> asyncio.Future[tuple[CustomerBatch, int] | None]:
            return asyncio.ensure_future(asyncio.to_thread(
                _next_batch, chunks, mapping, extra, options, first_line))

        # the next chunk is parsed in a thread while the caller handles this one
        pending = read(2)
        try:
            while True:
                item = await pending
                if item is None:
                    return
                batch, next_line = item
                pending = read(next_line)
                yield batch
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending


def _read_chunks(file: BinaryIO, facts: _FileFacts, chunk_rows: int) -> Iterator[pd.DataFrame]:
    file.seek(0)
    text = io.TextIOWrapper(file, encoding="utf-8-sig", newline="")
    return pd.read_csv(
        text, sep=facts.delimiter, dtype=str, keep_default_na=False, na_filter=False,
        skip_blank_lines=False, chunksize=chunk_rows, engine="c", header=0,
        on_bad_lines="error", quotechar='"',
    )


def _next_batch(
    chunks: Iterator[pd.DataFrame], mapping: dict[str, str], extra: list[str],
    options: CustomerFileOptions, first_line: int,
) -> tuple[CustomerBatch, int] | None:
    try:
        frame = next(chunks)
    except StopIteration:
        return None
    except pd.errors.ParserError as exc:
        raise InvalidInput(f"the file is not valid CSV near line {first_line}: {exc}",
                           code="invalid_csv", details={"line": first_line}) from None
    return normalize_frame(frame, mapping, extra, options.default_region, first_line)


def normalize_frame(
    frame: pd.DataFrame, mapping: dict[str, str], extra: list[str], default_region: str,
    first_line: int,
) -> tuple[CustomerBatch, int]:
    """Validate and normalise one chunk. Returns the batch and the line number of the row
    after it."""
    n = len(frame)
    # physical line numbers: one line per row, plus line breaks inside quoted cells
    breaks = pd.Series(0, index=frame.index)
    for column in frame.columns:
        has = frame[column].str.contains("\n", regex=False)
        if has.any():
            breaks = breaks + frame[column].str.count("\n")
    starts = first_line + pd.Series(range(n), index=frame.index) + breaks.cumsum() - breaks
    next_line = first_line + n + int(breaks.sum())

    raw = {col: frame[col] for col in frame.columns}
    clean = {col: series.str.strip() for col, series in raw.items()}
    blank = pd.Series(True, index=frame.index)
    for series in clean.values():
        blank &= series == ""
    cols = {field: clean[col] for col, field in mapping.items()}
    empty = pd.Series("", index=frame.index)
    name = cols.get("full_name", empty)
    email = cols.get("email", empty).str.lower()
    phone_raw = cols.get("phone", empty)
    language = cols.get("language", empty).str.lower().str.replace("_", "-", regex=False)

    has_email = email != ""
    email_ok = email.str.fullmatch(EMAIL_PATTERN) & (email.str.len() <= EMAIL_MAX_LENGTH)
    phone = e164_column(phone_raw.where(phone_raw != "", None), default_region)
    has_phone = phone_raw != ""
    phone_ok = phone.notna()
    lang_ok = (language == "") | language.str.fullmatch(LANGUAGE_PATTERN)

    reason = pd.Series(None, index=frame.index, dtype=object)
    checks = (
        (name == "", "missing_name"),
        (has_email & ~email_ok, "invalid_email"),
        (has_phone & ~phone_ok, "invalid_phone"),
        (~has_email & ~has_phone, "no_contact"),
        (~lang_ok, "invalid_language"),
    )
    for failed, code in checks:
        reason = reason.where(reason.notna() | ~failed, code)
    reason = reason.where(~blank, None)

    errors: list[JobError] = []
    bad = reason.notna()
    if bad.any():
        for idx, values, code, line in zip(
            frame.index[bad], frame[bad].to_dict("records"), reason[bad], starts[bad],
            strict=True,
        ):
            errors.append(JobError(code=code, message=_message(code, cols, idx, default_region),
                                   line=int(line), values=values))

    good = ~bad & ~blank
    normalized = {**cols, "email": email, "phone": phone, "language": language}
    columns = _columns(good, normalized, clean, extra)
    rows = n - int(blank.sum())
    batch = CustomerBatch(lines=starts[good].tolist(), columns=columns, errors=errors, rows=rows)
    return batch, next_line


def _message(code: str, cols: dict[str, pd.Series], idx: object, region: str) -> str:
    def cell(field: str) -> str:
        series = cols.get(field)
        return "" if series is None else str(series[idx])

    if code == "missing_name":
        return "full_name is empty"
    if code == "invalid_email":
        return f"email {cell('email')!r} is not a valid address"
    if code == "invalid_phone":
        return f"phone {cell('phone')!r} is not a valid number (default region {region})"
    if code == "no_contact":
        return "the row has neither an email nor a phone"
    return f"language {cell('language')!r} is not a language code such as 'vi' or 'en'"


#: Columns with few distinct values (cities, companies, languages, ...).
_LOW_CARDINALITY = frozenset({"company", "position", "city", "country", "language"})


def _values(series: pd.Series, shared: bool) -> list[str | None]:
    """The column as a list with "" -> None, converted without a Python loop. With
    ``shared`` each distinct value becomes one string object (``factorize``), so a value
    repeated a million times costs its memory once."""
    if shared:
        codes, uniques = pd.factorize(series, sort=False, use_na_sentinel=False)
        table = np.array([u if isinstance(u, str) and u else None for u in uniques.tolist()],
                         dtype=object)
        return table[codes].tolist()
    values = series.astype(object)
    return values.where(series.ne("") & series.notna(), None).tolist()


def _tags(series: pd.Series) -> list[list[str] | None]:
    """Tag lists; equal cells share one list object (the store never changes a stored
    customer in place, it replaces it)."""
    codes, uniques = pd.factorize(series, sort=False, use_na_sentinel=False)
    table = np.empty(len(uniques), dtype=object)
    table[:] = [normalize_tags(u) or None if isinstance(u, str) and u else None
                for u in uniques.tolist()]
    return table[codes].tolist()


def _columns(
    good: pd.Series, normalized: dict[str, pd.Series], clean: dict[str, pd.Series],
    extra: list[str],
) -> dict[str, list[Any]]:
    count = int(good.sum())
    columns: dict[str, list[Any]] = {}
    for field in CUSTOMER_FILE_FIELDS:
        series = normalized.get(field)
        if field == "attributes" or series is None:
            columns[field] = [None] * count
        elif field == "tags":
            columns[field] = _tags(series[good])
        else:
            columns[field] = _values(series[good], field in _LOW_CARDINALITY)
    if extra and count:
        keys = [c.strip() for c in extra]
        cells = [clean[c][good].tolist() for c in extra]
        columns["attributes"] = [
            {k: v for k, v in zip(keys, values, strict=True) if v} or None
            for values in zip(*cells, strict=True)
        ]
    return columns
