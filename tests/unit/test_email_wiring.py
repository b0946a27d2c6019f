"""Which email sender and rate limiter the settings pick, and where the outbox is."""

from __future__ import annotations

import email
from pathlib import Path

import pytest
from pydantic import ValidationError

from notibot.application.ports import EmailMessage
from notibot.container import build_container
from notibot.testing import TEST_JWT_SECRET, IsolatedSettings


def settings(**values):
    return IsolatedSettings(jwt_secret=TEST_JWT_SECRET, **values)


async def test_the_embedded_default_writes_eml_files_into_the_data_dir(tmp_path: Path):
    container = build_container(settings(data_dir=tmp_path, email_from="news@example.org"))
    sender = container.email_sender()
    message_id = await sender.send(EmailMessage(to="an@example.org", subject="Xin chào",
                                                text="Nội dung"))
    files = list((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1
    parsed = email.message_from_bytes(files[0].read_bytes())
    assert parsed["Message-ID"] == message_id
    assert "news@example.org" in parsed["From"]


async def test_outbox_dir_overrides_the_data_dir(tmp_path: Path):
    container = build_container(settings(data_dir=tmp_path / "data",
                                         outbox_dir=tmp_path / "mail"))
    await container.email_sender().send(EmailMessage(to="a@example.org", subject="s", text="t"))
    assert list((tmp_path / "mail").glob("*.eml"))
    assert not (tmp_path / "data").exists()


def test_smtp_needs_a_host():
    with pytest.raises(ValidationError) as caught:
        settings(email="smtp")
    assert "NOTIBOT_SMTP_HOST" in str(caught.value)


def test_smtp_settings_build_an_smtp_sender_and_a_readiness_check():
    from notibot.adapters.smtp import SmtpEmailSender

    container = build_container(settings(email="smtp", smtp_host="mail.example.org",
                                         smtp_tls="ssl"))
    assert isinstance(container.email_sender(), SmtpEmailSender)
    names = [check.name for check in container.health_service()._checks]
    assert "smtp" in names


async def test_without_a_rate_every_acquire_returns_at_once():
    limiter = build_container(settings()).rate_limiter()
    for _ in range(1000):
        await limiter.acquire("email")


def test_a_rate_on_the_inline_queue_is_held_in_memory():
    from notibot.adapters.ratelimit import MemoryRateLimiter

    limiter = build_container(settings(email_rate=5)).rate_limiter()
    assert isinstance(limiter, MemoryRateLimiter)


def test_public_url_defaults_to_where_the_server_listens():
    assert settings(host="0.0.0.0", port=9000).resolved_public_url == "http://0.0.0.0:9000"
    assert settings(public_url="https://n.example.org/").resolved_public_url == (
        "https://n.example.org")
