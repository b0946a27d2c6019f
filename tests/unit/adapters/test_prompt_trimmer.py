"""LangChainPromptTrimmer: the port's promise (budget, system and last message kept, oldest
history dropped first, order unchanged) on hand-made and many random prompts."""

from __future__ import annotations

import math
import random

import pytest

from notibot.adapters.langchain import LangChainPromptTrimmer, count_prompt_tokens
from notibot.application.ports import PromptMessage

trimmer = LangChainPromptTrimmer()


def msg(role: str, content: str) -> PromptMessage:
    return PromptMessage(role, content)


def expected_tokens(messages: list[PromptMessage]) -> int:
    """The documented rule: per message ceil((len(content) + len(role)) / 4) + 3."""
    return sum(math.ceil((len(m.content) + len(m.role)) / 4) + 3 for m in messages)


PROMPT = [
    msg("system", "Bạn là trợ lý của cửa hàng ABC. Trả lời ngắn gọn."),
    msg("system", "Khách hàng: Nguyễn Văn An; thông báo: Khuyến mãi Tết."),
    msg("user", "Chào shop, cho hỏi đơn hàng của tôi?"),
    msg("assistant", "Đơn hàng #123 đã giao ngày 02/01."),
    msg("user", "Còn mã giảm giá nào không?"),
    msg("assistant", "Mã TET2026 giảm 20% đến 15/02."),
    msg("user", "Áp dụng cho đơn online không?"),
]


# -- counting -----------------------------------------------------------------------------------

async def test_count_tokens_follows_the_documented_rule() -> None:
    assert await trimmer.count_tokens(PROMPT) == expected_tokens(PROMPT)
    assert await trimmer.count_tokens([msg("user", "a" * 40)]) == 11 + 3
    assert await trimmer.count_tokens([]) == 0


async def test_count_tokens_is_additive() -> None:
    total = await trimmer.count_tokens(PROMPT)
    assert total == sum([await trimmer.count_tokens([m]) for m in PROMPT])


async def test_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="tool"):
        await trimmer.count_tokens([msg("tool", "x")])
    with pytest.raises(ValueError, match="tool"):
        await trimmer.trim([msg("tool", "x"), msg("user", "y")], 1)


# -- hand-made prompts --------------------------------------------------------------------------

async def test_a_prompt_within_budget_is_returned_unchanged() -> None:
    budget = count_prompt_tokens(PROMPT)
    kept = await trimmer.trim(PROMPT, budget)
    assert kept == PROMPT and kept is not PROMPT
    assert all(a is b for a, b in zip(kept, PROMPT, strict=True))


async def test_the_oldest_exchange_is_dropped_first() -> None:
    budget = count_prompt_tokens(PROMPT) - 1
    kept = await trimmer.trim(PROMPT, budget)
    assert kept == PROMPT[:2] + PROMPT[4:]
    assert count_prompt_tokens(kept) <= budget


async def test_system_messages_and_the_last_message_survive_any_budget() -> None:
    for budget in (0, 1, 10, count_prompt_tokens([*PROMPT[:2], PROMPT[-1]])):
        assert await trimmer.trim(PROMPT, budget) == [*PROMPT[:2], PROMPT[-1]]


async def test_when_system_and_last_exceed_the_budget_exactly_they_are_returned() -> None:
    long_system = msg("system", "x" * 4000)
    prompt = [long_system, msg("user", "q"), msg("assistant", "a"), msg("user", "new")]
    kept = await trimmer.trim(prompt, 100)
    assert kept == [long_system, prompt[-1]]


async def test_the_kept_history_starts_with_a_user_message() -> None:
    prompt = [msg("system", "s"), msg("user", "q1" * 30), msg("assistant", "a1" * 30),
              msg("assistant", "a2"), msg("user", "new")]
    # room for the last assistant messages but not for q1: no answer without its question
    budget = count_prompt_tokens([prompt[0], *prompt[2:]])
    kept = await trimmer.trim(prompt, budget)
    assert kept == [prompt[0], prompt[-1]]


@pytest.mark.parametrize("prompt", [
    [], [msg("user", "x" * 500)], [msg("system", "s" * 500), msg("user", "u" * 500)],
    [msg("system", "a"), msg("system", "b" * 400)],
], ids=["empty", "only-last", "system-and-last", "all-system"])
async def test_tiny_prompts_are_kept_whole(prompt: list[PromptMessage]) -> None:
    assert await trimmer.trim(prompt, 5) == prompt


# -- random prompts -----------------------------------------------------------------------------

WORDS = ["đơn", "hàng", "giao", "mã", "giảm", "giá", "order", "shipped", "refund", "xin",
         "chào", "cảm", "ơn", "TET2026", "20%", "?", "!"]


def random_prompt(rng: random.Random) -> list[PromptMessage]:
    def text() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40)))

    messages = [msg("system", text()) for _ in range(rng.randint(0, 3))]
    messages += [msg(rng.choice(["user", "assistant"]), text())
                 for _ in range(rng.randint(0, 25))]
    messages.append(msg("user", text()))
    return messages


@pytest.mark.parametrize("seed", range(40))
async def test_random_prompts_keep_the_ports_promise(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(25):
        prompt = random_prompt(rng)
        total = count_prompt_tokens(prompt)
        budget = rng.randint(0, total + 20)
        kept = await trimmer.trim(prompt, budget)

        n_system = 0
        while n_system < len(prompt) - 1 and prompt[n_system].role == "system":
            n_system += 1
        system, history, last = prompt[:n_system], prompt[n_system:-1], prompt[-1]
        fixed = [*system, last]

        # system messages first, the last message last, the same objects
        assert kept[:n_system] == system and kept[-1] is last
        kept_history = kept[n_system:-1]
        # oldest dropped first, order unchanged: what is kept is the newest part
        assert kept_history == history[len(history) - len(kept_history):]
        assert all(a is b for a, b in zip(
            kept_history, history[len(history) - len(kept_history):], strict=True))

        if total <= budget:
            assert kept == prompt  # nothing to do
        elif count_prompt_tokens(fixed) > budget:
            assert kept == fixed  # over budget on their own: exactly them
        else:
            assert count_prompt_tokens(kept) <= budget
            if kept_history:
                assert kept_history[0].role == "user"
            # nothing droppable was kept needlessly: starting at any older user message
            # would not fit
            start = len(history) - len(kept_history)
            for older in range(start):
                if history[older].role == "user":
                    assert count_prompt_tokens([*system, *history[older:], last]) > budget
