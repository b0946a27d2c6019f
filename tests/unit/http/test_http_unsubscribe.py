"""``GET`` and ``POST /unsubscribe``: the public page of the emails' unsubscribe links, the
form it posts, and RFC 8058 one-click, on an all-in-memory notibot. The end-to-end test
reads the email that the real outbox adapter wrote."""

from __future__ import annotations

import uuid
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import test_http_notifications as notifications
from http_support import Api, MakeApi, error_of
from test_http_notifications import RecordingEmailSender, create_campaign, create_customer

from notibot.adapters.outbox import OutboxEmailSender
from notibot.application.services.campaigns import UNSUBSCRIBE_TOKEN_TTL

#: the fixtures of test_http_notifications: ``email`` (a recording sender) and ``api``
email = notifications.email
api = notifications.api

PUBLIC_URL = "https://news.example.vn/api"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def split(url: str) -> tuple[str, str]:
    """``(path, token)`` of an unsubscribe URL under :data:`PUBLIC_URL`."""
    assert url.startswith(f"{PUBLIC_URL}/unsubscribe?token="), url
    parts = urlsplit(url)
    [token] = parse_qs(parts.query)["token"]
    return parts.path.removeprefix("/api"), token


async def send_to(api: Api, token: str, customer: dict[str, Any],
                  **campaign: Any) -> None:
    campaign.setdefault("name", f"campaign {uuid.uuid4().hex}")
    created = await create_campaign(api, token, **campaign)
    result = await api.post("/notifications/send", token=token, json={
        "notification_config_id": created["id"], "customer_ids": [customer["id"]]})
    assert result.status_code == 202, result.json
    await api.jobs_done()


async def subscribed(api: Api, token: str, customer: dict[str, Any]) -> bool:
    result = await api.get(f"/customers/{customer['id']}", token=token)
    assert result.status_code == 200
    return result.json["subscribed"]


def outbox(folder: Path) -> list[MimeMessage]:
    """The messages the outbox adapter wrote into ``folder``, oldest first."""
    return [message_from_bytes(path.read_bytes(), policy=email_policy.default)
            for path in sorted(folder.glob("*.eml"))]


@pytest.fixture
async def outbox_api(make_api: MakeApi, tmp_path: Path) -> Api:
    return await make_api(settings={"public_url": PUBLIC_URL},
                          email_sender=OutboxEmailSender(tmp_path, "News <news@example.vn>"))


async def test_the_outbox_email_link_unsubscribes_end_to_end(outbox_api: Api,
                                                             tmp_path: Path) -> None:
    api = outbox_api
    admin = await api.new_user_token("editor1", "operator")
    an = await create_customer(api, admin, "An", language="vi")
    await send_to(api, admin, an, text_body="Hủy đăng ký: {{ unsubscribe_url }}",
                  html_body=None, variants={})

    [message] = outbox(tmp_path)
    # the long value is folded onto its own line ("List-Unsubscribe:\r\n <...>", RFC 5322
    # 2.2.3); unfolding leaves the folding space in front
    header = str(message["List-Unsubscribe"]).strip()
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert header.startswith("<") and header.endswith(">")
    url = header[1:-1]
    assert message.get_content().strip() == f"Hủy đăng ký: {url}"  # same link in the body
    path, token = split(url)

    # opening the link (a browser, or a scanner) only shows the confirmation form
    page = await api.get(path, params={"token": token}, headers=BROWSER)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "a***@example.org" in page.text and "an@example.org" not in page.text
    assert '<form method="post" action="/unsubscribe">' in page.text
    assert f'<input type="hidden" name="token" value="{token}">' in page.text
    assert await subscribed(api, admin, an) is True

    # submitting the form unsubscribes
    done = await api.post("/unsubscribe", body=f"token={token}",
                          headers={**FORM, **BROWSER})
    assert done.status_code == 200
    assert done.headers["content-type"].startswith("text/html")
    assert "You are unsubscribed" in done.text
    assert await subscribed(api, admin, an) is False

    # the page now says so; the next send skips them
    again = await api.get(path, params={"token": token}, headers=BROWSER)
    assert again.status_code == 200 and "You are unsubscribed" in again.text
    assert "<form" not in again.text
    await send_to(api, admin, an)
    history = await api.get("/notifications/history", token=admin,
                            params={"customer_id": an["id"], "status": "skipped"})
    assert [d["skip_reason"] for d in history.json["items"]] == ["unsubscribed"]
    assert len(outbox(tmp_path)) == 1


async def test_one_click_post_rfc_8058(api: Api, operator_token: str,
                                       email: RecordingEmailSender) -> None:
    an = await create_customer(api, operator_token, "An")
    bob = await create_customer(api, operator_token, "Bob")
    for customer in (an, bob):
        await send_to(api, operator_token, customer)
    urls = {m.to: m.headers["List-Unsubscribe"][1:-1] for m in email.sent}
    assert all(m.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
               for m in email.sent)

    def query(url: str) -> str:
        return urlsplit(url).query

    # URL-encoded, as most mailbox providers post it, no Accept: JSON
    result = await api.post("/unsubscribe", query_string=query(urls["an@example.org"]),
                            body="List-Unsubscribe=One-Click", headers=FORM)
    assert result.status_code == 200
    assert result.json == {"status": "unsubscribed", "email": "a***@example.org"}
    # multipart/form-data, which RFC 8058 recommends
    boundary = "one-click-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n"
            f"\r\nOne-Click\r\n--{boundary}--\r\n")
    multipart = await api.post(
        "/unsubscribe", query_string=query(urls["bob@example.org"]), body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert multipart.status_code == 200, multipart.json
    assert multipart.json["email"] == "b***@example.org"
    # idempotent
    repeat = await api.post("/unsubscribe", query_string=query(urls["an@example.org"]),
                            body="List-Unsubscribe=One-Click", headers=FORM)
    assert repeat.status_code == 200 and repeat.json["status"] == "unsubscribed"
    for customer in (an, bob):
        assert await subscribed(api, operator_token, customer) is False


async def test_the_token_in_a_json_body_or_the_query(api: Api, operator_token: str,
                                                     email: RecordingEmailSender) -> None:
    an = await create_customer(api, operator_token, "An")
    await send_to(api, operator_token, an)
    token = parse_qs(urlsplit(email.sent[0].headers["List-Unsubscribe"][1:-1]).query)[
        "token"][0]

    result = await api.post("/unsubscribe", json={"token": token})

    assert result.status_code == 200 and result.json["status"] == "unsubscribed"
    assert await subscribed(api, operator_token, an) is False
    bare = await api.post("/unsubscribe", params={"token": token})
    assert bare.status_code == 200


async def test_bad_tokens_are_400_invalid_unsubscribe_token(api: Api, operator_token: str,
                                                            email: RecordingEmailSender
                                                            ) -> None:
    an = await create_customer(api, operator_token, "An")
    await send_to(api, operator_token, an)
    token = parse_qs(urlsplit(email.sent[0].headers["List-Unsubscribe"][1:-1]).query)[
        "token"][0]

    cases = {
        "missing": await api.post("/unsubscribe", body="List-Unsubscribe=One-Click",
                                  headers=FORM),
        "invalid": await api.post("/unsubscribe", params={"token": "forged.token.here"}),
        "invalid-access-token": await api.post("/unsubscribe",
                                               params={"token": operator_token}),
    }
    for name, result in cases.items():
        assert result.status_code == 400, name
        error = error_of(result)
        assert error["code"] == "invalid_unsubscribe_token", name
        assert error["details"]["reason"] == name.partition("-")[0]

    json_page = await api.get("/unsubscribe", params={"token": "nope"},
                              headers={"Accept": "application/json"})
    assert json_page.status_code == 400
    assert error_of(json_page)["code"] == "invalid_unsubscribe_token"
    html_page = await api.get("/unsubscribe", params={"token": "nope"}, headers=BROWSER)
    assert html_page.status_code == 400
    assert html_page.headers["content-type"].startswith("text/html")
    assert "<code>invalid_unsubscribe_token</code>" in html_page.text
    no_token = await api.get("/unsubscribe")  # a browser-like default: HTML
    assert no_token.status_code == 400 and "invalid_unsubscribe_token" in no_token.text

    api.clock.advance(UNSUBSCRIBE_TOKEN_TTL + 1)
    expired = await api.post("/unsubscribe", params={"token": token})
    assert expired.status_code == 400
    assert error_of(expired)["details"] == {"reason": "expired"}
    assert (await api.notibot.customers.get(an["id"])).subscribed is True


async def test_a_deleted_customer_is_404(api: Api, admin_token: str,
                                         email: RecordingEmailSender) -> None:
    an = await create_customer(api, admin_token, "An")
    await send_to(api, admin_token, an)
    token = parse_qs(urlsplit(email.sent[0].headers["List-Unsubscribe"][1:-1]).query)[
        "token"][0]
    assert (await api.delete(f"/customers/{an['id']}", token=admin_token)).status_code == 204

    posted = await api.post("/unsubscribe", params={"token": token})
    page = await api.get("/unsubscribe", params={"token": token}, headers=BROWSER)

    assert posted.status_code == 404 and error_of(posted)["code"] == "customer_not_found"
    assert page.status_code == 404 and "<code>customer_not_found</code>" in page.text


async def test_other_bodies_are_refused(api: Api) -> None:
    wrong_type = await api.post("/unsubscribe", body="token=x",
                                headers={"Content-Type": "text/plain"})
    too_large = await api.post("/unsubscribe", body="token=" + "x" * 20_000, headers=FORM)
    repeated = await api.post("/unsubscribe", body="token=a&token=b", headers=FORM)

    assert wrong_type.status_code == 415
    assert error_of(wrong_type)["code"] == "unsupported_media_type"
    assert too_large.status_code == 413
    assert repeated.status_code == 422 and error_of(repeated)["code"] == "validation_error"


async def test_the_endpoints_are_public(api: Api) -> None:
    # no token needed: the answers are about the unsubscribe token, never 401
    assert (await api.get("/unsubscribe", params={"token": "x"})).status_code == 400
    assert (await api.post("/unsubscribe", params={"token": "x"})).status_code == 400
