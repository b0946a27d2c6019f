"""PromptTemplate validation and sticky, weighted A/B variants."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from notibot.domain import InvalidInput, PromptKind, PromptTemplate, PromptVariant

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def template(**changes: object) -> PromptTemplate:
    values: dict[str, object] = {
        "id": "p1", "kind": PromptKind.SYSTEM, "name": "Support", "language": "VI",
        "body": "You are a helpful assistant.", "created_at": T0, "updated_at": T0,
    }
    values.update(changes)
    return PromptTemplate(**values)  # type: ignore[arg-type]


def test_a_valid_template_is_normalised() -> None:
    t = template(name="  Support ", body="  Be kind.  ", language="pt_BR")

    assert (t.name, t.body, t.language, t.version) == ("Support", "Be kind.", "pt-br", 1)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"name": ""}, "missing_name"),
        ({"body": "   "}, "missing_body"),
        ({"language": "vietnamese"}, "invalid_language"),
        ({"version": 0}, "invalid_version"),
        ({"variants": [PromptVariant("a", "x"), PromptVariant("a", "y")]}, "invalid_variants"),
        ({"variants": [PromptVariant("a", "x", weight=0)]}, "invalid_variants"),
        ({"variants": [PromptVariant("a", "x", weight=-1)]}, "invalid_variants"),
        ({"variants": [PromptVariant("a", " ")]}, "missing_body"),
    ],
)
def test_invalid_templates_are_refused(changes: dict[str, object], code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        template(**changes)

    assert exc.value.code == code


def test_without_variants_everyone_gets_the_body_as_the_default_arm() -> None:
    chosen = template().choose_variant("c1")

    assert chosen == PromptVariant(name="default", body="You are a helpful assistant.",
                                   weight=1)


def test_a_customer_always_gets_the_same_variant() -> None:
    variants = [PromptVariant("a", "A"), PromptVariant("b", "B"), PromptVariant("c", "C")]
    first = template(variants=variants)
    reloaded = template(variants=list(variants))

    for n in range(200):
        customer = f"customer-{n}"
        assert first.choose_variant(customer) == first.choose_variant(customer)
        assert first.choose_variant(customer) == reloaded.choose_variant(customer)


def test_variants_follow_their_weights_over_many_customers() -> None:
    t = template(variants=[PromptVariant("a", "A", weight=1), PromptVariant("b", "B", weight=3)])

    counts = Counter(t.choose_variant(f"customer-{n}").name for n in range(10_000))

    assert counts["a"] + counts["b"] == 10_000
    assert counts["b"] / 10_000 == pytest.approx(0.75, abs=0.03)


def test_every_variant_is_reachable_with_equal_weights() -> None:
    t = template(variants=[PromptVariant(n, n.upper()) for n in "abcd"])

    counts = Counter(t.choose_variant(f"customer-{n}").name for n in range(4_000))

    assert set(counts) == set("abcd")
    assert all(c / 4_000 == pytest.approx(0.25, abs=0.04) for c in counts.values())


def test_the_choice_depends_on_the_template_too() -> None:
    variants = [PromptVariant("a", "A"), PromptVariant("b", "B")]
    one, other = template(id="p1", variants=variants), template(id="p2", variants=variants)

    differs = sum(one.choose_variant(f"c{n}") != other.choose_variant(f"c{n}")
                  for n in range(200))

    assert differs > 0
