"""Campaign content per language, and the Delivery state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notibot.domain import (
    Campaign,
    CampaignContent,
    Channel,
    Delivery,
    DeliveryStatus,
    InvalidInput,
    InvalidTransition,
)
from notibot.domain.campaign import check_channel

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)

DEFAULT = CampaignContent(subject="Hello {{ name }}", text_body="Hi {{ name }}")
VI = CampaignContent(subject="Xin chào", text_body="Chào bạn")
PT = CampaignContent(subject="Olá", text_body="Olá!")
PT_BR = CampaignContent(subject="Oi", text_body="Oi!")


def campaign(**changes: object) -> Campaign:
    values: dict[str, object] = {
        "id": "k1", "name": "Welcome", "channel": Channel.EMAIL, "content": DEFAULT,
        "created_at": T0, "updated_at": T0,
        "variants": {"VI": VI, "pt": PT, "pt_BR": PT_BR},
    }
    values.update(changes)
    return Campaign(**values)  # type: ignore[arg-type]


def test_variant_keys_are_normalised_language_codes() -> None:
    assert set(campaign().variants) == {"vi", "pt", "pt-br"}


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("vi", ("vi", VI)),
        ("VI", ("vi", VI)),
        ("vi-VN", ("vi", VI)),  # primary subtag fallback
        ("pt-br", ("pt-br", PT_BR)),  # the exact variant wins over its primary subtag
        ("PT-BR", ("pt-br", PT_BR)),
        ("pt-PT", ("pt", PT)),
        ("fr", (None, DEFAULT)),
        ("fr-CA", (None, DEFAULT)),
        ("", (None, DEFAULT)),
        (None, (None, DEFAULT)),
    ],
)
def test_content_for_picks_exact_then_primary_then_default(
    language: str | None, expected: tuple[str | None, CampaignContent]
) -> None:
    assert campaign().content_for(language) == expected


def test_without_variants_everyone_gets_the_default() -> None:
    assert campaign(variants={}).content_for("vi") == (None, DEFAULT)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"name": "  "}, "missing_name"),
        ({"name": "x" * 201}, "invalid_name"),
        ({"content": CampaignContent(subject="", text_body="body")}, "missing_subject"),
        ({"content": CampaignContent(subject="s", text_body=" ")}, "missing_text_body"),
        ({"content": CampaignContent(subject="s" * 999, text_body="b")}, "invalid_subject"),
        ({"variants": {"vi": CampaignContent(subject="", text_body="b")}}, "missing_subject"),
        ({"variants": {"vietnamese": VI}}, "invalid_language"),
    ],
)
def test_invalid_campaigns_are_refused(changes: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        campaign(**changes)

    assert exc.value.code == code


def test_the_name_is_trimmed() -> None:
    assert campaign(name="  Welcome  ").name == "Welcome"


def test_check_channel() -> None:
    assert check_channel("email") is Channel.EMAIL
    assert check_channel("chat") is Channel.CHAT
    with pytest.raises(InvalidInput) as exc:
        check_channel("sms")
    assert exc.value.code == "invalid_channel"


# -- Delivery --------------------------------------------------------------------------------


def delivery() -> Delivery:
    return Delivery(id="d1", job_id="j1", campaign_id="k1", customer_id="c1",
                    channel=Channel.EMAIL, created_at=T0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_queued_delivery_is_sent() -> None:
    d = delivery()

    d.mark_sent(at(1), "<msg-1@notibot>")

    assert d.status is DeliveryStatus.SENT
    assert d.attempts == 1
    assert d.message_id == "<msg-1@notibot>"
    assert d.sent_at == d.updated_at == at(1)


def test_a_failed_delivery_can_be_retried_until_sent() -> None:
    d = delivery()

    d.mark_failed(at(1), "421 try later")
    d.mark_failed(at(2), "421 still busy")
    assert (d.status, d.attempts, d.last_error) == (DeliveryStatus.FAILED, 2, "421 still busy")

    d.mark_sent(at(3), None)
    assert (d.status, d.attempts, d.last_error) == (DeliveryStatus.SENT, 3, None)
    assert d.updated_at == at(3)


def test_a_queued_delivery_can_be_skipped_with_a_reason() -> None:
    d = delivery()

    d.mark_skipped(at(1), "unsubscribed")

    assert d.status is DeliveryStatus.SKIPPED
    assert d.skip_reason == "unsubscribed"
    assert d.attempts == 0


@pytest.mark.parametrize("action", ["sent", "failed", "skipped"])
def test_a_sent_delivery_is_final(action: str) -> None:
    d = delivery()
    d.mark_sent(at(1), "m1")

    with pytest.raises(InvalidTransition):
        perform(d, action)
    assert (d.status, d.attempts, d.message_id) == (DeliveryStatus.SENT, 1, "m1")


@pytest.mark.parametrize("action", ["sent", "failed", "skipped"])
def test_a_skipped_delivery_is_final(action: str) -> None:
    d = delivery()
    d.mark_skipped(at(1), "no email")

    with pytest.raises(InvalidTransition):
        perform(d, action)
    assert d.status is DeliveryStatus.SKIPPED


def test_a_failed_delivery_cannot_be_skipped() -> None:
    d = delivery()
    d.mark_failed(at(1), "550 no such user")

    with pytest.raises(InvalidTransition):
        d.mark_skipped(at(2), "no email")
    assert d.status is DeliveryStatus.FAILED


def perform(d: Delivery, action: str) -> None:
    if action == "sent":
        d.mark_sent(at(9), "m9")
    elif action == "failed":
        d.mark_failed(at(9), "boom")
    else:
        d.mark_skipped(at(9), "why")
