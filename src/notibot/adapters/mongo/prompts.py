"""MongoDB adapter (motor) of the prompt template port: templates with their version history.

Two collections (indexes in :mod:`notibot.adapters.mongo.indexes`, shapes in
:mod:`notibot.adapters.mongo.prompt_mappers`):

- ``prompt_templates``: the current version of each template, ``_id`` = the template id.
  Names are unique per kind and language through the unique index on
  ``(kind, language, name_key)`` (``name_key``: the case-folded name), so the rule holds
  across processes.
- ``prompt_template_versions``: the earlier versions, one document per
  ``(template_id, version)``. The current version is never read from there.

An update is a compare-and-set on the current document
(``{"_id": id, "version": template.version - 1}``), so two concurrent updates of one version
cannot both win. Before it, the version being replaced is copied into the history (an
upsert on ``(template_id, version)``), so a process dying between the two writes never leaves
a hole in the history; the copy may then be a leftover of the still current version, which
reads ignore (they only take versions below the current one) and the next update overwrites.
After the swap the replaced document (as the compare-and-set found it) is written again if it
differs from the copy. :meth:`delete` removes the template, then its history; :meth:`add`
clears history leftovers of an earlier template of the same id.
"""

from __future__ import annotations

import builtins
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from notibot.adapters.mongo.errors import translate_errors
from notibot.adapters.mongo.indexes import PROMPT_TEMPLATE_VERSIONS, PROMPT_TEMPLATES
from notibot.adapters.mongo.prompt_mappers import (
    document_to_prompt_template,
    prompt_name_key,
    prompt_template_to_document,
    prompt_version_to_document,
)
from notibot.application.ports import Page, PromptTemplateFilter, PromptTemplateRepository
from notibot.domain import Conflict, InvalidInput, NotFound, PromptKind, PromptTemplate
from notibot.domain.prompt import prompt_version_conflict, prompt_version_not_found
from notibot.domain.rules import normalize_language

_LIST_ORDER = [("kind", ASCENDING), ("language", ASCENDING), ("name", ASCENDING),
               ("_id", ASCENDING)]
_ACTIVE_ORDER = [("updated_at", DESCENDING), ("_id", ASCENDING)]


def _language_key(language: str) -> str | None:
    """The stored form of a language asked for, or None when it is no language code."""
    try:
        return normalize_language(language)
    except InvalidInput:
        return None


class MongoPromptTemplateRepository(PromptTemplateRepository):
    """Prompt templates in ``prompt_templates``, earlier versions in
    ``prompt_template_versions`` (see the module docstring for how updates stay consistent).

    Semantics are those of
    :class:`~notibot.adapters.memory.prompts.MemoryPromptTemplateRepository` (the contract
    suite checks both): names unique per ``(kind, language)`` case-insensitively; ``add``
    stores the template as given; ``update`` accepts exactly the stored version + 1; the
    ``language`` of a list filter and of ``find_active`` is normalised (``"VI"`` -> ``"vi"``),
    a value that is no language code matches nothing.

    Errors:
        Conflict: ``prompt_template_exists`` (details ``field: "id"``, ``existing_id``),
            ``prompt_template_name_taken`` (details ``field: "name"``, ``existing_id``),
            ``prompt_template_version_conflict`` (details ``id``, ``current_version``,
            ``version``).
        NotFound: ``prompt_template_not_found``, ``prompt_template_version_not_found``.
        ServiceUnavailable: ``mongodb_unavailable`` / ``mongodb_error``.

    Parameters:
        database: an ``AsyncIOMotorDatabase`` (or the container's ``LazyDatabase``).
    """

    def __init__(self, database: Any) -> None:
        self._templates = database[PROMPT_TEMPLATES]
        self._versions = database[PROMPT_TEMPLATE_VERSIONS]

    async def _name_taken(self, template: PromptTemplate) -> Conflict:
        owner = await self._templates.find_one(
            {"kind": PromptKind(template.kind).value, "language": template.language,
             "name_key": prompt_name_key(template.name)}, {"_id": 1})
        return Conflict(
            f"a {PromptKind(template.kind).value} prompt template named {template.name!r} "
            f"exists in language {template.language!r}", code="prompt_template_name_taken",
            details={"field": "name", "existing_id": owner["_id"] if owner else None})

    async def _keep_in_history(self, document: dict[str, Any]) -> None:
        """Write the current-collection ``document`` as an earlier version (replacing any
        copy of that version)."""
        version = prompt_version_to_document(document_to_prompt_template(document))
        key = {"template_id": version["template_id"], "version": version["version"]}
        try:
            await self._versions.replace_one(key, version, upsert=True)
        except DuplicateKeyError:  # a concurrent upsert of the same key inserted it
            await self._versions.replace_one(key, version)

    async def add(self, template: PromptTemplate) -> None:
        """Store ``template`` as a new template with no earlier versions.

        Raises:
            Conflict: ``prompt_template_exists`` or ``prompt_template_name_taken``.
        """
        document = prompt_template_to_document(template)
        with translate_errors("add a prompt template", conflict_code="prompt_template_exists"):
            try:
                await self._templates.insert_one(document)
            except DuplicateKeyError as exc:
                # the id decides first, as in memory (servers and test doubles differ in
                # which index they name when both the id and the name are taken)
                if await self._templates.find_one({"_id": template.id}, {"_id": 1}) is not None:
                    raise Conflict(f"prompt template {template.id} exists",
                                   code="prompt_template_exists",
                                   details={"field": "id", "existing_id": template.id}
                                   ) from exc
                raise await self._name_taken(template) from exc
            await self._versions.delete_many(
                {"template_id": template.id, "version": {"$lt": template.version}})

    async def get(self, template_id: str, *, version: int | None = None) -> PromptTemplate:
        """The current version (``version`` None or the current number) or an earlier one.

        Raises:
            NotFound: ``prompt_template_not_found`` (unknown id) or
                ``prompt_template_version_not_found`` (known id, no such version).
        """
        with translate_errors("read a prompt template"):
            current = await self._templates.find_one({"_id": template_id})
            if current is None:
                raise NotFound("prompt_template", template_id)
            if version is None or version == current["version"]:
                return document_to_prompt_template(current)
            earlier = None
            if version < current["version"]:
                earlier = await self._versions.find_one(
                    {"template_id": template_id, "version": version})
        if earlier is None:
            raise prompt_version_not_found(template_id, version)
        return document_to_prompt_template(earlier)

    async def update(self, template: PromptTemplate) -> None:
        """Make ``template`` the current version; the previous one joins the history.

        Raises:
            NotFound: ``prompt_template_not_found``.
            Conflict: ``prompt_template_version_conflict`` (``template.version`` is not the
                stored version + 1; nothing visible changes) or
                ``prompt_template_name_taken``.
        """
        document = prompt_template_to_document(template)
        with translate_errors("update a prompt template",
                              conflict_code="prompt_template_name_taken"):
            current = await self._templates.find_one({"_id": template.id})
            if current is None:
                raise NotFound("prompt_template", template.id)
            if current["version"] != template.version - 1:
                raise prompt_version_conflict(template, current["version"])
            await self._keep_in_history(current)
            try:
                replaced = await self._templates.find_one_and_replace(
                    {"_id": template.id, "version": template.version - 1}, document,
                    return_document=ReturnDocument.BEFORE)
            except DuplicateKeyError as exc:
                raise await self._name_taken(template) from exc
            if replaced is None:
                now = await self._templates.find_one({"_id": template.id}, {"version": 1})
                if now is None:
                    raise NotFound("prompt_template", template.id)
                raise prompt_version_conflict(template, now["version"])
            if replaced != current:  # deleted and added again between the read and the swap
                await self._keep_in_history(replaced)

    async def delete(self, template_id: str) -> None:
        """Delete the template and its history.

        Raises:
            NotFound: ``prompt_template_not_found``.
        """
        with translate_errors("delete a prompt template"):
            result = await self._templates.delete_one({"_id": template_id})
            if result.deleted_count == 0:
                raise NotFound("prompt_template", template_id)
            await self._versions.delete_many({"template_id": template_id})

    async def list(self, filter: PromptTemplateFilter, *, limit: int,
                   offset: int) -> Page[PromptTemplate]:
        """One page of current versions matching ``filter`` (kind, language, active), ordered
        by kind, language, name (binary order), id; ``total`` counts every match. A
        ``limit`` of 0 or less gives no items."""
        query: dict[str, Any] = {}
        if filter.kind is not None:
            query["kind"] = PromptKind(filter.kind).value
        if filter.language is not None:
            language = _language_key(filter.language)
            if language is None:
                return Page(items=[], total=0, limit=limit, offset=offset)
            query["language"] = language
        if filter.active is not None:
            query["active"] = filter.active
        with translate_errors("list prompt templates"):
            total = await self._templates.count_documents(query)
            documents: builtins.list[dict[str, Any]] = []
            if limit > 0 and offset < total:
                cursor = self._templates.find(query).sort(_LIST_ORDER).skip(
                    max(0, offset)).limit(limit)
                documents = await cursor.to_list(length=None)
        return Page(items=[document_to_prompt_template(d) for d in documents], total=total,
                    limit=limit, offset=offset)

    async def versions(self, template_id: str) -> builtins.list[PromptTemplate]:
        """Every version, oldest first; the last is the current one.

        Raises:
            NotFound: ``prompt_template_not_found``.
        """
        with translate_errors("read a prompt template's versions"):
            current = await self._templates.find_one({"_id": template_id})
            if current is None:
                raise NotFound("prompt_template", template_id)
            earlier = await self._versions.find(
                {"template_id": template_id, "version": {"$lt": current["version"]}}
            ).sort([("version", ASCENDING)]).to_list(length=None)
        return [*map(document_to_prompt_template, earlier),
                document_to_prompt_template(current)]

    async def find_active(self, kind: PromptKind, language: str) -> PromptTemplate | None:
        """The active template of ``kind`` in ``language`` updated last (ties: smallest id),
        or None."""
        wanted_language = _language_key(language)
        if wanted_language is None:
            return None
        query = {"kind": PromptKind(kind).value, "language": wanted_language, "active": True}
        with translate_errors("find the active prompt template"):
            documents = await self._templates.find(query).sort(_ACTIVE_ORDER).limit(
                1).to_list(length=None)
        return document_to_prompt_template(documents[0]) if documents else None

    async def count(self) -> int:
        """How many templates exist (current versions)."""
        with translate_errors("count prompt templates"):
            return int(await self._templates.count_documents({}))
