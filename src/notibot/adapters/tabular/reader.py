"""Customer CSV files read with pandas in chunks, validated a whole column at a time.

The rules are the domain's (:mod:`notibot.domain.rules`: the email pattern, language codes,
tag splitting) and the phone adapter's (:func:`notibot.adapters.phone.vectorised.e164_array`),
applied with pyarrow compute kernels to whole columns (the chunks' Arrow string arrays)
instead of one value at a time; Python objects are made only for a batch's output.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc

from notibot.adapters.phone.vectorised import e164_array
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
    first_row_cells: int | None = None


def _canonical(header: str) -> str:
    key = re.sub(r"[\s\-]+", "_", header.strip().casefold())
    return ALIASES.get(key, key)


def _scan(file: BinaryIO) -> tuple[bytes, int, bytes]:
    """Read the file once: its first 64 KiB, its count of ``\\n`` and its last byte.

    Raises:
        UnsupportedFile: ``binary_file`` (a NUL byte) or ``not_utf8`` (with the offset of
            the first invalid byte), whichever comes first in the file.
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
    return first, lines, last


def _scan_fast(file: BinaryIO) -> tuple[bytes, int, bytes]:
    """:func:`_scan`, with the UTF-8 check done by Arrow's validator (no text decoded). A
    block that is not valid UTF-8, a NUL byte or a file ending inside a character sends the
    file through :func:`_scan` itself, which finds the first error and words it."""
    file.seek(0)
    first = b""
    lines = 0
    last = b""
    carry = b""  # an incomplete character at the end of the previous block
    while block := file.read(_BLOCK):
        if not first:
            first = block[:65536]
        if b"\x00" in block:
            return _scan(file)
        data = carry + block if carry else block
        cut = len(data) - _incomplete_tail(data)
        if not _valid_utf8(data, cut):
            return _scan(file)
        carry = data[cut:]
        lines += int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 10))
        last = block[-1:]
    if carry:
        return _scan(file)
    return first, lines, last


def _incomplete_tail(data: bytes) -> int:
    """How many bytes at the end of ``data`` start a UTF-8 character they do not finish
    (0 to 3)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the character's first byte
            need = 2 if byte >= 0xC0 else 1
            need = 3 if byte >= 0xE0 else need
            need = 4 if byte >= 0xF0 else need
            return back if need > back else 0
    return 0


def _valid_utf8(data: bytes, length: int) -> bool:
    """Whether ``data[:length]`` is valid UTF-8 (strict, as Python decodes it)."""
    if not length:
        return True
    offsets = pa.py_buffer(np.array([0, length], dtype=np.int64).tobytes())
    value = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        value.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def inspect_file(file: BinaryIO, delimiter: str | None) -> _FileFacts:
    """Check the whole file once (UTF-8 with or without BOM, no NUL bytes, not empty), count
    its lines and find the delimiter and header. Leaves the file at its start.

    Raises:
        InvalidInput: ``empty_file``, ``binary_file``, ``not_utf8``, ``invalid_delimiter``.
    """
    first, lines, last = _scan_fast(file)
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
    records = csv.reader(io.StringIO(text.decode("utf-8", errors="ignore")),
                         delimiter=delimiter, quotechar='"')
    header = next(records, [])
    first_row = next(records, None)
    return _FileFacts(delimiter=delimiter, header=header, physical_lines=lines, bom=bom,
                      first_row_cells=None if first_row is None else len(first_row))


def check_first_row(facts: _FileFacts) -> None:
    """Refuse a file whose first data row has more cells than the header: pandas would take
    the extra cell as an index column and shift every column of the file (or, told not to,
    silently drop the cell). Later rows of that kind are parse errors anyway.

    Raises:
        InvalidInput: ``invalid_csv`` naming line 2.
    """
    cells, expected = facts.first_row_cells, len(facts.header)
    if cells is not None and cells > expected:
        raise InvalidInput(
            f"line 2 has {cells} cells but the header has {expected}: a "
            f"{facts.delimiter!r} inside a cell that is not quoted? Quote such cells",
            code="invalid_csv", details={"line": 2})


def map_columns(header: list[str]) -> tuple[dict[str, str], list[str]]:
    """Return ``({file column: field}, extra columns)`` for a header row.

    Raises:
        InvalidInput: ``missing_columns`` (no full_name, or neither email nor phone) or
            ``duplicate_columns`` (two columns mean the same field, or two unknown columns
            have the same name: their cells would be lost).
    """
    mapping: dict[str, str] = {}
    extra: list[str] = []
    seen: dict[str, str] = {}
    for column in header:
        field = _canonical(column)
        if field in seen:
            meaning = field if field in FIELDS else "the same column"
            raise InvalidInput(
                f"columns {seen[field]!r} and {column!r} both mean {meaning}",
                code="duplicate_columns", details={"columns": [seen[field], column]})
        if field in FIELDS:
            seen[field] = column
            mapping[column] = field
        elif column.strip():
            seen[field] = column
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
    every cell read as text (Arrow strings, as ``dtype=str``) and ``keep_default_na=False``
    (no NaN guessing, leading zeros kept), UTF-8 with or without BOM. Chunks are parsed in a
    worker thread so the event loop keeps serving.

    Line numbers count physical lines (header = 1), including blank lines and line breaks
    inside quoted cells. Rows whose cells are all empty are skipped and not counted.
    """

    async def inspect(self, file: BinaryIO, options: CustomerFileOptions) -> CustomerFileSummary:
        _check_region(options.default_region)
        facts = await asyncio.to_thread(inspect_file, file, options.delimiter)
        mapping, extra = map_columns(facts.header)
        check_first_row(facts)
        return CustomerFileSummary(
            delimiter=facts.delimiter, columns=facts.header, mapping=mapping,
            extra_columns=extra, estimated_rows=max(0, facts.physical_lines - 1))

    async def batches(
        self, file: BinaryIO, options: CustomerFileOptions
    ) -> AsyncIterator[CustomerBatch]:
        _check_region(options.default_region)
        facts = await asyncio.to_thread(inspect_file, file, options.delimiter)
        mapping, extra = map_columns(facts.header)
        check_first_row(facts)
        chunks = _read_chunks(file, facts, options.chunk_rows)
        # One chunk at a time, each read and normalised in a worker thread while the event
        # loop waits. Reading the next chunk while the caller imports this one was measured
        # slower: the importer holds the GIL throughout, and the reader, whose pandas and
        # pyarrow calls release it briefly again and again, waits out the interpreter's
        # switch interval (5 ms) each time it wants it back.
        first_line = 2
        while True:
            item = await asyncio.to_thread(_next_batch, chunks, mapping, extra, options,
                                           first_line)
            if item is None:
                return
            batch, first_line = item
            yield batch


def _check_region(region: str) -> None:
    """Refuse a default region without phone numbering metadata (like the setting)."""
    if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput(
            f"{region!r} is not a region with phone numbering metadata (ISO 3166-1 alpha-2, "
            "e.g. VN, US, GB)", code="invalid_region", details={"field": "default_region"})


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


def _read_chunks(file: BinaryIO, facts: _FileFacts, chunk_rows: int) -> Iterator[pd.DataFrame]:
    file.seek(0)
    # The C parser reads the bytes itself (inspect_file has checked they are UTF-8) and skips
    # one leading BOM. Naming a codec other than plain UTF-8 takes pandas off that path
    # (reading takes about twice as long), so "utf-8-sig" is named only for a file that
    # starts with two BOMs, where it strips the second one too (as it always did).
    double_bom = file.read(6) == codecs.BOM_UTF8 * 2
    file.seek(0)
    return pd.read_csv(
        file, sep=facts.delimiter, dtype=_TEXT, keep_default_na=False, na_filter=False,
        skip_blank_lines=False, chunksize=chunk_rows, engine="c", header=0,
        # never take the first column as an index when the first row has a cell too many:
        # that would shift every column of the file; such a row is a parse error instead
        index_col=False,
        on_bad_lines="error", quotechar='"', encoding="utf-8-sig" if double_bom else None,
    )


#: Every cell as text, like ``dtype=str``, in the Arrow ``large_string`` pandas' ``str``
#: columns use. Named as an Arrow type, the C parser writes the cells straight into Arrow
#: arrays instead of making a Python string of each first (a third of the time, same
#: values, checked cell by cell against ``dtype=str``).
_TEXT = pd.ArrowDtype(pa.large_string())


def normalize_frame(
    frame: pd.DataFrame, mapping: dict[str, str], extra: list[str], default_region: str,
    first_line: int,
) -> tuple[CustomerBatch, int]:
    """Validate and normalise one chunk. Returns the batch and the line number of the row
    after it.

    Every rule runs on whole columns as pyarrow compute kernels (the frame's columns are
    Arrow strings already); Python objects are made only for the batch's output.
    """
    n = len(frame)
    raw = {col: _arrow(frame[col]) for col in frame.columns}
    # physical line numbers: one line per row, plus line breaks inside quoted cells
    breaks = np.zeros(n, dtype=np.int64)
    for values in raw.values():
        if _has_newline(values):
            breaks += pc.count_substring(values, "\n").to_numpy(zero_copy_only=False)
    starts = first_line + np.arange(n, dtype=np.int64) + np.cumsum(breaks) - breaks
    next_line = first_line + n + int(breaks.sum())

    clean = {col: pc.utf8_trim_whitespace(values) for col, values in raw.items()}
    blank = np.ones(n, dtype=bool)
    for values in clean.values():
        blank &= _mask(pc.equal(values, ""))
    cols = {field: clean[col] for col, field in mapping.items()}
    empty = pa.repeat(pa.scalar("", pa.large_string()), n)  # a field the file lacks
    name = cols.get("full_name", empty)
    email = pc.utf8_lower(cols["email"]) if "email" in cols else empty
    phone_raw = cols.get("phone", empty)
    language = (pc.replace_substring(pc.utf8_lower(cols["language"]), "_", "-")
                if "language" in cols else empty)

    has_email = _mask(pc.not_equal(email, ""))
    email_ok = _mask(pc.and_(pc.match_substring_regex(email, _EMAIL_FULL),
                             pc.less_equal(pc.utf8_length(email), EMAIL_MAX_LENGTH)))
    phone = e164_array(phone_raw, default_region, trimmed=True)
    has_phone = _mask(pc.not_equal(phone_raw, ""))
    phone_ok = _mask(pc.is_valid(phone))
    lang_ok = _mask(pc.or_(pc.equal(language, ""),
                           pc.match_substring_regex(language, _LANGUAGE_FULL)))

    # the first failed check names the reason (1 + its position in _REASONS), 0 = none
    reason = np.zeros(n, dtype=np.int8)
    checks = (
        _mask(pc.equal(name, "")),
        has_email & ~email_ok,
        has_phone & ~phone_ok,
        ~has_email & ~has_phone,
        ~lang_ok,
    )
    for code, failed in reversed(list(enumerate(checks, start=1))):
        reason[failed] = code
    reason[blank] = 0

    bad = np.flatnonzero(reason)
    errors = _errors(bad, reason, starts, raw, cols, default_region) if len(bad) else []
    good = np.flatnonzero((reason == 0) & ~blank)
    normalized = {**cols, "email": email, "phone": phone, "language": language}
    columns = _columns(good if len(good) < n else None, len(good), normalized, clean, extra)
    rows = n - int(blank.sum())
    batch = CustomerBatch(lines=starts[good].tolist(), columns=columns, errors=errors, rows=rows)
    return batch, next_line


#: Reasons in the order the checks run (the first failed check names the reason); a row's
#: reason is coded as its position here plus one, 0 meaning none.
_REASONS = ("missing_name", "invalid_email", "invalid_phone", "no_contact", "invalid_language")
# Series.str.fullmatch on Arrow strings: the whole value matches (RE2, as pandas runs them)
_EMAIL_FULL = f"^(?:{EMAIL_PATTERN})$"
_LANGUAGE_FULL = f"^(?:{LANGUAGE_PATTERN})$"


def _arrow(series: pd.Series) -> pa.Array:
    """The column as one Arrow string array (no copy for pandas' Arrow-backed ``str``)."""
    values = pa.array(series)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_large_string(values.type):
        values = values.cast(pa.large_string())
    return values


def _has_newline(values: pa.Array) -> bool:
    """Whether any value holds a line break: one scan of the array's character data (the
    bytes between its first and last offset), much cheaper than a per-value kernel."""
    if not len(values):
        return False
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64,
                            count=len(values) + 1, offset=values.offset * 8)
    data = values.buffers()[2]
    if data is None:
        return False
    chars = np.frombuffer(data, dtype=np.uint8)[offsets[0]:offsets[-1]]
    return bool((chars == 10).any())


def _mask(values: pa.Array) -> np.ndarray:
    """An Arrow boolean array as a numpy bool array (nulls count as False)."""
    return pc.fill_null(values, False).to_numpy(zero_copy_only=False)


def _errors(
    bad: np.ndarray, reason: np.ndarray, starts: np.ndarray, raw: dict[str, pa.Array],
    cols: dict[str, pa.Array], region: str,
) -> list[JobError]:
    """One JobError per rejected row (``bad``: positions in the chunk), with the row's
    original cells as ``values``."""
    indices = pa.array(bad)
    names = list(raw)
    cells = [raw[name].take(indices).to_pylist() for name in names]
    shown: dict[str, list[Any]] = {field: cols[field].take(indices).to_pylist()
                                   for field in ("email", "phone", "language") if field in cols}
    errors = []
    for k, (code, line, values) in enumerate(zip(
        reason[bad].tolist(), starts[bad].tolist(), zip(*cells, strict=True), strict=True,
    )):
        name = _REASONS[code - 1]
        errors.append(JobError(code=name, message=_message(name, shown, k, region),
                               line=line, values=dict(zip(names, values, strict=True))))
    return errors


def _message(code: str, shown: dict[str, list[Any]], k: int, region: str) -> str:
    def cell(field: str) -> str:
        values = shown.get(field)
        return "" if values is None else str(values[k])

    if code == "missing_name":
        return "full_name is empty"
    if code == "invalid_email":
        return f"email {cell('email')!r} is not a valid address"
    if code == "invalid_phone":
        return f"phone {cell('phone')!r} is not a valid number (default region {region})"
    if code == "no_contact":
        return "the row has neither an email nor a phone"
    return f"language {cell('language')!r} is not a language code such as 'vi' or 'en'"


#: Fields whose values are mostly distinct by nature (one per customer).
_DISTINCT = frozenset({"email", "phone"})


def _values(values: pa.Array, good: np.ndarray | None, shared: bool) -> list[str | None]:
    """The column's ``good`` rows (all rows when None) as a list with "" and null -> None,
    converted without a Python loop.

    With ``shared``, when at most half the values are distinct (cities, companies, names
    that repeat), each distinct value becomes one string object shared by every row that
    has it, so a city repeated a million times costs its memory once; otherwise the values
    are converted one by one.
    """
    if shared:
        encoded = pc.dictionary_encode(values)
        if len(encoded.dictionary) * 2 <= len(values):
            table = np.array([u or None for u in encoded.dictionary.to_pylist()] + [None],
                             dtype=object)
            codes = pc.fill_null(encoded.indices, len(encoded.dictionary))
            codes = codes.to_numpy(zero_copy_only=False)
            return table[codes if good is None else codes[good]].tolist()
    objects = values.to_numpy(zero_copy_only=False)  # nulls become None
    objects[_mask(pc.equal(values, ""))] = None
    return (objects if good is None else objects[good]).tolist()


def _tags(values: pa.Array, good: np.ndarray | None) -> list[list[str] | None]:
    """Tag lists of the ``good`` rows; equal cells share one list object (the store never
    changes a stored customer in place, it replaces it)."""
    encoded = pc.dictionary_encode(values)
    uniques = encoded.dictionary.to_pylist()
    table = np.empty(len(uniques) + 1, dtype=object)  # the last one for nulls
    table[:] = [normalize_tags(u) or None if u else None for u in uniques] + [None]
    codes = pc.fill_null(encoded.indices, len(uniques)).to_numpy(zero_copy_only=False)
    return table[codes if good is None else codes[good]].tolist()


def _columns(
    good: np.ndarray | None, count: int, normalized: dict[str, pa.Array],
    clean: dict[str, pa.Array], extra: list[str],
) -> dict[str, list[Any]]:
    """The batch's columns (CUSTOMER_FILE_FIELDS) for the ``good`` rows (all when None)."""
    columns: dict[str, list[Any]] = {}
    for field in CUSTOMER_FILE_FIELDS:
        values = normalized.get(field)
        if field == "attributes" or values is None or not count:
            columns[field] = [None] * count
        elif field == "tags":
            columns[field] = _tags(values, good)
        else:
            columns[field] = _values(values, good, field not in _DISTINCT)
    if extra and count:
        keys = [c.strip() for c in extra]
        cells = []
        for c in extra:
            objects = clean[c].to_numpy(zero_copy_only=False)
            cells.append((objects if good is None else objects[good]).tolist())
        columns["attributes"] = [
            {k: v for k, v in zip(keys, values, strict=True) if v} or None
            for values in zip(*cells, strict=True)
        ]
    return columns
