"""AI chat use cases: a customer's message in, the model's reply out, both remembered.

One turn (:meth:`ChatService.send`):

1. the customer (404 when unknown) and the conversation: the given ``session_id`` (created
   when new), else the customer's latest conversation (where campaign notifications land),
   else a new one;
2. the history: the short-term window; when it expired, the long-term tail refills it;
3. the customer's recent deliveries (campaign, subject, status, date);
4. the active system and context prompt templates of the reply language (the customer's
   sticky A/B variant) rendered with the profile, the notifications and the summary;
5. the prompt — system, context, history oldest first without duplicates, the new message —
   trimmed to the token budget (oldest history dropped first);
6. the model's reply; the customer's message is stored in long- and short-term memory before
   the model is asked, the reply after it answered. When the model fails the call raises
   :class:`~notibot.domain.LLMUnavailable` (HTTP 503) and no assistant message is stored.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from notibot.application.ports import (
    MAX_PAGE_SIZE,
    CampaignRepository,
    ChatModel,
    ChatRequest,
    Clock,
    ConversationRepository,
    CustomerRepository,
    DeliveryFilter,
    DeliveryRepository,
    IdGenerator,
    Page,
    PromptMessage,
    PromptTrimmer,
    ShortTermMemory,
)
from notibot.application.services.jobs import JobContext, JobService
from notibot.application.services.paging import check_page
from notibot.application.services.prompts import (
    PromptService,
    customer_variables,
    language_name,
)
from notibot.domain import (
    Conflict,
    Conversation,
    Customer,
    InvalidInput,
    Job,
    JobKind,
    LLMUnavailable,
    Message,
    MessageRole,
    NotFound,
    PromptKind,
)
from notibot.domain.conversation import MESSAGE_MAX_LENGTH
from notibot.domain.rules import normalize_language

#: How many recent deliveries the context template gets.
RECENT_NOTIFICATIONS = 5
#: Newest long-term messages loaded with the conversation on each turn (a retried job's
#: message, the last message's time, notifications newer than the short-term window).
RECENT_LONG_TERM = 10
#: Messages ``GET /messages/history`` returns when no limit is given.
DEFAULT_HISTORY = 50
#: Sessions a customer's merged history and stats look at, at most.
MAX_SESSIONS = MAX_PAGE_SIZE
#: Characters of a notification's rendered text placed in the prompt history.
NOTIFICATION_EXCERPT = 1_000

#: The smallest step between two messages of a turn (BSON dates keep milliseconds).
_TICK = timedelta(milliseconds=1)
_SESSION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@dataclass(slots=True, frozen=True)
class ChatTurn:
    """The outcome of one chat turn (the body of ``POST /messages/send``).

    Attributes:
        session_id: the conversation's id.
        message_id: the assistant message's id.
        customer_message_id: the stored customer message's id.
        reply: the reply text.
        model: the model's name.
        usage: ``{"tokens_in": int | None, "tokens_out": int | None}``.
        latency_ms: the model call's wall time, milliseconds.
        prompt_template: ``{id, version, variant}`` of the system template used.
        context_template: ``{id, version, variant}`` of the context template used.
        language: the reply language (ISO 639-1).
        created_at: the reply's time (UTC).
    """

    session_id: str
    message_id: str
    customer_message_id: str
    reply: str
    model: str
    usage: dict[str, int | None]
    latency_ms: float
    prompt_template: dict[str, Any]
    context_template: dict[str, Any]
    language: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``created_at`` as ISO 8601)."""
        return {
            "session_id": self.session_id, "message_id": self.message_id,
            "customer_message_id": self.customer_message_id, "reply": self.reply,
            "model": self.model, "usage": dict(self.usage), "latency_ms": self.latency_ms,
            "prompt_template": dict(self.prompt_template),
            "context_template": dict(self.context_template), "language": self.language,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(slots=True, frozen=True)
class SessionSummary:
    """One conversation of a customer, without its messages.

    Attributes:
        session_id, customer_id, created_at, updated_at: the conversation's.
        message_count: messages in long-term memory.
        last_message: the newest message, or None.
    """

    session_id: str
    customer_id: str
    created_at: datetime
    updated_at: datetime
    message_count: int
    last_message: Message | None


@dataclass(slots=True, frozen=True)
class HistoryPage:
    """Messages in time order (oldest first) and the cursor to the older ones.

    Attributes:
        items: ``(session_id, message)`` pairs, oldest first.
        has_more: older messages exist before ``items[0]``.
    """

    items: list[tuple[str, Message]] = field(default_factory=list)
    has_more: bool = False


class ChatService:
    """Chat use cases: send a message (now, or as a ``chat_reply`` job), read the history and
    the sessions, forget a session, and look at what memory holds.

    Parameters:
        token_budget: NOTIBOT_PROMPT_TOKEN_BUDGET, the largest prompt in tokens.
    """

    def __init__(
        self, *, customers: CustomerRepository, conversations: ConversationRepository,
        deliveries: DeliveryRepository, campaigns: CampaignRepository,
        short_term: ShortTermMemory, prompts: PromptService, model: ChatModel,
        trimmer: PromptTrimmer, ids: IdGenerator, clock: Clock,
        token_budget: int,
    ) -> None:
        self._customers = customers
        self._conversations = conversations
        self._deliveries = deliveries
        self._campaigns = campaigns
        self._short_term = short_term
        self._prompts = prompts
        self._model = model
        self._trimmer = trimmer
        self._ids = ids
        self._clock = clock
        self._budget = token_budget

    # -- one turn ---------------------------------------------------------------------------

    async def send(self, customer_id: str, text: str, *, session_id: str | None = None,
                   language: str | None = None, message_id: str | None = None) -> ChatTurn:
        """Answer the customer's message ``text`` (see the module).

        Parameters:
            session_id: the conversation; a new id starts a conversation with that id.
            language: answer in this language (ISO 639-1) instead of the customer's.
            message_id: the id to store the customer's message under; when the
                conversation already holds it (a retried job), it is not stored twice.

        Raises:
            NotFound: ``customer_not_found``.
            InvalidInput: ``missing_message``, ``message_too_long``, ``invalid_language``,
                ``invalid_session_id``.
            Conflict: ``session_customer_mismatch`` (the session is another customer's).
            LLMUnavailable: the model failed (``llm_unavailable``, ``llm_timeout``,
                ``llm_rate_limited``, ...); the customer's message is kept.
        """
        text = check_message(text)
        language = normalize_language(language) if language else None
        customer = await self._customers.get(customer_id)
        language = language or customer.language or "en"
        conversation, stored = await self._conversation(customer, session_id)
        history = await self._history(conversation, stored)
        now = await self._next_time(conversation)
        incoming = Message(id=message_id or await self._ids.new_id(), role=MessageRole.CUSTOMER,
                           content=text, created_at=now, metadata={"language": language})
        in_window: list[Message] = []  # what the short-term window still lacks of this turn
        if any(m.id == incoming.id for m in conversation.messages):
            history = [m for m in history if m.id != incoming.id]  # a re-run of the job
        else:
            await self._store(conversation, stored, [incoming])
            stored = True
            in_window.append(incoming)

        notifications = await self._notifications(customer, conversation)
        variables = {"customer": customer_variables(customer), "notifications": notifications,
                     "summary": conversation.summary, "language": language,
                     "language_name": language_name(language)}
        system = await self._prompts.render_for(
            await self._prompts.active(PromptKind.SYSTEM, language), variables,
            customer_id=customer.id)
        context = await self._prompts.render_for(
            await self._prompts.active(PromptKind.CONTEXT, language), variables,
            customer_id=customer.id)
        prompt = [PromptMessage("system", system.text)]
        if context.text.strip():
            prompt.append(PromptMessage("system", context.text))
        prompt += [to_prompt_message(m) for m in history]
        prompt.append(PromptMessage("user", incoming.content))
        prompt = await self._trimmer.trim(prompt, self._budget)

        request = ChatRequest(messages=prompt, language=language,
                              facts={"customer": variables["customer"],
                                     "notifications": notifications,
                                     "summary": conversation.summary})
        started = time.perf_counter()
        try:
            reply = await self._model.generate(request)
            if not reply.text.strip():
                raise LLMUnavailable(f"model {reply.model} answered nothing",
                                     code="llm_empty_reply")
        except BaseException:
            if in_window:  # the customer's message is kept in both memories
                await self._short_term.append(conversation.id, in_window)
            raise
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        replied_at = max(await self._clock.now(), incoming.created_at + _TICK)
        answer = Message(
            id=await self._ids.new_id(), role=MessageRole.ASSISTANT, content=reply.text,
            created_at=replied_at, metadata={
                "model": reply.model, "tokens_in": reply.tokens_in,
                "tokens_out": reply.tokens_out, "latency_ms": latency_ms,
                "language": language, "prompt_template": system.reference(),
                "context_template": context.reference(), "in_reply_to": incoming.id})
        await self._store(conversation, stored, [answer])
        await self._short_term.append(conversation.id, [*in_window, answer])
        return ChatTurn(
            session_id=conversation.id, message_id=answer.id, customer_message_id=incoming.id,
            reply=reply.text, model=reply.model,
            usage={"tokens_in": reply.tokens_in, "tokens_out": reply.tokens_out},
            latency_ms=latency_ms, prompt_template=system.reference(),
            context_template=context.reference(), language=language, created_at=replied_at)

    async def run_job(self, ctx: JobContext) -> dict[str, Any]:
        """The ``chat_reply`` job handler: one :meth:`send` with the job's params; the
        customer's message id is fixed by :meth:`ChatJobs.submit`, so a re-run stores it
        once."""
        params = ctx.params
        turn = await self.send(params["customer_id"], params["message"],
                               session_id=params.get("session_id"),
                               language=params.get("language"),
                               message_id=params.get("message_id"))
        await ctx.report(processed=1, replied=1)
        return turn.to_dict()

    # -- reading and forgetting -------------------------------------------------------------

    async def history(self, *, customer_id: str | None = None, session_id: str | None = None,
                      limit: int | None = None, before: datetime | None = None
                      ) -> HistoryPage:
        """The last ``limit`` messages (default 50, at most 200) created before ``before``,
        oldest first: of one session, or of every session of the customer.

        Raises:
            InvalidInput: ``missing_customer_id`` (neither given), ``invalid_paging``.
            NotFound: ``customer_not_found``, ``conversation_not_found``.
            Conflict: ``session_customer_mismatch``.
        """
        limit, _ = check_page(limit if limit is not None else DEFAULT_HISTORY, 0)
        if session_id is not None:
            if customer_id is not None:
                customer = await self._customers.get(customer_id)
                conversation = await self._owned(customer, session_id, create=False)
            else:
                conversation = await self._conversations.get(session_id)
            conversations = [conversation]
        elif customer_id is not None:
            await self._customers.get(customer_id)
            page = await self._conversations.list_for_customer(
                customer_id, limit=MAX_SESSIONS, offset=0)
            conversations = page.items
        else:
            raise InvalidInput("give customer_id or session_id", code="missing_customer_id",
                               details={"field": "customer_id"})
        items = sorted(((c.id, m) for c in conversations for m in c.messages
                        if before is None or m.created_at < before),
                       key=lambda pair: pair[1].created_at)
        return HistoryPage(items=items[-limit:], has_more=len(items) > limit)

    async def sessions(self, customer_id: str, *, limit: int | None = None,
                       offset: int | None = None) -> Page[SessionSummary]:
        """The customer's conversations, most recently updated first.
        Raises NotFound (``customer_not_found``), InvalidInput (``invalid_paging``)."""
        limit, offset = check_page(limit, offset)
        await self._customers.get(customer_id)
        page = await self._conversations.list_for_customer(customer_id, limit=limit,
                                                           offset=offset)
        return Page(items=[_summary(c) for c in page.items], total=page.total, limit=limit,
                    offset=offset)

    async def delete_session(self, session_id: str) -> None:
        """Forget a conversation in long- and short-term memory.
        Raises NotFound (``conversation_not_found``)."""
        await self._short_term.delete(session_id)  # first: gone even if long-term is not
        await self._conversations.delete(session_id)

    async def memory_stats(self, customer_id: str, *, session_id: str | None = None
                           ) -> dict[str, Any]:
        """What memory holds for the customer: ``{customer_id, session_id, short_term:
        {count, ttl_seconds, max_messages, ttl_max_seconds}, long_term: {messages,
        sessions, session_messages}}`` — the short-term window and ``session_messages`` of
        ``session_id`` or of the latest session (None when the customer has none).

        Raises:
            NotFound: ``customer_not_found``, ``conversation_not_found``.
            Conflict: ``session_customer_mismatch``.
        """
        customer = await self._customers.get(customer_id)
        page = await self._conversations.list_for_customer(customer_id, limit=MAX_SESSIONS,
                                                           offset=0)
        if session_id is not None:
            current: Conversation | None = await self._owned(customer, session_id,
                                                             create=False)
        else:
            current = page.items[0] if page.items else None
        window = (await self._short_term.stats(current.id) if current is not None else None)
        return {
            "customer_id": customer_id,
            "session_id": current.id if current else None,
            "short_term": {
                "count": window.count if window else 0,
                "ttl_seconds": window.ttl_seconds if window else None,
                "max_messages": self._short_term.max_messages,
                "ttl_max_seconds": self._short_term.ttl_seconds,
            },
            "long_term": {
                "messages": sum(len(c.messages) for c in page.items),
                "sessions": page.total,
                "session_messages": len(current.messages) if current else 0,
            },
        }

    # -- helpers ----------------------------------------------------------------------------

    async def session_for(self, customer: Customer, session_id: str | None) -> str:
        """The id of the conversation a turn of ``customer`` goes to: ``session_id`` (checked;
        new or the customer's own), else the customer's latest conversation, else a new id.
        No message is loaded.

        Raises:
            InvalidInput: ``invalid_session_id``.
            Conflict: ``session_customer_mismatch``.
        """
        if session_id is not None:
            return (await self._owned(customer, session_id, tail=0)).id
        latest = await self._conversations.latest_for_customer(customer.id, tail=0)
        return latest.id if latest is not None else await self._ids.new_id()

    async def _owned(self, customer: Customer, session_id: str, *, create: bool = True,
                     tail: int | None = None) -> Conversation:
        """The customer's conversation ``session_id`` (with its newest ``tail`` messages, or
        all); a new unsaved one when unknown and ``create``."""
        if not _SESSION_ID.match(session_id):
            raise InvalidInput("session_id must be 1-128 letters, digits or _ . : -",
                               code="invalid_session_id", details={"field": "session_id"})
        try:
            conversation = await self._conversations.get(session_id, tail=tail)
        except NotFound:
            if not create:
                raise
            now = await self._clock.now()
            return Conversation(id=session_id, customer_id=customer.id, created_at=now,
                                updated_at=now)
        if conversation.customer_id != customer.id:
            raise Conflict(f"session {session_id} belongs to another customer",
                           code="session_customer_mismatch",
                           details={"field": "session_id"})
        return conversation

    async def _conversation(self, customer: Customer,
                            session_id: str | None) -> tuple[Conversation, bool]:
        """The turn's conversation with its newest :data:`RECENT_LONG_TERM` messages, and
        whether it is stored already."""
        if session_id is not None:
            conversation = await self._owned(customer, session_id, tail=RECENT_LONG_TERM)
        else:
            latest = await self._conversations.latest_for_customer(customer.id,
                                                                   tail=RECENT_LONG_TERM)
            if latest is not None:
                return latest, True
            now = await self._clock.now()
            conversation = Conversation(id=await self._ids.new_id(), customer_id=customer.id,
                                        created_at=now, updated_at=now)
        stored = bool(conversation.messages) or await self._exists(conversation.id)
        return conversation, stored

    async def _next_time(self, conversation: Conversation) -> datetime:
        """Now, or just after the conversation's last message when the clock has not moved
        past it: messages of a turn get strictly increasing times, so a ``before`` cursor
        never splits two messages of one time (BSON keeps milliseconds)."""
        now = await self._clock.now()
        if conversation.messages and now <= conversation.messages[-1].created_at:
            now = conversation.messages[-1].created_at + _TICK
        return now

    async def _history(self, conversation: Conversation, stored: bool) -> list[Message]:
        """The conversation so far, oldest first, each message once: the short-term window;
        when it expired, the long-term tail (``NOTIBOT_SHORT_TERM_MAX`` messages) refills it.
        Messages other writers appended to long-term memory only (campaign notifications,
        operators) since the window's oldest message are merged in from the recent
        long-term messages loaded with the conversation."""
        window = await self._short_term.recent(conversation.id)
        if not window and stored:
            tail = (await self._conversations.get(
                conversation.id, tail=self._short_term.max_messages)).messages
            if tail:
                await self._short_term.replace(conversation.id, tail)
            window = tail
        elif window:
            oldest = min(m.created_at for m in window)
            window = window + [m for m in conversation.messages if m.created_at >= oldest]
        seen: set[str] = set()
        unique = []
        for message in sorted(window, key=lambda m: m.created_at):
            if message.id not in seen:
                seen.add(message.id)
                unique.append(message)
        return unique

    async def _store(self, conversation: Conversation, stored: bool,
                     messages: Sequence[Message]) -> None:
        """Append to long-term memory (creating the conversation on its first message when
        not ``stored``). The caller writes the short-term window: once per turn, both
        messages together (or the customer's alone when the model failed)."""
        for message in messages:
            if stored:
                await self._conversations.append(conversation.id, message)
                conversation.append(message)
            else:
                conversation.append(message)
                try:
                    await self._conversations.add(conversation)
                except Conflict:  # a concurrent turn created it first
                    await self._conversations.append(conversation.id, message)
                stored = True

    async def _exists(self, conversation_id: str) -> bool:
        try:
            await self._conversations.get(conversation_id, tail=0)
        except NotFound:
            return False
        return True

    async def _notifications(self, customer: Customer,
                             conversation: Conversation) -> list[dict[str, Any]]:
        """The customer's newest deliveries as ``{campaign, subject, channel, status,
        sent_at, delivery_id, error}`` (subject from the conversation's notification message
        when it was sent)."""
        page = await self._deliveries.list(DeliveryFilter(customer_id=customer.id),
                                           limit=RECENT_NOTIFICATIONS, offset=0)
        subjects = {str(m.metadata.get("delivery_id")): m.metadata.get("subject")
                    for m in conversation.messages if m.role is MessageRole.NOTIFICATION}
        names: dict[str, str | None] = {}
        result = []
        for delivery in page.items:
            if delivery.campaign_id not in names:
                try:
                    names[delivery.campaign_id] = (
                        await self._campaigns.get(delivery.campaign_id)).name
                except NotFound:
                    names[delivery.campaign_id] = None
            when = delivery.sent_at or delivery.updated_at or delivery.created_at
            result.append({
                "campaign": names[delivery.campaign_id],
                "subject": delivery.subject or subjects.get(delivery.id),
                "channel": str(delivery.channel), "status": str(delivery.status),
                "sent_at": when.isoformat(), "delivery_id": delivery.id,
                "error": delivery.last_error or delivery.skip_reason,
            })
        return result


class ChatJobs:
    """The asynchronous variant of a chat turn: a ``chat_reply`` job (``mode=async``)."""

    def __init__(self, *, chat: ChatService, customers: CustomerRepository, jobs: JobService,
                 ids: IdGenerator) -> None:
        self._chat = chat
        self._customers = customers
        self._jobs = jobs
        self._ids = ids

    # -- the asynchronous variant -----------------------------------------------------------

    async def submit(self, customer_id: str, text: str, *, session_id: str | None = None,
                     language: str | None = None, created_by: str | None = None
                     ) -> tuple[Job, str]:
        """Queue a ``chat_reply`` job answering ``text``; return the job and the session id
        (chosen now, so the caller can read the history while the job runs). The job's
        result is :meth:`ChatTurn.to_dict`.

        Raises:
            NotFound, InvalidInput, Conflict: as :meth:`ChatService.send`, checked before queueing.
        """
        text = check_message(text)
        if language:
            language = normalize_language(language)
        customer = await self._customers.get(customer_id)
        session_id = await self._chat.session_for(customer, session_id)
        job = await self._jobs.submit(
            JobKind.CHAT_REPLY.value,
            {"customer_id": customer.id, "message": text, "session_id": session_id,
             "language": language, "message_id": await self._ids.new_id()},
            created_by=created_by, total=1)
        return job, session_id


def check_message(text: Any) -> str:
    """The customer's message, stripped.

    Raises:
        InvalidInput: ``missing_message`` (empty or not text), ``message_too_long`` (more
            than :data:`~notibot.domain.conversation.MESSAGE_MAX_LENGTH` characters).
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("message is required", code="missing_message",
                           details={"field": "message"})
    text = text.strip()
    if len(text) > MESSAGE_MAX_LENGTH:
        raise InvalidInput(f"message is longer than {MESSAGE_MAX_LENGTH} characters",
                           code="message_too_long",
                           details={"field": "message", "max_length": MESSAGE_MAX_LENGTH,
                                    "length": len(text)})
    return text


def to_prompt_message(message: Message) -> PromptMessage:
    """A stored message in a model's terms: the customer's as ``user``; the bot's, an
    operator's (prefixed ``[operator]``) and a notification (prefixed with its campaign and
    subject, text cut to :data:`NOTIFICATION_EXCERPT` characters) as ``assistant``."""
    if message.role is MessageRole.CUSTOMER:
        return PromptMessage("user", message.content)
    if message.role is MessageRole.OPERATOR:
        return PromptMessage("assistant", f"[operator] {message.content}")
    if message.role is MessageRole.NOTIFICATION:
        meta: Mapping[str, Any] = message.metadata
        head = (f"[notification sent by {meta.get('channel') or 'email'}: campaign "
                f"{meta.get('campaign_name') or meta.get('campaign') or '?'}, subject "
                f"{meta.get('subject') or '?'}, on {message.created_at.date().isoformat()}]")
        body = message.content
        if len(body) > NOTIFICATION_EXCERPT:
            body = body[:NOTIFICATION_EXCERPT] + " [...]"
        return PromptMessage("assistant", f"{head}\n{body}")
    return PromptMessage("assistant", message.content)


def _summary(conversation: Conversation) -> SessionSummary:
    return SessionSummary(
        session_id=conversation.id, customer_id=conversation.customer_id,
        created_at=conversation.created_at, updated_at=conversation.updated_at,
        message_count=len(conversation.messages),
        last_message=conversation.messages[-1] if conversation.messages else None)


__all__ = ["ChatJobs", "ChatService", "ChatTurn", "HistoryPage", "SessionSummary", "check_message",
           "to_prompt_message"]
