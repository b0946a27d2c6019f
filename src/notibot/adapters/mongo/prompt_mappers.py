"""Explicit data mappers of the prompt template collections (conventions of
:mod:`notibot.adapters.mongo.mappers`: ``_id`` is the entity id, BSON dates in UTC with
millisecond precision, enums as their values).

Shapes::

    prompt_templates          {_id, kind, name, name_key, language, body, variables: [str],
                               version, active, variants: [variant], created_at, updated_at}
                              (the current version; name_key: the case-folded name, unique
                               per kind and language)
    prompt_template_versions  {_id: ObjectId, template_id, kind, name, language, body,
                               variables: [str], version, active, variants: [variant],
                               created_at, updated_at}
                              (an earlier version; unique per template_id and version)
    variant                   {name, body, weight}
"""

from __future__ import annotations

from typing import Any

from notibot.adapters.mongo.mappers import as_utc, fold
from notibot.domain import PromptKind, PromptTemplate, PromptVariant


def prompt_name_key(name: str) -> str:
    """The case-folded name that the unique index ``kind_language_name_unique`` holds
    (with the kind and the language)."""
    return fold(name) or ""


def prompt_template_to_document(template: PromptTemplate) -> dict[str, Any]:
    """The ``prompt_templates`` document of ``template`` (a new dict sharing nothing mutable
    with the entity)."""
    return {
        "_id": template.id,
        "kind": PromptKind(template.kind).value,
        "name": template.name,
        "name_key": prompt_name_key(template.name),
        "language": template.language,
        "body": template.body,
        "variables": list(template.variables),
        "version": template.version,
        "active": template.active,
        "variants": [{"name": v.name, "body": v.body, "weight": v.weight}
                     for v in template.variants],
        "created_at": template.created_at,
        "updated_at": template.updated_at,
    }


def prompt_version_to_document(template: PromptTemplate) -> dict[str, Any]:
    """The ``prompt_template_versions`` document of ``template`` as an earlier version
    (no ``_id``: the server gives one; no ``name_key``: names of old versions are not
    unique)."""
    document = prompt_template_to_document(template)
    del document["_id"], document["name_key"]
    return {"template_id": template.id, **document}


def document_to_prompt_template(document: dict[str, Any]) -> PromptTemplate:
    """The template stored as ``document`` (of either collection)."""
    created_at = as_utc(document.get("created_at"))
    updated_at = as_utc(document.get("updated_at")) or created_at
    assert created_at is not None and updated_at is not None, "prompt templates have times"
    return PromptTemplate(
        id=document["template_id"] if "template_id" in document else document["_id"],
        kind=PromptKind(document["kind"]),
        name=document["name"],
        language=document["language"],
        body=document["body"],
        created_at=created_at,
        updated_at=updated_at,
        variables=list(document.get("variables") or []),
        version=int(document.get("version") or 1),
        active=bool(document.get("active", True)),
        variants=[PromptVariant(name=v["name"], body=v["body"], weight=int(v["weight"]))
                  for v in document.get("variants") or []],
    )
