"""The AI chat's "done when" on the production adapters: MongoDB (mongomock-motor over one
shared server store, as two processes share a database), short-term memory in a real Redis,
and the real Gemini adapter talking to the local Gemini REST stub.

A customer who received a campaign asks "what did you send me?": the prompt sent to Gemini
names that notification; after an API restart (a new Notibot over the same stores) the
conversation goes on with its history, from Redis and, once the window is gone, from MongoDB.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import mongomock
import pytest
import redis

from notibot.adapters.redis.short_term import DEFAULT_KEY_PREFIX
from notibot.application.services.campaigns import Audience
from notibot.container import Notibot
from notibot.testing import TEST_JWT_SECRET, IsolatedSettings, fast_password_hasher

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "contracts"))
from mongo_support import mongomock_patches
from test_production_stack import MongomockClientFactory

pytestmark = pytest.mark.integration

WAIT_SECONDS = 30.0


def prompt_text(body: dict[str, Any]) -> str:
    """Every text of a generateContent request body: system instruction and contents."""
    texts = [part.get("text", "") for part in
             (body.get("systemInstruction") or body.get("system_instruction") or {})
             .get("parts", [])]
    for content in body.get("contents", []):
        texts += [part.get("text", "") for part in content.get("parts", [])]
    return "\n".join(texts)


def turns(body: dict[str, Any]) -> list[tuple[str, str]]:
    """``(role, text)`` of each content of a generateContent request body."""
    return [(content.get("role", ""), "".join(p.get("text", "") for p in content["parts"]))
            for content in body.get("contents", [])]


@pytest.fixture
async def apps(redis_url: str, gemini_stub: Any, tmp_path: Path
               ) -> AsyncIterator[Callable[[], Notibot]]:
    """A factory of Notibot instances ("API processes") over one MongoDB store and one
    Redis; every instance made is stopped at the end, and the test's Redis keys removed."""
    store = mongomock.store.ServerStore()
    settings = IsolatedSettings(
        store="mongo", mongodb_url="mongodb://mongomock.invalid", queue="inline",
        memory="redis", redis_url=redis_url, llm="gemini", gemini_api_key="stub-key",
        gemini_base_url=gemini_stub.base_url, gemini_timeout=10, jwt_secret=TEST_JWT_SECRET,
        data_dir=tmp_path, short_term_ttl=600)
    made: list[Notibot] = []
    sessions: list[str] = []

    def make() -> Notibot:
        app = Notibot.from_settings(settings, mongo_factory=MongomockClientFactory(store),
                                    password_hasher=fast_password_hasher())
        made.append(app)
        return app

    make.sessions = sessions  # type: ignore[attr-defined]
    with mongomock_patches(gridfs=True):
        try:
            yield make
        finally:
            for app in made:
                await app.stop()
            client = redis.Redis.from_url(redis_url)
            try:
                for session_id in sessions:
                    client.delete(f"{DEFAULT_KEY_PREFIX}{session_id}")
            finally:
                client.close()


async def wait_job(app: Notibot, job_id: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        job = await app.jobs.get(job_id)
        if job.status.value in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job still {job.status}"
        await asyncio.sleep(0.02)


async def test_the_bot_names_what_was_sent_and_remembers_across_a_restart(
        apps: Callable[[], Notibot], gemini_stub: Any) -> None:
    first = apps()
    await first.start(ensure_admin=False)
    customer = await first.customers.create({
        "full_name": "Trần Thị Mai", "email": f"mai-{uuid.uuid4().hex[:6]}@example.org",
        "language": "vi", "city": "Hà Nội"})
    campaign = await first.campaigns.create({
        "name": "Ưu đãi tháng 12", "subject": "Holiday offer for {{ customer.full_name }}",
        "text_body": "Use code {{ data.code }}",
        "variants": {"vi": {"subject": "Ưu đãi cho {{ customer.full_name }}",
                            "text_body": "Mã giảm giá {{ data.code }}"}},
        "default_data": {"code": "GIAM30"}})
    job = await first.campaign_sender.submit(campaign.id, Audience.of([customer.id]))
    assert (await wait_job(first, job.id)).status.value == "succeeded"

    gemini_stub.reply_with("Chúng tôi đã gửi cho chị ưu đãi tháng 12.")
    turn = await first.chat.send(customer.id, "Các bạn đã gửi gì cho tôi?")
    apps.sessions.append(turn.session_id)  # type: ignore[attr-defined]
    assert turn.reply == "Chúng tôi đã gửi cho chị ưu đãi tháng 12."
    assert turn.language == "vi"
    assert turn.usage["tokens_in"] and turn.usage["tokens_out"]
    request = gemini_stub.requests[-1]
    assert request.headers["x-goog-api-key"] == "stub-key"
    sent = prompt_text(request.body)
    assert "Ưu đãi tháng 12" in sent                      # the campaign's name
    assert "Ưu đãi cho Trần Thị Mai" in sent              # the subject, rendered in Vietnamese
    assert '"status": "sent"' in sent                      # with its delivery status
    assert "tiếng Việt" in sent                            # the Vietnamese system template
    assert turns(request.body)[-1] == ("user", "Các bạn đã gửi gì cho tôi?")
    await first.stop()

    # an API restart: a new instance over the same MongoDB and Redis
    second = apps()
    await second.start(ensure_admin=False)
    stats = await second.chat.memory_stats(customer.id)
    assert stats["session_id"] == turn.session_id
    assert stats["short_term"]["count"] >= 2
    assert 0 < stats["short_term"]["ttl_seconds"] <= 600
    gemini_stub.reply_with("Mã là GIAM30.")
    again = await second.chat.send(customer.id, "Mã giảm giá là gì?")
    assert again.session_id == turn.session_id
    history = turns(gemini_stub.requests[-1].body)
    assert ("user", "Các bạn đã gửi gì cho tôi?") in history
    assert ("model", "Chúng tôi đã gửi cho chị ưu đãi tháng 12.") in history
    assert history[-1] == ("user", "Mã giảm giá là gì?")
    assert [text for _, text in history].count("Các bạn đã gửi gì cho tôi?") == 1

    # the short-term window is gone (expired): the long-term tail from MongoDB refills it
    client = redis.Redis.from_url(second.settings.redis_url)
    try:
        client.delete(second.container.short_term_memory().redis_key(turn.session_id))
    finally:
        client.close()
    gemini_stub.reply_with("Vâng.")
    await second.chat.send(customer.id, "Cảm ơn")
    history = turns(gemini_stub.requests[-1].body)
    assert ("user", "Mã giảm giá là gì?") in history
    assert ("model", "Mã là GIAM30.") in history
    assert history[-1] == ("user", "Cảm ơn")
    assert (await second.chat.memory_stats(customer.id))["short_term"]["count"] >= 6
    page = await second.chat.history(customer_id=customer.id)
    roles = [message.role.value for _, message in page.items]
    assert roles == ["notification", "customer", "assistant", "customer", "assistant",
                     "customer", "assistant"]


async def test_a_gemini_outage_keeps_the_customer_message_and_invents_no_reply(
        apps: Callable[[], Notibot], gemini_stub: Any) -> None:
    from notibot.domain import LLMUnavailable

    app = apps()
    await app.start(ensure_admin=False)
    customer = await app.customers.create({"full_name": "An", "email": "an@example.org"})
    gemini_stub.fail(429)
    with pytest.raises(LLMUnavailable) as caught:
        await app.chat.send(customer.id, "Hello?")
    assert caught.value.code == "llm_rate_limited"
    page = await app.chat.history(customer_id=customer.id)
    apps.sessions.extend({sid for sid, _ in page.items})  # type: ignore[attr-defined]
    assert [(m.role.value, m.content) for _, m in page.items] == [("customer", "Hello?")]


async def test_an_async_chat_turn_is_answered_by_a_separate_dramatiq_worker(
        redis_url: str, gemini_stub: Any) -> None:
    """``mode=async`` over HTTP on the production stack: the chat_reply job runs in the
    worker's container (its own loop, Mongo client, Redis window and Gemini client)."""
    from test_production_stack import login, production_stack

    async with production_stack(redis_url, memory="redis", llm="gemini",
                                gemini_api_key="stub-key",
                                gemini_base_url=gemini_stub.base_url) as stack:
        http = stack["http"]
        auth = await login(http)
        created = await http.simulate_post("/customers", headers=auth, json={
            "full_name": "Lê Văn Nam", "email": "nam@example.vn", "language": "vi"})
        assert created.status_code == 201, created.json
        gemini_stub.reply_with("Xin chào anh Nam.")
        queued = await http.simulate_post(
            "/messages/send", headers=auth, params={"mode": "async"},
            json={"customer_id": created.json["id"], "message": "Xin chào"})
        assert queued.status_code == 202, queued.json
        job_id, session_id = queued.json["job_id"], queued.json["session_id"]

        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            task = await http.simulate_get(f"/tasks/{job_id}", headers=auth)
            if task.json["status"] in ("succeeded", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, task.json
            await asyncio.sleep(0.05)
        assert task.json["status"] == "succeeded", task.json
        assert task.json["result"]["reply"] == "Xin chào anh Nam."
        assert task.json["result"]["session_id"] == session_id

        history = await http.simulate_get("/messages/history", headers=auth,
                                          params={"session_id": session_id})
        assert [(m["role"], m["content"]) for m in history.json["items"]] == [
            ("customer", "Xin chào"), ("assistant", "Xin chào anh Nam.")]
        stats = await http.simulate_get("/messages/memory/stats", headers=auth,
                                        params={"customer_id": created.json["id"]})
        assert stats.json["short_term"]["count"] == 2  # written by the worker, in Redis
        client = redis.Redis.from_url(redis_url)
        try:
            client.delete(stack["container"].short_term_memory().redis_key(session_id))
        finally:
            client.close()
