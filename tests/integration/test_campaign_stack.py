"""Issue 5's "done when", end to end on the production set-up: NOTIBOT_STORE=mongo
(mongomock, shared by the API and the worker), NOTIBOT_QUEUE=dramatiq on a real Redis with a
separate Dramatiq worker, and NOTIBOT_EMAIL=smtp to a real SMTP server (aiosmtpd, in a
thread of this process).

Over HTTP an operator imports and creates customers, creates a campaign with a Vietnamese
and an English variant, sends it to a filtered audience, watches the job, reads the
per-recipient deliveries and the stats; every recipient gets exactly one email in their
language, with working unsubscribe headers; the customer's conversation shows the
notification. The clear 4xx of bad templates, unknown and inactive campaigns and empty
audiences come last.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from falcon import testing
from smtp_support import SmtpTestServer
from test_production_stack import WAIT_SECONDS, login, production_stack, wait_for_import

from notibot.domain import MessageRole

pytestmark = pytest.mark.integration

PUBLIC_URL = "https://news.example.vn"
FROM = "Shop News <news@shop.example.vn>"

CUSTOMERS_CSV = (
    "full_name,email,phone,language,tags\n"
    "Nguyễn Văn An,an@example.vn,0912345678,vi,tet\n"
    "Trần Thị Bình,binh@example.vn,,vi,tet\n"
    "Chris Evans,chris@example.com,,en,tet\n"
    "Dana Scully,dana@example.com,,en-GB,tet\n"
    "Lê Văn Em,,0987654321,vi,tet\n"
    "Gus Fring,gus@example.com,,en,other\n"
)
CAMPAIGN = {
    "name": "Tết 2026",
    "description": "Lunar new year greetings",
    "subject": "Happy new year, {{ customer.full_name }}",
    "text_body": "Your code: {{ data.code }}\nUnsubscribe: {{ unsubscribe_url }}",
    "variants": {
        "vi": {"subject": "Chúc mừng năm mới, {{ customer.full_name }}",
               "text_body": "Mã của bạn: {{ data.code }}\nHủy đăng ký: {{ unsubscribe_url }}",
               "html_body": "<p>Chào {{ customer.full_name }}: <b>{{ data.code }}</b></p>"},
        "en": {"subject": "Happy Tet, {{ customer.full_name }}",
               "text_body": "Your code is {{ data.code }}\nUnsubscribe: {{ unsubscribe_url }}"},
    },
    "default_data": {"code": "DEFAULT"},
}


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as running:
        yield running


@pytest.fixture
async def stack(redis_url: str, smtp_server: SmtpTestServer) -> AsyncIterator[dict[str, Any]]:
    async with production_stack(
            redis_url, email="smtp", smtp_host=smtp_server.host, smtp_port=smtp_server.port,
            smtp_tls="none", email_from=FROM, public_url=PUBLIC_URL) as running:
        yield running


async def wait_for_task(http: testing.ASGIConductor, auth: dict[str, str],
                        job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        task = await http.simulate_get(f"/tasks/{job_id}", headers=auth)
        assert task.status_code == 200, task.json
        if task.json["status"] in ("succeeded", "failed", "cancelled"):
            return task.json
        assert time.monotonic() < deadline, f"task still {task.json['status']}"
        await asyncio.sleep(0.05)


async def import_customers(http: testing.ASGIConductor, auth: dict[str, str]) -> None:
    boundary = "notibot-campaign-stack"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"customers.csv\"\r\nContent-Type: text/csv\r\n\r\n"
            f"{CUSTOMERS_CSV}\r\n--{boundary}--\r\n").encode()
    upload = await http.simulate_post(
        "/customers/import", body=body,
        headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert upload.status_code == 202, upload.json
    status = await wait_for_import(http, auth, upload.json["job_id"])
    assert status["status"] == "succeeded", status
    assert status["counters"]["created"] == 6, status


async def error(result: testing.Result, status: int) -> dict[str, Any]:
    assert result.status_code == status, result.json
    return result.json["error"]


async def test_a_multilingual_campaign_to_a_filtered_audience(
        stack: dict[str, Any], smtp_server: SmtpTestServer) -> None:
    http: testing.ASGIConductor = stack["http"]
    auth = await login(http)

    # customers: imported by the worker, plus one created unsubscribed
    await import_customers(http, auth)
    fay = await http.simulate_post("/customers", headers=auth, json={
        "full_name": "Fay Wray", "email": "fay@example.com", "language": "en",
        "tags": ["tet"], "subscribed": False})
    assert fay.status_code == 201, fay.json
    listing = await http.simulate_get("/customers", headers=auth, params={"limit": 50})
    ids = {c["email"] or c["phone"]: c["id"] for c in listing.json["items"]}
    assert len(ids) == 7

    # the campaign, with a Vietnamese and an English variant
    created = await http.simulate_post("/notifications/config", headers=auth, json=CAMPAIGN)
    assert created.status_code == 201, created.json
    campaign = created.json
    assert set(campaign["variants"]) == {"vi", "en"}

    # send it to the customers tagged "tet", and watch the job (run by the worker)
    sent = await http.simulate_post("/notifications/send", headers=auth, json={
        "notification_config_id": campaign["id"], "filter": {"tag": "tet"},
        "data": {"code": "TET-2026"}})
    assert sent.status_code == 202, sent.json
    job_id = sent.json["job_id"]
    task = await wait_for_task(http, auth, job_id)
    assert task["status"] == "succeeded", task
    assert task["kind"] == "campaign_send"
    assert task["counters"] == {"total": 6, "processed": 6, "sent": 4, "failed": 0,
                                "skipped": 2}

    # per-recipient deliveries
    history = await http.simulate_get("/notifications/history", headers=auth,
                                      params={"job_id": job_id, "limit": 50})
    assert history.status_code == 200 and history.json["total"] == 6
    deliveries = {d["customer_id"]: d for d in history.json["items"]}
    expected_language = {"an@example.vn": "vi", "binh@example.vn": "vi",
                         "chris@example.com": "en", "dana@example.com": "en"}
    for address, language in expected_language.items():
        delivery = deliveries[ids[address]]
        assert delivery["status"] == "sent", delivery
        assert delivery["language"] == language
        assert delivery["message_id"] == f"<{delivery['id']}@notibot.local>"
    no_email = deliveries[ids["+84987654321"]]
    assert (no_email["status"], no_email["skip_reason"]) == ("skipped", "no_email")
    unsubscribed = deliveries[ids["fay@example.com"]]
    assert (unsubscribed["status"], unsubscribed["skip_reason"]) == ("skipped",
                                                                     "unsubscribed")
    assert ids["gus@example.com"] not in deliveries  # not tagged "tet"

    # stats
    stats = await http.simulate_get("/notifications/stats", headers=auth)
    assert stats.status_code == 200
    assert stats.json["overall"] == {"sent": 4, "failed": 0, "skipped": 2, "queued": 0,
                                     "total": 6}
    assert stats.json["campaigns"] == [{"campaign_id": campaign["id"], "name": "Tết 2026",
                                        "sent": 4, "failed": 0, "skipped": 2, "queued": 0,
                                        "total": 6}]

    # the SMTP server got exactly one email per recipient, in their language
    received = smtp_server.handler.messages()
    assert sorted(r for m in received for r in m.rcpt_tos) == sorted(expected_language)
    subjects = {m.rcpt_tos[0]: m.message() for m in received}
    assert subjects["an@example.vn"]["Subject"] == "Chúc mừng năm mới, Nguyễn Văn An"
    assert subjects["binh@example.vn"]["Subject"] == "Chúc mừng năm mới, Trần Thị Bình"
    assert subjects["chris@example.com"]["Subject"] == "Happy Tet, Chris Evans"
    assert subjects["dana@example.com"]["Subject"] == "Happy Tet, Dana Scully"
    an_mail = subjects["an@example.vn"]
    assert an_mail["Message-ID"] == deliveries[ids["an@example.vn"]]["message_id"]
    assert "Mã của bạn: TET-2026" in an_mail.get_body(("plain",)).get_content()
    assert "<b>TET-2026</b>" in an_mail.get_body(("html",)).get_content()

    # the unsubscribe headers work: RFC 8058 one-click on Chris's link
    chris_mail = subjects["chris@example.com"]
    assert chris_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(chris_mail["List-Unsubscribe"]).strip()[1:-1]
    assert link.startswith(f"{PUBLIC_URL}/unsubscribe?token=")
    assert link in chris_mail.get_body(("plain",)).get_content()
    one_click = await http.simulate_post(
        "/unsubscribe", query_string=urlsplit(link).query, body="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert one_click.status_code == 200, one_click.json
    chris = await http.simulate_get(f"/customers/{ids['chris@example.com']}", headers=auth)
    assert chris.json["subscribed"] is False

    # the customer's conversation shows the notification (written by the worker): in the
    # store, and over HTTP (GET /messages/history)
    an_delivery = deliveries[ids["an@example.vn"]]
    conversations = stack["container"].conversation_repository()
    conversation = await conversations.latest_for_customer(ids["an@example.vn"])
    assert conversation is not None
    [note] = conversation.messages
    assert note.role is MessageRole.NOTIFICATION
    assert note.metadata["delivery_id"] == an_delivery["id"]
    assert note.metadata["campaign_name"] == "Tết 2026"
    assert note.content.startswith("Chúc mừng năm mới, Nguyễn Văn An\n\nMã của bạn: TET-2026")
    messages = await http.simulate_get("/messages/history", headers=auth,
                                       params={"customer_id": ids["an@example.vn"]})
    assert messages.status_code == 200, messages.json
    notes = [m for m in messages.json["items"] if m["role"] == "notification"]
    assert [m["metadata"]["delivery_id"] for m in notes] == [an_delivery["id"]]
    assert notes[0]["content"] == note.content


async def test_the_clear_4xx(stack: dict[str, Any], smtp_server: SmtpTestServer) -> None:
    http: testing.ASGIConductor = stack["http"]
    auth = await login(http)
    customer = await http.simulate_post("/customers", headers=auth, json={
        "full_name": "An", "email": "an@example.vn", "tags": ["tet"]})
    assert customer.status_code == 201

    # a bad template: 422 with the field, line and name
    bad = await http.simulate_post("/notifications/config", headers=auth, json={
        **CAMPAIGN, "text_body": "Hello\n{{ customer.nickname }}"})
    details = (await error(bad, 422))["details"]
    assert (await error(bad, 422))["code"] == "invalid_template"
    assert {k: details[k] for k in ("field", "line", "name")} == {
        "field": "text_body", "line": 2, "name": "customer.nickname"}
    broken = await http.simulate_post("/notifications/config", headers=auth, json={
        **CAMPAIGN, "variants": {"vi": {"subject": "x", "text_body": "a\nb\n{% if %}"}}})
    assert (await error(broken, 422))["details"]["field"] == "variants.vi.text_body"
    assert (await error(broken, 422))["details"]["line"] == 3

    active = await http.simulate_post("/notifications/config", headers=auth, json=CAMPAIGN)
    inactive = await http.simulate_post("/notifications/config", headers=auth,
                                        json={**CAMPAIGN, "name": "Off", "active": False})
    assert active.status_code == inactive.status_code == 201

    async def send(campaign_id: str, **audience: Any) -> testing.Result:
        return await http.simulate_post("/notifications/send", headers=auth, json={
            "notification_config_id": campaign_id, **audience})

    unknown = await send("no-such-campaign", customer_ids="all")
    assert (await error(unknown, 404))["code"] == "campaign_not_found"
    switched_off = await send(inactive.json["id"], customer_ids="all")
    assert (await error(switched_off, 409))["code"] == "campaign_inactive"
    empty = await send(active.json["id"], filter={"tag": "nobody"})
    assert (await error(empty, 422))["code"] == "empty_audience"
    retry = await http.simulate_post(
        f"/notifications/config/{active.json['id']}/retry-failed", headers=auth)
    assert (await error(retry, 409))["code"] == "no_failed_deliveries"

    tasks = await http.simulate_get("/tasks", headers=auth, params={"kind": "campaign_send"})
    assert tasks.json["total"] == 0
    assert smtp_server.handler.messages() == []
