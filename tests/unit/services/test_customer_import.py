"""The customer import use case on an all-in-memory notibot: submit, the csv_import job,
de-duplication in the file and against the store, the three modes, cancel, rejected rows."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable
from typing import Any, BinaryIO

import pytest

from notibot.adapters.tabular import PandasCustomerFileReader
from notibot.application.ports import (
    CustomerBatch,
    CustomerFileOptions,
    CustomerFileReader,
    CustomerFileSummary,
    CustomerFilter,
    JobFilter,
)
from notibot.container import Notibot
from notibot.domain import (
    Customer,
    FileTooLarge,
    InvalidInput,
    Job,
    JobError,
    JobStatus,
    NotFound,
    UnsupportedFile,
)
from notibot.testing import FakeClock, memory_notibot

COUNTS = ("created", "updated", "skipped", "failed")


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
async def make_app() -> AsyncIterator[Callable[..., Notibot]]:
    """Build in-memory instances (``memory_notibot`` arguments); their job queues are closed
    at the end, so a failing test leaves no job running."""
    apps: list[Notibot] = []

    def make(**kwargs: Any) -> Notibot:
        apps.append(memory_notibot(**kwargs))
        return apps[-1]

    yield make
    for app in apps:
        await app.container.job_queue().close()


@pytest.fixture
def app(make_app: Callable[..., Notibot]) -> Notibot:
    return make_app()


def as_bytes(data: str | bytes) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def data_rows(data: str | bytes, delimiter: str = ",") -> int:
    """Data rows of a CSV file counted with the csv module: rows after the header that have a
    non-blank cell."""
    text = as_bytes(data).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    return sum(1 for row in rows[1:] if any(cell.strip() for cell in row))


async def finish(app: Notibot) -> None:
    await asyncio.wait_for(app.container.job_queue().join(), timeout=30)


def assert_counts_add_up(job: Job, rows: int) -> None:
    counters = job.counters
    assert sum(counters.get(k, 0) for k in COUNTS) == counters["total_rows"] == rows
    assert counters.get("processed", 0) == rows
    assert job.total == rows


async def run_import(app: Notibot, data: str | bytes, *, sep: str = ",",
                     **options: Any) -> Job:
    """Submit ``data``, wait for the job, check it succeeded and that its counts add up."""
    submitted = await app.imports.submit(as_bytes(data), filename="customers.csv",
                                         created_by="tester", **options)
    await finish(app)
    job = await app.jobs.get(submitted.id)
    assert job.status is JobStatus.SUCCEEDED, job.failure_reason
    assert_counts_add_up(job, data_rows(data, sep))
    summary = {"total_rows": job.counters["total_rows"], "mode": options.get("mode") or "upsert",
               **counts(job)}
    assert job.result is not None
    assert {k: job.result.get(k) for k in summary} == summary
    return job


def counts(job: Job) -> dict[str, int]:
    return {k: job.counters.get(k, 0) for k in COUNTS}


async def errors_of(app: Notibot, job: Job) -> list[JobError]:
    return await app.container.job_repository().list_errors(job.id)


async def codes(app: Notibot, job: Job) -> dict[int, str]:
    errors = await errors_of(app, job)
    lines = [e.line for e in errors]
    assert len(lines) == len(set(lines)), "a line was reported twice"
    return {e.line: e.code for e in errors if e.line is not None}


async def stored(app: Notibot) -> list[Customer]:
    found: list[Customer] = []
    while True:
        page = await app.customers.list(CustomerFilter(), limit=200, offset=len(found))
        found.extend(page.items)
        if len(found) >= page.total or not page.items:
            return found


async def by_email(app: Notibot) -> dict[str | None, Customer]:
    return {c.email: c for c in await stored(app)}


async def add(app: Notibot, **values: Any) -> Customer:
    return await app.customers.create(values)


def many_rows(count: int, *, start: int = 0) -> str:
    return "full_name,email,phone\n" + "".join(
        f"Customer {i},c{i}@example.org,09{i:08d}\n" for i in range(start, start + count))


async def import_jobs(app: Notibot) -> list[Job]:
    return (await app.jobs.list(JobFilter(kind="csv_import"))).items


# -- a clean file ----------------------------------------------------------------------------

CLEAN = (
    "email,full_name,phone,company,position,address,city,country,language,tags,zip\n"
    "DuongNguyen@Gmail.com,Duong Nguyen,0327879401,SCC,Manager,123 Nguyen Trai,Hanoi,"
    'Vietnam,VI,"Customer, VIP",00123\n'
    "phamanh@gmail.com,Pham Anh,(+84) 91-234-5678,ACME,Director,456 Tran Phu,HCM,Vietnam,"
    "en,partner,\n"
    "linhvu@gmail.com, Linh Vu ,0987 654 321,BigCorp,Staff,789 Le Loi,Danang,Vietnam,vi,,\n"
    "testuser@example.com,Test User,,Test Inc.,,1 Some Street,Hanoi,Vietnam,vi,new,\n"
)


async def test_a_clean_file_creates_every_customer_normalised(app: Notibot) -> None:
    job = await run_import(app, CLEAN)

    assert counts(job) == {"created": 4, "updated": 0, "skipped": 0, "failed": 0}
    assert job.kind == "csv_import"
    assert job.created_by == "tester"
    assert job.progress == 1.0
    assert await errors_of(app, job) == []
    customers = await by_email(app)
    assert set(customers) == {"duongnguyen@gmail.com", "phamanh@gmail.com", "linhvu@gmail.com",
                              "testuser@example.com"}
    duong = customers["duongnguyen@gmail.com"]
    assert (duong.full_name, duong.phone, duong.company, duong.position, duong.city,
            duong.country, duong.language, duong.tags, duong.attributes, duong.subscribed) == (
        "Duong Nguyen", "+84327879401", "SCC", "Manager", "Hanoi", "Vietnam", "vi",
        ["customer", "vip"], {"zip": "00123"}, True)
    assert customers["phamanh@gmail.com"].phone == "+84912345678"
    assert customers["linhvu@gmail.com"].full_name == "Linh Vu"
    assert customers["linhvu@gmail.com"].tags == []
    test_user = customers["testuser@example.com"]
    assert (test_user.phone, test_user.position, test_user.attributes) == (None, None, {})


async def test_submit_queues_a_csv_import_job_with_the_estimated_rows(app: Notibot) -> None:
    job = await app.imports.submit(CLEAN.encode(), filename="customers.csv", created_by="u1")

    assert job.status is JobStatus.QUEUED
    assert job.kind == "csv_import"
    assert job.total == 4
    assert job.created_by == "u1"
    assert [j.id for j in await import_jobs(app)] == [job.id]
    await finish(app)
    assert (await app.imports.status(job.id)).status is JobStatus.SUCCEEDED


async def test_status_returns_the_import_with_its_counters(app: Notibot) -> None:
    job = await run_import(app, CLEAN)

    status = await app.imports.status(job.id)

    assert status.id == job.id
    assert status.status is JobStatus.SUCCEEDED
    assert counts(status) == counts(job)
    assert status.counters["total_rows"] == 4


async def test_a_header_only_file_imports_nothing_and_succeeds(app: Notibot) -> None:
    job = await run_import(app, "full_name,email,phone\n")

    assert counts(job) == {"created": 0, "updated": 0, "skipped": 0, "failed": 0}
    assert await stored(app) == []


async def test_blank_lines_are_not_rows(app: Notibot) -> None:
    data = "full_name,email\n\nAn,an@example.org\n,\n   \nBinh,binh@example.org\n\n"

    job = await run_import(app, data)

    assert counts(job)["created"] == 2
    assert job.counters["total_rows"] == 2


# -- rejected rows ---------------------------------------------------------------------------

FAULTS = (
    "full_name,email,phone,language\n"      # 1
    "Ok,ok@example.org,0912345678,vi\n"     # 2
    ",noname@example.org,,\n"               # 3 missing_name
    "Bad Email,not-an-email,,\n"            # 4 invalid_email
    "Bad Phone,,123,\n"                     # 5 invalid_phone
    "No Contact,,,vi\n"                     # 6 no_contact
    "Bad Lang,lang@example.org,,english!\n"  # 7 invalid_language
    "Ok Too,,0987654321,EN\n"               # 8
    "Dup,OK@example.org,,\n"                # 9 duplicate_in_file
)


async def test_each_fault_kind_is_rejected_with_its_line(app: Notibot) -> None:
    job = await run_import(app, FAULTS)

    assert await codes(app, job) == {3: "missing_name", 4: "invalid_email", 5: "invalid_phone",
                                     6: "no_contact", 7: "invalid_language",
                                     9: "duplicate_in_file"}
    assert counts(job) == {"created": 2, "updated": 0, "skipped": 1, "failed": 5}
    assert set(await by_email(app)) == {"ok@example.org", None}
    errors = {e.line: e for e in await errors_of(app, job)}
    assert {k: v for k, v in (errors[4].values or {}).items() if v} == {
        "full_name": "Bad Email", "email": "not-an-email"}
    assert all(e.message for e in errors.values())


async def test_inline_errors_stop_at_100_while_all_are_kept(app: Notibot) -> None:
    data = "full_name,email\n" + "".join(
        f"{'' if i % 2 else 'Name'},{'bad' if i % 2 == 0 else f'x{i}@example.org'}\n"
        for i in range(150)) + "Fine,fine@example.org\n"

    job = await run_import(app, data)

    all_errors = await errors_of(app, job)
    assert job.error_count == len(all_errors) == 150
    assert len(job.errors) == 100
    assert job.errors == all_errors[:100]
    assert sorted(e.line for e in all_errors) == list(range(2, 152))
    assert counts(job) == {"created": 1, "updated": 0, "skipped": 0, "failed": 150}


REJECTS = ("name,email,phone,zip\n"
           "An,an@example.org,0912345678,00123\n"      # 2
           "Binh,not-an-email,,00456\n"                 # 3 invalid_email
           ",chi@example.org,,\n"                       # 4 missing_name
           "An Again, AN@example.org ,,\n"              # 5 duplicate_in_file
           'Dung,dung@example.org,"0912, 345",007\n')   # 6 invalid_phone


async def rejected_csv(app: Notibot, job: Job, **options: Any) -> list[list[str]]:
    text = "".join([piece async for piece in app.imports.rejected_rows_csv(job.id, **options)])
    return list(csv.reader(io.StringIO(text, newline="")))


async def test_rejected_rows_csv_lists_every_rejected_row(app: Notibot) -> None:
    job = await run_import(app, REJECTS)
    errors = await errors_of(app, job)

    header, *body = await rejected_csv(app, job)

    assert header[:7] == ["line", "code", "message", "name", "email", "phone", "zip"]
    assert len(body) == len(errors) == 4
    assert [(int(r[0]), r[1], r[2]) for r in body] == [(e.line, e.code, e.message)
                                                      for e in errors]
    by_line = {int(r[0]): dict(zip(header, r, strict=True)) for r in body}
    assert {line: row["code"] for line, row in by_line.items()} == {
        3: "invalid_email", 4: "missing_name", 5: "duplicate_in_file", 6: "invalid_phone"}
    assert {c: by_line[3][c] for c in ("name", "email", "phone", "zip")} == {
        "name": "Binh", "email": "not-an-email", "phone": "", "zip": "00456"}
    assert (by_line[6]["phone"], by_line[6]["zip"]) == ("0912, 345", "007")


async def test_rejected_rows_csv_has_the_file_columns_for_every_row_duplicates_too(
    app: Notibot,
) -> None:
    # the rows are meant to be fixed and imported again: every one, duplicates included, has
    # its cells under the file's own columns
    job = await run_import(app, REJECTS)

    header, *body = await rejected_csv(app, job)

    assert header == ["line", "code", "message", "name", "email", "phone", "zip"]
    duplicate = next(dict(zip(header, r, strict=True)) for r in body if r[0] == "5")
    assert duplicate["name"] == "An Again"
    assert duplicate["email"].strip().lower() == "an@example.org"


async def test_rejected_rows_csv_does_not_depend_on_the_page_size(app: Notibot) -> None:
    job = await run_import(app, REJECTS)

    whole = await rejected_csv(app, job)

    for page in (1, 2, 3):
        assert await rejected_csv(app, job, page=page) == whole


async def test_rejected_rows_csv_of_a_clean_import_is_the_header_only(app: Notibot) -> None:
    job = await run_import(app, "full_name,email\nAn,an@example.org\n")

    text = "".join([piece async for piece in app.imports.rejected_rows_csv(job.id)])

    assert list(csv.reader(io.StringIO(text))) == [["line", "code", "message", "full_name",
                                                    "email"]]


async def test_rejected_rows_csv_of_an_unknown_job_is_import_not_found(app: Notibot) -> None:
    with pytest.raises(NotFound) as exc:
        async for _ in app.imports.rejected_rows_csv("nope"):
            pass

    assert exc.value.code == "import_not_found"


# -- de-duplication inside the file ----------------------------------------------------------


@pytest.mark.parametrize("email", ["AN@EXAMPLE.ORG", "  an@example.org ", "An@Example.Org"])
async def test_the_same_email_again_is_a_duplicate_and_the_first_row_wins(
    app: Notibot, email: str
) -> None:
    data = ("full_name,email,phone,city\n"
            "An First,an@example.org,,Hanoi\n"
            "Binh,binh@example.org,,\n"
            f"An Second,{email},0912345678,Hue\n")

    job = await run_import(app, data)

    errors = await errors_of(app, job)
    assert [(e.line, e.code, e.message) for e in errors] == [
        (4, "duplicate_in_file", "duplicate of line 2")]
    assert counts(job) == {"created": 2, "updated": 0, "skipped": 1, "failed": 0}
    an = (await by_email(app))["an@example.org"]
    assert (an.full_name, an.phone, an.city) == ("An First", None, "Hanoi")


@pytest.mark.parametrize(
    "phone", ["+84912345678", "84912345678", "0912 345 678", "(+84) 91-234-5678",
              "0084 912 345 678"])
async def test_the_same_phone_in_another_format_is_a_duplicate(
    app: Notibot, phone: str
) -> None:
    data = ("full_name,email,phone\n"
            "An,an@example.org,0912345678\n"
            f"Other,other@example.org,\"{phone}\"\n")

    job = await run_import(app, data)

    assert [(e.line, e.code, e.message) for e in await errors_of(app, job)] == [
        (3, "duplicate_in_file", "duplicate of line 2")]
    assert set(await by_email(app)) == {"an@example.org"}


async def test_a_row_with_a_new_email_but_a_seen_phone_is_a_duplicate(app: Notibot) -> None:
    data = ("full_name,email,phone\n"
            "An,,0912345678\n"
            "Binh,binh@example.org,\n"
            "Chi,chi@example.org,+84 912 345 678\n")

    job = await run_import(app, data)

    assert await codes(app, job) == {4: "duplicate_in_file"}
    assert {e.message for e in await errors_of(app, job)} == {"duplicate of line 2"}


async def test_rejected_rows_do_not_claim_an_email_for_later_rows(app: Notibot) -> None:
    data = ("full_name,email\n"
            ",an@example.org\n"        # missing name: rejected, not "first"
            "An,an@example.org\n")

    job = await run_import(app, data)

    assert await codes(app, job) == {2: "missing_name"}
    assert (await by_email(app))["an@example.org"].full_name == "An"


async def test_duplicates_are_found_across_chunks(make_app: Callable[..., Notibot]) -> None:
    app = make_app(settings={"import_chunk_rows": 100})
    data = many_rows(250) + "Late Dup,C7@EXAMPLE.ORG,\nLate Phone,late@example.org,0900000199\n"

    job = await run_import(app, data)

    errors = {e.line: e for e in await errors_of(app, job)}
    assert {line: e.code for line, e in errors.items()} == {252: "duplicate_in_file",
                                                           253: "duplicate_in_file"}
    assert errors[252].message == "duplicate of line 9"
    assert errors[253].message == "duplicate of line 201"
    assert counts(job) == {"created": 250, "updated": 0, "skipped": 2, "failed": 0}


# -- against the store -----------------------------------------------------------------------


async def test_an_existing_customer_is_matched_by_email(app: Notibot) -> None:
    an = await add(app, full_name="An", email="an@example.org")

    job = await run_import(app, "full_name,email,phone\nAn Nguyen,AN@example.org,0912345678\n")

    assert counts(job) == {"created": 0, "updated": 1, "skipped": 0, "failed": 0}
    [customer] = await stored(app)
    assert (customer.id, customer.full_name, customer.phone) == (
        an.id, "An Nguyen", "+84912345678")


async def test_an_existing_customer_is_matched_by_phone_when_the_email_is_unknown(
    app: Notibot
) -> None:
    binh = await add(app, full_name="Binh", phone="0912345678")

    job = await run_import(app, "full_name,email,phone\nBinh,binh@example.org,+84912345678\n")

    assert counts(job) == {"created": 0, "updated": 1, "skipped": 0, "failed": 0}
    [customer] = await stored(app)
    assert (customer.id, customer.email) == (binh.id, "binh@example.org")


async def test_email_is_matched_before_phone(app: Notibot) -> None:
    an = await add(app, full_name="An", email="an@example.org")

    job = await run_import(app, "full_name,email,phone\nAn,an@example.org,0987654321\n")

    assert counts(job)["updated"] == 1
    assert (await app.customers.get(an.id)).phone == "+84987654321"


async def test_upsert_fills_and_updates_fields_merges_attributes_and_keeps_consent(
    app: Notibot,
) -> None:
    an = await add(app, full_name="An", email="an@example.org", company="Old Co",
                   city="Hanoi", language="vi", tags=["old", "vip"],
                   attributes={"plan": "gold", "zip": "10000"})
    await app.customers.patch(an.id, {"subscribed": False})
    data = ("full_name,email,phone,company,city,position,language,tags,zip,source\n"
            'An Nguyen,an@example.org,0912345678,New Co,,CEO,EN,"New, b2b",00123,fair\n')

    job = await run_import(app, data)

    assert counts(job) == {"created": 0, "updated": 1, "skipped": 0, "failed": 0}
    after = await app.customers.get(an.id)
    assert after.full_name == "An Nguyen"
    assert after.phone == "+84912345678"          # filled
    assert after.company == "New Co"              # updated
    assert after.city == "Hanoi"                  # empty cell: kept
    assert after.position == "CEO"
    assert after.language == "en"
    assert after.tags == ["new", "b2b"]           # replaced
    assert after.attributes == {"plan": "gold", "zip": "00123", "source": "fair"}
    assert after.subscribed is False              # never touched


async def test_empty_cells_never_clear_stored_fields(app: Notibot) -> None:
    an = await add(app, full_name="An", email="an@example.org", phone="0912345678",
                   company="Acme", tags=["vip"], attributes={"plan": "gold"})

    await run_import(app, "full_name,email,phone,company,tags,plan\nAn,an@example.org,,,,\n")

    after = await app.customers.get(an.id)
    assert (after.phone, after.company, after.tags, after.attributes) == (
        "+84912345678", "Acme", ["vip"], {"plan": "gold"})


async def test_a_row_whose_email_and_phone_belong_to_two_customers_fails_as_conflict(
    app: Notibot,
) -> None:
    an = await add(app, full_name="An", email="an@example.org")
    binh = await add(app, full_name="Binh", phone="0912345678")
    data = "full_name,email,phone\nMixed,an@example.org,0912345678\nNew,new@example.org,\n"

    job = await run_import(app, data)

    assert await codes(app, job) == {2: "conflict"}
    assert counts(job) == {"created": 1, "updated": 0, "skipped": 0, "failed": 1}
    assert await app.customers.get(an.id) == an
    assert await app.customers.get(binh.id) == binh


async def test_two_rows_matching_one_stored_customer_by_different_keys(app: Notibot) -> None:
    an = await add(app, full_name="An", email="an@example.org", phone="0912345678")
    data = ("full_name,email,phone,city\n"
            "An By Email,an@example.org,,Hanoi\n"
            "An By Phone,,0912 345 678,Hue\n")

    job = await run_import(app, data)

    assert await codes(app, job) == {3: "duplicate_in_file"}
    assert counts(job) == {"created": 0, "updated": 1, "skipped": 1, "failed": 0}
    after = await app.customers.get(an.id)
    assert (after.full_name, after.city) == ("An By Email", "Hanoi")


async def test_skip_mode_leaves_existing_customers_untouched_and_counts_them(
    app: Notibot,
) -> None:
    an = await add(app, full_name="An", email="an@example.org", company="Old Co")
    binh = await add(app, full_name="Binh", phone="0912345678")
    data = ("full_name,email,phone,company\n"
            "An New,an@example.org,,New Co\n"
            "Binh New,binh@example.org,0912 345 678,\n"
            "Chi,chi@example.org,,Chi Co\n"
            ",bad,,\n")

    job = await run_import(app, data, mode="skip")

    assert counts(job) == {"created": 1, "updated": 0, "skipped": 2, "failed": 1}
    assert await app.customers.get(an.id) == an
    assert await app.customers.get(binh.id) == binh
    assert (await by_email(app))["chi@example.org"].company == "Chi Co"
    assert job.result is not None and job.result["mode"] == "skip"


async def seed_store(app: Notibot) -> None:
    await add(app, full_name="An", email="an@example.org")
    await add(app, full_name="Binh", phone="0912345678")
    await add(app, full_name="Chi", email="chi@example.org", phone="0987654321")


MIXED = ("full_name,email,phone,company\n"
         "An Updated,an@example.org,,Acme\n"          # update by email
         "Binh Updated,binh@example.org,0912345678,\n"  # update by phone
         "Chi,chi@example.org,0977777777,\n"            # update by email (new phone)
         "An Again,an@example.org,0987654321,\n"        # in-file dup of line 2 (email)
         "Dung,dung@example.org,,\n"                     # new
         "Dung Again,DUNG@example.org,,\n"               # in-file dup
         "Em,,0911111111,\n"                             # new
         ",nameless@example.org,,\n"                     # missing name
         "Mix,chi@example.org,0912345678,\n")            # in-file dup (email of line 4)


async def test_dry_run_writes_nothing_and_reports_what_upsert_would_do(
    make_app: Callable[..., Notibot],
) -> None:
    dry, real = make_app(), make_app()
    await seed_store(dry)
    await seed_store(real)
    before = await stored(dry)

    dry_job = await run_import(dry, MIXED, mode="dry_run")
    real_job = await run_import(real, MIXED, mode="upsert")

    assert await stored(dry) == before
    assert counts(dry_job) == counts(real_job) == {"created": 2, "updated": 3, "skipped": 3,
                                                   "failed": 1}
    assert await codes(dry, dry_job) == await codes(real, real_job)
    assert len(await stored(real)) == len(before) + 2
    assert dry_job.result is not None and dry_job.result["mode"] == "dry_run"


async def test_dry_run_reports_conflicts_like_upsert(make_app: Callable[..., Notibot]) -> None:
    data = "full_name,email,phone\nMixed,an@example.org,0912345678\n"
    results = []
    for mode in ("dry_run", "upsert"):
        app = make_app()
        await seed_store(app)
        job = await run_import(app, data, mode=mode)
        results.append((counts(job), await codes(app, job)))

    assert results[0] == results[1] == (
        {"created": 0, "updated": 0, "skipped": 0, "failed": 1}, {2: "conflict"})


async def test_importing_the_same_file_again_updates_what_it_created(app: Notibot) -> None:
    first = await run_import(app, FAULTS)
    customers = await stored(app)

    second = await run_import(app, FAULTS)

    assert counts(second)["updated"] == counts(first)["created"] == 2
    assert counts(second)["created"] == 0
    assert counts(second)["failed"] == counts(first)["failed"]
    assert await codes(app, second) == await codes(app, first)
    assert [c.id for c in await stored(app)] == [c.id for c in customers]


# -- options ---------------------------------------------------------------------------------


async def test_the_default_region_of_the_upload_applies(app: Notibot) -> None:
    data = "full_name,phone\nAn,(650) 253-0000\nBinh,+84 912 345 678\n"

    await run_import(app, data, default_region="us")

    assert sorted(c.phone for c in await stored(app)) == ["+16502530000", "+84912345678"]


async def test_without_a_region_the_configured_default_applies(
    make_app: Callable[..., Notibot],
) -> None:
    app = make_app(settings={"default_region": "GB"})

    await run_import(app, "full_name,phone\nAn,020 7946 0958\n")

    assert [c.phone for c in await stored(app)] == ["+442079460958"]


@pytest.mark.parametrize("delimiter", ["\t", "\\t", None])
async def test_a_tab_separated_file(app: Notibot, delimiter: str | None) -> None:
    data = "full_name\temail\tcity\nAn\tan@example.org\tHa Noi, VN\n"

    job = await run_import(app, data, sep="\t", delimiter=delimiter)

    assert counts(job)["created"] == 1
    assert (await by_email(app))["an@example.org"].city == "Ha Noi, VN"


async def test_a_semicolon_file_with_a_bom_and_aliases(app: Notibot) -> None:
    data = "\ufeffFull Name;E-Mail;Mobile;Lang\nAn;AN@example.org;0912345678;VI\n"

    job = await run_import(app, data, sep=";")

    assert counts(job)["created"] == 1
    an = (await by_email(app))["an@example.org"]
    assert (an.full_name, an.phone, an.language) == ("An", "+84912345678", "vi")


# -- refused at submit -----------------------------------------------------------------------


async def test_an_unknown_mode_is_refused(app: Notibot) -> None:
    with pytest.raises(InvalidInput) as exc:
        await app.imports.submit(CLEAN.encode(), filename="x.csv", mode="merge")

    assert exc.value.code == "invalid_mode"
    assert await import_jobs(app) == []


@pytest.mark.parametrize("region", ["VNM", "1A", "V", "  ", "V1"])
async def test_a_malformed_region_is_refused(app: Notibot, region: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        await app.imports.submit(CLEAN.encode(), filename="x.csv", default_region=region)

    assert exc.value.code == "invalid_region"
    assert await import_jobs(app) == []


async def test_a_region_without_phone_numbering_is_refused_like_the_setting(
    app: Notibot,
) -> None:
    # NOTIBOT_DEFAULT_REGION=ZZ is refused at start-up; an upload naming it would reject every
    # national phone number of the file
    with pytest.raises(InvalidInput) as exc:
        await app.imports.submit(CLEAN.encode(), filename="x.csv", default_region="ZZ")

    assert exc.value.code == "invalid_region"
    assert await import_jobs(app) == []


async def test_a_file_over_the_limit_is_too_large(app: Notibot) -> None:
    app.container.import_service().max_upload_bytes = 100
    data = many_rows(10).encode()
    assert len(data) > 100

    with pytest.raises(FileTooLarge) as exc:
        await app.imports.submit(data, filename="x.csv")

    assert exc.value.code == "file_too_large"
    assert await import_jobs(app) == []


async def test_a_file_at_the_limit_is_accepted(app: Notibot) -> None:
    data = b"full_name,email\nAn,an@example.org\n"
    app.container.import_service().max_upload_bytes = len(data)

    await run_import(app, data)

    assert len(await stored(app)) == 1


@pytest.mark.parametrize(
    ("data", "error", "code"),
    [
        (b"", InvalidInput, "empty_file"),
        (b"  \n\n ", InvalidInput, "empty_file"),
        (b"full_name,email\nAn,a\x00n@example.org\n", UnsupportedFile, "binary_file"),
        ("full_name,email\nJosé,jose@example.org\n".encode("latin-1"), UnsupportedFile,
         "not_utf8"),
        (b"email,company\nan@example.org,Acme\n", InvalidInput, "missing_columns"),
        (b"full_name,company\nAn,Acme\n", InvalidInput, "missing_columns"),
        (b"full_name,phone,mobile\nAn,1,2\n", InvalidInput, "duplicate_columns"),
    ],
    ids=["empty", "blank", "binary", "latin-1", "no-name", "no-contact", "duplicate"],
)
async def test_a_bad_file_is_refused_at_submit_and_nothing_is_queued(
    app: Notibot, data: bytes, error: type[InvalidInput], code: str
) -> None:
    with pytest.raises(error) as exc:
        await app.imports.submit(data, filename="x.csv")

    assert exc.value.code == code
    assert await import_jobs(app) == []


async def test_an_invalid_delimiter_is_refused_at_submit(app: Notibot) -> None:
    with pytest.raises(InvalidInput) as exc:
        await app.imports.submit(CLEAN.encode(), filename="x.csv", delimiter=":")

    assert exc.value.code == "invalid_delimiter"
    assert await import_jobs(app) == []


async def test_status_of_another_kind_of_job_is_import_not_found(app: Notibot) -> None:
    other = await app.jobs.submit("test")
    await finish(app)

    for job_id in (other.id, "no-such-job"):
        with pytest.raises(NotFound) as exc:
            await app.imports.status(job_id)
        assert exc.value.code == "import_not_found"


async def test_a_file_broken_after_the_first_chunk_fails_the_job_with_a_reason(
    make_app: Callable[..., Notibot],
) -> None:
    app = make_app(settings={"import_chunk_rows": 100})
    data = many_rows(150) + 'Broken,"a quote never closed\nx,y\n'

    job = await app.imports.submit(data.encode(), filename="broken.csv")
    await finish(app)

    failed = await app.jobs.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.failure_reason
    assert failed.counters.get("processed", 0) < 151
    assert sum(counts(failed).values()) == failed.counters.get("processed", 0)
    assert len(await stored(app)) == failed.counters.get("created", 0)


# -- cancel ----------------------------------------------------------------------------------


class GatedReader(CustomerFileReader):
    """The real reader, except that it stops before handing over its second batch until
    ``resume`` is set: a test can act while an import is between two chunks."""

    def __init__(self) -> None:
        self._inner = PandasCustomerFileReader()
        self.waiting = asyncio.Event()
        self.resume = asyncio.Event()
        self.handed_over = 0

    async def inspect(self, file: BinaryIO, options: CustomerFileOptions) -> CustomerFileSummary:
        return await self._inner.inspect(file, options)

    async def batches(self, file: BinaryIO, options: CustomerFileOptions
                      ) -> AsyncIterator[CustomerBatch]:
        async for batch in self._inner.batches(file, options):
            if self.handed_over == 1:
                self.waiting.set()
                await self.resume.wait()
            self.handed_over += 1
            yield batch


async def test_cancel_mid_file_stops_within_one_chunk(
    make_app: Callable[..., Notibot], clock: FakeClock
) -> None:
    reader = GatedReader()
    app = make_app(settings={"import_chunk_rows": 100}, customer_file_reader=reader,
                   clock=clock)
    job = await app.imports.submit(many_rows(1000).encode(), filename="big.csv")

    await asyncio.wait_for(reader.waiting.wait(), timeout=10)
    between = await app.jobs.get(job.id)
    assert between.status is JobStatus.RUNNING
    assert between.counters["processed"] == 100
    assert between.counters["total_rows"] == 1000
    assert between.progress == pytest.approx(0.1)
    clock.advance(10)
    assert await app.jobs.eta_seconds(between) == pytest.approx(90.0)
    await app.jobs.cancel(job.id)
    reader.resume.set()
    await finish(app)

    done = await app.jobs.get(job.id)
    assert done.status is JobStatus.CANCELLED
    processed = done.counters["processed"]
    assert 100 <= processed <= 200
    assert processed < done.counters["total_rows"] == 1000
    assert sum(counts(done).values()) == processed
    assert reader.handed_over <= 2
    customers = await stored(app)
    assert len(customers) == done.counters["created"] == processed
    assert {c.email for c in customers} == {f"c{i}@example.org" for i in range(processed)}


async def test_an_import_cancelled_while_queued_releases_its_upload() -> None:
    release = asyncio.Event()

    async def blocker(ctx):
        await release.wait()
        return None

    app = memory_notibot(settings={"job_concurrency": 1}, job_handlers={"block": blocker})
    await app.start(ensure_admin=False)
    try:
        await app.jobs.submit("block")
        job = await app.imports.submit(b"name,email\nAn,an@example.org\n", filename="a.csv")
        uploads = app.container.upload_store()
        upload_id = job.params["upload_id"]
        (await uploads.open(upload_id)).close()  # kept while the job waits

        assert (await app.jobs.cancel(job.id)).status is JobStatus.CANCELLED
        release.set()
        await app.container.job_queue().join()

        with pytest.raises(NotFound):
            await uploads.open(upload_id)
        assert (await app.jobs.get(job.id)).status is JobStatus.CANCELLED
    finally:
        await app.stop()
