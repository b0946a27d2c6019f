"""The offline ChatModel: a deterministic stand-in that needs no key and no network.

It does not read the prose prompt: it answers from ``request.facts`` (the data the context
template was rendered from) and the customer's last message, in Vietnamese when
``request.language`` is ``vi`` and in English otherwise. Every reply says that it is not an
AI model, lists the most recent notifications sent to the customer (or says there are none)
and quotes what the customer wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from notibot.adapters.langchain.trimming import count_prompt_tokens, count_text_tokens
from notibot.application.ports import ChatModel, ChatReply, ChatRequest, PromptMessage

#: How many notifications a reply lists, most recent first.
MAX_LISTED = 3
#: Longest quote of the customer's message, characters.
MAX_QUOTE_CHARS = 200

_TEXT = {
    "en": {
        "hello": "Hello {name}!",
        "hello_anonymous": "Hello!",
        "disclaimer": "I am notibot's offline assistant, not an AI model.",
        "recent_one": "The most recent notification sent to you:",
        "recent_many": "The {count} most recent notifications sent to you:",
        "none": "No notifications have been sent to you yet.",
        "item": '"{subject}" (campaign {campaign})',
        "status": "{status}",
        "date": "on {date}",
        "channel": "by {channel}",
        "no_subject": "(no subject)",
        "quote": 'You wrote: "{text}"',
        "closing": "A member of our team will follow up if you need more help.",
    },
    "vi": {
        "hello": "Xin chào {name}!",
        "hello_anonymous": "Xin chào!",
        "disclaimer": "Tôi là trợ lý ngoại tuyến của notibot, không phải mô hình AI.",
        "recent_one": "Thông báo gần đây nhất đã gửi cho bạn:",
        "recent_many": "{count} thông báo gần đây nhất đã gửi cho bạn:",
        "none": "Chưa có thông báo nào được gửi cho bạn.",
        "item": '"{subject}" (chiến dịch {campaign})',
        "status": "{status}",
        "date": "ngày {date}",
        "channel": "qua {channel}",
        "no_subject": "(không có tiêu đề)",
        "quote": 'Bạn đã viết: "{text}"',
        "closing": "Nhân viên của chúng tôi sẽ liên hệ nếu bạn cần thêm hỗ trợ.",
    },
}

_STATUS_VI = {
    "sent": "đã gửi",
    "queued": "đang chờ gửi",
    "failed": "gửi không thành công",
    "skipped": "đã bỏ qua",
}


class OfflineChatModel(ChatModel):
    """A :class:`~notibot.application.ports.ChatModel` that answers without any AI model.

    Deterministic: the same request always gets the same reply; no I/O, no clock, no
    randomness. The reply (Vietnamese for ``language`` ``vi`` / ``vi-VN``, English otherwise)
    greets the customer by ``facts["customer"]["full_name"]`` (else ``first_name``, else
    ``name``), says it is notibot's offline assistant and not an AI model, lists the
    :data:`MAX_LISTED` most recent ``facts["notifications"]`` (newest ``sent_at`` first: the
    subject, campaign, status, date and channel) or says none were sent, and quotes the last
    ``user`` message.

    Tokens are counted with the PromptTrimmer's approximate rule
    (:func:`notibot.adapters.langchain.trimming.count_prompt_tokens`: per message
    ``ceil((characters of content + role) / 4) + 3``): ``tokens_in`` for the prompt,
    ``tokens_out`` for the reply as one assistant message.

    Parameters:
        name: the model name reported in every reply (default ``notibot-offline``).
    """

    def __init__(self, name: str = "notibot-offline") -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"OfflineChatModel(name={self.name!r})"

    async def generate(self, request: ChatRequest) -> ChatReply:
        """Answer ``request`` from its facts and last user message (never fails on missing
        or malformed facts: what cannot be read is left out).

        Returns:
            ChatReply with a non-empty text, ``model`` = ``name``, and approximate
            ``tokens_in``/``tokens_out``.

        Raises:
            ValueError: a message role other than system, user or assistant (from the
                token counter).
        """
        text = compose_reply(request.messages, request.language, request.facts)
        return ChatReply(text=text, model=self.name,
                         tokens_in=count_prompt_tokens(request.messages),
                         tokens_out=count_text_tokens(text))


def compose_reply(messages: Sequence[PromptMessage], language: str,
                  facts: Mapping[str, Any] | None) -> str:
    """The offline reply for a prompt (see :class:`OfflineChatModel`)."""
    lang = "vi" if (language or "").lower().replace("_", "-").split("-")[0] == "vi" else "en"
    text = _TEXT[lang]
    facts = facts if isinstance(facts, Mapping) else {}
    customer = facts.get("customer")
    customer = customer if isinstance(customer, Mapping) else {}

    name = _customer_name(customer)
    parts = [text["hello"].format(name=name) if name else text["hello_anonymous"],
             text["disclaimer"]]

    notifications = _most_recent(facts.get("notifications"))
    if notifications:
        heading = (text["recent_one"] if len(notifications) == 1
                   else text["recent_many"].format(count=len(notifications)))
        items = [f"{i}. {_describe(n, lang)}" for i, n in enumerate(notifications, 1)]
        parts.append(heading + " " + " ".join(items))
    else:
        parts.append(text["none"])

    said = _last_user_message(messages)
    if said:
        parts.append(text["quote"].format(text=said))
    parts.append(text["closing"])
    return " ".join(parts)


def _clean(value: Any) -> str:
    """``value`` as one line of text ("" for None)."""
    if value is None:
        return ""
    return " ".join(str(value).split())


def _customer_name(customer: Mapping[str, Any]) -> str:
    for key in ("full_name", "first_name", "name"):
        name = _clean(customer.get(key))
        if name:
            return name
    return ""


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _most_recent(notifications: Any) -> list[Mapping[str, Any]]:
    """The :data:`MAX_LISTED` newest notification dicts, newest first (undated ones last,
    ties in their given order)."""
    if not isinstance(notifications, Sequence) or isinstance(notifications, str | bytes):
        return []
    items = [n for n in notifications if isinstance(n, Mapping)]

    def newest_first(pair: tuple[int, Mapping[str, Any]]) -> tuple[bool, float, int]:
        index, item = pair
        when = _parse_time(item.get("sent_at"))
        return (when is None, -when.timestamp() if when else 0.0, index)

    ranked = sorted(enumerate(items), key=newest_first)
    return [item for _, item in ranked[:MAX_LISTED]]


def _describe(notification: Mapping[str, Any], lang: str) -> str:
    text = _TEXT[lang]
    subject = _clean(notification.get("subject")) or text["no_subject"]
    campaign = _clean(notification.get("campaign")) or "-"
    pieces = [text["item"].format(subject=subject, campaign=campaign)]
    status = _clean(notification.get("status"))
    if status:
        if lang == "vi":
            status = _STATUS_VI.get(status.lower(), status)
        pieces.append(text["status"].format(status=status))
    sent_at = notification.get("sent_at")
    when = _parse_time(sent_at)
    if when is not None:
        shown = when.strftime("%d/%m/%Y") if lang == "vi" else when.strftime("%Y-%m-%d")
        pieces.append(text["date"].format(date=shown))
    elif _clean(sent_at):
        pieces.append(text["date"].format(date=_clean(sent_at)))
    channel = _clean(notification.get("channel"))
    if channel:
        pieces.append(text["channel"].format(channel=channel))
    details = " ".join(pieces[1:])
    return f"{pieces[0]}, {details}." if details else f"{pieces[0]}."


def _last_user_message(messages: Sequence[PromptMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            said = _clean(message.content)
            if len(said) > MAX_QUOTE_CHARS:
                said = said[:MAX_QUOTE_CHARS].rstrip() + "..."
            return said
    return ""
