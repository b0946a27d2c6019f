"""Settings: NOTIBOT_ environment variables, .env file and validation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from notibot.settings import Settings

SECRET = "s" * 32


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No NOTIBOT_* variable of the developer's shell and no .env file leak in."""
    for name in list(os.environ):
        if name.upper().startswith("NOTIBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_are_the_embedded_default() -> None:
    settings = Settings()

    assert (settings.store, settings.queue) == ("memory", "inline")
    assert settings.is_embedded_default
    assert settings.jwt_secret is None
    assert settings.admin_username is None and settings.admin_password is None
    assert settings.allow_signup is False
    assert settings.default_region == "VN"
    assert (settings.access_token_ttl, settings.refresh_token_ttl) == (1800, 7 * 24 * 3600)
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_values_are_read_from_notibot_prefixed_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIBOT_JWT_SECRET", SECRET)
    monkeypatch.setenv("NOTIBOT_ALLOW_SIGNUP", "true")
    monkeypatch.setenv("NOTIBOT_ACCESS_TOKEN_TTL", "600")
    monkeypatch.setenv("NOTIBOT_JOB_CONCURRENCY", "2")
    monkeypatch.setenv("NOTIBOT_ADMIN_USERNAME", "root")
    monkeypatch.setenv("NOTIBOT_ADMIN_PASSWORD", "root-password")
    monkeypatch.setenv("NOTIBOT_PORT", "9000")
    monkeypatch.setenv("JWT_SECRET", "x" * 40)  # unprefixed names are not ours
    monkeypatch.setenv("ALLOW_SIGNUP", "false")

    settings = Settings()

    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == SECRET
    assert settings.allow_signup is True
    assert settings.access_token_ttl == 600
    assert settings.job_concurrency == 2
    assert settings.admin_username == "root"
    assert settings.admin_password is not None
    assert settings.admin_password.get_secret_value() == "root-password"
    assert settings.port == 9000


def test_secrets_are_not_shown_in_the_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIBOT_JWT_SECRET", SECRET)
    monkeypatch.setenv("NOTIBOT_ADMIN_USERNAME", "root")
    monkeypatch.setenv("NOTIBOT_ADMIN_PASSWORD", "root-password")

    text = repr(Settings())

    assert SECRET not in text
    assert "root-password" not in text


def test_values_are_read_from_a_dot_env_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("NOTIBOT_ALLOW_SIGNUP=true\nNOTIBOT_DEFAULT_REGION=gb\n",
                                   encoding="utf-8")

    settings = Settings()

    assert settings.allow_signup is True
    assert settings.default_region == "GB"


def test_environment_wins_over_the_dot_env_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("NOTIBOT_DEFAULT_REGION=GB\n", encoding="utf-8")
    monkeypatch.setenv("NOTIBOT_DEFAULT_REGION", "US")

    assert Settings().default_region == "US"


@pytest.mark.parametrize("secret", ["short", "x" * 31, "é" * 15])  # "é" is 2 bytes: 30
def test_a_jwt_secret_shorter_than_32_bytes_is_rejected(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("NOTIBOT_JWT_SECRET", secret)

    with pytest.raises(ValidationError, match="NOTIBOT_JWT_SECRET must be at least 32 bytes"):
        Settings()


@pytest.mark.parametrize("secret", ["x" * 32, "é" * 16])
def test_a_jwt_secret_of_32_bytes_is_accepted(secret: str) -> None:
    settings = Settings(jwt_secret=secret)

    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == secret


@pytest.mark.parametrize(
    "variable", ["NOTIBOT_ADMIN_USERNAME", "NOTIBOT_ADMIN_PASSWORD"]
)
def test_admin_username_and_password_come_together(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "root-value")

    with pytest.raises(ValidationError, match="NOTIBOT_ADMIN_USERNAME and NOTIBOT_ADMIN_PASSWORD"):
        Settings()


@pytest.mark.parametrize(("raw", "expected"), [("vn", "VN"), ("Us", "US"), ("GB", "GB")])
def test_default_region_is_upper_cased(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: str
) -> None:
    monkeypatch.setenv("NOTIBOT_DEFAULT_REGION", raw)

    assert Settings().default_region == expected


@pytest.mark.parametrize("raw", ["V", "VNM", ""])
def test_default_region_must_be_two_letters_long(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("NOTIBOT_DEFAULT_REGION", raw)

    with pytest.raises(ValidationError, match="default_region"):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("NOTIBOT_STORE", "mysql", "store"),
        ("NOTIBOT_QUEUE", "celery", "queue"),
        ("NOTIBOT_LOG_LEVEL", "verbose", "log_level"),
        ("NOTIBOT_PORT", "70000", "port"),
        ("NOTIBOT_JOB_CONCURRENCY", "0", "job_concurrency"),
        ("NOTIBOT_ACCESS_TOKEN_TTL", "10", "access_token_ttl"),
        ("NOTIBOT_ALLOW_SIGNUP", "maybe", "allow_signup"),
        ("NOTIBOT_JOB_HEARTBEAT_INTERVAL", "0", "job_heartbeat_interval"),
    ],
)
def test_invalid_values_are_rejected_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, setting: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError) as exc:
        Settings()

    assert setting in str(exc.value)
    assert [e["loc"] for e in exc.value.errors()] == [(setting,)]
