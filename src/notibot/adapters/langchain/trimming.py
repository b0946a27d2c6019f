"""The PromptTrimmer on LangChain's ``trim_messages`` and approximate token counter.

Token rule (``langchain_core.messages.utils.count_tokens_approximately`` with its defaults),
per message: ``ceil((len(content) + len(role)) / 4) + 3``, where role is the OpenAI role name
(``system``, ``user``, ``assistant``) and lengths are in characters; a prompt counts the sum
of its messages. It is an estimate (about 4 characters of English per token; Vietnamese with
diacritics usually needs more tokens per character) that needs no tokenizer and no network.
The offline chat model reports its tokens with the same rule (:func:`count_prompt_tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages import trim_messages as lc_trim_messages
from langchain_core.messages.utils import count_tokens_approximately

from notibot.application.ports import PromptMessage, PromptTrimmer

_ROLES: dict[str, type[BaseMessage]] = {
    "system": SystemMessage,
    "user": HumanMessage,
    "assistant": AIMessage,
}


def to_langchain_message(message: PromptMessage, *, message_id: str | None = None) -> BaseMessage:
    """The LangChain message of a prompt message (system -> SystemMessage, user ->
    HumanMessage, assistant -> AIMessage), optionally tagged with ``message_id``.

    Raises:
        ValueError: another role.
    """
    try:
        kind = _ROLES[message.role]
    except KeyError:
        raise ValueError(f"unknown prompt role {message.role!r} "
                         "(expected system, user or assistant)") from None
    return kind(content=message.content, id=message_id)


def count_prompt_tokens(messages: Sequence[PromptMessage]) -> int:
    """Approximate tokens of ``messages`` (the rule in this module's docstring); 0 for none.

    Raises:
        ValueError: a message role other than system, user or assistant.
    """
    if not messages:
        return 0
    return count_tokens_approximately([to_langchain_message(m) for m in messages])


def count_text_tokens(text: str, role: str = "assistant") -> int:
    """Approximate tokens of one message with ``text`` and ``role`` (same rule)."""
    return count_prompt_tokens([PromptMessage(role=role, content=text)])


class LangChainPromptTrimmer(PromptTrimmer):
    """Fits a prompt into a token budget with ``langchain_core.messages.trim_messages``
    (``strategy="last"``, ``start_on="human"``, ``allow_partial=False``) and the approximate
    counter described in the module docstring. Pure computation: no I/O, no state.

    The prompt is read as: leading system messages, the history, the last message (the
    customer's new one). The leading system messages and the last message are always kept;
    their tokens are taken from the budget and ``trim_messages`` keeps the newest history
    that fits in the rest (``include_system`` is not used because it keeps only one system
    message, at index 0). After trimming, the kept history starts with a ``user`` message
    (``start_on``), so the model never sees an answer without its question. When the system
    messages and the last message alone exceed the budget, exactly they are returned. The
    messages returned are the given objects, in the given order.
    """

    async def count_tokens(self, messages: Sequence[PromptMessage]) -> int:
        """Approximate tokens of ``messages`` (see the module docstring for the rule).

        Raises:
            ValueError: a message role other than system, user or assistant.
        """
        return count_prompt_tokens(messages)

    async def trim(self, messages: Sequence[PromptMessage], budget: int) -> list[PromptMessage]:
        """Drop the oldest history until ``messages`` fit in ``budget`` tokens.

        Parameters:
            messages: system messages first, then the history oldest first, then the new
                message.
            budget: the most tokens the result may count (the same rule as
                :meth:`count_tokens`), unless the kept system and last messages alone
                exceed it.

        Returns:
            ``messages`` unchanged (as a new list) when they fit; otherwise the leading system
            messages, the newest part of the history that fits, and the last message.

        Raises:
            ValueError: a message role other than system, user or assistant.
        """
        return trim_prompt(messages, budget)


#: Longest role name the counter sees ("assistant").
_LONGEST_ROLE = 9


def _surely_fits(prompt: Sequence[PromptMessage], budget: int) -> bool:
    """True when an upper bound of the prompt's tokens is within ``budget``: each message
    counts ``ceil((content + role) / 4) + 3 <= (content + 9) / 4 + 4``. Skips building
    LangChain messages for the common prompt that fits (unknown roles still go the long way
    and raise there)."""
    if any(m.role not in _ROLES for m in prompt):
        return False
    bound = sum(len(m.content) + _LONGEST_ROLE for m in prompt) / 4 + 4 * len(prompt)
    return bound <= budget


def trim_prompt(messages: Sequence[PromptMessage], budget: int) -> list[PromptMessage]:
    """The synchronous core of :meth:`LangChainPromptTrimmer.trim` (same contract)."""
    prompt = list(messages)
    if _surely_fits(prompt, budget):
        return prompt
    converted = [to_langchain_message(m, message_id=str(i)) for i, m in enumerate(prompt)]
    if len(prompt) <= 1 or count_tokens_approximately(converted) <= budget:
        return prompt

    last = len(prompt) - 1
    n_system = 0
    while n_system < last and prompt[n_system].role == "system":
        n_system += 1
    kept_fixed = [*prompt[:n_system], prompt[last]]
    fixed_tokens = count_tokens_approximately([*converted[:n_system], converted[last]])
    if fixed_tokens >= budget or n_system == last:
        return kept_fixed

    # the history and the last message; the system messages' tokens are already reserved
    tail = lc_trim_messages(
        converted[n_system:],
        max_tokens=budget - count_tokens_approximately(converted[:n_system]),
        token_counter=count_tokens_approximately,
        strategy="last",
        start_on="human",
        include_system=False,
        allow_partial=False,
    )
    indexes = [int(m.id) for m in tail if m.id is not None]
    # The port's promise, whatever trim_messages did: a contiguous newest part of the
    # history followed by the last message.
    if (not indexes or indexes[-1] != last or indexes[0] < n_system
            or indexes != list(range(indexes[0], last + 1))):
        return kept_fixed
    return [*prompt[:n_system], *(prompt[i] for i in indexes)]
