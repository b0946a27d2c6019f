"""``POST /notifications/config/{config_id}/retry-failed``: re-sending the failed deliveries
of a campaign across all its sends, over HTTP on an all-in-memory notibot whose email server
records messages and refuses chosen addresses."""

from __future__ import annotations

import collections

import test_http_notifications as notifications
from http_support import Api, error_of
from test_http_notifications import RecordingEmailSender, create_campaign, create_customer

#: the fixtures of test_http_notifications: ``email`` (a recording sender) and ``api``
email = notifications.email
api = notifications.api


async def send(api: Api, token: str, campaign: dict, **body: object) -> str:
    result = await api.post("/notifications/send", token=token, json={
        "notification_config_id": campaign["id"], **body})
    assert result.status_code == 202, result.json
    await api.jobs_done()
    return result.json["job_id"]


async def test_retry_failed_on_the_campaign(api: Api, operator_token: str,
                                            email: RecordingEmailSender) -> None:
    campaign = await create_campaign(api, operator_token, variants={})
    an = await create_customer(api, operator_token, "An")
    bob = await create_customer(api, operator_token, "Bob")
    cara = await create_customer(api, operator_token, "Cara")
    email.refuse.update({"bob@example.org", "cara@example.org"})
    first = await send(api, operator_token, campaign, customer_ids=[an["id"], bob["id"]],
                       data={"code": "A"})
    second = await send(api, operator_token, campaign, customer_ids=[cara["id"]],
                        data={"code": "B"})
    email.refuse.clear()

    result = await api.post(f"/notifications/config/{campaign['id']}/retry-failed",
                            token=operator_token)
    await api.jobs_done()

    # the same answer as POST /tasks/{job_id}/retry-failed
    assert result.status_code == 202
    job_id = result.json["job_id"]
    assert result.json == {"job_id": job_id, "task_url": f"/tasks/{job_id}"}
    assert result.headers["location"] == f"/tasks/{job_id}"
    task = (await api.get(f"/tasks/{job_id}", token=operator_token)).json
    assert task["kind"] == "campaign_send" and task["status"] == "succeeded"
    assert task["params"]["retry_campaign"] is True
    assert task["params"]["retry_sends"] == {first: {"code": "A"}, second: {"code": "B"}}
    assert task["counters"] == {"total": 2, "processed": 2, "sent": 2, "failed": 0,
                                "skipped": 0}
    assert collections.Counter(m.to for m in email.sent) == {
        "an@example.org": 1, "bob@example.org": 1, "cara@example.org": 1}
    assert {m.to: m.text for m in email.sent} == {
        "an@example.org": "Your code: A", "bob@example.org": "Your code: A",
        "cara@example.org": "Your code: B"}
    failed = await api.get("/notifications/history", token=operator_token,
                           params={"campaign_id": campaign["id"], "status": "failed"})
    assert failed.json["total"] == 0

    again = await api.post(f"/notifications/config/{campaign['id']}/retry-failed",
                           token=operator_token)
    assert again.status_code == 409
    assert error_of(again)["code"] == "no_failed_deliveries"


async def test_refusals(api: Api, operator_token: str, email: RecordingEmailSender) -> None:
    campaign = await create_campaign(api, operator_token)
    await create_customer(api, operator_token, "Bob")

    unknown = await api.post("/notifications/config/nope/retry-failed", token=operator_token)
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "campaign_not_found"
    nothing = await api.post(f"/notifications/config/{campaign['id']}/retry-failed",
                             token=operator_token)
    assert nothing.status_code == 409
    assert error_of(nothing) == {
        "code": "no_failed_deliveries",
        "message": "campaign 'Tết sale' has no failed deliveries to re-send",
        "details": {"campaign_id": campaign["id"], "failed": 0}}

    email.refuse.add("bob@example.org")
    await send(api, operator_token, campaign, customer_ids="all")
    email.refuse.clear()
    switched_off = await api.put(f"/notifications/config/{campaign['id']}",
                                 token=operator_token, json={
                                     "name": campaign["name"], "subject": "S",
                                     "text_body": "T", "active": False})
    assert switched_off.status_code == 200
    inactive = await api.post(f"/notifications/config/{campaign['id']}/retry-failed",
                              token=operator_token)
    assert inactive.status_code == 409 and error_of(inactive)["code"] == "campaign_inactive"
    anonymous = await api.post(f"/notifications/config/{campaign['id']}/retry-failed")
    assert anonymous.status_code == 401
    assert email.sent == []


async def test_idempotency_key(api: Api, operator_token: str,
                               email: RecordingEmailSender) -> None:
    campaign = await create_campaign(api, operator_token)
    await create_customer(api, operator_token, "Bob")
    email.refuse.add("bob@example.org")
    await send(api, operator_token, campaign, customer_ids="all")
    email.refuse.clear()
    path = f"/notifications/config/{campaign['id']}/retry-failed"
    headers = {"Idempotency-Key": "c0ffee-retry-1"}

    first = await api.post(path, token=operator_token, headers=headers)
    await api.jobs_done()
    again = await api.post(path, token=operator_token, headers=headers)
    reused = await api.post("/notifications/send", token=operator_token, headers=headers,
                            json={"notification_config_id": campaign["id"],
                                  "customer_ids": "all"})
    bad = await api.post(path, token=operator_token, headers={"Idempotency-Key": "a b"})

    assert first.status_code == again.status_code == 202
    assert again.json == first.json  # the same job, although nothing is failed any more
    assert reused.status_code == 422
    assert error_of(reused)["code"] == "idempotency_key_reused"
    assert bad.status_code == 422 and error_of(bad)["code"] == "invalid_idempotency_key"
    assert [m.to for m in email.sent] == ["bob@example.org"]
