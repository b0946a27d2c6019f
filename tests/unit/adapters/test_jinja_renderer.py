"""The Jinja2 TemplateRenderer: checks at save time (syntax, unknown variables and
attributes, with the line) and sandboxed rendering (autoescape for HTML, errors with the
line)."""

from __future__ import annotations

import pytest

from notibot.adapters.templating import Jinja2TemplateRenderer
from notibot.application.services.campaigns import template_variables
from notibot.domain import InvalidInput

ALLOWED = template_variables()


@pytest.fixture
def renderer() -> Jinja2TemplateRenderer:
    return Jinja2TemplateRenderer()


async def refused(renderer: Jinja2TemplateRenderer, template: str,
                  field: str = "text_body") -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        await renderer.check(template, allowed=ALLOWED, field=field)
    assert caught.value.code == "invalid_template"
    return caught.value


# -- check -----------------------------------------------------------------------------------


@pytest.mark.parametrize("template", [
    "Hello {{ customer.full_name }}",
    "{{ data.anything }} {{ data.nested.deeper }} {{ data['key'] }}",
    "{{ campaign.name }}: {{ campaign.description }} ({{ campaign.id }})",
    "Unsubscribe: {{ unsubscribe_url }}",
    "{% for tag in customer.tags %}{{ tag|upper }}{{ loop.index }}{% endfor %}",
    "{% set greeting = 'Hi' %}{{ greeting }} {{ customer.attributes.tier|default('-') }}",
    "{% for i in range(3) %}{{ i }}{% endfor %}",
    "{% macro shout(x) %}{{ x|upper }}{% endmacro %}{{ shout(customer.city) }}",
    "{% if customer.company %}{{ customer.company }}{% endif %}plain text, no variables",
])
async def test_templates_using_known_variables_pass(renderer: Jinja2TemplateRenderer,
                                                    template: str) -> None:
    await renderer.check(template, allowed=ALLOWED, field="text_body")


async def test_a_syntax_error_is_refused_with_its_line_and_field(
        renderer: Jinja2TemplateRenderer) -> None:
    error = await refused(renderer, "Hello\n{{ customer.full_name }}\n{% if %}", "subject")

    assert error.details["field"] == "subject"
    assert error.details["line"] == 3
    assert "line 3" in error.message


async def test_an_unclosed_block_is_a_syntax_error(renderer: Jinja2TemplateRenderer) -> None:
    error = await refused(renderer, "{% for x in data.items %}\n{{ x }}")

    assert error.details["field"] == "text_body"
    assert isinstance(error.details["line"], int)


async def test_an_unknown_variable_is_refused_with_its_name_and_line(
        renderer: Jinja2TemplateRenderer) -> None:
    error = await refused(renderer, "Hi {{ customer.full_name }},\n\nYour code: {{ foo }}")

    assert error.details == {"field": "text_body", "line": 3, "name": "foo"}
    assert "foo" in error.message


async def test_an_unknown_attribute_of_a_restricted_variable_is_refused(
        renderer: Jinja2TemplateRenderer) -> None:
    error = await refused(renderer, "x\n{{ customer.password }}", "html_body")

    assert error.details == {"field": "html_body", "line": 2, "name": "customer.password"}


@pytest.mark.parametrize(("template", "name"), [
    ("{{ customer['password'] }}", "customer.password"),
    ("{{ campaign.default_data }}", "campaign.default_data"),
    ("{{ unsubscribe_url.upper() }}", "unsubscribe_url.upper"),
])
async def test_other_ways_to_reach_unknown_attributes_are_refused(
        renderer: Jinja2TemplateRenderer, template: str, name: str) -> None:
    error = await refused(renderer, template)

    assert error.details["name"] == name


async def test_an_unknown_filter_is_refused_with_its_line(
        renderer: Jinja2TemplateRenderer) -> None:
    error = await refused(renderer, "a\n{{ customer.full_name|nosuchfilter }}")

    assert error.details["line"] == 2
    assert "nosuchfilter" in error.message


async def test_the_first_unknown_variable_in_the_template_is_reported(
        renderer: Jinja2TemplateRenderer) -> None:
    error = await refused(renderer, "{{ zeta }}\n{{ alpha }}")

    assert error.details["name"] == "zeta"


async def test_data_can_be_restricted_to_the_keys_a_send_has(
        renderer: Jinja2TemplateRenderer) -> None:
    allowed = template_variables(["code"])

    await renderer.check("{{ data.code }}", allowed=allowed, field="subject")
    with pytest.raises(InvalidInput) as caught:
        await renderer.check("{{ data.code }}\n{{ data.promo }}", allowed=allowed,
                             field="subject")
    assert caught.value.details == {"field": "subject", "line": 2, "name": "data.promo"}


# -- render ----------------------------------------------------------------------------------

CONTEXT = {
    "customer": {"full_name": "<b>x</b>", "company": None, "tags": ["vip"]},
    "data": {"code": "A&B"},
    "campaign": {"name": "Tết"},
    "unsubscribe_url": "https://example.org/unsubscribe/c1?a=1&b=2",
}


async def test_html_is_autoescaped_and_text_is_not(renderer: Jinja2TemplateRenderer) -> None:
    template = "<p>Hi {{ customer.full_name }}, code {{ data.code }}</p>"

    html = await renderer.render(template, CONTEXT, autoescape=True)
    text = await renderer.render(template, CONTEXT)

    assert html == "<p>Hi &lt;b&gt;x&lt;/b&gt;, code A&amp;B</p>"
    assert text == "<p>Hi <b>x</b>, code A&B</p>"


async def test_none_renders_as_nothing(renderer: Jinja2TemplateRenderer) -> None:
    assert await renderer.render("[{{ customer.company }}]", CONTEXT) == "[]"


async def test_unicode_and_loops_render(renderer: Jinja2TemplateRenderer) -> None:
    rendered = await renderer.render(
        "{{ campaign.name }}: {% for t in customer.tags %}#{{ t }}{% endfor %}", CONTEXT)

    assert rendered == "Tết: #vip"


async def test_a_missing_key_is_a_template_error_with_its_line(
        renderer: Jinja2TemplateRenderer) -> None:
    with pytest.raises(InvalidInput) as caught:
        await renderer.render("Hello\n{{ data.missing }}", CONTEXT)

    assert caught.value.code == "template_error"
    assert caught.value.details["line"] == 2
    assert "missing" in caught.value.message


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__ }}",
    "{{ customer.full_name.__class__ }}",
    "{{ data.__init__ }}",
])
async def test_the_sandbox_refuses_private_attributes(renderer: Jinja2TemplateRenderer,
                                                      template: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await renderer.render(template, CONTEXT)

    assert caught.value.code == "template_error"


async def test_templates_cannot_change_the_shared_data(
        renderer: Jinja2TemplateRenderer) -> None:
    context = {"data": {"items": [1]}}

    with pytest.raises(InvalidInput):
        await renderer.render("{{ data['items'].append(2) }}", context)
    assert context["data"]["items"] == [1]


@pytest.mark.parametrize("template", ["{{ 'x' * 10**9 }}", "{{ 2 ** 100000 }}"])
async def test_huge_results_are_refused(renderer: Jinja2TemplateRenderer,
                                        template: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await renderer.render(template, CONTEXT)

    assert caught.value.code == "template_error"


async def test_runtime_errors_are_template_errors(renderer: Jinja2TemplateRenderer) -> None:
    with pytest.raises(InvalidInput) as caught:
        await renderer.render("a\nb\n{{ 1 / 0 }}", CONTEXT)

    assert caught.value.code == "template_error"
    assert caught.value.details["line"] == 3


async def test_a_template_that_does_not_compile_fails_to_render_cleanly(
        renderer: Jinja2TemplateRenderer) -> None:
    with pytest.raises(InvalidInput) as caught:
        await renderer.render("{% if %}", CONTEXT)

    assert caught.value.code == "template_error"
