"""``/messages/*`` (AI chat) over HTTP, on an all-in-memory notibot with the offline model,
the inline job queue and a fake clock."""

from __future__ import annotations

from typing import Any

import pytest
from http_support import Api, MakeApi, error_of

from notibot.application.ports import ChatModel, ChatReply, ChatRequest
from notibot.domain import LLMUnavailable

TURN_FIELDS = {"session_id", "message_id", "customer_message_id", "reply", "model", "usage",
               "latency_ms", "prompt_template", "context_template", "language", "created_at"}
MESSAGE_FIELDS = {"id", "session_id", "role", "content", "created_at", "metadata"}
CAMPAIGN = {
    "name": "Tết sale",
    "subject": "Happy new year, {{ customer.full_name }}",
    "text_body": "Your code: {{ data.code }}",
    "variants": {"vi": {"subject": "Chúc mừng năm mới, {{ customer.full_name }}",
                        "text_body": "Mã của bạn: {{ data.code }}"}},
    "default_data": {"code": "TET-2026"},
}


class FailingModel(ChatModel):
    """A chat model that is always rate-limited; counts the calls."""

    name = "failing"

    def __init__(self) -> None:
        self.calls = 0

    async def generate(self, request: ChatRequest) -> ChatReply:
        self.calls += 1
        raise LLMUnavailable("429 quota exceeded", code="llm_rate_limited")


async def create_customer(api: Api, token: str, name: str, **values: Any) -> dict[str, Any]:
    values.setdefault("email", f"{name.lower()}@example.org")
    result = await api.post("/customers", token=token, json={"full_name": name, **values})
    assert result.status_code == 201, result.json
    return result.json


async def send(api: Api, token: str, customer_id: str, message: str, *,
               params: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    result = await api.post("/messages/send", token=token, params=params,
                            json={"customer_id": customer_id, "message": message, **body})
    assert result.status_code == 200, result.json
    return result.json


async def history(api: Api, token: str, **params: str) -> dict[str, Any]:
    result = await api.get("/messages/history", token=token, params=params)
    assert result.status_code == 200, result.json
    return result.json


async def active_template(api: Api, token: str, kind: str, language: str) -> dict[str, Any]:
    listing = await api.get("/prompts/templates", token=token,
                            params={"kind": kind, "language": language, "active": "true"})
    [template] = listing.json["items"]
    return template


# -- sending ---------------------------------------------------------------------------------


async def test_send_answers_and_remembers_both_messages(api: Api, operator_token: str) -> None:
    bob = await create_customer(api, operator_token, "Bob", language="en")

    result = await api.post("/messages/send", token=operator_token,
                            json={"customer_id": bob["id"], "message": "  Hello there  "})

    assert result.status_code == 200, result.json
    turn = result.json
    assert set(turn) == TURN_FIELDS
    assert turn["model"] == "notibot-offline"
    assert "not an AI model" in turn["reply"] and "Hello Bob!" in turn["reply"]
    assert 'You wrote: "Hello there"' in turn["reply"]
    assert turn["language"] == "en"
    assert turn["created_at"] == "2026-01-01T09:00:00.001000Z"  # 1 ms after the question
    assert isinstance(turn["usage"]["tokens_in"], int) and turn["usage"]["tokens_in"] > 0
    assert isinstance(turn["usage"]["tokens_out"], int) and turn["usage"]["tokens_out"] > 0
    assert turn["latency_ms"] >= 0
    system = await active_template(api, operator_token, "system", "en")
    context = await active_template(api, operator_token, "context", "en")
    assert turn["prompt_template"] == {"id": system["id"], "version": 1, "variant": "default"}
    assert turn["context_template"] == {"id": context["id"], "version": 1,
                                        "variant": "default"}

    stored = await history(api, operator_token, session_id=turn["session_id"])
    assert stored["has_more"] is False and stored["next_before"] is None
    customer_message, answer = stored["items"]
    assert set(answer) == MESSAGE_FIELDS
    assert customer_message["id"] == turn["customer_message_id"]
    assert customer_message["role"] == "customer"
    assert customer_message["content"] == "Hello there"
    assert answer["id"] == turn["message_id"] and answer["role"] == "assistant"
    assert answer["content"] == turn["reply"]
    assert answer["session_id"] == turn["session_id"]
    assert answer["metadata"]["model"] == "notibot-offline"
    assert answer["metadata"]["prompt_template"] == turn["prompt_template"]
    assert answer["metadata"]["in_reply_to"] == turn["customer_message_id"]

    # the next message without session_id continues the latest conversation
    again = await send(api, operator_token, bob["id"], "And again")
    assert again["session_id"] == turn["session_id"]
    assert len((await history(api, operator_token, customer_id=bob["id"]))["items"]) == 4


async def test_the_bot_names_the_campaign_the_customer_received(api: Api,
                                                                operator_token: str) -> None:
    campaign = await api.post("/notifications/config", token=operator_token, json=CAMPAIGN)
    assert campaign.status_code == 201, campaign.json
    bob = await create_customer(api, operator_token, "Bob", language="en")
    sent = await api.post("/notifications/send", token=operator_token, json={
        "notification_config_id": campaign.json["id"], "customer_ids": [bob["id"]]})
    assert sent.status_code == 202
    await api.jobs_done()
    api.clock.advance(60)

    turn = await send(api, operator_token, bob["id"], "what did you send me?")

    assert '"Happy new year, Bob" (campaign Tết sale)' in turn["reply"], turn["reply"]
    assert "sent on 2026-01-01 by email" in turn["reply"]
    stored = await history(api, operator_token, customer_id=bob["id"])
    assert [m["role"] for m in stored["items"]] == ["notification", "customer", "assistant"]
    note = stored["items"][0]
    assert note["session_id"] == turn["session_id"]  # the conversation the campaign landed in
    assert note["metadata"]["campaign_name"] == "Tết sale"
    assert note["metadata"]["subject"] == "Happy new year, Bob"


async def test_the_reply_language(api: Api, operator_token: str) -> None:
    an = await create_customer(api, operator_token, "An", language="vi")

    turn = await send(api, operator_token, an["id"], "Xin chào")
    english = await send(api, operator_token, an["id"], "Hello", language="EN")

    assert turn["language"] == "vi"
    assert "không phải mô hình AI" in turn["reply"]
    system_vi = await active_template(api, operator_token, "system", "vi")
    assert turn["prompt_template"]["id"] == system_vi["id"]
    assert english["language"] == "en" and "not an AI model" in english["reply"]
    system_en = await active_template(api, operator_token, "system", "en")
    assert english["prompt_template"]["id"] == system_en["id"]
    regional = await create_customer(api, operator_token, "Binh", language="vi-VN")
    vietnamese = await send(api, operator_token, regional["id"], "Chào bạn")
    assert vietnamese["language"] == "vi-vn"
    assert vietnamese["prompt_template"]["id"] == system_vi["id"]  # the primary subtag's
    assert "không phải mô hình AI" in vietnamese["reply"]
    bad = await api.post("/messages/send", token=operator_token,
                         json={"customer_id": an["id"], "message": "hi", "language": "??"})
    assert bad.status_code == 422 and error_of(bad)["code"] == "invalid_language"


async def test_send_refusals(api: Api, operator_token: str) -> None:
    bob = await create_customer(api, operator_token, "Bob")
    other = await create_customer(api, operator_token, "Other")
    theirs = await send(api, operator_token, other["id"], "mine", session_id="s-other")

    async def refused(params: dict[str, str] | None = None, **body: Any) -> tuple[int, str]:
        result = await api.post("/messages/send", token=operator_token, params=params,
                                json={"customer_id": bob["id"], "message": "hi", **body})
        return result.status_code, error_of(result)["code"]

    assert await refused(customer_id="ghost") == (404, "customer_not_found")
    assert await refused(message="") == (422, "missing_message")
    assert await refused(message="   \n ") == (422, "missing_message")
    assert await refused(message="x" * 8001) == (422, "message_too_long")
    assert await refused(session_id="has spaces") == (422, "invalid_session_id")
    assert await refused(session_id=theirs["session_id"]) == (409, "session_customer_mismatch")
    assert await refused(mode="async", params={"mode": "sync"}) == (422, "conflicting_mode")
    assert await refused(params={"mode": "later"}) == (422, "validation_error")
    assert await refused(colour="red") == (422, "validation_error")
    no_message = await api.post("/messages/send", token=operator_token,
                                json={"customer_id": bob["id"]})
    assert no_message.status_code == 422
    assert error_of(no_message)["details"] == [{"field": "message", "message": "Field required"}]
    assert (await history(api, operator_token, customer_id=bob["id"]))["items"] == []
    tasks = await api.get("/tasks", token=operator_token, params={"kind": "chat_reply"})
    assert tasks.json["total"] == 0


async def test_the_longest_message_is_accepted(api: Api, operator_token: str) -> None:
    bob = await create_customer(api, operator_token, "Bob")

    turn = await send(api, operator_token, bob["id"], "y" * 8000)

    stored = await history(api, operator_token, session_id=turn["session_id"])
    assert len(stored["items"][0]["content"]) == 8000


async def test_async_mode_runs_a_job_whose_result_matches_the_history(
        api: Api, operator_token: str) -> None:
    bob = await create_customer(api, operator_token, "Bob")

    result = await api.post("/messages/send", token=operator_token, params={"mode": "async"},
                            json={"customer_id": bob["id"], "message": "Are you there?"})

    assert result.status_code == 202, result.json
    accepted = result.json
    job_id = accepted["job_id"]
    assert set(accepted) == {"job_id", "session_id", "customer_message_id", "status_url"}
    assert accepted["status_url"] == f"/tasks/{job_id}"
    assert result.headers["location"] == f"/tasks/{job_id}"
    await api.jobs_done()
    task = (await api.get(f"/tasks/{job_id}", token=operator_token)).json
    assert task["kind"] == "chat_reply" and task["status"] == "succeeded"
    assert task["created_by"] is not None
    reply = task["result"]
    assert set(reply) == TURN_FIELDS
    assert reply["session_id"] == accepted["session_id"]
    assert reply["customer_message_id"] == accepted["customer_message_id"]
    stored = await history(api, operator_token, session_id=accepted["session_id"])
    customer_message, answer = stored["items"]
    assert customer_message["id"] == accepted["customer_message_id"]
    assert customer_message["content"] == "Are you there?"
    assert answer["id"] == reply["message_id"] and answer["content"] == reply["reply"]

    # `mode` may be given in the body instead
    in_body = await api.post("/messages/send", token=operator_token, json={
        "customer_id": bob["id"], "message": "Again", "mode": "async"})
    assert in_body.status_code == 202
    assert in_body.json["session_id"] == accepted["session_id"]
    await api.jobs_done()
    assert len((await history(api, operator_token, customer_id=bob["id"]))["items"]) == 4


async def test_async_mode_checks_before_queueing(api: Api, operator_token: str) -> None:
    bob = await create_customer(api, operator_token, "Bob")

    for body, expected in (({"customer_id": "ghost", "message": "hi"},
                            (404, "customer_not_found")),
                           ({"customer_id": bob["id"], "message": " "},
                            (422, "missing_message"))):
        result = await api.post("/messages/send", token=operator_token,
                                params={"mode": "async"}, json=body)
        assert (result.status_code, error_of(result)["code"]) == expected

    tasks = await api.get("/tasks", token=operator_token, params={"kind": "chat_reply"})
    assert tasks.json["total"] == 0


async def test_model_failure_is_503_and_keeps_only_the_customer_message(
        make_api: MakeApi) -> None:
    model = FailingModel()
    api = await make_api(chat_model=model)
    token = await api.new_user_token("operator1", "operator")
    bob = await create_customer(api, token, "Bob")

    result = await api.post("/messages/send", token=token,
                            json={"customer_id": bob["id"], "message": "Anyone?",
                                  "session_id": "s-1"})

    assert result.status_code == 503
    error = error_of(result)
    assert error["code"] == "llm_rate_limited"
    assert error["message"] == "429 quota exceeded"
    assert model.calls == 1
    stored = await history(api, token, session_id="s-1")
    assert [(m["role"], m["content"]) for m in stored["items"]] == [("customer", "Anyone?")]
    stats = (await api.get("/messages/memory/stats", token=token,
                           params={"customer_id": bob["id"]})).json
    assert stats["long_term"]["messages"] == 1 and stats["short_term"]["count"] == 1

    # mode=async: the job fails with the model's message; the customer's message is kept
    queued = await api.post("/messages/send", token=token, params={"mode": "async"},
                            json={"customer_id": bob["id"], "message": "Still there?",
                                  "session_id": "s-1"})
    assert queued.status_code == 202
    await api.jobs_done()
    task = (await api.get(queued.json["status_url"], token=token)).json
    assert task["status"] == "failed" and task["result"] is None
    assert task["failure_reason"] == "429 quota exceeded"
    stored = await history(api, token, session_id="s-1")
    assert [(m["role"], m["content"]) for m in stored["items"]] == [
        ("customer", "Anyone?"), ("customer", "Still there?")]
    assert stored["items"][1]["id"] == queued.json["customer_message_id"]


# -- history ---------------------------------------------------------------------------------


async def test_history_is_chronological_and_pages_backwards(api: Api,
                                                           operator_token: str) -> None:
    bob = await create_customer(api, operator_token, "Bob")
    turns = []
    for text in ("one", "two", "three"):
        turns.append(await send(api, operator_token, bob["id"], text, session_id="s-1"))
        api.clock.advance(60)

    newest = await history(api, operator_token, session_id="s-1", limit="4")

    assert [m["content"] for m in newest["items"][::2]] == ["two", "three"]
    assert [m["role"] for m in newest["items"]] == ["customer", "assistant"] * 2
    assert newest["has_more"] is True
    assert newest["next_before"] == "2026-01-01T09:01:00Z"
    older = await history(api, operator_token, session_id="s-1", limit="4",
                          before=newest["next_before"])
    assert older["items"][0]["content"] == "one"
    assert len(older["items"]) == 2
    assert older["has_more"] is False and older["next_before"] is None
    assert [m["id"] for m in older["items"] + newest["items"]] == [
        mid for t in turns for mid in (t["customer_message_id"], t["message_id"])]
    # `before` is exclusive and time-zone aware
    same = await history(api, operator_token, customer_id=bob["id"],
                         before="2026-01-01T10:01:00+01:00")
    assert [m["content"] for m in same["items"]][::2] == ["one"]


async def test_history_merges_a_customers_sessions(api: Api, operator_token: str) -> None:
    bob = await create_customer(api, operator_token, "Bob")
    await send(api, operator_token, bob["id"], "first", session_id="s-1")
    api.clock.advance(1)
    await send(api, operator_token, bob["id"], "second", session_id="s-2")
    api.clock.advance(1)
    await send(api, operator_token, bob["id"], "third", session_id="s-1")

    merged = await history(api, operator_token, customer_id=bob["id"])

    customer_messages = [m for m in merged["items"] if m["role"] == "customer"]
    assert [(m["session_id"], m["content"]) for m in customer_messages] == [
        ("s-1", "first"), ("s-2", "second"), ("s-1", "third")]
    one = await history(api, operator_token, customer_id=bob["id"], session_id="s-2")
    assert one["items"][0]["content"] == "second"


async def test_history_refusals(api: Api, operator_token: str) -> None:
    bob = await create_customer(api, operator_token, "Bob")
    other = await create_customer(api, operator_token, "Other")
    await send(api, operator_token, other["id"], "hi", session_id="s-other")

    async def refused(**params: str) -> tuple[int, str]:
        result = await api.get("/messages/history", token=operator_token, params=params)
        return result.status_code, error_of(result)["code"]

    assert await refused() == (422, "missing_customer_id")
    assert await refused(customer_id="ghost") == (404, "customer_not_found")
    assert await refused(session_id="nope") == (404, "conversation_not_found")
    assert await refused(customer_id=bob["id"], session_id="s-other") == (
        409, "session_customer_mismatch")
    assert await refused(customer_id=bob["id"], limit="0") == (422, "validation_error")
    assert await refused(customer_id=bob["id"], limit="201") == (422, "validation_error")
    assert await refused(customer_id=bob["id"], before="yesterday") == (
        422, "validation_error")
    assert (await history(api, operator_token, customer_id=bob["id"])) == {
        "items": [], "has_more": False, "next_before": None}


# -- sessions, forgetting, memory ------------------------------------------------------------


async def test_sessions_most_recent_first(api: Api, operator_token: str) -> None:
    bob = await create_customer(api, operator_token, "Bob")
    await send(api, operator_token, bob["id"], "old", session_id="s-1")
    api.clock.advance(60)
    latest = await send(api, operator_token, bob["id"], "new", session_id="s-2")

    result = await api.get("/messages/sessions", token=operator_token,
                           params={"customer_id": bob["id"]})

    assert result.status_code == 200
    page = result.json
    assert page["total"] == 2 and page["limit"] == 50 and page["offset"] == 0
    assert [s["session_id"] for s in page["items"]] == ["s-2", "s-1"]
    first = page["items"][0]
    assert set(first) == {"session_id", "customer_id", "created_at", "updated_at",
                          "message_count", "last_message"}
    assert first["customer_id"] == bob["id"] and first["message_count"] == 2
    assert first["updated_at"] == "2026-01-01T09:01:00.001000Z"  # the reply, 1 ms later
    assert first["last_message"]["id"] == latest["message_id"]
    assert set(first["last_message"]) == MESSAGE_FIELDS
    second_page = await api.get("/messages/sessions", token=operator_token,
                                params={"customer_id": bob["id"], "limit": "1",
                                        "offset": "1"})
    assert [s["session_id"] for s in second_page.json["items"]] == ["s-1"]
    assert second_page.json["total"] == 2
    unknown = await api.get("/messages/sessions", token=operator_token,
                            params={"customer_id": "ghost"})
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "customer_not_found"
    missing = await api.get("/messages/sessions", token=operator_token)
    assert missing.status_code == 422 and error_of(missing)["code"] == "validation_error"


async def test_deleting_a_session_forgets_it_everywhere(api: Api, operator_token: str,
                                                        admin_token: str) -> None:
    bob = await create_customer(api, operator_token, "Bob")
    await send(api, operator_token, bob["id"], "keep", session_id="s-keep")
    await send(api, operator_token, bob["id"], "forget me", session_id="s-1")
    short_term = api.notibot.container.short_term_memory()
    assert (await short_term.stats("s-1")).count == 2

    denied = await api.delete("/messages/history/s-1", token=operator_token)
    assert denied.status_code == 403 and error_of(denied)["code"] == "permission_denied"
    deleted = await api.delete("/messages/history/s-1", token=admin_token)

    assert deleted.status_code == 204
    gone = await api.get("/messages/history", token=operator_token,
                         params={"session_id": "s-1"})
    assert gone.status_code == 404 and error_of(gone)["code"] == "conversation_not_found"
    assert (await short_term.stats("s-1")).count == 0
    assert await short_term.recent("s-1") == []
    sessions = (await api.get("/messages/sessions", token=operator_token,
                              params={"customer_id": bob["id"]})).json
    assert [s["session_id"] for s in sessions["items"]] == ["s-keep"]
    again = await api.delete("/messages/history/s-1", token=admin_token)
    assert again.status_code == 404 and error_of(again)["code"] == "conversation_not_found"


async def test_memory_stats_and_the_long_term_refill(make_api: MakeApi) -> None:
    api = await make_api(settings={"short_term_ttl": 600, "short_term_max": 3})
    token = await api.new_user_token("operator1", "operator")
    bob = await create_customer(api, token, "Bob")

    async def stats(**params: str) -> dict[str, Any]:
        result = await api.get("/messages/memory/stats", token=token,
                               params={"customer_id": bob["id"], **params})
        assert result.status_code == 200, result.json
        return result.json

    assert await stats() == {
        "customer_id": bob["id"], "session_id": None,
        "short_term": {"count": 0, "ttl_seconds": None, "max_messages": 3,
                       "ttl_max_seconds": 600.0},
        "long_term": {"messages": 0, "sessions": 0, "session_messages": 0}}
    await send(api, token, bob["id"], "one", session_id="s-1")
    api.clock.advance(100)
    now = await stats()
    assert now["session_id"] == "s-1"
    assert now["short_term"]["count"] == 2
    assert now["short_term"]["ttl_seconds"] == pytest.approx(500)
    assert now["long_term"] == {"messages": 2, "sessions": 1, "session_messages": 2}

    api.clock.advance(600)  # the short-term window expires
    expired = await stats(session_id="s-1")
    assert expired["short_term"]["count"] == 0
    assert expired["long_term"]["session_messages"] == 2
    await send(api, token, bob["id"], "two", session_id="s-1")
    refilled = await stats()
    assert refilled["short_term"]["count"] == 3  # refilled from long-term, capped at 3
    assert refilled["short_term"]["ttl_seconds"] == pytest.approx(600)
    assert refilled["long_term"] == {"messages": 4, "sessions": 1, "session_messages": 4}
    window = await api.notibot.container.short_term_memory().recent("s-1")
    assert [m.content for m in window][1] == "two"

    unknown = await api.get("/messages/memory/stats", token=token,
                            params={"customer_id": "ghost"})
    assert unknown.status_code == 404
    no_session = await api.get("/messages/memory/stats", token=token,
                               params={"customer_id": bob["id"], "session_id": "nope"})
    assert no_session.status_code == 404
    assert error_of(no_session)["code"] == "conversation_not_found"


# -- prompt templates on replies -------------------------------------------------------------


async def test_a_new_system_template_version_is_recorded_on_the_next_reply(
        api: Api, operator_token: str) -> None:
    bob = await create_customer(api, operator_token, "Bob", language="en")
    system = await active_template(api, operator_token, "system", "en")
    before = await send(api, operator_token, bob["id"], "hi")
    assert before["prompt_template"] == {"id": system["id"], "version": 1,
                                         "variant": "default"}

    updated = await api.put(f"/prompts/templates/{system['id']}", token=operator_token, json={
        "name": system["name"], "language": "en",
        "body": "You are a terse bot. Answer in {{ language_name }}.",
        "variants": [{"name": "terse", "body": "Be terse, in {{ language_name }}."}]})
    assert updated.status_code == 200 and updated.json["version"] == 2
    api.clock.advance(1)
    after = await send(api, operator_token, bob["id"], "hi again")

    assert after["prompt_template"] == {"id": system["id"], "version": 2, "variant": "terse"}
    stored = await history(api, operator_token, customer_id=bob["id"])
    recorded = [m["metadata"]["prompt_template"] for m in stored["items"]
                if m["role"] == "assistant"]
    assert recorded == [before["prompt_template"], after["prompt_template"]]


async def test_without_stored_templates_the_built_in_defaults_answer(
        api: Api, operator_token: str, admin_token: str) -> None:
    listing = await api.get("/prompts/templates", token=operator_token)
    for template in listing.json["items"]:
        deleted = await api.delete(f"/prompts/templates/{template['id']}", token=admin_token)
        assert deleted.status_code == 204
    bob = await create_customer(api, operator_token, "Bob", language="vi")

    turn = await send(api, operator_token, bob["id"], "Xin chào")

    assert turn["prompt_template"] == {"id": "builtin-system-vi", "version": 1,
                                       "variant": "default"}
    assert turn["context_template"]["id"] == "builtin-context-vi"


# -- access ----------------------------------------------------------------------------------


async def test_messages_need_a_token(api: Api) -> None:
    for path in ("/messages/history", "/messages/sessions", "/messages/memory/stats"):
        result = await api.get(path)
        assert result.status_code == 401, path
        assert error_of(result)["code"] == "authentication_required"
    assert (await api.post("/messages/send", json={})).status_code == 401
    assert (await api.delete("/messages/history/s-1")).status_code == 401
