"""``/messages/*``: AI chat with customers — answer a message (now, or as a ``chat_reply``
job), read the history and the sessions, forget a session, and look at what memory holds.

The use cases are :class:`~notibot.application.services.chat.ChatService` and
:class:`~notibot.application.services.chat.ChatJobs`.
"""

from __future__ import annotations

import falcon
from falcon.asgi import Request, Response
from spectree import Tag

from notibot.application.services.chat import ChatJobs, ChatService
from notibot.domain import InvalidInput
from notibot.entrypoints.http.middleware import ADMIN
from notibot.entrypoints.http.openapi import endpoint
from notibot.entrypoints.http.schemas import (
    ChatAccepted,
    ChatHistoryOut,
    ChatHistoryQuery,
    ChatMode,
    ChatSendQuery,
    ChatSendRequest,
    ChatSessionPage,
    ChatSessionQuery,
    ChatTurnOut,
    MemoryStatsOut,
    MemoryStatsQuery,
    chat_history_json,
    chat_session_page_json,
    chat_turn_json,
    memory_stats_json,
)
from notibot.entrypoints.http.validation import parse_body, parse_query

TAG_MESSAGES = Tag(name="messages", description=(
    "AI chat: customers' messages answered by the chat model, grounded in their profile, "
    "the conversation so far and the notifications they received; history, sessions and "
    "memory."))


def _mode(query: ChatMode | None, body: ChatMode | None) -> ChatMode:
    """The send mode from the query string and the body (default ``sync``).

    Raises:
        InvalidInput: ``conflicting_mode`` when both are given and differ.
    """
    if query is not None and body is not None and query != body:
        raise InvalidInput(f"mode is {query!r} in the query string but {body!r} in the body",
                           code="conflicting_mode", details={"field": "mode"})
    return query or body or "sync"


class MessageSend:
    """``POST /messages/send``."""

    def __init__(self, chat: ChatService, chat_jobs: ChatJobs) -> None:
        self._chat = chat
        self._jobs = chat_jobs

    @endpoint(tag=TAG_MESSAGES, operation_id="sendMessage", query=ChatSendQuery,
              body=ChatSendRequest, response=ChatTurnOut, errors=[400, 404, 409, 503],
              other_responses={202: (ChatAccepted, "`mode=async`: the reply is computed by "
                                                   "a `chat_reply` job")})
    async def on_post(self, req: Request, resp: Response) -> None:
        """Answer a customer's message

        Stores the customer's `message` in the conversation `session_id` (default: the
        customer's latest conversation, where campaign notifications land, else a new one),
        builds the prompt — the active system and context templates of the reply language
        (the customer's sticky A/B variant) with the profile and the recent notifications
        with their delivery status, then the history oldest first, then the message, trimmed
        to NOTIBOT_PROMPT_TOKEN_BUDGET — asks the chat model and stores its reply.

        `mode=sync` (default) answers 200 with the reply: `{session_id, message_id,
        customer_message_id, reply, model, usage {tokens_in, tokens_out}, latency_ms,
        prompt_template {id, version, variant}, context_template {id, version, variant},
        language, created_at}`. `mode=async` (query string or body) queues a `chat_reply`
        job and answers 202 `{job_id, session_id, customer_message_id, status_url}` with a
        `Location` header: the job's `result` is the body of a sync answer, and the reply
        appears in `GET /messages/history`.

        The reply is in `language` when given, else in the customer's language, else
        English.

        Refused: an unknown customer (404 `customer_not_found`); an empty message (422
        `missing_message`) or one longer than 8000 characters (422 `message_too_long`); a
        bad `language` (422 `invalid_language`) or `session_id` (422 `invalid_session_id`);
        `mode` given twice with different values (422 `conflicting_mode`); a session of
        another customer (409 `session_customer_mismatch`). When the model fails, times out
        or is rate-limited the answer is 503 with its code (`llm_unavailable`, `llm_timeout`,
        `llm_rate_limited`, `llm_empty_reply`): the customer's message stays in the history
        and no assistant message is stored.
        """
        query = parse_query(req, ChatSendQuery)
        body = await parse_body(req, ChatSendRequest)
        if _mode(query.mode, body.mode) == "async":
            user = req.context.user
            job, session_id = await self._jobs.submit(
                body.customer_id, body.message, session_id=body.session_id,
                language=body.language, created_by=user.id if user is not None else None)
            status_url = f"{req.root_path}/tasks/{job.id}"
            resp.status = falcon.HTTP_202
            resp.location = status_url
            resp.media = ChatAccepted(
                job_id=job.id, session_id=session_id,
                customer_message_id=job.params["message_id"], status_url=status_url,
            ).model_dump(mode="json")
            return
        turn = await self._chat.send(body.customer_id, body.message,
                                     session_id=body.session_id, language=body.language)
        resp.media = chat_turn_json(turn)


class MessageHistory:
    """``GET /messages/history``."""

    def __init__(self, chat: ChatService) -> None:
        self._chat = chat

    @endpoint(tag=TAG_MESSAGES, operation_id="getMessageHistory", query=ChatHistoryQuery,
              response=ChatHistoryOut, errors=[404, 409])
    async def on_get(self, req: Request, resp: Response) -> None:
        """Read a conversation

        The newest `limit` messages (default 50, at most 200) created before `before`, in
        chronological order (oldest first): of the session `session_id`, or merged from
        every session of `customer_id`. Each item is `{id, session_id, role, content,
        created_at, metadata}`; roles are `customer`, `assistant` (metadata: model, tokens,
        latency, prompt template), `notification` (a delivered campaign: campaign, subject,
        delivery id) and `operator`. When `has_more`, pass `next_before` as `before` to read
        the older messages.

        Refused: neither `customer_id` nor `session_id` (422 `missing_customer_id`); an
        unknown customer (404 `customer_not_found`) or session (404
        `conversation_not_found`); a session that is not the customer's (409
        `session_customer_mismatch`).
        """
        query = parse_query(req, ChatHistoryQuery)
        page = await self._chat.history(customer_id=query.customer_id,
                                        session_id=query.session_id, limit=query.limit,
                                        before=query.before)
        resp.media = chat_history_json(page)


class MessageSession:
    """``DELETE /messages/history/{session_id}``."""

    access = {"DELETE": ADMIN}

    def __init__(self, chat: ChatService) -> None:
        self._chat = chat

    @endpoint(tag=TAG_MESSAGES, operation_id="deleteMessageSession", status=204,
              errors=[404])
    async def on_delete(self, req: Request, resp: Response, session_id: str) -> None:
        """Forget a conversation

        Deletes the session and all its messages from long-term memory (the conversation
        store) and its short-term window. An unknown session answers 404
        `conversation_not_found`. Deliveries stay in the notification history.
        """
        await self._chat.delete_session(session_id)
        resp.status = falcon.HTTP_204


class MessageSessions:
    """``GET /messages/sessions``."""

    def __init__(self, chat: ChatService) -> None:
        self._chat = chat

    @endpoint(tag=TAG_MESSAGES, operation_id="listMessageSessions", query=ChatSessionQuery,
              response=ChatSessionPage, errors=[404])
    async def on_get(self, req: Request, resp: Response) -> None:
        """List a customer's conversations

        The customer's sessions, most recently updated first, each `{session_id,
        customer_id, created_at, updated_at, message_count, last_message}`, with the total
        number. An unknown customer answers 404 `customer_not_found`.
        """
        query = parse_query(req, ChatSessionQuery)
        page = await self._chat.sessions(query.customer_id, limit=query.limit,
                                         offset=query.offset)
        resp.media = chat_session_page_json(page)


class MemoryStats:
    """``GET /messages/memory/stats``."""

    def __init__(self, chat: ChatService) -> None:
        self._chat = chat

    @endpoint(tag=TAG_MESSAGES, operation_id="getMemoryStats", query=MemoryStatsQuery,
              response=MemoryStatsOut, errors=[404, 409])
    async def on_get(self, req: Request, resp: Response) -> None:
        """What memory holds for a customer

        `short_term`: the window of recent messages the prompt is built from, for
        `session_id` or the customer's latest session — `count`, `ttl_seconds` left (null
        without a window), and the configured `max_messages` (NOTIBOT_SHORT_TERM_MAX) and
        `ttl_max_seconds` (NOTIBOT_SHORT_TERM_TTL); when it has expired, the next message
        refills it from long-term memory. `long_term`: `messages` and `sessions` of the
        customer, `session_messages` of that session.

        Refused: an unknown customer (404 `customer_not_found`) or session (404
        `conversation_not_found`); a session that is not the customer's (409
        `session_customer_mismatch`).
        """
        query = parse_query(req, MemoryStatsQuery)
        resp.media = memory_stats_json(
            await self._chat.memory_stats(query.customer_id, session_id=query.session_id))
