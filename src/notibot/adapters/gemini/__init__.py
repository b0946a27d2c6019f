"""The Gemini ChatModel (Google Gemini through langchain-google-genai, one client per event
loop) and the translation of its failures into :class:`~notibot.domain.LLMUnavailable`."""

from notibot.adapters.gemini.model import (
    GeminiChatModel,
    to_chat_reply,
    to_langchain_messages,
    translate_gemini_error,
)

__all__ = [
    "GeminiChatModel", "to_chat_reply", "to_langchain_messages", "translate_gemini_error",
]
