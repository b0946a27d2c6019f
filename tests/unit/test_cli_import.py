"""``notibot import FILE``: the customer import in-process, through typer's CliRunner."""

from __future__ import annotations

import csv
import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from notibot.entrypoints.cli import app, default_errors_path

REPO = Path(__file__).resolve().parents[2]
SEED = "data/customers_seed_sample.csv"
DIRTY_1K = "data/customers_1k_dirty.csv"


def shared(relative: str) -> Path:
    """A file of the shared folder beside the repository (``<repo>/../shared``), else of
    ``/work/shared``. Missing: skipped on a laptop, a failure when ``CI`` is set."""
    for base in (REPO.parent / "shared", Path("/work/shared")):
        if (base / relative).is_file():
            return base / relative
    message = f"shared/{relative} not found beside the repository"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NOTIBOT_* variable or .env file of the developer leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("NOTIBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def copy(relative: str, folder: Path) -> Path:
    target = folder / Path(relative).name
    shutil.copyfile(shared(relative), target)
    return target


def summary(result: Result) -> dict[str, int]:
    """The counts of the summary on stdout: ``{"total rows": 4, "created": 4, ...}``."""
    counts = {}
    for line in result.stdout.splitlines():
        match = re.fullmatch(r"  (total rows|created|updated|skipped|failed) +([\d,]+)", line)
        if match:
            counts[match[1]] = int(match[2].replace(",", ""))
    assert set(counts) == {"total rows", "created", "updated", "skipped", "failed"}, \
        result.stdout
    return counts


def rejected(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_import_has_help(runner: CliRunner) -> None:
    result = runner.invoke(app, ["import", "--help"])

    assert result.exit_code == 0, result.output
    for option in ("--mode", "--delimiter", "--region", "--errors-out"):
        assert option in result.output


def test_import_the_seed_sample(runner: CliRunner, tmp_path: Path) -> None:
    file = copy(SEED, tmp_path)

    result = runner.invoke(app, ["import", str(file)])

    assert result.exit_code == 0, result.output
    assert summary(result) == {"total rows": 4, "created": 4, "updated": 0, "skipped": 0,
                               "failed": 0}
    assert result.stdout.splitlines()[0] == \
        "imported customers_seed_sample.csv (mode upsert)"
    assert re.search(r"^  duration +\d+\.\d\d s$", result.stdout, re.MULTILINE)
    assert result.stdout.splitlines()[-1] == "no rows were rejected"
    assert not default_errors_path(file).exists()
    assert "importing customers_seed_sample.csv" in result.stderr  # the progress bar
    assert "with password" not in result.stderr  # no throw-away admin


def test_the_rejected_rows_go_next_to_the_file(runner: CliRunner, tmp_path: Path) -> None:
    file = copy(DIRTY_1K, tmp_path)

    result = runner.invoke(app, ["import", str(file)])

    assert result.exit_code == 0, result.output  # rejected rows are no failure
    counts = summary(result)
    assert counts["total rows"] == 1000
    assert counts["created"] + counts["updated"] + counts["skipped"] + counts["failed"] == 1000
    errors = tmp_path / "customers_1k_dirty.errors.csv"
    assert default_errors_path(file) == errors
    rows = rejected(errors)
    # a fresh store: every skipped row is a duplicate inside the file, reported as such
    assert len(rows) == counts["failed"] + counts["skipped"]
    assert sum(row["code"] == "duplicate_in_file" for row in rows) == counts["skipped"]
    assert all(row["line"].isdigit() and 2 <= int(row["line"]) <= 1001 for row in rows)
    assert len({row["line"] for row in rows}) == len(rows)
    assert result.stdout.splitlines()[-1] == f"{len(rows)} rejected rows written to {errors}"


def test_errors_out_chooses_the_file(runner: CliRunner, tmp_path: Path) -> None:
    file = copy(DIRTY_1K, tmp_path)
    target = tmp_path / "out" / "rejected.csv"
    target.parent.mkdir()

    result = runner.invoke(app, ["import", str(file), "--errors-out", str(target)])

    assert result.exit_code == 0, result.output
    assert len(rejected(target)) == summary(result)["failed"] + summary(result)["skipped"]
    assert not default_errors_path(file).exists()


def test_an_unwritable_errors_file_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    file = copy(DIRTY_1K, tmp_path)

    result = runner.invoke(app, ["import", str(file), "--errors-out",
                                 str(tmp_path / "missing" / "rejected.csv")])

    assert result.exit_code == 1
    assert "cannot write the rejected rows" in result.stderr
    assert "Traceback" not in result.output


def test_dry_run_reports_without_writing(runner: CliRunner, tmp_path: Path) -> None:
    file = copy(SEED, tmp_path)

    result = runner.invoke(app, ["import", str(file), "--mode", "dry_run"])

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("dry run of customers_seed_sample.csv: nothing was "
                                    "written")
    assert summary(result)["created"] == 4


def test_options_reach_the_import(runner: CliRunner, tmp_path: Path) -> None:
    file = tmp_path / "people.tsv"
    file.write_text("Name;Mobile\nAn Nguyen;020 7946 0958\nBinh;not a phone\n",
                    encoding="utf-8")

    result = runner.invoke(app, ["import", str(file), "--delimiter", ";", "--region", "GB",
                                 "--mode", "skip"])

    assert result.exit_code == 0, result.output
    assert summary(result) == {"total rows": 2, "created": 1, "updated": 0, "skipped": 0,
                               "failed": 1}
    rows = rejected(tmp_path / "people.errors.csv")
    assert [(row["line"], row["code"]) for row in rows] == [("3", "invalid_phone")]


def test_a_file_over_the_upload_limit_still_imports(
        runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIBOT_MAX_UPLOAD_MB", "0.01")  # 10 KiB; the file is ~100 KiB
    file = copy(DIRTY_1K, tmp_path)

    result = runner.invoke(app, ["import", str(file)])

    assert result.exit_code == 0, result.output
    assert summary(result)["total rows"] == 1000


@pytest.mark.parametrize("content, message", [
    pytest.param(b"email,full_name\na@b.org,A\x00\x00\n", "binary data", id="binary"),
    pytest.param("email,full_name\na@b.org,José\n".encode("latin-1"), "not UTF-8",
                 id="latin-1"),
    pytest.param(b"", "the file is empty", id="empty"),
    pytest.param(b"email,company\na@b.org,ACME\n", "no full_name", id="no name column"),
])
def test_a_refused_file_exits_1_with_one_line(
        runner: CliRunner, tmp_path: Path, content: bytes, message: str) -> None:
    file = tmp_path / "bad.csv"
    file.write_bytes(content)

    result = runner.invoke(app, ["import", str(file)])

    assert result.exit_code == 1
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith("notibot:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert lines[0].startswith(f"notibot: error: {file}: ")
    assert "Traceback" not in result.output
    assert not default_errors_path(file).exists()


def test_a_failed_import_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    file = tmp_path / "broken.csv"  # the header is fine; row 3 has too many cells
    file.write_text("email,full_name\na@b.org,A\nc@d.org,C,extra,cells\n", encoding="utf-8")

    result = runner.invoke(app, ["import", str(file)])

    assert result.exit_code == 1
    assert f"notibot: error: the import of {file} failed: " in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, option", [
    (["--mode", "merge"], "--mode"),
    (["--region", "Vietnam"], "--region"),
    (["--delimiter", ":"], "--delimiter"),
])
def test_bad_options_exit_2(runner: CliRunner, tmp_path: Path, args: list[str],
                            option: str) -> None:
    file = copy(SEED, tmp_path)

    result = runner.invoke(app, ["import", str(file), *args])

    assert result.exit_code == 2
    assert option in result.output
    assert "Traceback" not in result.output


def test_a_missing_file_or_errors_out_on_the_file_exit_2(
        runner: CliRunner, tmp_path: Path) -> None:
    file = copy(SEED, tmp_path)

    missing = runner.invoke(app, ["import", str(tmp_path / "nope.csv")])
    same = runner.invoke(app, ["import", str(file), "--errors-out", str(file)])

    assert missing.exit_code == 2
    assert same.exit_code == 2
    assert "--errors-out must not be the imported file" in same.stderr
    assert file.read_bytes() == shared(SEED).read_bytes()
