"""OfflineChatModel: deterministic replies from the request's facts, in Vietnamese or
English, that say they come from no AI model and name the latest notifications."""

from __future__ import annotations

from typing import Any

import pytest

from notibot.adapters.langchain import count_prompt_tokens, count_text_tokens
from notibot.adapters.offline import MAX_LISTED, OfflineChatModel
from notibot.application.ports import ChatModel, ChatRequest, PromptMessage

CUSTOMER = {"full_name": "Nguyễn Văn An", "email": "an@example.vn", "phone": "+84912345678"}
NOTIFICATIONS = [
    {"campaign": "tet-2026", "subject": "Chúc mừng năm mới", "status": "sent",
     "sent_at": "2026-01-20T08:00:00+00:00", "channel": "email"},
    {"campaign": "flash-sale", "subject": "Giảm 50% hôm nay", "status": "failed",
     "sent_at": "2026-02-03T02:30:00Z", "channel": "email"},
    {"campaign": "welcome", "subject": "Welcome to ABC", "status": "sent",
     "sent_at": "2025-12-01T09:00:00", "channel": "email"},
    {"campaign": "survey", "subject": "Tell us more", "status": "queued",
     "sent_at": "2025-11-15T09:00:00+07:00", "channel": "email"},
]


def chat(text: str = "Shop đã gửi gì cho tôi?", *, language: str = "vi",
         facts: dict[str, Any] | None = None) -> ChatRequest:
    return ChatRequest(
        messages=[PromptMessage("system", "Bạn là trợ lý của cửa hàng ABC."),
                  PromptMessage("user", "Chào shop"),
                  PromptMessage("assistant", "Chào anh An!"),
                  PromptMessage("user", text)],
        language=language,
        facts={"customer": CUSTOMER, "notifications": NOTIFICATIONS} if facts is None
        else facts)


@pytest.fixture
def model() -> OfflineChatModel:
    return OfflineChatModel()


def test_it_is_a_chat_model_named_notibot_offline(model: OfflineChatModel) -> None:
    assert isinstance(model, ChatModel)
    assert model.name == "notibot-offline"
    assert OfflineChatModel("my-bot").name == "my-bot"


async def test_an_english_reply_says_it_is_not_an_ai_model(model: OfflineChatModel) -> None:
    reply = await model.generate(chat("What did you send me?", language="en"))
    assert "I am notibot's offline assistant, not an AI model." in reply.text
    assert reply.text.startswith("Hello Nguyễn Văn An!")
    assert reply.model == "notibot-offline"


@pytest.mark.parametrize("language", ["vi", "vi-VN", "VI"])
async def test_a_vietnamese_reply_says_it_is_not_an_ai_model(
        model: OfflineChatModel, language: str) -> None:
    reply = await model.generate(chat(language=language))
    assert "không phải mô hình AI" in reply.text
    assert reply.text.startswith("Xin chào Nguyễn Văn An!")


async def test_other_languages_get_english(model: OfflineChatModel) -> None:
    reply = await model.generate(chat(language="fr"))
    assert "not an AI model" in reply.text


async def test_the_most_recent_notifications_are_named_newest_first(
        model: OfflineChatModel) -> None:
    reply = await model.generate(chat("What did you send me?", language="en"))
    text = reply.text
    assert f"The {MAX_LISTED} most recent notifications sent to you:" in text
    flash = text.index('"Giảm 50% hôm nay" (campaign flash-sale), failed on 2026-02-03 by email')
    tet = text.index('"Chúc mừng năm mới" (campaign tet-2026), sent on 2026-01-20 by email')
    welcome = text.index('"Welcome to ABC" (campaign welcome), sent on 2025-12-01 by email')
    assert flash < tet < welcome
    assert "survey" not in text  # only the MAX_LISTED newest


async def test_vietnamese_dates_and_statuses(model: OfflineChatModel) -> None:
    reply = await model.generate(chat())
    assert ('"Giảm 50% hôm nay" (chiến dịch flash-sale), gửi không thành công ngày 03/02/2026 '
            'qua email') in reply.text
    assert '"Chúc mừng năm mới" (chiến dịch tet-2026), đã gửi ngày 20/01/2026' in reply.text


async def test_no_notifications_is_said_so(model: OfflineChatModel) -> None:
    english = await model.generate(chat(language="en",
                                        facts={"customer": CUSTOMER, "notifications": []}))
    vietnamese = await model.generate(chat(facts={"customer": CUSTOMER}))
    assert "No notifications have been sent to you yet." in english.text
    assert "Chưa có thông báo nào được gửi cho bạn." in vietnamese.text


async def test_the_customers_last_message_is_quoted(model: OfflineChatModel) -> None:
    reply = await model.generate(chat("Mã   giảm giá\ncòn hạn không?"))
    assert 'Bạn đã viết: "Mã giảm giá còn hạn không?"' in reply.text
    long = await model.generate(chat("x" * 1000, language="en"))
    assert 'You wrote: "' + "x" * 200 + '..."' in long.text


async def test_the_same_request_gets_the_same_reply(model: OfflineChatModel) -> None:
    first = await model.generate(chat())
    again = await model.generate(chat())
    other_instance = await OfflineChatModel().generate(chat())
    assert first == again == other_instance


async def test_tokens_follow_the_trimmers_rule(model: OfflineChatModel) -> None:
    request = chat()
    reply = await model.generate(request)
    assert reply.tokens_in == count_prompt_tokens(request.messages)
    assert reply.tokens_out == count_text_tokens(reply.text)
    assert reply.tokens_in > 0 and reply.tokens_out > 0


@pytest.mark.parametrize("facts", [
    {},
    {"customer": None, "notifications": None},
    {"customer": "nobody", "notifications": "nothing"},
    {"customer": {}, "notifications": [None, 3, {"subject": None, "sent_at": "yesterday"}]},
], ids=["empty", "nones", "wrong-types", "junk-items"])
async def test_malformed_facts_still_get_an_answer(
        model: OfflineChatModel, facts: dict[str, Any]) -> None:
    reply = await model.generate(chat(language="en", facts=facts))
    assert reply.text.startswith("Hello!")
    assert "not an AI model" in reply.text


async def test_a_notification_without_a_parsable_date_is_listed_last(
        model: OfflineChatModel) -> None:
    facts = {"customer": {"first_name": "An"}, "notifications": [
        {"campaign": "odd", "subject": "Undated", "status": "sent", "sent_at": "soon"},
        {"campaign": "tet", "subject": "Dated", "status": "sent",
         "sent_at": "2026-01-20T08:00:00Z"},
    ]}
    reply = await model.generate(chat(language="en", facts=facts))
    assert reply.text.startswith("Hello An!")
    assert reply.text.index('"Dated"') < reply.text.index('"Undated" (campaign odd), sent on soon')


async def test_without_a_user_message_nothing_is_quoted(model: OfflineChatModel) -> None:
    reply = await model.generate(ChatRequest(
        messages=[PromptMessage("system", "rules")], language="en", facts={}))
    assert "You wrote" not in reply.text
    assert reply.text
