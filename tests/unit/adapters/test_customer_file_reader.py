"""PandasCustomerFileReader: headers, delimiters, encodings, normalisation, row faults with their
line numbers, chunking and file-level errors, through ``inspect`` and ``batches`` only."""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass, field
from typing import Any

import pytest

from notibot.adapters.tabular import PandasCustomerFileReader
from notibot.application.ports import (
    CUSTOMER_FILE_FIELDS,
    CustomerBatch,
    CustomerFileOptions,
    CustomerFileSummary,
)
from notibot.domain import InvalidInput, JobError, UnsupportedFile


@dataclass
class Read:
    """Everything ``batches`` yielded, flattened: the valid rows (with their ``line``), the
    rejected rows, and the batches themselves."""

    summary: CustomerFileSummary
    batches: list[CustomerBatch]
    valid: list[dict[str, Any]] = field(default_factory=list)
    errors: list[JobError] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches)

    def by_line(self) -> dict[int, dict[str, Any]]:
        return {row["line"]: row for row in self.valid}

    def error_lines(self) -> dict[int, str]:
        return {e.line: e.code for e in self.errors if e.line is not None}


def content(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


async def read(data: bytes | str, **options: Any) -> Read:
    reader = PandasCustomerFileReader()
    opts = CustomerFileOptions(**options)
    summary = await reader.inspect(io.BytesIO(content(data)), opts)
    result = Read(summary=summary, batches=[])
    async for batch in reader.batches(io.BytesIO(content(data)), opts):
        result.batches.append(batch)
        for i, line in enumerate(batch.lines):
            result.valid.append({"line": line, **batch.row(i)})
        result.errors.extend(batch.errors)
    return result


async def only_row(data: bytes | str, **options: Any) -> dict[str, Any]:
    result = await read(data, **options)
    assert result.errors == []
    assert len(result.valid) == 1
    return result.valid[0]


async def file_error(data: bytes | str, **options: Any) -> tuple[InvalidInput, InvalidInput]:
    """The errors that ``inspect`` and ``batches`` raise for ``data`` (both must raise)."""
    reader = PandasCustomerFileReader()
    opts = CustomerFileOptions(**options)
    with pytest.raises(InvalidInput) as from_inspect:
        await reader.inspect(io.BytesIO(content(data)), opts)
    with pytest.raises(InvalidInput) as from_batches:
        async for _ in reader.batches(io.BytesIO(content(data)), opts):
            pass
    return from_inspect.value, from_batches.value


# -- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "field_name"),
    [
        ("name", "full_name"), ("fullname", "full_name"), ("Full Name", "full_name"),
        ("FULL_NAME", "full_name"), ("  Name  ", "full_name"), ("FullName", "full_name"),
    ],
)
async def test_name_headers_are_aliases_of_full_name(header: str, field_name: str) -> None:
    result = await read(f"{header},email\nNguyễn Văn An,an@example.org\n")

    assert result.summary.mapping == {header: field_name, "email": "email"}
    assert result.summary.extra_columns == []
    assert result.valid[0]["full_name"] == "Nguyễn Văn An"


@pytest.mark.parametrize(
    ("header", "value", "field_name", "normalised"),
    [
        ("e-mail", "an@example.org", "email", "an@example.org"),
        ("E-Mail", "an@example.org", "email", "an@example.org"),
        ("mail", "an@example.org", "email", "an@example.org"),
        (" EMAIL ", "an@example.org", "email", "an@example.org"),
        ("mobile", "0912345678", "phone", "+84912345678"),
        ("phone_number", "0912345678", "phone", "+84912345678"),
        ("Phone Number", "0912345678", "phone", "+84912345678"),
        ("TEL", "0912345678", "phone", "+84912345678"),
        ("lang", "VI", "language", "vi"),
        ("Language", "en", "language", "en"),
    ],
)
async def test_contact_and_language_headers_are_matched_with_their_aliases(
    header: str, value: str, field_name: str, normalised: str
) -> None:
    extra_contact = "" if field_name in ("email", "phone") else ",email"
    extra_value = "" if field_name in ("email", "phone") else ",an@example.org"
    result = await read(f"name,{header}{extra_contact}\nAn,{value}{extra_value}\n")

    assert result.summary.mapping[header] == field_name
    assert result.errors == []
    assert result.valid[0][field_name] == normalised


async def test_unknown_columns_land_in_attributes_without_their_empty_cells() -> None:
    result = await read(
        "name,email,zip,member_since,Note\n"
        "An,an@example.org,00123,2019,\n"
        "Binh,binh@example.org,,,\n"
    )

    assert result.summary.extra_columns == ["zip", "member_since", "Note"]
    assert [row["attributes"] for row in result.valid] == [
        {"zip": "00123", "member_since": "2019"}, None]


async def test_the_summary_lists_columns_mapping_and_estimated_rows() -> None:
    summary = (await read("Email;Full Name;Mobile;City;Loyalty\n"
                          "a@example.org;A;0912345678;Hanoi;gold\n"
                          "b@example.org;B;;Hue;\n")).summary

    assert summary.delimiter == ";"
    assert summary.columns == ["Email", "Full Name", "Mobile", "City", "Loyalty"]
    assert summary.mapping == {"Email": "email", "Full Name": "full_name",
                               "Mobile": "phone", "City": "city"}
    assert summary.extra_columns == ["Loyalty"]
    assert summary.estimated_rows == 2


async def test_every_customer_field_is_a_column_of_each_batch() -> None:
    result = await read("name,email\nAn,an@example.org\n")

    assert set(result.batches[0].columns) == set(CUSTOMER_FILE_FIELDS)
    assert result.valid[0]["company"] is None
    assert result.valid[0]["tags"] is None
    assert result.valid[0]["attributes"] is None


# -- delimiters and encodings ----------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
async def test_the_delimiter_is_sniffed_from_the_header(delimiter: str) -> None:
    others = "".join(d for d in ",;|" if d != delimiter)  # cells may hold the other ones
    data = (delimiter.join(["name", "email", "note"]) + "\n"
            + delimiter.join(["Nguyen Van An", "an@example.org", f"a{others}b"]) + "\n")

    result = await read(data)

    assert result.summary.delimiter == delimiter
    assert result.valid[0]["full_name"] == "Nguyen Van An"
    assert result.valid[0]["attributes"] == {"note": f"a{others}b"}


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
async def test_a_given_delimiter_is_used(delimiter: str) -> None:
    data = delimiter.join(["name", "email"]) + "\n" + delimiter.join(
        ["An", "an@example.org"]) + "\n"

    result = await read(data, delimiter=delimiter)

    assert result.summary.delimiter == delimiter
    assert result.valid[0]["email"] == "an@example.org"


async def test_a_given_delimiter_wins_over_the_sniffed_one() -> None:
    # the header holds more ';' than ','; read with ',' it has one column per comma
    data = "name,email,notes;x;y;z\nAn,an@example.org,a;b\n"

    result = await read(data, delimiter=",")

    assert result.summary.delimiter == ","
    assert result.valid[0]["attributes"] == {"notes;x;y;z": "a;b"}


@pytest.mark.parametrize("delimiter", [":", ",,", "ab", " ", "\n"])
async def test_a_delimiter_outside_the_four_is_refused(delimiter: str) -> None:
    errors = await file_error("name,email\nAn,an@example.org\n", delimiter=delimiter)

    assert [e.code for e in errors] == ["invalid_delimiter", "invalid_delimiter"]


async def test_utf8_with_a_bom_reads_the_first_header_normally() -> None:
    data = codecs.BOM_UTF8 + "name,email\nNguyễn An,an@example.org\n".encode()

    result = await read(data)

    assert result.summary.columns == ["name", "email"]
    assert result.summary.mapping == {"name": "full_name", "email": "email"}
    assert result.valid[0]["full_name"] == "Nguyễn An"
    assert result.valid[0]["line"] == 2


async def test_a_multi_byte_character_across_a_read_boundary_is_valid_utf8() -> None:
    # ~1.5 MB of 3-byte characters: whatever block size the reader checks the encoding with,
    # blocks end inside characters many times
    rows = "".join(f"{'ễ' * 50}{i},c{i}@example.org\n" for i in range(10_000))
    for pad in range(60):  # make sure the 1 MiB mark falls inside a character
        data = ("name,email\n" + " " * pad + rows).encode()
        if (data[1 << 20] & 0xC0) == 0x80:
            break
    assert (data[1 << 20] & 0xC0) == 0x80

    result = await read(data)

    assert result.errors == []
    assert len(result.valid) == 10_000
    assert result.valid[-1]["full_name"] == "ễ" * 50 + "9999"


# -- values ----------------------------------------------------------------------------------


async def test_leading_zeros_are_kept_in_phones_and_attributes() -> None:
    row = await only_row("name,phone,zip,customer_no\nAn,0327879401,00123,000042\n")

    assert row["phone"] == "+84327879401"
    assert row["attributes"] == {"zip": "00123", "customer_no": "000042"}


async def test_na_like_cells_stay_text() -> None:
    result = await read(
        "name,email,company,city,note\n"
        "NA,na@example.org,null,NaN,None\n"
        "null,nul@example.org,N/A,nan,NULL\n"
    )

    assert result.errors == []
    assert [(r["full_name"], r["company"], r["city"], r["attributes"]) for r in result.valid] == [
        ("NA", "null", "NaN", {"note": "None"}),
        ("null", "N/A", "nan", {"note": "NULL"}),
    ]


async def test_values_are_trimmed_and_email_lower_cased() -> None:
    row = await only_row(
        "name,email,phone,company,city,note\n"
        "  Nguyễn Văn An  , An.Nguyen@Example.ORG ,  0912 345 678 , Acme ,Hà Nội ,  x  \n")

    assert row["full_name"] == "Nguyễn Văn An"
    assert row["email"] == "an.nguyen@example.org"
    assert row["phone"] == "+84912345678"
    assert row["company"] == "Acme"
    assert row["city"] == "Hà Nội"
    assert row["attributes"] == {"note": "x"}


async def test_every_customer_column_is_read() -> None:
    row = await only_row(
        "full_name,email,phone,company,position,address,city,country,language,tags\n"
        'An,an@example.org,0912345678,Acme,CEO,1 Main St,Hanoi,Vietnam,vi,"vip,b2b"\n')

    assert {k: v for k, v in row.items() if k != "line"} == {
        "full_name": "An", "email": "an@example.org", "phone": "+84912345678",
        "company": "Acme", "position": "CEO", "address": "1 Main St", "city": "Hanoi",
        "country": "Vietnam", "language": "vi", "tags": ["vip", "b2b"], "attributes": None,
    }


@pytest.mark.parametrize(
    ("cell", "tags"),
    [
        ('" VIP, new ,vip,,B2B "', ["vip", "new", "b2b"]),
        ("customer", ["customer"]),
        ('"a,b,c"', ["a", "b", "c"]),
        ("", None),
        ('" , ,"', None),
    ],
)
async def test_tags_are_split_trimmed_lower_cased_and_deduplicated(
    cell: str, tags: list[str] | None
) -> None:
    row = await only_row(f"name,email,tags\nAn,an@example.org,{cell}\n")

    assert (row["tags"] or None) == tags


@pytest.mark.parametrize(
    ("cell", "language"),
    [("VI", "vi"), ("pt_BR", "pt-br"), ("EN-us", "en-us"), (" fr ", "fr"), ("", None)],
)
async def test_language_is_a_lower_case_code(cell: str, language: str | None) -> None:
    row = await only_row(f"name,email,language\nAn,an@example.org,{cell}\n")

    assert row["language"] == language


async def test_the_default_region_applies_to_national_numbers() -> None:
    data = "name,phone\nAn,(650) 253-0000\nBinh,+84 912 345 678\n"

    result = await read(data, default_region="US")

    assert [r["phone"] for r in result.valid] == ["+16502530000", "+84912345678"]


# -- rejected rows ---------------------------------------------------------------------------

HEADER = "name,email,phone,language,zip"


@pytest.mark.parametrize(
    ("cells", "code"),
    [
        (["", "an@example.org", "", "vi", "00123"], "missing_name"),
        (["   ", "an@example.org", "0912345678", "", ""], "missing_name"),
        (["An", "not-an-email", "", "", ""], "invalid_email"),
        (["An", "a@b", "0912345678", "", ""], "invalid_email"),
        (["An", "x@@y.com", "", "", ""], "invalid_email"),
        (["An", "", "123", "", ""], "invalid_phone"),
        (["An", "an@example.org", "0912345678901234", "", ""], "invalid_phone"),
        (["An", "", "", "vi", "00123"], "no_contact"),
        (["An", "  ", " ", "", ""], "no_contact"),
        (["An", "an@example.org", "", "english!", ""], "invalid_language"),
        (["An", "an@example.org", "", "1x", ""], "invalid_language"),
    ],
)
async def test_each_fault_rejects_its_row_with_the_line_and_the_original_cells(
    cells: list[str], code: str
) -> None:
    data = (f"{HEADER}\n"
            "Ok,ok@example.org,,,\n"
            f"{','.join(cells)}\n"
            "Ok2,ok2@example.org,,,\n")

    result = await read(data)

    assert [(e.line, e.code) for e in result.errors] == [(3, code)]
    assert result.errors[0].values == dict(zip(HEADER.split(","), cells, strict=True))
    assert result.errors[0].message
    assert [r["line"] for r in result.valid] == [2, 4]
    assert result.rows == 3


async def test_rows_with_several_faults_are_rejected_once() -> None:
    result = await read(f"{HEADER}\n,bad-email,123,english!,\n")

    assert len(result.errors) == 1
    assert result.errors[0].line == 2
    assert result.valid == []


async def test_blank_lines_are_skipped_but_counted_in_line_numbers() -> None:
    data = ("name,email\n"      # 1
            "An,an@example.org\n"   # 2
            "\n"                    # 3
            "   \n"                 # 4
            ",\n"                   # 5: only empty cells
            "Binh,bad\n"            # 6
            "\n"                    # 7
            "Chi,chi@example.org\n")  # 8

    result = await read(data)

    assert [r["line"] for r in result.valid] == [2, 8]
    assert result.error_lines() == {6: "invalid_email"}
    assert result.rows == 3


async def test_a_quoted_line_break_shifts_the_later_line_numbers() -> None:
    data = ("name,email,note\n"                  # 1
            'An,an@example.org,"two\nlines"\n'   # 2-3
            "Binh,bad,\n"                        # 4
            'Chi,chi@example.org,"x\n\ny"\n'     # 5-7
            ",dung@example.org,\n"               # 8
            "Em,em@example.org,\n")              # 9

    result = await read(data)

    assert [r["line"] for r in result.valid] == [2, 5, 9]
    assert result.error_lines() == {4: "invalid_email", 8: "missing_name"}
    assert result.by_line()[2]["attributes"] == {"note": "two\nlines"}
    assert result.by_line()[5]["attributes"] == {"note": "x\n\ny"}


async def test_crlf_line_endings_give_the_same_lines() -> None:
    lf = "name,email,note\nAn,an@example.org,\"a\nb\"\n\nBinh,bad,\nChi,chi@example.org,\n"
    crlf = lf.replace("\n", "\r\n")

    a, b = await read(lf), await read(crlf)

    assert [r["line"] for r in b.valid] == [r["line"] for r in a.valid] == [2, 6]
    assert b.error_lines() == a.error_lines() == {5: "invalid_email"}


async def test_a_last_line_without_a_newline_is_read() -> None:
    result = await read("name,email\nAn,an@example.org\nBinh,binh@example.org")

    assert [r["full_name"] for r in result.valid] == ["An", "Binh"]
    assert result.summary.estimated_rows == 2


async def test_rows_with_missing_trailing_cells_read_them_as_empty() -> None:
    result = await read("name,email,phone,city\nAn,an@example.org\n")

    assert result.valid[0]["phone"] is None
    assert result.valid[0]["city"] is None


@pytest.mark.parametrize("position", ["first", "later"])
async def test_a_row_with_more_cells_than_the_header_never_shifts_columns(
    position: str
) -> None:
    # an unquoted comma in a name: the row has one cell too many. The reader may refuse the
    # file or reject the row, but must never read other cells into the wrong fields.
    ragged = "Nguyen, An,an@example.org,0912345678"
    good = "Binh,binh@example.org,0987654321"
    rows = [ragged, good] if position == "first" else [good, ragged]
    ragged_line = 2 if position == "first" else 3
    data = "name,email,phone\n" + "\n".join(rows) + "\n"

    try:
        result = await read(data)
    except InvalidInput:
        return  # refusing the whole file is acceptable

    assert ragged_line in result.error_lines()
    assert [(r["line"], r["full_name"], r["email"], r["phone"]) for r in result.valid] == [
        (5 - ragged_line, "Binh", "binh@example.org", "+84987654321")]


async def test_a_quoted_header_is_matched_like_an_unquoted_one() -> None:
    data = '"name","email","phone"\n"An","an@example.org","0912345678"\n'

    result = await read(data)

    assert result.summary.mapping == {"name": "full_name", "email": "email", "phone": "phone"}
    assert result.valid[0]["email"] == "an@example.org"


async def test_a_quoted_header_cell_may_hold_the_delimiter() -> None:
    data = 'name,email,"City, State"\nAn,an@example.org,"Hanoi, HN"\n'

    result = await read(data)

    assert result.summary.extra_columns == ["City, State"]
    assert result.valid[0]["attributes"] == {"City, State": "Hanoi, HN"}


async def test_two_unknown_columns_with_one_name_lose_no_cell() -> None:
    # refusing the file (duplicate_columns) or keeping both cells are both acceptable; silently
    # dropping one column's data is not
    data = "name,email,note,note\nAn,an@example.org,first,second\n"

    try:
        result = await read(data)
    except InvalidInput as exc:
        assert exc.code == "duplicate_columns"
        return

    attributes = result.valid[0]["attributes"] or {}
    assert sorted(attributes.values()) == ["first", "second"]


# -- chunks ----------------------------------------------------------------------------------

MESSY = (
    "name,email,phone,note\n"                       # 1
    "An,an@example.org,0912345678,\n"              # 2
    "\n"                                            # 3
    'Binh,binh@example.org,,"multi\nline"\n'        # 4-5
    ",chi@example.org,,\n"                          # 6
    "Dung,dung@example.org,123,\n"                  # 7
    "Em,,,\n"                                       # 8
    "   \n"                                         # 9
    'Giang,giang@example.org,0987654321,"x\n\ny"\n'  # 10-12
    "Hoa,HOA@example.org,,\n"                       # 13
    "Khanh,khanh@example.org,,\n"                   # 14
    "Lan,lan@bad,,\n"                               # 15
    "Minh,minh@example.org,+84 912 000 111,\n"      # 16
)


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 5])
async def test_small_chunks_give_the_same_rows_lines_and_errors(chunk_rows: int) -> None:
    whole = await read(MESSY)
    chunked = await read(MESSY, chunk_rows=chunk_rows)

    assert chunked.valid == whole.valid
    assert chunked.errors == whole.errors
    assert chunked.rows == whole.rows == 10
    assert len(chunked.batches) > 1
    assert all(b.rows <= chunk_rows for b in chunked.batches)
    assert [r["line"] for r in whole.valid] == [2, 4, 10, 13, 14, 16]
    assert whole.error_lines() == {6: "missing_name", 7: "invalid_phone", 8: "no_contact",
                                   15: "invalid_email"}


async def test_each_batch_accounts_for_its_rows() -> None:
    result = await read(MESSY, chunk_rows=3)

    for batch in result.batches:
        assert len(batch.lines) + len(batch.errors) == batch.rows
        assert all(len(values) == len(batch.lines) for values in batch.columns.values())


# -- file-level errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"   ", b"\n\n\n", b"  \r\n \t \n", codecs.BOM_UTF8, codecs.BOM_UTF8 + b"\n \n"],
    ids=["zero-bytes", "spaces", "newlines", "whitespace", "bom-only", "bom-and-blank"],
)
async def test_an_empty_file_is_refused(data: bytes) -> None:
    errors = await file_error(data)

    assert [e.code for e in errors] == ["empty_file", "empty_file"]


async def test_a_header_only_file_has_no_rows_and_no_error() -> None:
    result = await read("name,email,phone\n")

    assert result.summary.estimated_rows == 0
    assert result.rows == 0
    assert result.valid == []
    assert result.errors == []


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"name,email\nAn,an@exa\x00mple.org\n", "binary_file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary_file"),
        ("name,email\n田中,tanaka@example.org\n".encode("shift_jis"), "not_utf8"),
        ("name,email\nJosé,jose@example.org\n".encode("latin-1"), "not_utf8"),
        (b"name,email\nAn,an@example.org\nB\xc3", "not_utf8"),
    ],
    ids=["nul-byte", "png", "shift-jis", "latin-1", "truncated-utf8"],
)
async def test_binary_or_non_utf8_files_are_unsupported(data: bytes, code: str) -> None:
    errors = await file_error(data)

    assert all(isinstance(e, UnsupportedFile) for e in errors)
    assert [e.code for e in errors] == [code, code]


async def test_binary_data_late_in_the_file_is_found_before_any_batch() -> None:
    rows = "".join(f"C{i},c{i}@example.org\n" for i in range(5000))
    data = ("name,email\n" + rows).encode() + b"Z,z@example.org\x00\n"
    reader = PandasCustomerFileReader()
    yielded = []

    with pytest.raises(UnsupportedFile) as exc:
        async for batch in reader.batches(io.BytesIO(data), CustomerFileOptions(chunk_rows=100)):
            yielded.append(batch)

    assert exc.value.code == "binary_file"
    assert yielded == []


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("email,phone,company", "full_name"),
        ("name,company,city", "email"),
        ("company,city", "full_name"),
        ("nom,courriel", "full_name"),
    ],
)
async def test_a_file_without_the_needed_columns_is_refused(header: str, missing: str) -> None:
    errors = await file_error(f"{header}\nx,y,z\n")

    assert [e.code for e in errors] == ["missing_columns", "missing_columns"]
    assert all(missing in e.message for e in errors)


@pytest.mark.parametrize(
    "header",
    ["name,phone,mobile", "name,email,E-Mail", "name,Full Name,email", "name,email,email",
     "name,tel,phone_number,email", "name,email,lang,language"],
)
async def test_two_columns_meaning_the_same_field_are_refused(header: str) -> None:
    errors = await file_error(f"{header}\n")

    assert [e.code for e in errors] == ["duplicate_columns", "duplicate_columns"]
