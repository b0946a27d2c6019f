"""The pure parts of the Gemini adapter: provider errors -> LLMUnavailable codes, prompt
roles -> LangChain messages, LangChain answers -> ChatReply, one client per event loop.
No network: the HTTP path is covered by tests/integration/test_gemini_adapter.py."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from google.genai import errors as genai_errors
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_google_genai.chat_models import GoogleAPIError, GoogleRateLimitError

from notibot.adapters.gemini import (
    GeminiChatModel,
    to_chat_reply,
    to_langchain_messages,
    translate_gemini_error,
)
from notibot.application.ports import PromptMessage
from notibot.domain import LLMUnavailable, ServiceUnavailable

MODEL = "gemini-2.5-flash"
KEY = "AIzaSy-secret-key-123"


def client_error(code: int, status: str, message: str = "boom") -> genai_errors.ClientError:
    return genai_errors.ClientError(
        code, {"error": {"code": code, "message": message, "status": status}})


def server_error(code: int, status: str) -> genai_errors.ServerError:
    return genai_errors.ServerError(
        code, {"error": {"code": code, "message": "server says no", "status": status}})


def wrapped(outer: Exception, cause: BaseException) -> Exception:
    """``outer`` raised ``from cause``, as LangChain does."""
    try:
        raise outer from cause
    except Exception as exc:
        return exc


# -- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("exc", [
    client_error(429, "RESOURCE_EXHAUSTED"),
    wrapped(GoogleRateLimitError("Error calling model (RESOURCE_EXHAUSTED): 429"),
            client_error(429, "RESOURCE_EXHAUSTED")),
    GoogleRateLimitError("quota"),
    client_error(400, "RESOURCE_EXHAUSTED"),
], ids=["client-error-429", "langchain-wrapped-429", "langchain-rate-limit", "status-name"])
def test_rate_limits_are_llm_rate_limited(exc: Exception) -> None:
    error = translate_gemini_error(exc, model=MODEL)
    assert isinstance(error, LLMUnavailable) and isinstance(error, ServiceUnavailable)
    assert error.code == "llm_rate_limited"
    assert MODEL in error.message


@pytest.mark.parametrize("exc", [
    TimeoutError(),
    httpx.ReadTimeout("timed out"),
    httpx.ConnectTimeout("timed out"),
    wrapped(RuntimeError("outer"), httpx.ReadTimeout("")),
    server_error(504, "DEADLINE_EXCEEDED"),
], ids=["asyncio", "httpx-read", "httpx-connect", "wrapped", "http-504"])
def test_timeouts_are_llm_timeout(exc: Exception) -> None:
    error = translate_gemini_error(exc, model=MODEL, timeout=7.5)
    assert error.code == "llm_timeout"
    assert MODEL in error.message and "7.5 s" in error.message


@pytest.mark.parametrize("exc", [
    wrapped(GoogleAPIError(500, {"error": {"code": 500, "status": "INTERNAL"}}),
            server_error(500, "INTERNAL")),
    server_error(503, "UNAVAILABLE"),
    client_error(400, "INVALID_ARGUMENT"),
    client_error(403, "PERMISSION_DENIED"),
    client_error(404, "NOT_FOUND"),
    httpx.ConnectError("connection refused"),
    OSError("network unreachable"),
    ValueError("bad answer"),
], ids=["500", "503", "400", "403", "404", "connect", "oserror", "other"])
def test_everything_else_is_llm_unavailable(exc: Exception) -> None:
    error = translate_gemini_error(exc, model=MODEL)
    assert error.code == "llm_unavailable"
    assert MODEL in error.message
    assert error.details["model"] == MODEL


def test_the_http_status_and_the_error_class_are_in_the_details() -> None:
    error = translate_gemini_error(
        wrapped(GoogleRateLimitError("x"), client_error(429, "RESOURCE_EXHAUSTED")),
        model=MODEL)
    assert error.details == {"model": MODEL, "error": "GoogleRateLimitError", "status": 429}


def test_the_api_key_never_appears_and_long_causes_are_cut() -> None:
    exc = client_error(400, "INVALID_ARGUMENT", f"API key {KEY} not valid. " + "x" * 2000)
    error = translate_gemini_error(exc, model=MODEL, api_key=KEY)
    assert KEY not in error.message and KEY not in str(error.details)
    assert "***" in error.message
    assert len(error.message) < 500


# -- prompt -> LangChain ----------------------------------------------------------------------

def test_roles_map_to_langchain_messages_in_order() -> None:
    converted = to_langchain_messages([
        PromptMessage("system", "rules"), PromptMessage("user", "q1"),
        PromptMessage("assistant", "a1"), PromptMessage("user", "q2")])
    assert [(type(m), m.content) for m in converted] == [
        (SystemMessage, "rules"), (HumanMessage, "q1"), (AIMessage, "a1"), (HumanMessage, "q2")]


def test_system_messages_are_moved_to_the_front_keeping_their_order() -> None:
    converted = to_langchain_messages([
        PromptMessage("system", "s1"), PromptMessage("user", "q1"),
        PromptMessage("system", "s2"), PromptMessage("user", "q2")])
    assert [m.content for m in converted] == ["s1", "s2", "q1", "q2"]
    assert [type(m) for m in converted[:2]] == [SystemMessage, SystemMessage]


def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="tool"):
        to_langchain_messages([PromptMessage("tool", "x")])


# -- LangChain answer -> ChatReply -------------------------------------------------------------

def test_the_reply_takes_text_model_and_usage_from_the_answer() -> None:
    answer = AIMessage(
        content="  Xin chào!  ",
        response_metadata={"model_name": "gemini-2.5-flash-001", "finish_reason": "STOP"},
        usage_metadata={"input_tokens": 120, "output_tokens": 8, "total_tokens": 128})
    reply = to_chat_reply(answer, model=MODEL)
    assert (reply.text, reply.model, reply.tokens_in, reply.tokens_out) == (
        "Xin chào!", "gemini-2.5-flash-001", 120, 8)


def test_without_metadata_the_configured_model_and_no_usage_are_reported() -> None:
    reply = to_chat_reply(AIMessage(content="ok", response_metadata={"model_name": ""}),
                          model=MODEL)
    assert (reply.model, reply.tokens_in, reply.tokens_out) == (MODEL, None, None)


def test_content_blocks_are_joined_into_the_text() -> None:
    answer = AIMessage(content=[{"type": "text", "text": "Mã còn hạn"},
                                {"type": "text", "text": " đến 15/02."}])
    assert to_chat_reply(answer, model=MODEL).text == "Mã còn hạn đến 15/02."


@pytest.mark.parametrize("content", ["", "   \n", []])
def test_an_empty_answer_is_llm_empty_reply(content: str | list[str]) -> None:
    answer = AIMessage(content=content, response_metadata={"finish_reason": "SAFETY"})
    with pytest.raises(LLMUnavailable) as caught:
        to_chat_reply(answer, model=MODEL)
    assert caught.value.code == "llm_empty_reply"
    assert caught.value.details == {"model": MODEL, "finish_reason": "SAFETY"}
    assert "SAFETY" in caught.value.message


# -- construction and event loops --------------------------------------------------------------

def make_model() -> GeminiChatModel:
    return GeminiChatModel(api_key=KEY, model=MODEL, temperature=0.3, max_tokens=256,
                           timeout=10.0, base_url="http://127.0.0.1:9/")


def test_building_needs_no_event_loop_and_the_key_stays_out_of_repr() -> None:
    model = make_model()
    assert model.name == MODEL
    assert KEY not in repr(model)


@pytest.mark.parametrize("options", [
    {"api_key": ""}, {"model": ""}, {"timeout": 0}, {"max_tokens": 0}])
def test_bad_settings_are_refused(options: dict[str, object]) -> None:
    settings: dict[str, object] = {"api_key": KEY, "model": MODEL, "temperature": 0.3,
                                   "max_tokens": 256, "timeout": 10.0}
    settings.update(options)
    with pytest.raises(ValueError):
        GeminiChatModel(**settings)  # type: ignore[arg-type]


def test_each_event_loop_gets_its_own_client_and_closed_loops_are_forgotten() -> None:
    model = make_model()

    async def clients() -> tuple[object, object]:
        return model._model_for_running_loop(), model._model_for_running_loop()

    async def clients_then_close() -> object:
        built = model._model_for_running_loop()
        await model.close()
        return built

    first_a, first_b = asyncio.run(clients())
    second = asyncio.run(clients_then_close())

    assert first_a is first_b  # one client per loop, reused
    assert second is not first_a  # a new loop never gets another loop's client
    assert model._models == {}  # the closed first loop was forgotten, the second closed
