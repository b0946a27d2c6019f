"""``/prompts/*``: the prompt templates the chat model is given (system and context, per
language, versioned, with A/B variants) and rendering them for testing.

The use cases are :class:`~notibot.application.services.prompts.PromptService`.
"""

from __future__ import annotations

import falcon
from falcon.asgi import Request, Response
from spectree import Tag

from notibot.application.services.prompts import PromptService
from notibot.entrypoints.http.middleware import ADMIN
from notibot.entrypoints.http.openapi import endpoint
from notibot.entrypoints.http.schemas import (
    PromptRenderRequest,
    PromptTemplateCreate,
    PromptTemplateOut,
    PromptTemplatePage,
    PromptTemplateQuery,
    PromptTemplateReplace,
    PromptTemplateVersions,
    PromptVersionQuery,
    RenderedPromptOut,
    prompt_template_json,
    prompt_template_page_json,
    prompt_versions_json,
    rendered_prompt_json,
)
from notibot.entrypoints.http.validation import parse_body, parse_query

TAG_PROMPTS = Tag(name="prompts", description=(
    "Prompt templates of the AI chat: `system` (personality, rules, language) and `context` "
    "(the customer's data), per language, versioned, with sticky A/B variants. English and "
    "Vietnamese defaults are installed when there are none."))


class PromptTemplateCollection:
    """``GET /prompts/templates`` (list) and ``POST /prompts/templates`` (create)."""

    def __init__(self, prompts: PromptService) -> None:
        self._prompts = prompts

    @endpoint(tag=TAG_PROMPTS, operation_id="listPromptTemplates", query=PromptTemplateQuery,
              response=PromptTemplatePage)
    async def on_get(self, req: Request, resp: Response) -> None:
        """List prompt templates

        The current version of every template matching the filters (`kind`, `language`,
        `active`), ordered by kind, language and name, with the total number of matches.
        A bad `language` answers 422 `invalid_language`.
        """
        query = parse_query(req, PromptTemplateQuery)
        page = await self._prompts.list(
            kind=query.kind.value if query.kind is not None else None,
            language=query.language, active=query.active, limit=query.limit,
            offset=query.offset)
        resp.media = prompt_template_page_json(page)

    @endpoint(tag=TAG_PROMPTS, operation_id="createPromptTemplate", status=201,
              body=PromptTemplateCreate, response=PromptTemplateOut, errors=[409],
              headers={"Location": "the new template's URL"})
    async def on_post(self, req: Request, resp: Response) -> None:
        """Create a prompt template

        A template is `{kind, name, language, body, variables, active, variants}`; it
        starts at version 1. The body (and each variant's) is a sandboxed Jinja2 template
        that may use only the declared `variables`; one that does not compile or uses
        another variable answers 422 `invalid_template` with `details` `{field, line,
        name}`; declaring a variable that does not exist answers 422 `invalid_variables`
        (`details.name`); a bad `language` 422 `invalid_language`. A name taken by a
        template of the same kind and language answers 409 `prompt_template_name_taken`.
        The `Location` header gives the template's URL.
        """
        body = await parse_body(req, PromptTemplateCreate)
        template = await self._prompts.create(body.model_dump(mode="json", exclude_unset=True))
        resp.status = falcon.HTTP_201
        resp.location = f"{req.root_path}/prompts/templates/{template.id}"
        resp.media = prompt_template_json(template)


class PromptTemplateItem:
    """``GET``, ``PUT``, ``DELETE /prompts/templates/{template_id}``."""

    access = {"DELETE": ADMIN}

    def __init__(self, prompts: PromptService) -> None:
        self._prompts = prompts

    @endpoint(tag=TAG_PROMPTS, operation_id="getPromptTemplate", query=PromptVersionQuery,
              response=PromptTemplateOut, errors=[404])
    async def on_get(self, req: Request, resp: Response, template_id: str) -> None:
        """Get a prompt template

        The current version, or `?version=n`. Unknown: 404 `prompt_template_not_found`,
        `prompt_template_version_not_found`.
        """
        query = parse_query(req, PromptVersionQuery)
        resp.media = prompt_template_json(
            await self._prompts.get(template_id, version=query.version))

    @endpoint(tag=TAG_PROMPTS, operation_id="replacePromptTemplate",
              body=PromptTemplateReplace, response=PromptTemplateOut, errors=[404, 409])
    async def on_put(self, req: Request, resp: Response, template_id: str) -> None:
        """Update a prompt template (new version)

        Stores the body sent as the next version (every field replaced; omitted ones take
        their defaults) and returns it; earlier versions stay readable at
        `/prompts/templates/{id}/versions`. Replies already given keep naming the version
        they used; the next replies use the new one. Checked as on create (422
        `invalid_template`, `invalid_variables`); a changed `kind` answers 422
        `immutable_field`; a concurrent update that won answers 409
        `prompt_template_version_conflict`; a taken name 409 `prompt_template_name_taken`.
        """
        body = await parse_body(req, PromptTemplateReplace)
        template = await self._prompts.replace(
            template_id, body.model_dump(mode="json", exclude_unset=True))
        resp.media = prompt_template_json(template)

    @endpoint(tag=TAG_PROMPTS, operation_id="deletePromptTemplate", status=204, errors=[404])
    async def on_delete(self, req: Request, resp: Response, template_id: str) -> None:
        """Delete a prompt template

        Deletes it with its history. Conversations in its language then use another
        active template of its kind, else the English one, else the built-in default.
        """
        await self._prompts.delete(template_id)
        resp.status = falcon.HTTP_204


class PromptTemplateVersionList:
    """``GET /prompts/templates/{template_id}/versions``."""

    def __init__(self, prompts: PromptService) -> None:
        self._prompts = prompts

    @endpoint(tag=TAG_PROMPTS, operation_id="listPromptTemplateVersions",
              response=PromptTemplateVersions, errors=[404])
    async def on_get(self, req: Request, resp: Response, template_id: str) -> None:
        """List a prompt template's versions

        Every version, oldest first (the last is the current one). Unknown: 404
        `prompt_template_not_found`.
        """
        resp.media = prompt_versions_json(await self._prompts.versions(template_id))


class PromptRender:
    """``POST /prompts/render``."""

    def __init__(self, prompts: PromptService) -> None:
        self._prompts = prompts

    @endpoint(tag=TAG_PROMPTS, operation_id="renderPromptTemplate", body=PromptRenderRequest,
              response=RenderedPromptOut, errors=[404])
    async def on_post(self, req: Request, resp: Response) -> None:
        """Render a prompt template

        Renders a stored template (the current version, or `version`) as the model would
        get it: `customer` is the profile of `customer_id` (every field null without one),
        `data` the object sent, `notifications` empty, `language` the customer's or the
        template's. Answers `{text, template_id, version, variant, kind, language}`.

        Refused: an unknown template, version or customer (404
        `prompt_template_not_found`, `prompt_template_version_not_found`,
        `customer_not_found`); an unknown `variant` (422 `unknown_variant`); a template that
        fails to render (422 `template_error` with the line).
        """
        body = await parse_body(req, PromptRenderRequest)
        rendered = await self._prompts.render(
            body.template_id, customer_id=body.customer_id, data=body.data,
            version=body.version, variant=body.variant)
        resp.media = rendered_prompt_json(rendered)
