"""Contract of the CustomerFileReader port: every adapter must pass these tests.

Add an adapter by appending a zero-argument factory returning a reader to ``ADAPTERS``.
"""

from __future__ import annotations

import io
import math

import pytest

from notibot.adapters.tabular import PandasCustomerFileReader
from notibot.application.ports import (
    CUSTOMER_FILE_FIELDS,
    CustomerBatch,
    CustomerFileOptions,
    CustomerFileReader,
)
from notibot.domain import InvalidInput, UnsupportedFile

ADAPTERS = [pytest.param(PandasCustomerFileReader, id="pandas")]


@pytest.fixture(params=ADAPTERS)
def reader(request: pytest.FixtureRequest) -> CustomerFileReader:
    return request.param()


def simple_file(rows: int, *, bad_every: int = 0) -> bytes:
    """A header and ``rows`` data rows; every ``bad_every``-th row has an invalid email."""
    lines = ["full_name,email,phone,city"]
    for i in range(rows):
        email = "broken" if bad_every and i % bad_every == 0 else f"c{i}@example.org"
        lines.append(f"Customer {i},{email},,City {i % 7}")
    return ("\n".join(lines) + "\n").encode()


async def all_batches(reader: CustomerFileReader, data: bytes,
                      options: CustomerFileOptions) -> list[CustomerBatch]:
    return [batch async for batch in reader.batches(io.BytesIO(data), options)]


async def test_batches_account_for_every_data_row_once(reader: CustomerFileReader) -> None:
    data = simple_file(250, bad_every=9)

    batches = await all_batches(reader, data, CustomerFileOptions(chunk_rows=40))

    valid = [line for b in batches for line in b.lines]
    rejected = [e.line for b in batches for e in b.errors]
    assert sum(b.rows for b in batches) == 250
    assert sum(len(b.lines) + len(b.errors) for b in batches) == 250
    assert sorted(valid + rejected) == list(range(2, 252))
    assert rejected == [2 + i for i in range(0, 250, 9)]


async def test_batches_follow_chunk_rows(reader: CustomerFileReader) -> None:
    batches = await all_batches(reader, simple_file(250), CustomerFileOptions(chunk_rows=40))

    assert len(batches) >= math.ceil(250 / 40)
    assert all(b.rows <= 40 for b in batches)


async def test_each_batch_has_one_value_per_valid_row_in_every_field(
    reader: CustomerFileReader,
) -> None:
    batches = await all_batches(reader, simple_file(30, bad_every=4),
                                CustomerFileOptions(chunk_rows=7))

    for batch in batches:
        assert set(batch.columns) == set(CUSTOMER_FILE_FIELDS)
        for values in batch.columns.values():
            assert len(values) == len(batch.lines)
        for error in batch.errors:
            assert error.line is not None and error.code and error.message
            assert error.values is not None
    first = batches[0]
    assert first.row(0)["full_name"] == "Customer 1"
    assert first.row(0)["email"] == "c1@example.org"
    assert first.row(0)["city"] == "City 1"


async def test_valid_rows_are_yielded_in_file_order(reader: CustomerFileReader) -> None:
    batches = await all_batches(reader, simple_file(100), CustomerFileOptions(chunk_rows=13))

    lines = [line for b in batches for line in b.lines]
    names = [name for b in batches for name in b.columns["full_name"]]
    assert lines == list(range(2, 102))
    assert names == [f"Customer {i}" for i in range(100)]


@pytest.mark.parametrize("rows", [0, 1, 17, 250])
async def test_inspect_estimates_the_data_rows_of_a_simple_file(
    reader: CustomerFileReader, rows: int
) -> None:
    summary = await reader.inspect(io.BytesIO(simple_file(rows)), CustomerFileOptions())

    assert summary.estimated_rows == rows
    assert summary.delimiter == ","
    assert summary.columns == ["full_name", "email", "phone", "city"]
    assert summary.mapping == {"full_name": "full_name", "email": "email", "phone": "phone",
                               "city": "city"}
    assert summary.extra_columns == []


@pytest.mark.parametrize("start", [0, 5, -1])
async def test_inspect_leaves_the_file_at_its_start(
    reader: CustomerFileReader, start: int
) -> None:
    data = simple_file(20)
    file = io.BytesIO(data)
    file.seek(start if start >= 0 else len(data))

    await reader.inspect(file, CustomerFileOptions())

    assert file.tell() == 0
    assert file.read() == data


async def test_inspect_then_batches_on_the_same_file_reads_every_row(
    reader: CustomerFileReader,
) -> None:
    file = io.BytesIO(simple_file(30))
    options = CustomerFileOptions(chunk_rows=8)

    await reader.inspect(file, options)
    batches = [batch async for batch in reader.batches(file, options)]

    assert sum(len(b.lines) for b in batches) == 30


async def test_batches_check_the_whole_file_before_the_first_batch(
    reader: CustomerFileReader,
) -> None:
    data = simple_file(500) + "Late,l@example.org,,Hu\xe9\n".encode("latin-1")
    yielded: list[CustomerBatch] = []

    with pytest.raises(UnsupportedFile) as exc:
        async for batch in reader.batches(io.BytesIO(data), CustomerFileOptions(chunk_rows=50)):
            yielded.append(batch)

    assert exc.value.code == "not_utf8"
    assert yielded == []


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"full_name,city\nAn,Hanoi\n", "missing_columns"),
        (b"email,city\nan@example.org,Hanoi\n", "missing_columns"),
        (b"full_name,phone,mobile\nAn,1,2\n", "duplicate_columns"),
    ],
)
async def test_bad_files_raise_invalid_input_from_inspect_and_batches(
    reader: CustomerFileReader, data: bytes, code: str
) -> None:
    with pytest.raises(InvalidInput) as from_inspect:
        await reader.inspect(io.BytesIO(data), CustomerFileOptions())
    with pytest.raises(InvalidInput) as from_batches:
        await all_batches(reader, data, CustomerFileOptions())

    assert from_inspect.value.code == from_batches.value.code == code


async def test_an_invalid_delimiter_is_refused(reader: CustomerFileReader) -> None:
    with pytest.raises(InvalidInput) as exc:
        await reader.inspect(io.BytesIO(simple_file(1)), CustomerFileOptions(delimiter=":"))

    assert exc.value.code == "invalid_delimiter"


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"full_name,email\nAn,a\x00n@example.org\n", "binary_file"),
     (b"full_name,email\nJos\xe9,jose@example.org\n", "not_utf8")],
)
async def test_binary_and_non_utf8_files_are_unsupported(
    reader: CustomerFileReader, data: bytes, code: str
) -> None:
    with pytest.raises(UnsupportedFile) as exc:
        await reader.inspect(io.BytesIO(data), CustomerFileOptions())

    assert exc.value.code == code


async def test_readers_hold_no_state_between_files(reader: CustomerFileReader) -> None:
    first = await all_batches(reader, simple_file(10), CustomerFileOptions(chunk_rows=4))
    other = b"full_name;email\nZed;zed@example.org\n"
    second = await all_batches(reader, other, CustomerFileOptions(chunk_rows=4))
    again = await all_batches(reader, simple_file(10), CustomerFileOptions(chunk_rows=4))

    assert [b.lines for b in again] == [b.lines for b in first]
    assert [b.columns for b in again] == [b.columns for b in first]
    assert second[0].lines == [2]
    assert second[0].columns["full_name"] == ["Zed"]
