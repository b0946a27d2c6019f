"""The Gemini ChatModel: Google Gemini through LangChain (``langchain-google-genai``).

``ChatGoogleGenerativeAI`` wraps a google-genai ``Client`` whose async HTTP client belongs to
the event loop it first talks in, so :class:`GeminiChatModel` builds one LangChain model per
running event loop, lazily, inside that loop (DESIGN: "never share one client object between
loops"), and translates every provider or network failure into
:class:`~notibot.domain.LLMUnavailable`.

Retries: none. LangChain's ``max_retries`` is set to 1, which google-genai reads as "one
attempt, no retry" (``0`` would mean "the SDK default", i.e. retries). The whole ``timeout``
is the budget of one call: it is passed to google-genai (per HTTP request, milliseconds) and
also enforced around the call with :func:`asyncio.timeout`, so a slow, trickling answer cannot
exceed it. Callers that want retries (a job runner) retry on ``LLMUnavailable``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from google.genai import errors as genai_errors
from langchain_core.exceptions import ModelRateLimitError, ModelTimeoutError
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_google_genai import ChatGoogleGenerativeAI

from notibot.application.ports import ChatModel, ChatReply, ChatRequest, PromptMessage
from notibot.domain import LLMUnavailable

logger = logging.getLogger(__name__)

#: Longest provider error text quoted in an LLMUnavailable message.
MAX_CAUSE_CHARS = 300


def _timeout_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [TimeoutError, ModelTimeoutError]
    for module_name in ("httpx", "httpx2"):  # google-genai's HTTP backends
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        timeout_exception = getattr(module, "TimeoutException", None)
        if isinstance(timeout_exception, type) and issubclass(timeout_exception, BaseException):
            types.append(timeout_exception)
    return tuple(types)


#: Exceptions that mean "no answer in time" (asyncio, httpx/httpx2, LangChain).
TIMEOUT_ERRORS = _timeout_types()


def to_langchain_messages(messages: Sequence[PromptMessage]) -> list[BaseMessage]:
    """The LangChain messages for a prompt: ``system`` -> SystemMessage, ``user`` ->
    HumanMessage, ``assistant`` -> AIMessage, order kept.

    Gemini has a single system instruction, and langchain-google-genai folds system messages
    into it only when the prompt starts with one (a later one is otherwise dropped), so every
    system message is moved to the front, in its original order.

    Raises:
        ValueError: a message has another role.
    """
    system: list[BaseMessage] = []
    rest: list[BaseMessage] = []
    for message in messages:
        if message.role == "system":
            system.append(SystemMessage(content=message.content))
        elif message.role == "user":
            rest.append(HumanMessage(content=message.content))
        elif message.role == "assistant":
            rest.append(AIMessage(content=message.content))
        else:
            raise ValueError(f"unknown prompt role {message.role!r} "
                             "(expected system, user or assistant)")
    return system + rest


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` then its causes/contexts, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    if len(text) > MAX_CAUSE_CHARS:
        text = text[:MAX_CAUSE_CHARS] + "..."
    return text


def translate_gemini_error(exc: BaseException, *, model: str, timeout: float | None = None,
                           api_key: str | None = None) -> LLMUnavailable:
    """The domain error for a failed Gemini call.

    Parameters:
        exc: what LangChain, google-genai, httpx or asyncio raised.
        model: the configured model name, named in the message.
        timeout: the budget in seconds, named in timeout messages.
        api_key: removed from the message should the provider quote it.

    Returns:
        LLMUnavailable with code ``llm_timeout`` (asyncio/httpx timeouts, HTTP 504
        ``DEADLINE_EXCEEDED``), ``llm_rate_limited`` (HTTP 429 / ``RESOURCE_EXHAUSTED``) or
        ``llm_unavailable`` (anything else: other HTTP errors, connection failures, bad
        answers). ``details`` holds ``model``, ``error`` (the exception class) and, for HTTP
        errors, ``status`` (the HTTP code). The API key never appears.
    """
    chain = list(_chain(exc))
    api_error = next((e for e in chain if isinstance(e, genai_errors.APIError)), None)
    status = getattr(api_error, "code", None)
    status_name = str(getattr(api_error, "status", "") or "")
    details: dict[str, Any] = {"model": model, "error": type(exc).__name__}
    if isinstance(status, int):
        details["status"] = status

    if (any(isinstance(e, TIMEOUT_ERRORS) for e in chain) or status == 504
            or status_name == "DEADLINE_EXCEEDED"):
        budget = f" after {timeout:g} s" if timeout is not None else ""
        return LLMUnavailable(f"Gemini model {model} did not answer{budget}",
                              code="llm_timeout", details=details)
    cause = _redact(str(api_error or exc) or type(exc).__name__, api_key)
    if (any(isinstance(e, ModelRateLimitError) for e in chain) or status == 429
            or status_name == "RESOURCE_EXHAUSTED"):
        return LLMUnavailable(f"Gemini model {model} refused the request for rate limits "
                              f"or quota: {cause}", code="llm_rate_limited", details=details)
    return LLMUnavailable(f"Gemini model {model} failed: {cause}", code="llm_unavailable",
                          details=details)


def to_chat_reply(answer: BaseMessage, *, model: str) -> ChatReply:
    """The ChatReply of a LangChain answer: its text (stripped), the model name from
    ``response_metadata["model_name"]`` (Gemini's ``modelVersion``; ``model`` when absent or
    empty) and the token counts from ``usage_metadata`` (``input_tokens``/``output_tokens``,
    None when absent).

    Raises:
        LLMUnavailable: ``llm_empty_reply`` when the answer has no text (blocked by a safety
            filter, cut at the token limit while thinking, ...); ``details.finish_reason``
            says why when Gemini told.
    """
    text = answer.text.strip()
    metadata = answer.response_metadata or {}
    if not text:
        finish = metadata.get("finish_reason")
        raise LLMUnavailable(
            f"Gemini model {model} returned an empty reply"
            + (f" (finish reason {finish})" if finish else ""),
            code="llm_empty_reply", details={"model": model, "finish_reason": finish})
    usage = getattr(answer, "usage_metadata", None) or {}
    return ChatReply(
        text=text,
        model=str(metadata.get("model_name") or model),
        tokens_in=usage.get("input_tokens"),
        tokens_out=usage.get("output_tokens"),
    )


class GeminiChatModel(ChatModel):
    """A :class:`~notibot.application.ports.ChatModel` answered by Google Gemini through
    ``langchain_google_genai.ChatGoogleGenerativeAI`` (REST, ``generateContent``).

    Building it opens nothing and needs no event loop: the LangChain model (and its
    google-genai client) is created on the first :meth:`generate` of each event loop and
    reused by later calls in that loop. One instance may serve several loops (an API server
    and a worker thread, or successive ``asyncio.run`` calls); call :meth:`close` in each loop
    before it ends. The client of a loop that ended without :meth:`close` is never reused: it
    is dropped on the next call and its sockets are left to the garbage collector (with
    ResourceWarnings). Thread-safe.

    Parameters:
        api_key: the Gemini API key (NOTIBOT_GEMINI_API_KEY or GOOGLE_API_KEY); sent as the
            ``x-goog-api-key`` header, never logged or put in error messages.
        model: the model name, e.g. ``gemini-2.5-flash`` (NOTIBOT_GEMINI_MODEL).
        temperature: sampling temperature, 0..2 (``generationConfig.temperature``).
        max_tokens: longest reply in tokens (``generationConfig.maxOutputTokens``).
        timeout: seconds one :meth:`generate` may take in total, no retries.
        base_url: the API root (a gateway, or a local stub in tests); None: Google's
            ``https://generativelanguage.googleapis.com/``. google-genai appends
            ``v1beta/models/{model}:generateContent``.

    Raises:
        ValueError: an empty api_key or model, or a non-positive timeout or max_tokens.
    """

    def __init__(self, *, api_key: str, model: str, temperature: float, max_tokens: int,
                 timeout: float, base_url: str | None = None) -> None:
        if not api_key:
            raise ValueError("a Gemini API key is required")
        if not model:
            raise ValueError("a Gemini model name is required")
        if timeout <= 0:
            raise ValueError("timeout must be positive (seconds)")
        if max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")
        self.name = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.base_url = base_url
        self._api_key = api_key
        self._lock = threading.Lock()
        self._models: dict[asyncio.AbstractEventLoop, ChatGoogleGenerativeAI] = {}

    def __repr__(self) -> str:
        return (f"GeminiChatModel(model={self.name!r}, base_url={self.base_url!r}, "
                f"timeout={self.timeout!r})")

    def _build(self) -> ChatGoogleGenerativeAI:
        return ChatGoogleGenerativeAI(
            model=self.name,
            google_api_key=self._api_key,
            base_url=self.base_url,
            temperature=self.temperature,
            max_output_tokens=self.max_tokens,
            timeout=self.timeout,
            max_retries=1,  # google-genai: 1 attempt, no retry (0 would mean its default)
            disable_streaming=True,  # always one generateContent call
        )

    def _model_for_running_loop(self) -> ChatGoogleGenerativeAI:
        """The LangChain model of the running loop, built on first use; models of closed
        loops are dropped (their connections died with the loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            for stale in [other for other in self._models if other.is_closed()]:
                del self._models[stale]
            llm = self._models.get(loop)
            if llm is None:
                llm = self._models[loop] = self._build()
            return llm

    async def generate(self, request: ChatRequest) -> ChatReply:
        """Ask Gemini for the reply to ``request.messages`` (``request.language`` and
        ``request.facts`` are not sent: the prompt already carries them as text).

        Returns:
            ChatReply with the reply text, the model version Gemini reports
            (``modelVersion``; the configured name when absent), and the prompt/reply token
            counts from ``usageMetadata`` (None when absent).

        Raises:
            LLMUnavailable: ``llm_timeout`` (no answer within ``timeout`` seconds),
                ``llm_rate_limited`` (HTTP 429 / RESOURCE_EXHAUSTED), ``llm_empty_reply``
                (no text, e.g. blocked by safety filters or only thoughts), ``llm_unavailable``
                (any other provider or network error).
            ValueError: a message role other than system, user or assistant.
        """
        messages = to_langchain_messages(request.messages)
        try:
            llm = self._model_for_running_loop()
            async with asyncio.timeout(self.timeout):
                answer = await llm.ainvoke(messages)
        except Exception as exc:  # every provider/network failure becomes LLMUnavailable
            error = translate_gemini_error(exc, model=self.name, timeout=self.timeout,
                                           api_key=self._api_key)
            logger.warning("gemini call failed: %s (%s)", error.message, error.code)
            raise error from exc
        return to_chat_reply(answer, model=self.name)

    async def close(self) -> None:
        """Close the clients of the running loop (and forget those of closed loops). Models
        used by another, still running loop stay: close them from that loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            for stale in [other for other in self._models if other.is_closed()]:
                del self._models[stale]
            llm = self._models.pop(loop, None)
        if llm is not None:
            try:
                await llm.aclose()
            except Exception as exc:  # closing must not fail a shutdown
                logger.debug("closing the Gemini client failed: %r", exc)
