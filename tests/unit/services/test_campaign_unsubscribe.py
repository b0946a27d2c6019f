"""Unsubscribe links: the signed token of ``unsubscribe_url`` and the ``List-Unsubscribe``
headers (RFC 2369, RFC 8058) of the emails, and :meth:`CampaignSender.unsubscribe`, on an
all-in-memory notibot with the fake email server of ``test_campaign_send``."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import test_campaign_send as sending
from test_campaign_send import Harness

from notibot.adapters.security import JwtTokenService
from notibot.application.services.campaigns import (
    UNSUBSCRIBE_TOKEN_TTL,
    UNSUBSCRIBE_TOKEN_TYPE,
)
from notibot.domain import AuthenticationFailed, Customer, DeliveryStatus, NotFound, NotibotError

#: the harness fixtures of test_campaign_send
make_harness = sending.make_harness
h = sending.h


def token_of(url: str) -> str:
    parts = urlsplit(url)
    assert parts.path == "/unsubscribe"
    [token] = parse_qs(parts.query)["token"]
    return token


async def emailed_token(h: Harness, customer: Customer) -> str:
    """Send a campaign to ``customer`` and return the token of the email's link."""
    campaign = await h.campaign(name=f"c-{len(h.email.sent)}",
                                text_body="{{ unsubscribe_url }}")
    await h.send(campaign)
    message = h.email.to(customer.email or "")[-1]
    return token_of(message.text)


async def test_the_email_link_and_headers_carry_one_signed_token(h: Harness) -> None:
    campaign = await h.campaign(text_body="Stop: {{ unsubscribe_url }}",
                                html_body='<a href="{{ unsubscribe_url }}">stop</a>')
    an = await h.customer("An")

    await h.send(campaign)

    [message] = h.email.sent
    url = message.text.removeprefix("Stop: ")
    assert url.startswith("http://127.0.0.1:8000/unsubscribe?token=")
    assert an.id not in url  # not guessable from the customer's id
    assert message.headers == {"List-Unsubscribe": f"<{url}>",
                               "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    assert message.html == f'<a href="{url}">stop</a>'  # the token needs no escaping
    claims = await h.app.container.token_service().verify(token_of(url),
                                                          UNSUBSCRIBE_TOKEN_TYPE)
    assert claims.subject == an.id
    assert (claims.expires_at - claims.issued_at).total_seconds() == UNSUBSCRIBE_TOKEN_TTL


async def test_unsubscribe_sets_subscribed_false_once(h: Harness) -> None:
    an = await h.customer("An")
    token = await emailed_token(h, an)

    shown = await h.sender.unsubscribe_customer(token)
    assert shown.id == an.id and shown.subscribed  # looking changes nothing
    h.clock.advance(5)
    done = await h.sender.unsubscribe(token)
    h.clock.advance(5)
    again = await h.sender.unsubscribe(token)

    stored = await h.app.customers.get(an.id)
    assert done.subscribed is False and stored.subscribed is False
    assert again.updated_at == stored.updated_at == done.updated_at  # idempotent
    # the next send skips them
    campaign = await h.campaign(name="next")
    job = await h.send(campaign)
    delivery = await h.delivery_of(job, an)
    assert delivery.status is DeliveryStatus.SKIPPED and delivery.skip_reason == "unsubscribed"


@pytest.mark.parametrize("token, reason", [
    ("", "missing"),
    ("   ", "missing"),
    ("not-a-token", "invalid"),
    ("a.b.c", "invalid"),
])
async def test_malformed_tokens_are_refused(h: Harness, token: str, reason: str) -> None:
    with pytest.raises(NotibotError) as refused:
        await h.sender.unsubscribe(token)

    assert type(refused.value) is NotibotError  # HTTP 400, not 401/422
    assert refused.value.code == "invalid_unsubscribe_token"
    assert refused.value.details == {"reason": reason}


async def test_forged_tampered_foreign_and_expired_tokens_are_refused(h: Harness) -> None:
    an = await h.customer("An")
    token = await emailed_token(h, an)
    tokens = h.app.container.token_service()
    forged = await JwtTokenService("another-secret-" * 4, h.clock).issue(
        an.id, UNSUBSCRIBE_TOKEN_TYPE, 3600)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    other = base64.urlsafe_b64encode(json.dumps({**claims, "sub": "someone-else"}).encode())
    tampered = f"{header}.{other.decode().rstrip('=')}.{signature}"  # another customer
    access = await tokens.issue(an.id, "access", 3600)

    for bad in (forged, tampered, access):
        with pytest.raises(NotibotError) as refused:
            await h.sender.unsubscribe(bad)
        assert refused.value.code == "invalid_unsubscribe_token"
        assert refused.value.details == {"reason": "invalid"}
    # an unsubscribe token is no bearer token either
    with pytest.raises(AuthenticationFailed):
        await h.app.auth.authenticate(token)

    h.clock.advance(UNSUBSCRIBE_TOKEN_TTL - 1)
    assert (await h.sender.unsubscribe_customer(token)).id == an.id
    h.clock.advance(2)
    with pytest.raises(NotibotError) as expired:
        await h.sender.unsubscribe(token)
    assert expired.value.code == "invalid_unsubscribe_token"
    assert expired.value.details == {"reason": "expired"}
    assert (await h.app.customers.get(an.id)).subscribed is True


async def test_a_deleted_customer_is_not_found(h: Harness) -> None:
    an = await h.customer("An")
    token = await emailed_token(h, an)
    await h.app.customers.delete(an.id)

    with pytest.raises(NotFound) as gone:
        await h.sender.unsubscribe(token)
    assert gone.value.code == "customer_not_found"


async def test_a_customers_url_is_reused_for_an_hour(h: Harness) -> None:
    handler = h.app.container.campaign_send_handler()

    first = await handler.unsubscribe_url("c1")
    assert await handler.unsubscribe_url("c1") == first
    assert await handler.unsubscribe_url("c2") != first
    h.clock.advance(3601)
    renewed = await handler.unsubscribe_url("c1")

    assert renewed != first
    for url in (first, renewed):
        claims = await h.app.container.token_service().verify(token_of(url),
                                                              UNSUBSCRIBE_TOKEN_TYPE)
        assert claims.subject == "c1"
