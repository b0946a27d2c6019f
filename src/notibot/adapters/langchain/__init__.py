"""LangChain-core helpers that are not tied to a provider: the PromptTrimmer on
``trim_messages`` and the approximate token counter shared with the offline model."""

from notibot.adapters.langchain.trimming import (
    LangChainPromptTrimmer,
    count_prompt_tokens,
    count_text_tokens,
    to_langchain_message,
    trim_prompt,
)

__all__ = [
    "LangChainPromptTrimmer", "count_prompt_tokens", "count_text_tokens",
    "to_langchain_message", "trim_prompt",
]
