"""``/notifications/*`` and ``/tasks/{job_id}/retry-failed`` over HTTP, on an all-in-memory
notibot whose email server is a fake that records messages (and can refuse recipients)."""

from __future__ import annotations

import collections
from typing import Any

import pytest
from http_support import Api, MakeApi, error_of

from notibot.application.ports import EmailMessage, EmailSender
from notibot.domain import DeliveryFailed, MessageRole


class RecordingEmailSender(EmailSender):
    """Keeps every message; refuses (permanently) the addresses in ``refuse``."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.refuse: set[str] = set()

    async def send(self, message: EmailMessage) -> str:
        if message.to in self.refuse:
            raise DeliveryFailed("550 5.1.1 user unknown", transient=False)
        self.sent.append(message)
        return message.message_id or "<generated@fake>"

    async def close(self) -> None:
        return None


@pytest.fixture
def email() -> RecordingEmailSender:
    return RecordingEmailSender()


@pytest.fixture
async def api(make_api: MakeApi, email: RecordingEmailSender) -> Api:
    return await make_api(email_sender=email)


CAMPAIGN = {
    "name": "Tết sale",
    "description": "New year",
    "subject": "Happy new year, {{ customer.full_name }}",
    "text_body": "Your code: {{ data.code }}",
    "html_body": "<p>{{ customer.full_name }}: {{ data.code }}</p>",
    "variants": {
        "vi": {"subject": "Chúc mừng năm mới, {{ customer.full_name }}",
               "text_body": "Mã của bạn: {{ data.code }}"},
        "en": {"subject": "Happy Tet, {{ customer.full_name }}",
               "text_body": "Your code is {{ data.code }}"},
    },
    "default_data": {"code": "DEFAULT"},
}
CAMPAIGN_FIELDS = {"id", "name", "description", "channel", "subject", "text_body",
                   "html_body", "variants", "default_data", "active", "created_at",
                   "updated_at"}
DELIVERY_FIELDS = {"id", "job_id", "campaign_id", "customer_id", "channel", "status",
                   "attempts", "last_error", "skip_reason", "message_id", "language",
                   "subject", "created_at", "sent_at", "updated_at"}


async def create_campaign(api: Api, token: str, **changes: Any) -> dict[str, Any]:
    result = await api.post("/notifications/config", token=token, json={**CAMPAIGN, **changes})
    assert result.status_code == 201, result.json
    return result.json


async def create_customer(api: Api, token: str, name: str, **values: Any) -> dict[str, Any]:
    values.setdefault("email", f"{name.lower()}@example.org")
    result = await api.post("/customers", token=token, json={"full_name": name, **values})
    assert result.status_code == 201, result.json
    return result.json


# -- campaigns -------------------------------------------------------------------------------


async def test_create_and_read_a_campaign(api: Api, operator_token: str) -> None:
    result = await api.post("/notifications/config", token=operator_token, json=CAMPAIGN)

    assert result.status_code == 201
    body = result.json
    assert set(body) == CAMPAIGN_FIELDS
    assert result.headers["location"] == f"/notifications/config/{body['id']}"
    assert body["channel"] == "email" and body["active"] is True
    assert body["variants"]["vi"] == {"subject": CAMPAIGN["variants"]["vi"]["subject"],
                                      "text_body": "Mã của bạn: {{ data.code }}",
                                      "html_body": None}
    assert body["created_at"] == "2026-01-01T09:00:00Z"
    got = await api.get(f"/notifications/config/{body['id']}", token=operator_token)
    assert got.status_code == 200 and got.json == body


async def test_list_replace_and_delete(api: Api, operator_token: str,
                                       admin_token: str) -> None:
    first = await create_campaign(api, operator_token, name="a")
    api.clock.advance(1)  # listed oldest first
    second = await create_campaign(api, operator_token, name="b", active=False)

    listing = await api.get("/notifications/configs", token=operator_token)
    assert listing.status_code == 200
    assert [c["id"] for c in listing.json["items"]] == [first["id"], second["id"]]
    assert listing.json["total"] == 2
    inactive = await api.get("/notifications/configs", token=operator_token,
                             params={"active": "false", "limit": "10"})
    assert [c["id"] for c in inactive.json["items"]] == [second["id"]]

    api.clock.advance(10)
    replaced = await api.put(f"/notifications/config/{second['id']}", token=operator_token,
                             json={"name": "b2", "subject": "S", "text_body": "T",
                                   "channel": "chat"})
    assert replaced.status_code == 200
    assert replaced.json["name"] == "b2" and replaced.json["channel"] == "chat"
    assert replaced.json["active"] is True and replaced.json["variants"] == {}
    assert replaced.json["updated_at"] == "2026-01-01T09:00:11Z"

    denied = await api.delete(f"/notifications/config/{first['id']}", token=operator_token)
    assert denied.status_code == 403
    deleted = await api.delete(f"/notifications/config/{first['id']}", token=admin_token)
    assert deleted.status_code == 204
    gone = await api.get(f"/notifications/config/{first['id']}", token=operator_token)
    assert gone.status_code == 404
    assert error_of(gone)["code"] == "campaign_not_found"


async def test_a_bad_template_is_422_with_field_line_and_name(api: Api,
                                                               operator_token: str) -> None:
    cases = [
        ({"subject": "Hi {{ customer.full_name"}, {"field": "subject", "line": 1}),
        ({"text_body": "a\n{{ foo }}"}, {"field": "text_body", "line": 2, "name": "foo"}),
        ({"html_body": "{{ customer.password }}"},
         {"field": "html_body", "line": 1, "name": "customer.password"}),
        ({"variants": {"en": {"subject": "x", "text_body": "\n\n{% if %}"}}},
         {"field": "variants.en.text_body", "line": 3}),
    ]
    for changes, expected in cases:
        result = await api.post("/notifications/config", token=operator_token,
                                json={**CAMPAIGN, **changes})

        assert result.status_code == 422, changes
        error = error_of(result)
        assert error["code"] == "invalid_template"
        assert {k: error["details"][k] for k in expected} == expected

    campaign = await create_campaign(api, operator_token)
    result = await api.put(f"/notifications/config/{campaign['id']}", token=operator_token,
                           json={**CAMPAIGN, "subject": "{{ nope }}"})
    assert result.status_code == 422
    assert error_of(result)["details"]["name"] == "nope"


async def test_campaign_input_errors(api: Api, operator_token: str) -> None:
    await create_campaign(api, operator_token)

    taken = await api.post("/notifications/config", token=operator_token,
                           json={**CAMPAIGN, "name": "TẾT SALE"})
    assert taken.status_code == 409
    assert error_of(taken)["code"] == "campaign_name_taken"
    unknown = await api.post("/notifications/config", token=operator_token,
                             json={**CAMPAIGN, "colour": "red"})
    assert error_of(unknown)["code"] == "validation_error"
    channel = await api.post("/notifications/config", token=operator_token,
                             json={**CAMPAIGN, "name": "x", "channel": "sms"})
    assert channel.status_code == 422
    language = await api.post("/notifications/config", token=operator_token,
                              json={**CAMPAIGN, "name": "y",
                                    "variants": {"??": {"subject": "s", "text_body": "t"}}})
    assert error_of(language)["code"] == "invalid_language"
    missing = await api.put("/notifications/config/nope", token=operator_token, json=CAMPAIGN)
    assert missing.status_code == 404


# -- sending ---------------------------------------------------------------------------------


async def test_send_to_a_filtered_audience_end_to_end(api: Api, operator_token: str,
                                                      email: RecordingEmailSender) -> None:
    campaign = await create_campaign(api, operator_token)
    an = await create_customer(api, operator_token, "An", language="vi", tags=["vip"])
    bob = await create_customer(api, operator_token, "Bob", language="en", tags=["vip"])
    chloe = await create_customer(api, operator_token, "Chloe", language="fr", tags=["vip"])
    await create_customer(api, operator_token, "Dan", tags=["regular"])
    fay = await create_customer(api, operator_token, "Fay", tags=["vip"], subscribed=False)

    result = await api.post("/notifications/send", token=operator_token, json={
        "notification_config_id": campaign["id"], "filter": {"tag": "vip"},
        "data": {"code": "TET-2026"}})

    assert result.status_code == 202
    job_id = result.json["job_id"]
    assert result.json == {"job_id": job_id, "task_url": f"/tasks/{job_id}"}
    assert result.headers["location"] == f"/tasks/{job_id}"
    await api.jobs_done()
    # watch the job
    task = (await api.get(f"/tasks/{job_id}", token=operator_token)).json
    assert task["kind"] == "campaign_send" and task["status"] == "succeeded"
    assert task["counters"] == {"total": 4, "processed": 4, "sent": 3, "failed": 0,
                                "skipped": 1}
    assert task["progress"] == 1.0
    # the emails, each in the customer's language
    subjects = {m.to: m.subject for m in email.sent}
    assert subjects == {"an@example.org": "Chúc mừng năm mới, An",
                        "bob@example.org": "Happy Tet, Bob",
                        "chloe@example.org": "Happy new year, Chloe"}
    # per-recipient deliveries
    history = await api.get("/notifications/history", token=operator_token,
                            params={"job_id": job_id})
    assert history.status_code == 200
    assert history.json["total"] == 4
    deliveries = {d["customer_id"]: d for d in history.json["items"]}
    assert set(deliveries[an["id"]]) == DELIVERY_FIELDS
    assert deliveries[an["id"]]["subject"] == "Chúc mừng năm mới, An"  # what was sent
    for customer in (an, bob, chloe):
        delivery = deliveries[customer["id"]]
        assert delivery["status"] == "sent"
        assert delivery["message_id"] == f"<{delivery['id']}@notibot.local>"
        assert delivery["sent_at"] == "2026-01-01T09:00:00Z"
    assert deliveries[an["id"]]["language"] == "vi"
    assert deliveries[chloe["id"]]["language"] is None
    assert deliveries[fay["id"]]["status"] == "skipped"
    assert deliveries[fay["id"]]["skip_reason"] == "unsubscribed"
    # stats
    stats = await api.get("/notifications/stats", token=operator_token)
    assert stats.status_code == 200
    assert stats.json["overall"] == {"sent": 3, "failed": 0, "skipped": 1, "queued": 0,
                                     "total": 4}
    assert stats.json["campaigns"] == [{"campaign_id": campaign["id"], "name": "Tết sale",
                                        "sent": 3, "failed": 0, "skipped": 1, "queued": 0,
                                        "total": 4}]
    assert stats.json["until"] == "2026-01-01T09:00:00Z"
    assert stats.json["since"] == "2025-12-02T09:00:00Z"
    # the conversation shows the notification
    conversations = api.notibot.container.conversation_repository()
    conversation = await conversations.latest_for_customer(an["id"])
    [note] = conversation.messages
    assert note.role is MessageRole.NOTIFICATION
    assert note.metadata["delivery_id"] == deliveries[an["id"]]["id"]
    assert note.metadata["campaign_name"] == "Tết sale"
    assert "Mã của bạn: TET-2026" in note.content


async def test_send_to_listed_customers_and_to_everyone(api: Api, operator_token: str,
                                                        email: RecordingEmailSender) -> None:
    campaign = await create_campaign(api, operator_token)
    an = await create_customer(api, operator_token, "An")
    await create_customer(api, operator_token, "Bob")

    listed = await api.post("/notifications/send", token=operator_token, json={
        "notification_config_id": campaign["id"], "customer_ids": [an["id"]]})
    everyone = await api.post("/notifications/send", token=operator_token, json={
        "notification_config_id": campaign["id"], "customer_ids": "all"})
    await api.jobs_done()

    assert listed.status_code == everyone.status_code == 202
    assert collections.Counter(m.to for m in email.sent) == {"an@example.org": 2,
                                                              "bob@example.org": 1}
    task = (await api.get(f"/tasks/{everyone.json['job_id']}", token=operator_token)).json
    assert task["params"]["audience"] == {"filter": {}}
    assert task["created_by"] is not None


async def test_send_refusals(api: Api, operator_token: str) -> None:
    campaign = await create_campaign(api, operator_token)
    inactive = await create_campaign(api, operator_token, name="off", active=False)
    await create_customer(api, operator_token, "An", tags=["vip"])

    async def send(**body: Any) -> tuple[int, str]:
        result = await api.post("/notifications/send", token=operator_token,
                                json={"notification_config_id": campaign["id"], **body})
        return result.status_code, error_of(result)["code"]

    assert await send(notification_config_id="nope", customer_ids="all") == (
        404, "campaign_not_found")
    assert await send(notification_config_id=inactive["id"], customer_ids="all") == (
        409, "campaign_inactive")
    assert await send(filter={"tag": "nobody"}) == (422, "empty_audience")
    assert await send(customer_ids=["ghost"]) == (422, "empty_audience")
    assert await send(customer_ids=[]) == (422, "empty_audience")
    assert await send() == (422, "invalid_audience")
    assert await send(customer_ids=["x"], filter={"tag": "vip"}) == (422, "invalid_audience")
    assert await send(customer_ids="everyone") == (422, "validation_error")
    assert await send(customer_ids="all", filter={"colour": "red"}) == (
        422, "validation_error")
    bad_data = await create_campaign(api, operator_token, name="needs data",
                                     text_body="{{ data.promo }}")
    assert await send(notification_config_id=bad_data["id"], customer_ids="all") == (
        422, "missing_data")
    tasks = await api.get("/tasks", token=operator_token, params={"kind": "campaign_send"})
    assert tasks.json["total"] == 0


async def test_idempotency_key(api: Api, operator_token: str,
                               email: RecordingEmailSender) -> None:
    campaign = await create_campaign(api, operator_token)
    await create_customer(api, operator_token, "An")
    body = {"notification_config_id": campaign["id"], "customer_ids": "all",
            "data": {"code": "X"}}
    headers = {"Idempotency-Key": "8e03978e-40d5-43e8-bc93-6894a57f9324"}

    first = await api.post("/notifications/send", token=operator_token, json=body,
                           headers=headers)
    await api.jobs_done()
    again = await api.post("/notifications/send", token=operator_token, json=body,
                           headers=headers)
    other = await api.post("/notifications/send", token=operator_token,
                           json={**body, "data": {"code": "Y"}}, headers=headers)
    bad = await api.post("/notifications/send", token=operator_token, json=body,
                         headers={"Idempotency-Key": "has spaces"})
    await api.jobs_done()

    assert first.status_code == again.status_code == 202
    assert again.json == first.json
    assert other.status_code == 422
    assert error_of(other)["code"] == "idempotency_key_reused"
    assert bad.status_code == 422
    assert error_of(bad)["code"] == "invalid_idempotency_key"
    assert len(email.sent) == 1


async def test_retry_failed_over_http(api: Api, operator_token: str,
                                      email: RecordingEmailSender) -> None:
    campaign = await create_campaign(api, operator_token)
    await create_customer(api, operator_token, "An")
    bob = await create_customer(api, operator_token, "Bob")
    email.refuse.add("bob@example.org")
    sent = await api.post("/notifications/send", token=operator_token, json={
        "notification_config_id": campaign["id"], "customer_ids": "all"})
    job_id = sent.json["job_id"]
    await api.jobs_done()
    failed = await api.get("/notifications/history", token=operator_token,
                           params={"status": "failed"})
    assert [d["customer_id"] for d in failed.json["items"]] == [bob["id"]]
    assert failed.json["items"][0]["last_error"] == "550 5.1.1 user unknown"
    email.refuse.clear()

    retry = await api.post(f"/tasks/{job_id}/retry-failed", token=operator_token)
    await api.jobs_done()

    assert retry.status_code == 202
    retry_id = retry.json["job_id"]
    assert retry_id != job_id
    assert retry.headers["location"] == f"/tasks/{retry_id}"
    task = (await api.get(f"/tasks/{retry_id}", token=operator_token)).json
    assert task["params"]["retry_of"] == job_id and task["counters"]["sent"] == 1
    assert collections.Counter(m.to for m in email.sent) == {"an@example.org": 1,
                                                              "bob@example.org": 1}
    again = await api.post(f"/tasks/{job_id}/retry-failed", token=operator_token)
    assert again.status_code == 409
    assert error_of(again)["code"] == "no_failed_deliveries"
    unknown = await api.post("/tasks/nope/retry-failed", token=operator_token)
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "job_not_found"
    other = await api.notibot.jobs.submit("test")
    await api.jobs_done()
    not_a_send = await api.post(f"/tasks/{other.id}/retry-failed", token=operator_token)
    assert not_a_send.status_code == 404
    assert error_of(not_a_send)["code"] == "campaign_send_not_found"


async def test_cancel_a_send_over_http(api: Api, operator_token: str) -> None:
    campaign = await create_campaign(api, operator_token)
    await create_customer(api, operator_token, "An")
    sent = await api.post("/notifications/send", token=operator_token, json={
        "notification_config_id": campaign["id"], "customer_ids": "all"})

    cancel = await api.post(f"/tasks/{sent.json['job_id']}/cancel", token=operator_token)
    await api.jobs_done()

    assert cancel.status_code == 200
    task = (await api.get(f"/tasks/{sent.json['job_id']}", token=operator_token)).json
    assert task["status"] == "cancelled"


# -- history and stats -----------------------------------------------------------------------


async def test_history_filters_and_paging(api: Api, operator_token: str) -> None:
    campaign = await create_campaign(api, operator_token)
    an = await create_customer(api, operator_token, "An")
    await create_customer(api, operator_token, "Bob", subscribed=False)
    await api.post("/notifications/send", token=operator_token, json={
        "notification_config_id": campaign["id"], "customer_ids": "all"})
    await api.jobs_done()

    async def history(**params: str) -> dict[str, Any]:
        result = await api.get("/notifications/history", token=operator_token, params=params)
        assert result.status_code == 200, result.json
        return result.json

    assert (await history())["total"] == 2
    assert [d["customer_id"] for d in (await history(customer_id=an["id"]))["items"]] == [
        an["id"]]
    assert (await history(campaign_id=campaign["id"], status="skipped"))["total"] == 1
    assert (await history(campaign_id="other"))["total"] == 0
    assert (await history(since="2026-01-01T09:00:00Z"))["total"] == 2
    assert (await history(until="2026-01-01T09:00:00Z"))["total"] == 0
    assert (await history(since="2026-01-01T10:00:00+01:00"))["total"] == 2
    page = await history(limit="1", offset="1")
    assert page["total"] == 2 and len(page["items"]) == 1 and page["limit"] == 1
    bad = await api.get("/notifications/history", token=operator_token,
                        params={"since": "2026-02-01T00:00:00Z",
                                "until": "2026-01-01T00:00:00Z"})
    assert bad.status_code == 422 and error_of(bad)["code"] == "invalid_range"
    wrong = await api.get("/notifications/history", token=operator_token,
                          params={"status": "lost"})
    assert wrong.status_code == 422 and error_of(wrong)["code"] == "validation_error"


async def test_stats_days(api: Api, operator_token: str) -> None:
    result = await api.get("/notifications/stats", token=operator_token, params={"days": "7"})

    assert result.status_code == 200
    assert result.json["since"] == "2025-12-25T09:00:00Z"
    assert result.json["overall"]["total"] == 0 and result.json["campaigns"] == []
    bad = await api.get("/notifications/stats", token=operator_token, params={"days": "0"})
    assert bad.status_code == 422


async def test_notifications_need_a_token(api: Api) -> None:
    for path in ("/notifications/configs", "/notifications/config/x",
                 "/notifications/history", "/notifications/stats"):
        assert (await api.get(path)).status_code == 401, path
    for path in ("/notifications/config", "/notifications/send", "/tasks/x/retry-failed"):
        assert (await api.post(path, json={})).status_code == 401, path
    assert (await api.put("/notifications/config/x", json={})).status_code == 401
    assert (await api.delete("/notifications/config/x")).status_code == 401
