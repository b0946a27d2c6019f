"""GeminiChatModel (langchain-google-genai -> google-genai -> HTTP) against a local stub of
the Gemini REST API (``gemini_stub.py``, started by the ``gemini_stub`` fixture in a thread of
this process): the request on the wire, the parsed reply, errors as LLMUnavailable codes,
the timeout budget, and one adapter used from two event loops.

The stub needs nothing installed, so these tests never skip.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from gemini_stub import GeminiStub

from notibot.adapters.gemini import GeminiChatModel
from notibot.application.ports import ChatRequest, PromptMessage
from notibot.domain import LLMUnavailable

pytestmark = pytest.mark.integration

API_KEY = "test-key-9f3a7c"
MODEL = "gemini-2.5-flash"


def make_model(stub: GeminiStub, **options: Any) -> GeminiChatModel:
    settings: dict[str, Any] = {"api_key": API_KEY, "model": MODEL, "temperature": 0.25,
                                "max_tokens": 321, "timeout": 5.0,
                                "base_url": stub.base_url}
    settings.update(options)
    return GeminiChatModel(**settings)


def request(*messages: tuple[str, str], language: str = "vi") -> ChatRequest:
    return ChatRequest(messages=[PromptMessage(role, content) for role, content in messages],
                       language=language)


CONVERSATION = request(
    ("system", "Bạn là trợ lý của cửa hàng. Trả lời bằng tiếng Việt."),
    ("system", "Khách hàng: Nguyễn Văn An. Thông báo gần đây: Khuyến mãi Tết."),
    ("user", "Chào shop"),
    ("assistant", "Chào anh An, shop có thể giúp gì?"),
    ("assistant", "[Thông báo] Khuyến mãi Tết: giảm 20%"),
    ("user", "Mã giảm giá còn hạn không?"),
)


def texts(content: dict[str, Any]) -> list[str]:
    return [part["text"] for part in content["parts"]]


async def test_the_request_carries_the_prompt_key_and_generation_config(
        gemini_stub: GeminiStub) -> None:
    model = make_model(gemini_stub)
    try:
        await model.generate(CONVERSATION)
    finally:
        await model.close()

    [sent] = gemini_stub.requests
    assert sent.method == "POST"
    assert sent.path == f"/v1beta/models/{MODEL}:generateContent"
    assert sent.headers["x-goog-api-key"] == API_KEY
    assert sent.headers["content-type"].startswith("application/json")
    body = sent.body
    assert texts(body["systemInstruction"]) == [
        "Bạn là trợ lý của cửa hàng. Trả lời bằng tiếng Việt.",
        "Khách hàng: Nguyễn Văn An. Thông báo gần đây: Khuyến mãi Tết.",
    ]
    assert [(c["role"], texts(c)) for c in body["contents"]] == [
        ("user", ["Chào shop"]),
        ("model", ["Chào anh An, shop có thể giúp gì?"]),
        ("model", ["[Thông báo] Khuyến mãi Tết: giảm 20%"]),
        ("user", ["Mã giảm giá còn hạn không?"]),
    ]
    config = body["generationConfig"]
    assert config["temperature"] == pytest.approx(0.25)
    assert config["maxOutputTokens"] == 321


async def test_a_system_message_inside_the_history_still_reaches_the_system_instruction(
        gemini_stub: GeminiStub) -> None:
    model = make_model(gemini_stub)
    try:
        await model.generate(request(("user", "hi"), ("system", "late rule"),
                                     ("user", "hello?")))
    finally:
        await model.close()

    body = gemini_stub.requests[-1].body
    assert texts(body["systemInstruction"]) == ["late rule"]
    assert [(c["role"], texts(c)) for c in body["contents"]] == [
        ("user", ["hi"]), ("user", ["hello?"])]


async def test_the_reply_text_model_version_and_usage_are_parsed(
        gemini_stub: GeminiStub) -> None:
    gemini_stub.reply_with("  Mã TET2026 còn hạn đến 15/02.  ",
                           model_version="gemini-2.5-flash-001",
                           prompt_tokens=42, reply_tokens=9)
    model = make_model(gemini_stub)
    try:
        reply = await model.generate(CONVERSATION)
    finally:
        await model.close()

    assert reply.text == "Mã TET2026 còn hạn đến 15/02."
    assert reply.model == "gemini-2.5-flash-001"
    assert (reply.tokens_in, reply.tokens_out) == (42, 9)


async def test_without_a_model_version_the_configured_name_is_reported(
        gemini_stub: GeminiStub) -> None:
    gemini_stub.reply_with("ok", model_version="")
    model = make_model(gemini_stub)
    try:
        reply = await model.generate(request(("user", "hi")))
    finally:
        await model.close()

    assert reply.model == MODEL == model.name


async def test_http_429_is_llm_rate_limited_without_retry(gemini_stub: GeminiStub) -> None:
    gemini_stub.fail(429, count=3, message="Quota exceeded for metric generate_content")
    model = make_model(gemini_stub)
    try:
        with pytest.raises(LLMUnavailable) as caught:
            await model.generate(request(("user", "hi")))
    finally:
        await model.close()

    assert caught.value.code == "llm_rate_limited"
    assert MODEL in caught.value.message
    assert API_KEY not in caught.value.message
    assert caught.value.details["status"] == 429
    assert len(gemini_stub.requests) == 1  # no retry: the caller owns the budget


async def test_http_500_is_llm_unavailable_without_retry(gemini_stub: GeminiStub) -> None:
    gemini_stub.fail(500, count=3)
    model = make_model(gemini_stub)
    try:
        with pytest.raises(LLMUnavailable) as caught:
            await model.generate(request(("user", "hi")))
    finally:
        await model.close()

    assert caught.value.code == "llm_unavailable"
    assert MODEL in caught.value.message and "500" in caught.value.message
    assert API_KEY not in str(caught.value)
    assert len(gemini_stub.requests) == 1


async def test_a_client_error_other_than_429_is_llm_unavailable(
        gemini_stub: GeminiStub) -> None:
    gemini_stub.fail(400, message="API key not valid. Please pass a valid API key.")
    model = make_model(gemini_stub)
    try:
        with pytest.raises(LLMUnavailable) as caught:
            await model.generate(request(("user", "hi")))
    finally:
        await model.close()

    assert caught.value.code == "llm_unavailable"
    assert "API key not valid" in caught.value.message
    assert API_KEY not in caught.value.message


async def test_an_answer_slower_than_the_timeout_is_llm_timeout(
        gemini_stub: GeminiStub) -> None:
    gemini_stub.delay(5.0)
    model = make_model(gemini_stub, timeout=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(LLMUnavailable) as caught:
            await model.generate(request(("user", "hi")))
        elapsed = time.monotonic() - started
        # the next call, answered at once, succeeds with the same client
        reply = await model.generate(request(("user", "again")))
    finally:
        await model.close()

    assert caught.value.code == "llm_timeout"
    assert MODEL in caught.value.message and "0.5" in caught.value.message
    assert elapsed < 2.0
    assert reply.text
    assert len(gemini_stub.requests) == 2


async def test_an_empty_reply_is_llm_empty_reply(gemini_stub: GeminiStub) -> None:
    gemini_stub.reply_with("")
    model = make_model(gemini_stub)
    try:
        with pytest.raises(LLMUnavailable) as caught:
            await model.generate(request(("user", "hi")))
    finally:
        await model.close()

    assert caught.value.code == "llm_empty_reply"


async def test_no_server_is_llm_unavailable(free_port: int) -> None:
    model = GeminiChatModel(api_key=API_KEY, model=MODEL, temperature=0.3, max_tokens=64,
                            timeout=3.0, base_url=f"http://127.0.0.1:{free_port}/")
    try:
        with pytest.raises(LLMUnavailable) as caught:
            await model.generate(request(("user", "hi")))
    finally:
        await model.close()

    assert caught.value.code == "llm_unavailable"
    assert API_KEY not in caught.value.message


async def test_concurrent_calls_in_one_loop_share_the_client(gemini_stub: GeminiStub) -> None:
    gemini_stub.delay(0.2, count=4)
    model = make_model(gemini_stub)
    try:
        replies = await asyncio.gather(*(model.generate(request(("user", f"q{i}")))
                                         for i in range(4)))
    finally:
        await model.close()

    assert all(reply.text for reply in replies)
    asked = sorted(r.body["contents"][-1]["parts"][0]["text"] for r in gemini_stub.requests)
    assert asked == ["q0", "q1", "q2", "q3"]


def test_one_adapter_serves_two_event_loops_one_after_the_other(
        gemini_stub: GeminiStub) -> None:
    model = make_model(gemini_stub)

    async def ask(text: str) -> str:
        try:
            return (await model.generate(request(("user", text)))).text
        finally:
            await model.close()  # each loop closes its own client before it ends

    first = asyncio.run(ask("first loop"))
    second = asyncio.run(ask("second loop"))

    assert first and second
    asked = [r.body["contents"][-1]["parts"][0]["text"] for r in gemini_stub.requests]
    assert asked == ["first loop", "second loop"]


def test_one_adapter_serves_two_event_loops_running_at_once(gemini_stub: GeminiStub) -> None:
    model = make_model(gemini_stub)
    gemini_stub.delay(0.3, count=2)
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        async def ask() -> str:
            try:
                return (await model.generate(request(("user", name)))).text
            finally:
                await model.close()

        try:
            results[name] = asyncio.run(ask())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("api", "worker")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert not errors
    assert set(results) == {"api", "worker"}
