"""Sending campaigns on an all-in-memory notibot (inline job queue): audiences, variants,
skipping rules, retries with backoff, permanent failures, retry-failed, idempotency, cancel
between batches, the conversation's notification message, history and stats.

The email server is a fake EmailSender that records what it accepted and can fail chosen
recipients; every assertion is on state (messages, deliveries, jobs, conversations)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from notibot.adapters.ratelimit import MemoryRateLimiter
from notibot.application.ports import (
    CustomerFilter,
    DeliveryFilter,
    EmailMessage,
    EmailSender,
    JobFilter,
    RateLimiter,
)
from notibot.application.services.campaigns import Audience, SendPolicy
from notibot.application.services.jobs import JobContext
from notibot.container import Notibot
from notibot.domain import (
    Campaign,
    Conflict,
    Conversation,
    Customer,
    Delivery,
    DeliveryFailed,
    DeliveryStatus,
    InvalidInput,
    InvalidTransition,
    Job,
    JobKind,
    JobStatus,
    MessageRole,
    NotFound,
)
from notibot.testing import FakeClock, memory_notibot

# -- fakes -----------------------------------------------------------------------------------


class FakeEmailSender(EmailSender):
    """Accepts every message (kept in ``sent``) except for recipients told to fail: each
    ``fail(address, *errors)`` error is raised once, in order; ``fail_always`` raises on
    every try. ``pause()`` makes the next send wait until ``release()``."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self.tries: collections.Counter[str] = collections.Counter()
        self._failures: dict[str, list[DeliveryFailed]] = {}
        self._always: dict[str, DeliveryFailed] = {}
        self.paused = asyncio.Event()
        self._gate: asyncio.Event | None = None
        self._held: asyncio.Event | None = None

    def fail(self, address: str, *errors: DeliveryFailed) -> None:
        self._failures.setdefault(address, []).extend(errors)

    def fail_always(self, address: str, error: DeliveryFailed) -> None:
        self._always[address] = error

    def heal(self) -> None:
        self._failures.clear()
        self._always.clear()

    def pause(self) -> None:
        self._gate = asyncio.Event()

    def release(self) -> None:
        assert self._held is not None
        self._held.set()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.sent if m.to == address]

    async def send(self, message: EmailMessage) -> str:
        self.tries[message.to] += 1
        if self._gate is not None:
            self._held, self._gate = self._gate, None
            self.paused.set()
            await self._held.wait()
        if message.to in self._always:
            raise self._always[message.to]
        pending = self._failures.get(message.to)
        if pending:
            raise pending.pop(0)
        self.sent.append(message)
        return message.message_id or f"<generated-{len(self.sent)}@fake>"

    async def close(self) -> None:
        return None


class CountingRateLimiter(RateLimiter):
    """No limit; counts the events acquired per key."""

    def __init__(self) -> None:
        self.acquired: collections.Counter[str] = collections.Counter()

    async def acquire(self, key: str) -> None:
        self.acquired[key] += 1


def transient(reply: str = "451 4.3.0 try again later") -> DeliveryFailed:
    return DeliveryFailed(reply, transient=True)


def permanent(reply: str = "550 5.1.1 mailbox unavailable") -> DeliveryFailed:
    return DeliveryFailed(reply, transient=False)


# -- harness ---------------------------------------------------------------------------------


@dataclass
class Harness:
    app: Notibot
    email: FakeEmailSender
    limiter: CountingRateLimiter
    clock: FakeClock
    delays: list[float] = field(default_factory=list)

    @property
    def sender(self) -> Any:
        return self.app.campaign_sender

    async def customer(self, name: str, **values: Any) -> Customer:
        values.setdefault("email", f"{name.lower()}@example.org")
        if values["email"] is None:
            del values["email"]
        return await self.app.customers.create({"full_name": name, **values})

    async def campaign(self, **changes: Any) -> Campaign:
        values: dict[str, Any] = {
            "name": "Tết", "subject": "Hello {{ customer.full_name }}",
            "text_body": "Code {{ data.code }} for {{ customer.full_name }}.",
            "default_data": {"code": "DEFAULT"}}
        values.update(changes)
        return await self.app.campaigns.create(values)

    async def send(self, campaign: Campaign, audience: Audience | None = None,
                   **kwargs: Any) -> Job:
        job = await self.sender.submit(campaign.id, audience or Audience.of("all"), **kwargs)
        await self.done()
        return await self.app.jobs.get(job.id)

    async def done(self) -> None:
        await asyncio.wait_for(self.app.container.job_queue().join(), timeout=5)

    async def deliveries(self, **filters: Any) -> list[Delivery]:
        page = await self.sender.history(DeliveryFilter(**filters), limit=200)
        return page.items

    async def delivery_of(self, job: Job, customer: Customer) -> Delivery:
        found = await self.deliveries(job_id=job.id, customer_id=customer.id)
        assert len(found) == 1, found
        return found[0]

    async def conversation_of(self, customer: Customer) -> Conversation | None:
        repository = self.app.container.conversation_repository()
        return await repository.latest_for_customer(customer.id)


@pytest.fixture
async def make_harness(clock: FakeClock) -> AsyncIterator[Callable[..., Harness]]:
    apps: list[Notibot] = []

    def make(**policy: Any) -> Harness:
        email, limiter = FakeEmailSender(), CountingRateLimiter()
        harness = Harness(app=None, email=email, limiter=limiter, clock=clock)  # type: ignore[arg-type]

        async def sleep(delay: float) -> None:
            harness.delays.append(delay)

        policy.setdefault("sleep", sleep)
        harness.app = memory_notibot(email_sender=email, rate_limiter=limiter, clock=clock,
                                     campaign_send_policy=SendPolicy(**policy))
        apps.append(harness.app)
        return harness

    yield make
    for app in apps:
        await app.container.job_queue().close()


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness(batch_size=2)


# -- the whole story -------------------------------------------------------------------------


async def test_a_multilingual_campaign_reaches_a_filtered_audience(h: Harness) -> None:
    campaign = await h.campaign(
        name="Tết sale", subject="Happy new year, {{ customer.full_name }}",
        text_body="Your code: {{ data.code }}",
        html_body="<p>Hi {{ customer.full_name }}: {{ data.code }}</p>",
        variants={
            "vi": {"subject": "Chúc mừng năm mới, {{ customer.full_name }}",
                   "text_body": "Mã của bạn: {{ data.code }}",
                   "html_body": "<p>Chào {{ customer.full_name }}</p>"},
            "en": {"subject": "Happy Tet, {{ customer.full_name }}",
                   "text_body": "Your code is {{ data.code }} ({{ campaign.name }})"}},
        default_data={"code": "DEFAULT"})
    an = await h.customer("An", language="vi", tags=["vip"])
    bob = await h.customer("Bob", language="en-GB", tags=["vip"])
    chloe = await h.customer("Chloé", email="chloe@example.org", language="fr", tags=["vip"])
    await h.customer("Dan", language="vi", tags=["regular"])
    eve = await h.customer("Eve", email=None, phone="+84912345678", tags=["vip"])
    fay = await h.customer("Fay", tags=["vip"], subscribed=False)

    job = await h.send(campaign, Audience.of(filter=CustomerFilter(tag="vip")),
                       data={"code": "TET-2026"}, created_by="u1")

    # the job
    assert job.status is JobStatus.SUCCEEDED
    assert job.kind == JobKind.CAMPAIGN_SEND
    assert job.created_by == "u1"
    assert job.total == 5
    assert job.counters == {"total": 5, "processed": 5, "sent": 3, "failed": 0, "skipped": 2}
    assert job.result == {"campaign_id": campaign.id, "total": 5, "sent": 3, "failed": 0,
                          "skipped": 2}
    # the emails: one each, in the customer's language
    assert sorted(m.to for m in h.email.sent) == [
        "an@example.org", "bob@example.org", "chloe@example.org"]
    [to_an] = h.email.to(an.email)
    assert to_an.subject == "Chúc mừng năm mới, An"
    assert to_an.text == "Mã của bạn: TET-2026"
    assert to_an.html == "<p>Chào An</p>"
    [to_bob] = h.email.to(bob.email)
    assert to_bob.subject == "Happy Tet, Bob"  # en-gb falls back to en
    assert to_bob.text == "Your code is TET-2026 (Tết sale)"
    assert to_bob.html is None  # a variant is complete: it has no HTML
    [to_chloe] = h.email.to(chloe.email)
    assert to_chloe.subject == "Happy new year, Chloé"
    assert to_chloe.text == "Your code: TET-2026"
    assert to_chloe.html == "<p>Hi Chloé: TET-2026</p>"
    # deliveries: one per recipient, with the Message-ID the server got
    deliveries = {d.customer_id: d for d in await h.deliveries(job_id=job.id)}
    assert set(deliveries) == {an.id, bob.id, chloe.id, eve.id, fay.id}
    for customer, message, language in ((an, to_an, "vi"), (bob, to_bob, "en"),
                                        (chloe, to_chloe, None)):
        delivery = deliveries[customer.id]
        assert delivery.status is DeliveryStatus.SENT
        assert delivery.message_id == message.message_id
        assert delivery.message_id == f"<{delivery.id}@notibot.local>"
        assert delivery.language == language
        assert delivery.attempts == 1
        assert delivery.campaign_id == campaign.id
    assert deliveries[eve.id].status is DeliveryStatus.SKIPPED
    assert deliveries[eve.id].skip_reason == "no_email"
    assert deliveries[fay.id].status is DeliveryStatus.SKIPPED
    assert deliveries[fay.id].skip_reason == "unsubscribed"
    # stats
    stats = await h.sender.stats()
    assert stats.overall.by_status == {"queued": 0, "sent": 3, "failed": 0, "skipped": 2}
    assert [(c.campaign_id, c.name, c.counts.total) for c in stats.campaigns] == [
        (campaign.id, "Tết sale", 5)]
    # the customer's conversation knows what was sent
    conversation = await h.conversation_of(an)
    assert conversation is not None
    [note] = conversation.messages
    assert note.role is MessageRole.NOTIFICATION
    assert note.content == "Chúc mừng năm mới, An\n\nMã của bạn: TET-2026"
    assert note.metadata == {
        "campaign_id": campaign.id, "campaign_name": "Tết sale",
        "subject": "Chúc mừng năm mới, An", "delivery_id": deliveries[an.id].id,
        "message_id": to_an.message_id, "job_id": job.id, "channel": "email"}
    assert await h.conversation_of(eve) is None  # skipped: nothing was sent


async def test_the_emails_carry_the_unsubscribe_link_and_header(h: Harness) -> None:
    campaign = await h.campaign(text_body="Bye: {{ unsubscribe_url }}")
    an = await h.customer("An")

    await h.send(campaign)

    [message] = h.email.sent
    url = message.text.removeprefix("Bye: ")
    assert url.startswith("http://127.0.0.1:8000/unsubscribe?token=")
    assert message.headers == {"List-Unsubscribe": f"<{url}>",
                               "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
    token = url.partition("?token=")[2]
    assert (await h.sender.unsubscribe_customer(token)).id == an.id


async def test_html_is_escaped_and_text_is_raw(h: Harness) -> None:
    campaign = await h.campaign(subject="Hi {{ customer.full_name }}",
                                text_body="Dear {{ customer.full_name }}",
                                html_body="<p>Dear {{ customer.full_name }}</p>")
    await h.customer("<b>x</b>", email="x@example.org")

    await h.send(campaign)

    [message] = h.email.sent
    assert message.html == "<p>Dear &lt;b&gt;x&lt;/b&gt;</p>"
    assert message.text == "Dear <b>x</b>"
    assert message.subject == "Hi <b>x</b>"


async def test_a_subject_is_always_one_line(h: Harness) -> None:
    campaign = await h.campaign(subject="Hi {{ customer.attributes.nick }}")
    await h.customer("An", attributes={"nick": "an\r\nBcc: victim@example.org"})

    await h.send(campaign)

    assert h.email.sent[0].subject == "Hi an Bcc: victim@example.org"


async def test_customers_by_id_skip_unknown_ids_and_repeats(h: Harness) -> None:
    campaign = await h.campaign()
    an = await h.customer("An")
    bob = await h.customer("Bob")

    job = await h.send(campaign, Audience.of([an.id, "ghost", an.id, bob.id]))

    assert sorted(m.to for m in h.email.sent) == [an.email, bob.email]
    assert job.total == 3
    assert job.counters["sent"] == 2 and job.counters["skipped"] == 1
    assert [(e.code, e.values) for e in job.errors] == [
        ("customer_not_found", {"customer_id": "ghost"})]
    assert job.params["audience"] == {"customer_ids": [an.id, "ghost", bob.id]}


async def test_the_send_data_overrides_the_default_data(h: Harness) -> None:
    campaign = await h.campaign(text_body="{{ data.code }} {{ data.shop }}",
                                default_data={"code": "A", "shop": "Hanoi"})
    await h.customer("An")

    await h.send(campaign, data={"code": "B"})

    assert h.email.sent[0].text == "B Hanoi"


async def test_a_notification_joins_the_latest_conversation(h: Harness) -> None:
    campaign = await h.campaign()
    an = await h.customer("An")
    conversations = h.app.container.conversation_repository()
    await conversations.add(Conversation(id="chat1", customer_id=an.id,
                                         created_at=h.clock.current,
                                         updated_at=h.clock.current))
    h.clock.advance(5)

    await h.send(campaign)
    await h.send(campaign)

    conversation = await conversations.get("chat1")
    assert [m.role for m in conversation.messages] == [MessageRole.NOTIFICATION] * 2
    assert (await conversations.list_for_customer(an.id, limit=10, offset=0)).total == 1


async def test_a_chat_campaign_only_writes_to_the_conversation(h: Harness) -> None:
    campaign = await h.campaign(channel="chat", subject="News",
                                text_body="Hi {{ customer.full_name }}")
    phone_only = await h.customer("Eve", email=None, phone="+84912345678")
    gone = await h.customer("Fay", subscribed=False)

    job = await h.send(campaign)

    assert h.email.sent == []
    assert h.limiter.acquired == {}
    delivery = await h.delivery_of(job, phone_only)
    assert delivery.status is DeliveryStatus.SENT and delivery.message_id is None
    conversation = await h.conversation_of(phone_only)
    assert conversation is not None
    assert conversation.messages[0].content == "News\n\nHi Eve"
    assert conversation.messages[0].metadata["channel"] == "chat"
    assert (await h.delivery_of(job, gone)).skip_reason == "unsubscribed"


async def test_a_template_that_fails_for_one_customer_fails_only_that_delivery(
        h: Harness) -> None:
    campaign = await h.campaign(text_body="Tier {{ customer.attributes.tier }}")
    gold = await h.customer("An", attributes={"tier": "gold"})
    plain = await h.customer("Bob")

    job = await h.send(campaign)

    assert [m.to for m in h.email.sent] == [gold.email]
    delivery = await h.delivery_of(job, plain)
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.last_error.startswith("template_error: ")
    assert "tier" in delivery.last_error
    assert job.status is JobStatus.SUCCEEDED
    assert job.counters["failed"] == 1
    assert [e.code for e in job.errors] == ["delivery_failed"]


# -- failures and retries --------------------------------------------------------------------


async def test_transient_failures_are_retried_with_backoff_then_sent_once(h: Harness) -> None:
    campaign = await h.campaign()
    an = await h.customer("An")
    bob = await h.customer("Bob")
    h.email.fail(bob.email, transient("421 4.4.2 connection dropped"), transient())

    job = await h.send(campaign)

    assert len(h.email.to(bob.email)) == 1
    assert len(h.email.to(an.email)) == 1
    assert h.email.tries[bob.email] == 3
    assert h.delays == [0.5, 1.0]
    assert h.limiter.acquired["email"] == 4  # one per try: An 1, Bob 3
    delivery = await h.delivery_of(job, bob)
    assert delivery.status is DeliveryStatus.SENT
    assert delivery.attempts == 3
    assert delivery.last_error is None
    assert job.counters["sent"] == 2 and job.counters["failed"] == 0


async def test_transient_failures_give_up_after_max_attempts(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness(max_attempts=3, base_delay=2, max_delay=3)
    campaign = await h.campaign()
    bob = await h.customer("Bob")
    h.email.fail_always(bob.email, transient("452 4.2.2 mailbox full"))

    job = await h.send(campaign)

    assert h.email.sent == []
    assert h.email.tries[bob.email] == 3
    assert h.delays == [2, 3]  # doubled, then capped
    delivery = await h.delivery_of(job, bob)
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.attempts == 3
    assert delivery.last_error == "452 4.2.2 mailbox full (temporary failure; gave up after " \
                                  "3 tries)"
    assert job.status is JobStatus.SUCCEEDED
    assert job.counters["failed"] == 1
    assert await h.conversation_of(bob) is None


async def test_a_permanent_failure_fails_the_delivery_with_the_reply(h: Harness) -> None:
    campaign = await h.campaign()
    an = await h.customer("An")
    bob = await h.customer("Bob")
    h.email.fail(bob.email, permanent("550 5.1.1 <bob@example.org>: user unknown"))

    job = await h.send(campaign)

    assert [m.to for m in h.email.sent] == [an.email]
    assert h.email.tries[bob.email] == 1
    assert h.delays == []
    delivery = await h.delivery_of(job, bob)
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.last_error == "550 5.1.1 <bob@example.org>: user unknown"
    assert delivery.attempts == 1 and delivery.message_id is None
    assert job.counters == {"total": 2, "processed": 2, "sent": 1, "failed": 1, "skipped": 0}
    assert job.errors[0].values == {"customer_id": bob.id, "delivery_id": delivery.id}
    assert (await h.sender.stats()).overall.by_status["failed"] == 1


async def test_retry_failed_resends_only_the_failed_deliveries(h: Harness) -> None:
    campaign = await h.campaign()
    an = await h.customer("An")
    bob = await h.customer("Bob")
    chloe = await h.customer("Chloe")
    await h.customer("Dan", subscribed=False)
    h.email.fail(bob.email, permanent())
    h.email.fail_always(chloe.email, transient())
    first = await h.send(campaign)
    failed_before = {d.customer_id: d for d in
                     await h.deliveries(job_id=first.id, status=DeliveryStatus.FAILED)}
    assert set(failed_before) == {bob.id, chloe.id}
    h.email.heal()

    retry = await h.sender.retry_failed(first.id, created_by="u2")
    await h.done()

    retry = await h.app.jobs.get(retry.id)
    assert retry.kind == JobKind.CAMPAIGN_SEND and retry.created_by == "u2"
    assert retry.params["retry_of"] == first.id
    assert retry.status is JobStatus.SUCCEEDED
    assert retry.counters == {"total": 2, "processed": 2, "sent": 2, "failed": 0,
                              "skipped": 0}
    assert retry.result["retry_of"] == first.id
    # everybody got exactly one email
    assert collections.Counter(m.to for m in h.email.sent) == {
        an.email: 1, bob.email: 1, chloe.email: 1}
    # the same delivery records, now sent; the retry made none of its own
    after = {d.customer_id: d for d in await h.deliveries(job_id=first.id)}
    assert len(after) == 4
    for customer_id, before in failed_before.items():
        assert after[customer_id].id == before.id
        assert after[customer_id].status is DeliveryStatus.SENT
        assert after[customer_id].attempts == before.attempts + 1
        assert after[customer_id].message_id == f"<{before.id}@notibot.local>"
    assert await h.deliveries(job_id=retry.id) == []
    assert (await h.sender.stats()).overall.by_status == {
        "queued": 0, "sent": 3, "failed": 0, "skipped": 1}
    # nothing failed any more: a second retry is refused, for the send and for the retry
    for job_id in (first.id, retry.id):
        with pytest.raises(Conflict) as caught:
            await h.sender.retry_failed(job_id)
        assert caught.value.code == "no_failed_deliveries"


async def test_a_retry_of_a_retry_retries_the_original_send(h: Harness) -> None:
    campaign = await h.campaign()
    bob = await h.customer("Bob")
    h.email.fail(bob.email, permanent(), permanent())
    first = await h.send(campaign)
    second = await h.sender.retry_failed(first.id)
    await h.done()
    assert (await h.delivery_of(first, bob)).status is DeliveryStatus.FAILED

    third = await h.sender.retry_failed(second.id)
    await h.done()

    assert third.params["retry_of"] == first.id
    delivery = await h.delivery_of(first, bob)
    assert delivery.status is DeliveryStatus.SENT and delivery.attempts == 3
    assert len(h.email.to(bob.email)) == 1


async def test_two_retries_at_once_never_send_twice(h: Harness) -> None:
    campaign = await h.campaign()
    customers = [await h.customer(f"C{i}") for i in range(5)]
    for customer in customers:
        h.email.fail(customer.email, permanent())
    first = await h.send(campaign)

    retries = [await h.sender.retry_failed(first.id) for _ in range(2)]
    await h.done()

    assert collections.Counter(m.to for m in h.email.sent) == {c.email: 1 for c in customers}
    jobs = [await h.app.jobs.get(r.id) for r in retries]
    assert all(j.status is JobStatus.SUCCEEDED for j in jobs)
    assert sum(j.counters["sent"] for j in jobs) == 5


async def test_retry_skips_customers_who_unsubscribed_since(h: Harness) -> None:
    campaign = await h.campaign()
    bob = await h.customer("Bob")
    h.email.fail(bob.email, permanent())
    first = await h.send(campaign)
    await h.app.customers.patch(bob.id, {"subscribed": False})

    retry = await h.sender.retry_failed(first.id)
    await h.done()

    assert h.email.sent == []
    retry = await h.app.jobs.get(retry.id)
    assert retry.counters["skipped"] == 1
    assert retry.errors[0].code == "unsubscribed"
    assert (await h.delivery_of(first, bob)).status is DeliveryStatus.FAILED


async def test_retry_failed_is_refused_for_the_wrong_jobs(h: Harness) -> None:
    campaign = await h.campaign()
    await h.customer("An")
    other = await h.app.jobs.submit("test")
    await h.done()

    with pytest.raises(NotFound) as caught:
        await h.sender.retry_failed("nope")
    assert caught.value.code == "job_not_found"
    with pytest.raises(NotFound) as caught:
        await h.sender.retry_failed(other.id)
    assert caught.value.code == "campaign_send_not_found"

    h.email.pause()
    running = await h.sender.submit(campaign.id, Audience.of("all"))
    await asyncio.wait_for(h.email.paused.wait(), 2)
    with pytest.raises(InvalidTransition) as caught:
        await h.sender.retry_failed(running.id)
    assert caught.value.code == "job_not_finished"
    h.email.release()
    await h.done()


async def test_a_batch_run_again_never_emails_anyone_twice(h: Harness) -> None:
    campaign = await h.campaign()
    customers = [await h.customer(f"C{i}") for i in range(3)]
    await h.customer("Off", subscribed=False)
    h.email.fail(customers[2].email, permanent())
    jobs = h.app.container.job_repository()
    handler = h.app.container.campaign_send_handler()
    params = {"campaign_id": campaign.id, "audience": {"filter": {}}, "data": {}}

    results = []
    for _ in range(2):  # the same job run twice, as after a crash and a redelivery
        job = Job(id="crashed", kind=JobKind.CAMPAIGN_SEND.value, created_at=h.clock.current,
                  params=params)
        job.start(h.clock.current)
        if _ == 0:
            await jobs.add(job)
        else:
            await jobs.update(job)
        results.append(await handler.run(JobContext(job, jobs, h.clock)))

    assert collections.Counter(m.to for m in h.email.sent) == {
        customers[0].email: 1, customers[1].email: 1}
    assert h.email.tries[customers[2].email] == 1
    assert results[1] == results[0] == {"campaign_id": campaign.id, "total": 4, "sent": 2,
                                        "failed": 1, "skipped": 1}
    assert len(await h.deliveries(job_id="crashed")) == 4


async def test_the_rate_limiter_is_held_for_every_message(
        make_harness: Callable[..., Harness]) -> None:
    h = make_harness()
    h.app.container.rate_limiter.override(MemoryRateLimiter(10_000))
    campaign = await h.campaign()
    for i in range(3):
        await h.customer(f"C{i}")

    job = await h.send(campaign)

    assert job.counters["sent"] == 3


# -- cancel ----------------------------------------------------------------------------------


async def test_cancel_stops_before_the_next_batch(make_harness: Callable[..., Harness]) -> None:
    h = make_harness(batch_size=2, concurrency=1)
    campaign = await h.campaign()
    customers = []
    for i in range(5):  # the audience is paged oldest first
        customers.append(await h.customer(f"C{i}"))
        h.clock.advance(1)
    h.email.pause()

    job = await h.sender.submit(campaign.id, Audience.of("all"))
    await asyncio.wait_for(h.email.paused.wait(), 2)
    await h.app.jobs.cancel(job.id)
    h.email.release()
    await h.done()

    job = await h.app.jobs.get(job.id)
    assert job.status is JobStatus.CANCELLED
    assert [m.to for m in h.email.sent] == [c.email for c in customers[:2]]
    assert job.counters["processed"] == 2 and job.counters["sent"] == 2
    assert {d.customer_id for d in await h.deliveries(job_id=job.id)} == {
        c.id for c in customers[:2]}


# -- submit: what is refused ------------------------------------------------------------------


async def test_an_unknown_campaign_is_not_found(h: Harness) -> None:
    await h.customer("An")

    with pytest.raises(NotFound) as caught:
        await h.sender.submit("nope", Audience.of("all"))
    assert caught.value.code == "campaign_not_found"


async def test_an_inactive_campaign_cannot_be_sent(h: Harness) -> None:
    campaign = await h.campaign(active=False)
    await h.customer("An")

    with pytest.raises(Conflict) as caught:
        await h.sender.submit(campaign.id, Audience.of("all"))
    assert caught.value.code == "campaign_inactive"
    assert (await h.app.jobs.list(JobFilter())).total == 0


@pytest.mark.parametrize("audience", [
    Audience.of(filter=CustomerFilter(tag="nobody")),
    Audience.of(["ghost", "phantom"]),
    Audience.of([]),
])
async def test_an_empty_audience_is_refused(h: Harness, audience: Audience) -> None:
    campaign = await h.campaign()
    await h.customer("An", tags=["vip"])

    with pytest.raises(InvalidInput) as caught:
        await h.sender.submit(campaign.id, audience)
    assert caught.value.code == "empty_audience"
    assert (await h.app.jobs.list(JobFilter())).total == 0


async def test_an_audience_says_who(h: Harness) -> None:
    with pytest.raises(InvalidInput) as caught:
        Audience.of(None)
    assert caught.value.code == "invalid_audience"
    with pytest.raises(InvalidInput):
        Audience.of(["a"], CustomerFilter(tag="x"))
    with pytest.raises(InvalidInput):
        Audience.of("everyone")
    with pytest.raises(InvalidInput) as caught:
        Audience.of([f"c{i}" for i in range(10_001)])
    assert caught.value.code == "too_many_customers"
    assert Audience.of("all", CustomerFilter(city="Hue")).to_params() == {
        "filter": {"city": "Hue"}}


async def test_data_the_templates_need_must_be_given(h: Harness) -> None:
    campaign = await h.campaign(subject="{{ data.greeting }}", text_body="x\n{{ data.code }}",
                                default_data={"code": "A"})
    await h.customer("An")

    with pytest.raises(InvalidInput) as caught:
        await h.sender.submit(campaign.id, Audience.of("all"))
    assert caught.value.code == "missing_data"
    assert caught.value.details == {"field": "subject", "line": 1, "name": "data.greeting"}

    job = await h.send(campaign, data={"greeting": "Hi"})
    assert job.counters["sent"] == 1


# -- idempotency -----------------------------------------------------------------------------


async def test_the_same_idempotency_key_and_request_return_the_same_job(h: Harness) -> None:
    campaign = await h.campaign()
    an = await h.customer("An")

    first = await h.sender.submit(campaign.id, Audience.of([an.id]), data={"code": "X"},
                                  idempotency_key="key-1", created_by="u1")
    await h.done()
    again = await h.sender.submit(campaign.id, Audience.of([an.id]), data={"code": "X"},
                                  idempotency_key="key-1", created_by="u1")
    await h.done()

    assert again.id == first.id
    assert again.status is JobStatus.SUCCEEDED
    assert len(h.email.sent) == 1
    assert (await h.app.jobs.list(JobFilter(kind="campaign_send"))).total == 1


async def test_the_same_key_with_another_request_is_refused(h: Harness) -> None:
    campaign = await h.campaign()
    an = await h.customer("An")
    await h.sender.submit(campaign.id, Audience.of([an.id]), idempotency_key="k",
                          created_by="u1")

    with pytest.raises(InvalidInput) as caught:
        await h.sender.submit(campaign.id, Audience.of([an.id]), data={"code": "other"},
                              idempotency_key="k", created_by="u1")
    assert caught.value.code == "idempotency_key_reused"

    # keys are per user
    other = await h.sender.submit(campaign.id, Audience.of([an.id]), data={"code": "other"},
                                  idempotency_key="k", created_by="u2")
    await h.done()
    assert (await h.app.jobs.list(JobFilter(kind="campaign_send"))).total == 2
    assert other.created_by == "u2"


async def test_a_refused_request_does_not_use_up_its_key(h: Harness) -> None:
    campaign = await h.campaign(active=False)
    an = await h.customer("An")

    with pytest.raises(Conflict):
        await h.sender.submit(campaign.id, Audience.of([an.id]), idempotency_key="k")
    await h.app.campaigns.replace(campaign.id, {"name": "Tết", "subject": "s",
                                                "text_body": "t"})
    job = await h.sender.submit(campaign.id, Audience.of([an.id]), idempotency_key="k")
    again = await h.sender.submit(campaign.id, Audience.of([an.id]), idempotency_key="k")
    await h.done()

    assert again.id == job.id
    assert len(h.email.sent) == 1


@pytest.mark.parametrize("key", ["", "with space", "ünïcode", "x" * 256])
async def test_a_malformed_key_is_refused(h: Harness, key: str) -> None:
    campaign = await h.campaign()
    await h.customer("An")

    with pytest.raises(InvalidInput) as caught:
        await h.sender.submit(campaign.id, Audience.of("all"), idempotency_key=key)
    assert caught.value.code == "invalid_idempotency_key"


# -- history and stats -----------------------------------------------------------------------


async def test_history_filters(h: Harness) -> None:
    one = await h.campaign(name="one")
    two = await h.campaign(name="two")
    an = await h.customer("An")
    bob = await h.customer("Bob", subscribed=False)
    first = await h.send(one)
    h.clock.advance(3600)
    await h.send(two)

    assert len(await h.deliveries()) == 4
    assert {d.campaign_id for d in await h.deliveries(customer_id=an.id)} == {one.id, two.id}
    assert [d.customer_id for d in await h.deliveries(campaign_id=one.id,
                                                      status=DeliveryStatus.SKIPPED)] \
        == [bob.id]
    assert len(await h.deliveries(job_id=first.id)) == 2
    newest = await h.deliveries(since=first.created_at + (h.clock.current - first.created_at))
    assert {d.campaign_id for d in newest} == {two.id}
    assert {d.campaign_id for d in await h.deliveries(until=h.clock.current)} == {one.id}
    page = await h.sender.history(DeliveryFilter(), limit=1, offset=1)
    assert page.total == 4 and len(page.items) == 1
    with pytest.raises(InvalidInput) as caught:
        await h.sender.history(DeliveryFilter(since=h.clock.current, until=h.clock.current))
    assert caught.value.code == "invalid_range"


async def test_stats_cover_the_last_30_days_per_campaign(h: Harness) -> None:
    old = await h.campaign(name="old")
    recent = await h.campaign(name="recent")
    gone = await h.campaign(name="gone")
    await h.customer("An")
    await h.customer("Bob", subscribed=False)
    await h.send(old)
    h.clock.advance(31 * 86400)
    await h.send(recent)
    await h.send(gone)
    await h.send(recent)
    await h.app.campaigns.delete(gone.id)

    stats = await h.sender.stats()

    assert stats.until == h.clock.current
    assert (stats.until - stats.since).days == 30
    assert stats.overall.total == 6
    assert stats.overall.by_status == {"queued": 0, "sent": 3, "failed": 0, "skipped": 3}
    assert [(c.name, c.counts.by_status["sent"], c.counts.total) for c in stats.campaigns] \
        == [("recent", 2, 4), (None, 1, 2)]
    assert (await h.sender.stats(days=40)).overall.total == 8
    with pytest.raises(InvalidInput):
        await h.sender.stats(days=0)
