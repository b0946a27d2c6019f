"""Whole sample files through the import use case: the seed sample, the 1k dirty sample and a
generated 10,000-row file with 5% faults. Each result is checked against an independent
reading of the file with the csv module and the domain's rules (the oracle below)."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from notibot.adapters.phone import to_e164
from notibot.application.ports import CustomerFilter
from notibot.container import Notibot
from notibot.domain import Job, JobError, JobStatus
from notibot.domain.rules import EMAIL_MAX_LENGTH, EMAIL_RE, LANGUAGE_RE
from notibot.testing import memory_notibot

COUNTS = ("created", "updated", "skipped", "failed")


@pytest.fixture(scope="module")
def shared() -> Path:
    """``shared/`` beside the repository root (a fresh clone in CI), else the workstation's."""
    candidates = [Path(__file__).resolve().parents[3].parent / "shared", Path("/work/shared")]
    for candidate in candidates:
        if (candidate / "tools" / "make_customers_csv.py").is_file():
            return candidate
    raise AssertionError(f"shared/ with the sample data not found in {candidates}")


@pytest.fixture(scope="module")
def seed_sample(shared: Path) -> bytes:
    return (shared / "data" / "customers_seed_sample.csv").read_bytes()


@pytest.fixture(scope="module")
def dirty_1k(shared: Path) -> bytes:
    return (shared / "data" / "customers_1k_dirty.csv").read_bytes()


@pytest.fixture(scope="module")
def dirty_10k(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 10,000-row file with 5% faults, made with the generator of shared/tools."""
    out = tmp_path_factory.mktemp("import-files") / "customers_10k_dirty.csv"
    generator = shared / "tools" / "make_customers_csv.py"
    subprocess.run([sys.executable, str(generator), "10000", str(out), "--seed", "23",
                    "--dirty", "0.05"], check=True, timeout=60)
    return out.read_bytes()


@pytest.fixture(scope="module")
def expected_10k(dirty_10k: bytes) -> Expected:
    return expected_import(dirty_10k.decode("utf-8"))


@pytest.fixture
async def make_app() -> AsyncIterator[Callable[..., Notibot]]:
    apps: list[Notibot] = []

    def make(**kwargs: Any) -> Notibot:
        apps.append(memory_notibot(**kwargs))
        return apps[-1]

    yield make
    for app in apps:
        await app.container.job_queue().close()


# -- the oracle ------------------------------------------------------------------------------


@dataclass
class Expected:
    """What importing a file into an empty store must give, worked out row by row."""

    rows: int = 0
    rejected: dict[int, str] = field(default_factory=dict)
    duplicate_of: dict[int, int] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)  # the customers' fields

    @property
    def failed(self) -> int:
        return sum(code != "duplicate_in_file" for code in self.rejected.values())

    @property
    def skipped(self) -> int:
        return sum(code == "duplicate_in_file" for code in self.rejected.values())


def expected_import(text: str, region: str = "VN") -> Expected:
    """Read ``text`` (a customer file with the generator's columns) with the csv module and
    apply the rules of the issue: trim, lower-case emails, E.164 phones, reject faulty rows,
    de-duplicate by email then phone with the first valid row winning."""
    result = Expected()
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader)]
    emails: dict[str, int] = {}
    phones: dict[str, int] = {}
    end = reader.line_num
    for cells in reader:
        line, end = end + 1, reader.line_num
        row = dict(zip(header, (c.strip() for c in cells), strict=False))
        if not any(row.values()):
            continue
        result.rows += 1
        email = row.get("email", "").lower()
        phone_text = row.get("phone", "")
        phone = to_e164(phone_text, region) if phone_text else None
        language = row.get("language", "").lower().replace("_", "-")
        if not row.get("full_name"):
            result.rejected[line] = "missing_name"
        elif email and (len(email) > EMAIL_MAX_LENGTH or not EMAIL_RE.match(email)):
            result.rejected[line] = "invalid_email"
        elif phone_text and phone is None:
            result.rejected[line] = "invalid_phone"
        elif not email and not phone_text:
            result.rejected[line] = "no_contact"
        elif language and not LANGUAGE_RE.match(language):
            result.rejected[line] = "invalid_language"
        elif (first := emails.get(email) if email else None) or (
                first := phones.get(phone) if phone else None):
            result.rejected[line] = "duplicate_in_file"
            result.duplicate_of[line] = first
        else:
            if email:
                emails[email] = line
            if phone:
                phones[phone] = line
            result.created.append({"full_name": row["full_name"], "email": email or None,
                                   "phone": phone, "city": row.get("city") or None})
    return result


# -- running an import -----------------------------------------------------------------------


async def run_import(app: Notibot, content: bytes, **options: Any) -> Job:
    submitted = await app.imports.submit(content, filename="customers.csv", **options)
    await asyncio.wait_for(app.container.job_queue().join(), timeout=60)
    job = await app.jobs.get(submitted.id)
    assert job.status is JobStatus.SUCCEEDED, job.failure_reason
    return job


def counts(job: Job) -> dict[str, int]:
    return {k: job.counters.get(k, 0) for k in COUNTS}


async def errors_of(app: Notibot, job: Job) -> list[JobError]:
    return await app.container.job_repository().list_errors(job.id)


async def check_against_oracle(app: Notibot, job: Job, expected: Expected) -> None:
    """Counts add up, every rejected row is listed once with its line and reason, and the
    created customers are the oracle's."""
    assert sum(counts(job).values()) == job.counters["total_rows"] == expected.rows
    assert job.counters["processed"] == expected.rows
    assert counts(job) == {"created": len(expected.created), "updated": 0,
                           "skipped": expected.skipped, "failed": expected.failed}
    errors = await errors_of(app, job)
    assert job.error_count == len(errors) == len(expected.rejected)
    lines = [e.line for e in errors]
    assert len(set(lines)) == len(lines)
    assert {e.line: e.code for e in errors} == expected.rejected
    assert {e.line: e.message for e in errors if e.code == "duplicate_in_file"} == {
        line: f"duplicate of line {first}" for line, first in expected.duplicate_of.items()}
    assert (await app.customers.list(CustomerFilter(), limit=1)).total == len(expected.created)
    repository = app.container.customer_repository()
    emails = [c["email"] for c in expected.created if c["email"]]
    phones = [c["phone"] for c in expected.created if not c["email"]]
    found = {**await repository.find_by_emails(emails), **await repository.find_by_phones(phones)}
    assert len(found) == len(expected.created)
    for fields in expected.created:
        customer = found[fields["email"] or fields["phone"]]
        assert {"full_name": customer.full_name, "email": customer.email,
                "phone": customer.phone, "city": customer.city} == fields


# -- the seed sample -------------------------------------------------------------------------


async def test_the_seed_sample_creates_its_four_customers_with_e164_phones(
    make_app: Callable[..., Notibot], seed_sample: bytes
) -> None:
    app = make_app()

    job = await run_import(app, seed_sample)

    assert counts(job) == {"created": 4, "updated": 0, "skipped": 0, "failed": 0}
    assert job.counters["total_rows"] == 4
    assert await errors_of(app, job) == []
    customers = {c.email: c for c in (await app.customers.list(CustomerFilter())).items}
    assert {email: c.phone for email, c in customers.items()} == {
        "duongnguyen@gmail.com": "+84327879401",
        "phamanh@gmail.com": "+84912345678",
        "linhvu@gmail.com": "+84987654321",
        "testuser@example.com": None,
    }
    assert customers["duongnguyen@gmail.com"].tags == ["customer"]
    assert customers["testuser@example.com"].position is None
    assert customers["phamanh@gmail.com"].language == "en"
    await check_against_oracle(app, job, expected_import(seed_sample.decode("utf-8")))


async def test_the_seed_sample_imported_twice_updates_its_four_customers(
    make_app: Callable[..., Notibot], seed_sample: bytes
) -> None:
    app = make_app()
    await run_import(app, seed_sample)

    again = await run_import(app, seed_sample)

    assert counts(again) == {"created": 0, "updated": 4, "skipped": 0, "failed": 0}
    assert (await app.customers.list(CustomerFilter())).total == 4


# -- dirty files -----------------------------------------------------------------------------


async def test_the_1k_dirty_sample_matches_the_oracle(
    make_app: Callable[..., Notibot], dirty_1k: bytes
) -> None:
    app = make_app()
    expected = expected_import(dirty_1k.decode("utf-8"))
    assert expected.rows == 1000 and expected.rejected  # the sample does have faults

    job = await run_import(app, dirty_1k)

    await check_against_oracle(app, job, expected)


async def test_the_1k_dirty_sample_again_updates_what_it_created(
    make_app: Callable[..., Notibot], dirty_1k: bytes
) -> None:
    app = make_app(settings={"import_chunk_rows": 300})
    first = await run_import(app, dirty_1k)

    second = await run_import(app, dirty_1k)

    assert counts(second) == {"created": 0, "updated": counts(first)["created"],
                              "skipped": counts(first)["skipped"],
                              "failed": counts(first)["failed"]}


async def test_a_generated_10k_file_with_5_percent_faults_matches_the_oracle(
    make_app: Callable[..., Notibot], dirty_10k: bytes, expected_10k: Expected
) -> None:
    app = make_app(settings={"import_chunk_rows": 1000})
    expected = expected_10k
    faults = Counter(expected.rejected.values())
    assert expected.rows == 10_000
    assert {"duplicate_in_file", "invalid_email", "missing_name"} <= set(faults)

    job = await run_import(app, dirty_10k)

    await check_against_oracle(app, job, expected)


async def test_a_generated_10k_file_dry_run_reports_the_same_counts_and_writes_nothing(
    make_app: Callable[..., Notibot], dirty_10k: bytes, expected_10k: Expected
) -> None:
    app = make_app(settings={"import_chunk_rows": 2500})
    expected = expected_10k

    job = await run_import(app, dirty_10k, mode="dry_run")

    assert counts(job) == {"created": len(expected.created), "updated": 0,
                           "skipped": expected.skipped, "failed": expected.failed}
    assert {e.line: e.code for e in await errors_of(app, job)} == expected.rejected
    assert (await app.customers.list(CustomerFilter(), limit=1)).total == 0


async def test_rejected_rows_of_the_10k_file_download_as_csv_with_their_lines(
    make_app: Callable[..., Notibot], dirty_10k: bytes, expected_10k: Expected
) -> None:
    app = make_app()
    expected = expected_10k
    job = await run_import(app, dirty_10k)

    text = "".join([piece async for piece in app.imports.rejected_rows_csv(job.id, page=100)])

    header, *body = list(csv.reader(io.StringIO(text, newline="")))
    assert header[:3] == ["line", "code", "message"]
    assert {int(row[0]): row[1] for row in body} == expected.rejected
    assert len(body) == len(expected.rejected)
