"""Prompt template use cases on an all-in-memory notibot: create and replace (every update a
new version, history kept), declared variables checked at save time (with the line and name
of the offending use), the kind fixed after creation, A/B variant validation, rendering with
and without a customer, the default templates, and which template a conversation uses.

Assertions are on state: what the service returns and what the repository holds."""

from __future__ import annotations

from typing import Any

import pytest

from notibot.application.services.prompts import PROMPT_VARIABLES, PromptService
from notibot.container import Notibot
from notibot.domain import Conflict, Customer, InvalidInput, NotFound, PromptKind
from notibot.testing import FakeClock, SequentialIdGenerator, memory_notibot


@pytest.fixture
def app(clock: FakeClock) -> Notibot:
    """A notibot that was not started: no default templates installed."""
    return memory_notibot(clock=clock, ids=SequentialIdGenerator())


@pytest.fixture
def prompts(app: Notibot) -> PromptService:
    return app.prompts


def system(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"kind": "system", "name": "friendly", "language": "en",
                              "body": "You are friendly. Answer in {{ language_name }}."}
    values.update(changes)
    return values


async def customer(app: Notibot, **values: Any) -> Customer:
    values = {"full_name": "Nguyễn Văn An", "email": "an@example.org", **values}
    return await app.customers.create(values)


async def invalid(call: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        await call
    return caught.value


# -- create and replace ----------------------------------------------------------------------


async def test_create_stores_version_one_with_every_variable_declared_by_default(
        prompts: PromptService, clock: FakeClock) -> None:
    template = await prompts.create(system(language="VI"))

    assert template.version == 1
    assert template.kind is PromptKind.SYSTEM
    assert template.language == "vi"
    assert template.active is True
    assert template.variables == sorted(PROMPT_VARIABLES)
    assert template.created_at == template.updated_at == clock.current
    assert await prompts.get(template.id) == template
    assert await prompts.versions(template.id) == [template]


async def test_replace_makes_a_new_version_and_keeps_the_history(
        prompts: PromptService, clock: FakeClock) -> None:
    first = await prompts.create(system())
    clock.advance(60)
    second = await prompts.replace(first.id, system(body="Version two."))
    clock.advance(60)
    third = await prompts.replace(first.id, {"name": "friendly", "body": "Version three.",
                                             "active": False, "language": "en"})

    assert [second.version, third.version] == [2, 3]
    assert third.id == first.id and third.created_at == first.created_at
    assert third.updated_at == clock.current
    assert third.kind is PromptKind.SYSTEM  # kind may be left out: it is kept
    assert third.active is False
    assert await prompts.get(first.id) == third
    assert (await prompts.get(first.id, version=1)).body == first.body
    assert (await prompts.get(first.id, version=2)).body == "Version two."
    versions = await prompts.versions(first.id)
    assert [(v.version, v.body) for v in versions] == [
        (1, first.body), (2, "Version two."), (3, "Version three.")]
    with pytest.raises(NotFound) as caught:
        await prompts.get(first.id, version=7)
    assert caught.value.code == "prompt_template_version_not_found"


async def test_replace_and_delete_of_an_unknown_template_are_not_found(
        prompts: PromptService) -> None:
    for call in (prompts.replace("nope", system()), prompts.delete("nope"),
                 prompts.versions("nope"), prompts.get("nope")):
        with pytest.raises(NotFound) as caught:
            await call
        assert caught.value.code == "prompt_template_not_found"


async def test_delete_removes_the_template_and_its_history(prompts: PromptService) -> None:
    template = await prompts.create(system())
    await prompts.replace(template.id, system(body="v2"))
    await prompts.delete(template.id)
    with pytest.raises(NotFound):
        await prompts.versions(template.id)
    assert (await prompts.list()).total == 0
    again = await prompts.create(system())  # the name is free again
    assert again.version == 1


async def test_names_are_unique_per_kind_and_language(prompts: PromptService) -> None:
    await prompts.create(system())
    with pytest.raises(Conflict) as caught:
        await prompts.create(system(name="Friendly"))
    assert caught.value.code == "prompt_template_name_taken"
    await prompts.create(system(language="vi"))
    await prompts.create(system(kind="context", body="{{ customer.full_name }}"))
    other = await prompts.create(system(name="strict"))
    with pytest.raises(Conflict):
        await prompts.replace(other.id, system())


async def test_list_filters_and_orders(prompts: PromptService) -> None:
    await prompts.create(system(name="b"))
    await prompts.create(system(name="a", active=False))
    await prompts.create(system(name="c", language="vi"))
    await prompts.create(system(kind="context", name="ctx", body="data"))
    everything = await prompts.list()
    assert [(t.kind.value, t.language, t.name) for t in everything.items] == [
        ("context", "en", "ctx"), ("system", "en", "a"), ("system", "en", "b"),
        ("system", "vi", "c")]
    assert [t.name for t in (await prompts.list(kind="system", language="EN")).items] == [
        "a", "b"]
    assert [t.name for t in (await prompts.list(active=False)).items] == ["a"]
    page = await prompts.list(limit=1, offset=1)
    assert (page.total, [t.name for t in page.items]) == (4, ["a"])
    assert (await invalid(prompts.list(kind="persona"))).code == "invalid_kind"


# -- declared variables ----------------------------------------------------------------------


async def test_an_unknown_declared_variable_is_refused(prompts: PromptService) -> None:
    error = await invalid(prompts.create(system(variables=["customer", "password"])))
    assert error.code == "invalid_variables"
    assert error.details == {"field": "variables", "name": "password"}
    error = await invalid(prompts.create(system(variables="customer")))
    assert error.code == "invalid_variables"


async def test_a_body_using_an_undeclared_variable_is_refused_with_line_and_name(
        prompts: PromptService) -> None:
    body = "Hello {{ customer.full_name }}.\n\nYou got:\n{{ notifications }}"
    error = await invalid(prompts.create(system(variables=["customer"], body=body)))
    assert error.code == "invalid_template"
    assert error.details == {"field": "body", "line": 4, "name": "notifications"}
    ok = await prompts.create(system(variables=["customer", "notifications"], body=body))
    assert ok.variables == ["customer", "notifications"]


async def test_an_unknown_attribute_of_the_customer_is_refused(prompts: PromptService) -> None:
    error = await invalid(prompts.create(system(body="line 1\n{{ customer.password }}")))
    assert error.code == "invalid_template"
    assert error.details == {"field": "body", "line": 2, "name": "customer.password"}


async def test_a_syntax_error_is_refused_with_its_line(prompts: PromptService) -> None:
    error = await invalid(prompts.create(system(body="one\ntwo\n{% if customer %}three")))
    assert error.code == "invalid_template"
    assert error.details["field"] == "body"
    assert error.details["line"] == 3
    error = await invalid(prompts.create(system(body="{{ customer | no_such_filter }}")))
    assert (error.code, error.details["line"]) == ("invalid_template", 1)


async def test_replace_checks_the_new_body_too(prompts: PromptService) -> None:
    template = await prompts.create(system(variables=["language_name"]))
    error = await invalid(prompts.replace(template.id, system(
        variables=["language_name"], body="{{ summary }}")))
    assert error.details == {"field": "body", "line": 1, "name": "summary"}
    assert (await prompts.get(template.id)).version == 1


@pytest.mark.parametrize(("values", "code"), [
    ({"name": "x", "body": "y"}, "missing_kind"),
    ({"kind": "persona", "name": "x", "body": "y"}, "invalid_kind"),
    ({"kind": "system", "body": "y"}, "missing_name"),
    ({"kind": "system", "name": "  ", "body": "y"}, "missing_name"),
    ({"kind": "system", "name": "x"}, "missing_body"),
    ({"kind": "system", "name": "x", "body": 12}, "invalid_body"),
    ({"kind": "system", "name": "x", "body": "y", "language": "english!"},
     "invalid_language"),
    ({"kind": "system", "name": "x", "body": "y", "active": "yes"}, "invalid_active"),
    ({"kind": "system", "name": "x", "body": "y", "version": 3}, "unknown_field"),
])
async def test_invalid_fields_are_refused(prompts: PromptService, values: dict[str, Any],
                                          code: str) -> None:
    assert (await invalid(prompts.create(values))).code == code
    assert (await prompts.list()).total == 0


# -- kind and variants -----------------------------------------------------------------------


async def test_the_kind_cannot_change(prompts: PromptService) -> None:
    template = await prompts.create(system())
    error = await invalid(prompts.replace(template.id, system(kind="context")))
    assert (error.code, error.details) == ("immutable_field", {"field": "kind"})
    same = await prompts.replace(template.id, system(kind="system", body="again"))
    assert same.kind is PromptKind.SYSTEM and same.version == 2


async def test_variants_are_stored_and_checked(prompts: PromptService) -> None:
    template = await prompts.create(system(variants=[
        {"name": "warm", "body": "Warm, in {{ language_name }}.", "weight": 3},
        {"name": "brief", "body": "Brief."}]))
    assert [(v.name, v.weight) for v in template.variants] == [("warm", 3), ("brief", 1)]


@pytest.mark.parametrize(("variants", "field"), [
    ("warm", "variants"),
    ([{"name": "a", "body": "x", "colour": "red"}], "variants[0]"),
    (["a"], "variants[0]"),
    ([{"body": "x"}], "variants[0].name"),
    ([{"name": "with space", "body": "x"}], "variants[0].name"),
    ([{"name": "a", "body": "x"}, {"name": "b", "body": " "}], "variants[1].body"),
    ([{"name": "a", "body": "x", "weight": 0}], "variants[0].weight"),
    ([{"name": "a", "body": "x", "weight": True}], "variants[0].weight"),
    ([{"name": "a", "body": "x", "weight": "2"}], "variants[0].weight"),
])
async def test_invalid_variants_are_refused(prompts: PromptService, variants: Any,
                                            field: str) -> None:
    error = await invalid(prompts.create(system(variants=variants)))
    assert (error.code, error.details) == ("invalid_variants", {"field": field})


async def test_variant_names_are_unique(prompts: PromptService) -> None:
    error = await invalid(prompts.create(system(variants=[
        {"name": "a", "body": "x"}, {"name": "a", "body": "y"}])))
    assert error.code == "invalid_variants"


async def test_a_variant_body_is_checked_like_the_body(prompts: PromptService) -> None:
    error = await invalid(prompts.create(system(variables=["customer"], variants=[
        {"name": "a", "body": "{{ customer.full_name }}"},
        {"name": "b", "body": "hi\n{{ data.code }}"}], body="{{ customer.email }}")))
    assert error.code == "invalid_template"
    assert error.details == {"field": "variants[1].body", "line": 2, "name": "data"}


# -- render ----------------------------------------------------------------------------------


async def test_render_with_a_customer_and_data(app: Notibot, prompts: PromptService) -> None:
    an = await customer(app, language="vi", tags=["vip"])
    template = await prompts.create(system(
        kind="context",
        body="{{ customer.full_name }} <{{ customer.email }}> {{ customer.tags | join(',') }}"
             " speaks {{ language }} ({{ language_name }}); code {{ data.code }};"
             " {{ notifications | length }} notifications"))

    rendered = await prompts.render(template.id, customer_id=an.id, data={"code": "TET"})

    assert rendered.text == ("Nguyễn Văn An <an@example.org> vip speaks vi (Vietnamese); "
                             "code TET; 0 notifications")
    assert rendered.reference() == {"id": template.id, "version": 1, "variant": "default"}
    assert (rendered.kind, rendered.language) == (PromptKind.CONTEXT, "en")


async def test_render_without_a_customer(prompts: PromptService) -> None:
    template = await prompts.create(system(
        language="vi", body="[{{ customer.full_name }}] {{ language_name }} {{ data }}"))
    rendered = await prompts.render(template.id)
    assert rendered.text == "[] Vietnamese {}"


async def test_render_an_earlier_version_and_a_named_variant(app: Notibot,
                                                             prompts: PromptService) -> None:
    template = await prompts.create(system(body="v1"))
    await prompts.replace(template.id, system(body="v2", variants=[
        {"name": "warm", "body": "v2 warm"}, {"name": "brief", "body": "v2 brief"}]))
    assert (await prompts.render(template.id, version=1)).text == "v1"
    assert (await prompts.render(template.id)).text == "v2"  # no customer: the main body
    named = await prompts.render(template.id, variant="brief")
    assert (named.text, named.variant, named.version) == ("v2 brief", "brief", 2)
    an = await customer(app)
    sticky = await prompts.render(template.id, customer_id=an.id)
    stored = await prompts.get(template.id)
    assert sticky.variant == stored.choose_variant(an.id).name
    assert sticky.text == f"v2 {sticky.variant}"


async def test_render_refuses_bad_input(app: Notibot, prompts: PromptService) -> None:
    template = await prompts.create(system(body="{{ data.missing }}"))
    assert (await invalid(prompts.render(template.id, data=["x"]))).code == "invalid_data"  # type: ignore[arg-type]
    assert (await invalid(prompts.render(template.id, variant="nope"))).code == \
        "unknown_variant"
    error = await invalid(prompts.render(template.id, data={}))
    assert error.code == "template_error" and error.details["line"] == 1
    with pytest.raises(NotFound) as caught:
        await prompts.render(template.id, customer_id="nobody")
    assert caught.value.code == "customer_not_found"
    with pytest.raises(NotFound):
        await prompts.render("nope")


# -- defaults and the active template --------------------------------------------------------


async def test_install_defaults_installs_four_only_when_none_exist(app: Notibot) -> None:
    installed = await app.prompts.install_defaults()

    assert sorted((t.kind.value, t.language) for t in installed) == [
        ("context", "en"), ("context", "vi"), ("system", "en"), ("system", "vi")]
    assert all(t.version == 1 and t.active and t.id for t in installed)
    assert len({t.id for t in installed}) == 4
    assert (await app.prompts.list()).total == 4
    assert await app.prompts.install_defaults() == []
    assert (await app.prompts.list()).total == 4


async def test_install_defaults_leaves_existing_templates_alone(app: Notibot) -> None:
    await app.prompts.create(system())
    assert await app.prompts.install_defaults() == []
    assert [t.name for t in (await app.prompts.list()).items] == ["friendly"]


async def test_defaults_are_installed_when_notibot_starts(app: Notibot) -> None:
    await app.start(ensure_admin=False)
    try:
        assert (await app.prompts.list()).total == 4
    finally:
        await app.stop()


async def test_default_templates_pass_their_own_checks(app: Notibot) -> None:
    for template in await app.prompts.install_defaults():
        copy = await app.prompts.create({
            "kind": template.kind.value, "name": f"{template.name}-copy",
            "language": template.language, "body": template.body,
            "variables": template.variables})
        assert copy.body == template.body


async def test_active_uses_the_language_then_english_then_the_builtins(
        app: Notibot, prompts: PromptService, clock: FakeClock) -> None:
    # nothing stored: the built-in defaults, in the language when there is one
    builtin_vi = await prompts.active(PromptKind.SYSTEM, "vi")
    assert builtin_vi.language == "vi" and "tiếng Việt" in builtin_vi.body
    assert builtin_vi.id == "builtin-system-vi"
    builtin_fr = await prompts.active(PromptKind.CONTEXT, "fr")
    assert builtin_fr.language == "en" and "<customer_profile>" in builtin_fr.body
    assert (await prompts.list()).total == 0  # never stored by active()

    english = await prompts.create(system(name="english"))
    assert (await prompts.active(PromptKind.SYSTEM, "vi")).id == english.id
    assert (await prompts.active(PromptKind.SYSTEM, "fr")).id == english.id
    vietnamese = await prompts.create(system(name="vietnamese", language="vi"))
    assert (await prompts.active(PromptKind.SYSTEM, "vi")).id == vietnamese.id
    assert (await prompts.active(PromptKind.SYSTEM, "en")).id == english.id

    clock.advance(60)
    newer = await prompts.create(system(name="newer"))
    assert (await prompts.active(PromptKind.SYSTEM, "en")).id == newer.id  # updated last
    await prompts.replace(newer.id, system(name="newer", active=False))
    assert (await prompts.active(PromptKind.SYSTEM, "en")).id == english.id
    # the context kind has nothing stored: built-ins
    assert (await prompts.active(PromptKind.CONTEXT, "en")).id == "builtin-context-en"


async def test_active_tries_the_primary_language_of_a_regional_one(
        prompts: PromptService) -> None:
    builtin = await prompts.active(PromptKind.SYSTEM, "vi-vn")
    assert (builtin.language, builtin.id) == ("vi", "builtin-system-vi")
    vietnamese = await prompts.create(system(name="vietnamese", language="vi"))
    await prompts.create(system(name="english"))
    assert (await prompts.active(PromptKind.SYSTEM, "vi-vn")).id == vietnamese.id
    regional = await prompts.create(system(name="southern", language="vi-VN"))
    assert (await prompts.active(PromptKind.SYSTEM, "vi-vn")).id == regional.id
    assert (await prompts.active(PromptKind.SYSTEM, "vi")).id == vietnamese.id
