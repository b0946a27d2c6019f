"""Retrying the failed deliveries of a campaign across all its sends
(:meth:`CampaignSender.retry_failed_campaign`), on an all-in-memory notibot with the fake
email server of ``test_campaign_send``: every assertion is on state (messages, deliveries,
jobs)."""

from __future__ import annotations

import collections

import pytest
import test_campaign_send as sending
from test_campaign_send import Harness, permanent

from notibot.application.ports import JobFilter
from notibot.application.services.campaigns import Audience
from notibot.domain import (
    Conflict,
    DeliveryStatus,
    InvalidInput,
    JobKind,
    JobStatus,
    NotFound,
)

#: the harness fixtures of test_campaign_send
make_harness = sending.make_harness
h = sending.h


async def test_it_resends_the_failed_deliveries_of_every_send_with_their_own_data(
        h: Harness) -> None:
    campaign = await h.campaign(text_body="Code {{ data.code }}")
    an, bob, chloe = (await h.customer("An"), await h.customer("Bob"),
                      await h.customer("Chloe"))
    h.email.fail_always("bob@example.org", permanent())
    h.email.fail_always("chloe@example.org", permanent())
    first = await h.send(campaign, Audience.of([an.id, bob.id]), data={"code": "A"})
    second = await h.send(campaign, Audience.of([chloe.id]), data={"code": "B"})
    failed_before = {d.customer_id: d for d in await h.deliveries(status=DeliveryStatus.FAILED)}
    assert set(failed_before) == {bob.id, chloe.id}
    h.email.heal()

    job = await h.sender.retry_failed_campaign(campaign.id, created_by="u1")
    await h.done()

    job = await h.app.jobs.get(job.id)
    assert job.kind == JobKind.CAMPAIGN_SEND and job.status is JobStatus.SUCCEEDED
    assert job.created_by == "u1"
    assert job.params == {"campaign_id": campaign.id, "campaign_name": campaign.name,
                          "retry_campaign": True,
                          "retry_sends": {first.id: {"code": "A"}, second.id: {"code": "B"}}}
    assert job.counters == {"total": 2, "processed": 2, "sent": 2, "failed": 0, "skipped": 0}
    assert job.result == {"campaign_id": campaign.id, "total": 2, "sent": 2, "failed": 0,
                          "skipped": 0}
    # each with the data of its own send, once; An (sent the first time) got nothing more
    assert [m.text for m in h.email.to("bob@example.org")] == ["Code A"]
    assert [m.text for m in h.email.to("chloe@example.org")] == ["Code B"]
    assert len(h.email.to("an@example.org")) == 1
    # the same delivery records, updated in place
    bob_delivery = await h.delivery_of(first, bob)
    assert bob_delivery.id == failed_before[bob.id].id
    assert bob_delivery.status is DeliveryStatus.SENT and bob_delivery.attempts == 2
    assert (await h.delivery_of(second, chloe)).status is DeliveryStatus.SENT
    assert len(await h.deliveries(campaign_id=campaign.id)) == 3
    # the conversation learns about it, with the retry job's id
    conversation = await h.conversation_of(bob)
    assert conversation is not None
    [note] = conversation.messages
    assert note.metadata["job_id"] == job.id
    assert note.metadata["delivery_id"] == bob_delivery.id


async def test_never_to_a_customer_who_already_got_the_campaign(h: Harness) -> None:
    campaign = await h.campaign()
    bob, cara = await h.customer("Bob"), await h.customer("Cara")
    h.email.fail("bob@example.org", permanent())  # only the first send to Bob fails
    h.email.fail_always("cara@example.org", permanent())  # Cara fails in both sends
    first = await h.send(campaign)
    h.clock.advance(60)  # the first send's deliveries are the older ones
    second = await h.send(campaign)
    assert (await h.delivery_of(second, bob)).status is DeliveryStatus.SENT
    h.email.heal()

    job = await h.sender.retry_failed_campaign(campaign.id)
    await h.done()

    job = await h.app.jobs.get(job.id)
    # Bob got it in the second send: skipped; Cara: one email, not one per failed delivery
    assert job.counters == {"total": 2, "processed": 2, "sent": 1, "failed": 0, "skipped": 1}
    assert [(e.code, e.values["customer_id"]) for e in job.errors] == [("already_sent", bob.id)]
    assert collections.Counter(m.to for m in h.email.sent) == {"bob@example.org": 1,
                                                                "cara@example.org": 1}
    # the oldest failed delivery of Cara was re-sent; Bob's failed one stays failed
    assert (await h.delivery_of(first, cara)).status is DeliveryStatus.SENT
    assert (await h.delivery_of(second, cara)).status is DeliveryStatus.FAILED
    assert (await h.delivery_of(first, bob)).status is DeliveryStatus.FAILED

    # what is left failed belongs to customers who got the campaign: nothing to do
    with pytest.raises(Conflict) as refused:
        await h.sender.retry_failed_campaign(campaign.id)
    assert refused.value.code == "no_failed_deliveries"
    assert refused.value.details == {"campaign_id": campaign.id, "failed": 2}
    assert "got it in another send" in refused.value.message


async def test_customers_who_unsubscribed_since_are_skipped(h: Harness) -> None:
    campaign = await h.campaign()
    bob = await h.customer("Bob")
    h.email.fail_always("bob@example.org", permanent())
    await h.send(campaign)
    h.email.heal()
    await h.app.customers.patch(bob.id, {"subscribed": False})

    job = await h.sender.retry_failed_campaign(campaign.id)
    await h.done()

    job = await h.app.jobs.get(job.id)
    assert job.counters["skipped"] == 1 and job.counters["sent"] == 0
    assert job.errors[0].code == "unsubscribed"
    assert h.email.sent == []


async def test_a_deleted_send_uses_the_campaign_default_data(h: Harness) -> None:
    campaign = await h.campaign(text_body="Code {{ data.code }}",
                                default_data={"code": "DEFAULT"})
    await h.customer("Bob")
    h.email.fail_always("bob@example.org", permanent())
    send = await h.send(campaign, data={"code": "GONE"})
    await h.app.jobs.delete(send.id)
    h.email.heal()

    job = await h.sender.retry_failed_campaign(campaign.id)
    await h.done()

    assert (await h.app.jobs.get(job.id)).params["retry_sends"] == {send.id: {}}
    assert [m.text for m in h.email.sent] == ["Code DEFAULT"]


async def test_refusals(h: Harness) -> None:
    campaign = await h.campaign()
    await h.customer("Bob")

    with pytest.raises(NotFound) as unknown:
        await h.sender.retry_failed_campaign("nope")
    assert unknown.value.code == "campaign_not_found"

    with pytest.raises(Conflict) as nothing:
        await h.sender.retry_failed_campaign(campaign.id)
    assert nothing.value.code == "no_failed_deliveries"
    assert nothing.value.details == {"campaign_id": campaign.id, "failed": 0}

    h.email.fail_always("bob@example.org", permanent())
    await h.send(campaign)
    h.email.heal()
    values = {"name": campaign.name, "subject": "S", "text_body": "{{ data.promo }}"}
    await h.app.campaigns.replace(campaign.id, values)
    with pytest.raises(InvalidInput) as missing:
        await h.sender.retry_failed_campaign(campaign.id)
    assert missing.value.code == "missing_data"

    await h.app.campaigns.replace(campaign.id, {**values, "text_body": "T", "active": False})
    with pytest.raises(Conflict) as inactive:
        await h.sender.retry_failed_campaign(campaign.id)
    assert inactive.value.code == "campaign_inactive"
    jobs = await h.app.jobs.list(JobFilter(kind="campaign_send"))
    assert jobs.total == 1  # the send only: no retry was queued
    assert h.email.sent == []


async def test_an_idempotency_key_returns_the_same_job(h: Harness) -> None:
    campaign = await h.campaign()
    other = await h.campaign(name="Other")
    await h.customer("Bob")
    h.email.fail_always("bob@example.org", permanent())
    await h.send(campaign)
    await h.send(other)
    h.email.heal()

    first = await h.sender.retry_failed_campaign(campaign.id, idempotency_key="k-1",
                                                 created_by="u1")
    await h.done()
    again = await h.sender.retry_failed_campaign(campaign.id, idempotency_key="k-1",
                                                 created_by="u1")
    with pytest.raises(InvalidInput) as reused:
        await h.sender.retry_failed_campaign(other.id, idempotency_key="k-1", created_by="u1")
    with pytest.raises(InvalidInput) as bad:
        await h.sender.retry_failed_campaign(campaign.id, idempotency_key="has spaces")

    assert again.id == first.id
    assert reused.value.code == "idempotency_key_reused"
    assert bad.value.code == "invalid_idempotency_key"
    assert len(h.email.to("bob@example.org")) == 1
