"""CampaignService on in-memory adapters: create, read, list, replace, delete; every template
checked at save time; unique names."""

from __future__ import annotations

from typing import Any

import pytest

from notibot.adapters.memory import MemoryCampaignRepository
from notibot.adapters.templating import Jinja2TemplateRenderer
from notibot.application.services.campaigns import CampaignService
from notibot.domain import CampaignContent, Channel, Conflict, InvalidInput, NotFound
from notibot.testing import FakeClock, SequentialIdGenerator


@pytest.fixture
def repository() -> MemoryCampaignRepository:
    return MemoryCampaignRepository()


@pytest.fixture
def service(repository: MemoryCampaignRepository, clock: FakeClock,
            ids: SequentialIdGenerator) -> CampaignService:
    return CampaignService(repository, Jinja2TemplateRenderer(), ids, clock)


def values(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Tết sale",
        "description": "New year promotion",
        "subject": "Hello {{ customer.full_name }}",
        "text_body": "Your code is {{ data.code }}. {{ unsubscribe_url }}",
        "html_body": "<p>Hello {{ customer.full_name }} from {{ campaign.name }}</p>",
        "variants": {"VI": {"subject": "Chào {{ customer.full_name }}",
                            "text_body": "Mã của bạn: {{ data.code }}"}},
        "default_data": {"code": "TET2026"},
    }
    base.update(changes)
    return base


async def test_create_stores_a_campaign_with_its_variants(
        service: CampaignService, repository: MemoryCampaignRepository) -> None:
    campaign = await service.create(values())

    stored = await repository.get(campaign.id)
    assert stored == campaign
    assert campaign.name == "Tết sale"
    assert campaign.channel is Channel.EMAIL
    assert campaign.active is True
    assert campaign.content.html_body.startswith("<p>")
    assert campaign.variants == {"vi": CampaignContent(
        subject="Chào {{ customer.full_name }}", text_body="Mã của bạn: {{ data.code }}")}
    assert campaign.default_data == {"code": "TET2026"}
    assert campaign.created_at == campaign.updated_at


async def test_get_list_and_delete(service: CampaignService) -> None:
    first = await service.create(values(name="a"))
    second = await service.create(values(name="b", active=False))

    assert await service.get(first.id) == first
    page = await service.list()
    assert [c.id for c in page.items] == [first.id, second.id] and page.total == 2
    assert [c.id for c in (await service.list(active=False)).items] == [second.id]
    assert [c.id for c in (await service.list(limit=1, offset=1)).items] == [second.id]

    await service.delete(first.id)
    with pytest.raises(NotFound) as caught:
        await service.get(first.id)
    assert caught.value.code == "campaign_not_found"
    with pytest.raises(NotFound):
        await service.delete(first.id)


async def test_bad_paging_is_refused(service: CampaignService) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.list(limit=0)
    assert caught.value.code == "invalid_paging"


async def test_names_are_unique_ignoring_case(service: CampaignService) -> None:
    await service.create(values(name="Promo"))

    with pytest.raises(Conflict) as caught:
        await service.create(values(name="PROMO"))
    assert caught.value.code == "campaign_name_taken"


async def test_replace_changes_every_field_and_keeps_created_at(
        service: CampaignService, clock: FakeClock) -> None:
    campaign = await service.create(values())
    clock.advance(60)

    replaced = await service.replace(campaign.id, {
        "name": "Renamed", "subject": "S", "text_body": "T", "channel": "chat",
        "active": False})

    assert replaced.id == campaign.id
    assert replaced.name == "Renamed"
    assert replaced.channel is Channel.CHAT
    assert replaced.variants == {} and replaced.default_data == {}
    assert replaced.description is None and replaced.content.html_body is None
    assert replaced.active is False
    assert replaced.created_at == campaign.created_at
    assert replaced.updated_at > campaign.updated_at
    assert await service.get(campaign.id) == replaced


async def test_replace_refuses_a_name_another_campaign_has(service: CampaignService) -> None:
    await service.create(values(name="a"))
    second = await service.create(values(name="b"))

    with pytest.raises(Conflict):
        await service.replace(second.id, values(name="A"))
    with pytest.raises(NotFound):
        await service.replace("nope", values(name="c"))


# -- templates are checked at save time -------------------------------------------------------


@pytest.mark.parametrize(("changes", "field", "line", "name"), [
    ({"subject": "Hi {{ customer.full_name"}, "subject", 1, None),
    ({"text_body": "line 1\n{% if %}"}, "text_body", 2, None),
    ({"text_body": "ok\nok\n{{ foo }}"}, "text_body", 3, "foo"),
    ({"html_body": "<p>\n{{ customer.password }}</p>"}, "html_body", 2, "customer.password"),
    ({"variants": {"en": {"subject": "x", "text_body": "{{ secret }}"}}},
     "variants.en.text_body", 1, "secret"),
    ({"variants": {"vi": {"subject": "{{ customer.ssn }}", "text_body": "x"}}},
     "variants.vi.subject", 1, "customer.ssn"),
    ({"variants": {"vi": {"subject": "x", "text_body": "y", "html_body": "{% endif %}"}}},
     "variants.vi.html_body", 1, None),
])
async def test_a_bad_template_is_refused_with_its_field_line_and_name(
        service: CampaignService, repository: MemoryCampaignRepository,
        changes: dict[str, Any], field: str, line: int, name: str | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.create(values(**changes))

    error = caught.value
    assert error.code == "invalid_template"
    assert error.details["field"] == field
    assert error.details["line"] == line
    assert error.details.get("name") == name
    assert (await repository.list(limit=10, offset=0)).total == 0


async def test_a_bad_template_is_refused_on_replace_too(service: CampaignService) -> None:
    campaign = await service.create(values())

    with pytest.raises(InvalidInput) as caught:
        await service.replace(campaign.id, values(subject="{{ customer.password }}"))

    assert caught.value.code == "invalid_template"
    assert (await service.get(campaign.id)).content.subject == campaign.content.subject


@pytest.mark.parametrize(("changes", "code", "field"), [
    ({"name": "  "}, "missing_name", "name"),
    ({"subject": ""}, "missing_subject", "subject"),
    ({"text_body": None}, "missing_text_body", "text_body"),
    ({"channel": "sms"}, "invalid_channel", "channel"),
    ({"variants": {"not a language!": {"subject": "s", "text_body": "t"}}},
     "invalid_language", "variants.not a language!"),
    ({"variants": {"vi": {"subject": "s"}}}, "missing_text_body", "variants.vi.text_body"),
    ({"variants": {"vi": "text"}}, "invalid_variant", "variants.vi"),
    ({"default_data": ["x"]}, "invalid_default_data", "default_data"),
    ({"active": "yes"}, "invalid_active", "active"),
])
async def test_invalid_fields_are_refused(service: CampaignService, changes: dict[str, Any],
                                          code: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.create(values(**changes))

    assert caught.value.code == code
    assert caught.value.details["field"] == field


async def test_unknown_fields_are_refused(service: CampaignService) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.create(values(colour="red"))
    assert caught.value.code == "unknown_field"

    with pytest.raises(InvalidInput) as caught:
        await service.create(values(variants={"vi": {"subject": "s", "text_body": "t",
                                                     "footer": "f"}}))
    assert caught.value.code == "unknown_field"


async def test_two_spellings_of_one_language_are_refused(service: CampaignService) -> None:
    content = {"subject": "s", "text_body": "t"}

    with pytest.raises(InvalidInput) as caught:
        await service.create(values(variants={"pt_BR": content, "pt-br": content}))
    assert caught.value.code == "duplicate_variant"


async def test_variants_may_be_given_as_content_objects(service: CampaignService) -> None:
    content = CampaignContent(subject="Hi", text_body="{{ customer.city }}")

    campaign = await service.create(values(variants={"en": content}))

    assert campaign.variants == {"en": content}
