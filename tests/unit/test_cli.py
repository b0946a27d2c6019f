"""The ``notibot`` command line, through typer's CliRunner (no server is started)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from notibot import __version__
from notibot.entrypoints.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NOTIBOT_* variable or .env file of the developer leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("NOTIBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize("command", [
    [], ["serve"], ["users"], ["users", "create"], ["openapi"], ["version"],
])
def test_every_command_has_help(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_version(runner: CliRunner) -> None:
    for args in (["version"], ["--version"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0
        assert result.stdout.strip() == f"notibot {__version__}"


def test_users_create_reads_the_password_from_stdin(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["users", "create", "--username", "ann", "--role", "operator", "--password-stdin"],
        input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    assert "username=ann role=operator" in result.stdout
    assert "id=" in result.stdout
    assert "lives only in this process" in result.stderr


def test_users_create_admin_named_admin_on_the_embedded_default(runner: CliRunner) -> None:
    # the embedded default's generated admin must not take the name first
    result = runner.invoke(
        app, ["users", "create", "--username", "admin", "--role", "admin", "--password-stdin"],
        input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    assert "username=admin role=admin" in result.stdout
    assert "with password" not in result.stderr


def test_users_create_prompts_twice(runner: CliRunner) -> None:
    result = runner.invoke(app, ["users", "create", "--username", "ann", "--role", "admin"],
                           input="correct horse battery\ncorrect horse battery\n")
    assert result.exit_code == 0, result.output
    assert "username=ann role=admin" in result.stdout
    assert "correct horse battery" not in result.output  # hidden input


def test_users_create_refuses_a_weak_password(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["users", "create", "--username", "ann", "--role", "operator", "--password-stdin"],
        input="short\n")
    assert result.exit_code == 1
    assert "password must be" in result.stderr
    assert "weak_password" in result.stderr
    assert "Traceback" not in result.output
    assert "created user" not in result.stdout


def test_users_create_refuses_an_unknown_role(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["users", "create", "--username", "ann", "--role", "king", "--password-stdin"],
        input="correct horse battery\n")
    assert result.exit_code == 1
    assert "role must be one of: admin, operator" in result.stderr
    assert "Traceback" not in result.output


def test_users_create_refuses_a_bad_username(runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["users", "create", "--username", "a b", "--role", "operator", "--password-stdin"],
        input="correct horse battery\n")
    assert result.exit_code == 1
    assert "invalid_username" in result.stderr


def test_users_create_with_a_bad_setting_exits_2(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIBOT_JWT_SECRET", "too-short")
    result = runner.invoke(
        app, ["users", "create", "--username", "ann", "--role", "operator", "--password-stdin"],
        input="correct horse battery\n")
    assert result.exit_code == 2
    assert "NOTIBOT_JWT_SECRET must be at least 32 bytes" in result.stderr
    assert "too-short" not in result.output  # secrets are never echoed


def test_serve_with_a_bad_setting_exits_2_naming_the_variable(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIBOT_PORT", "0")
    monkeypatch.setenv("NOTIBOT_DEFAULT_REGION", "VNM")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "notibot: invalid settings:"
    assert any(line.strip().startswith("NOTIBOT_PORT:") for line in lines)
    assert any(line.strip().startswith("NOTIBOT_DEFAULT_REGION:") for line in lines)
    assert len(lines) == 3  # one line per error
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_serve_with_a_bad_option_names_the_option(runner: CliRunner) -> None:
    result = runner.invoke(app, ["serve", "--port", "70000"])
    assert result.exit_code == 2
    assert "--port (NOTIBOT_PORT): Input should be less than or equal to 65535" in result.stderr


def test_serve_a_setting_from_the_dotenv_file(
    runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("NOTIBOT_PORT=-1\n")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "NOTIBOT_PORT" in result.stderr


def test_serve_builds_the_app_and_runs_uvicorn_with_lifespan(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import falcon.asgi
    import uvicorn

    seen: dict[str, object] = {}

    def fake_run(self: uvicorn.Server, sockets: object = None) -> None:
        seen["config"] = self.config
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    monkeypatch.setenv("NOTIBOT_HOST", "0.0.0.0")
    monkeypatch.setenv("NOTIBOT_PORT", "9001")
    result = runner.invoke(app, ["serve", "--port", "9002", "--log-level", "warning"])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert isinstance(config, uvicorn.Config)
    assert (config.host, config.port, config.lifespan) == ("0.0.0.0", 9002, "on")
    assert isinstance(config.app, falcon.asgi.App)


def test_openapi_prints_the_document(runner: CliRunner) -> None:
    result = runner.invoke(app, ["openapi"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert "openapi" in document
    assert "/customers" in document["paths"]


def test_openapi_writes_a_file(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    result = runner.invoke(app, ["openapi", "--output", str(target)])
    assert result.exit_code == 0, result.output
    document = json.loads(target.read_text())
    assert "openapi" in document and "paths" in document
    assert result.stdout == ""


def test_python_dash_m_notibot() -> None:
    result = subprocess.run([sys.executable, "-m", "notibot", "--version"],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"notibot {__version__}"


def test_readme_documents_every_setting() -> None:
    """README.md's settings table is generated from Settings; it must not be stale."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "settings_table.py"),
                             "--check"], capture_output=True, text=True, check=False,
                            timeout=60)
    assert result.returncode == 0, result.stderr
