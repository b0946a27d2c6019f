"""PromptTemplate: a system or context prompt with versions and sticky A/B variants."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from notibot.domain.errors import Conflict, InvalidInput, NotFound
from notibot.domain.rules import normalize_language, require_text


class PromptKind(StrEnum):
    """``system``: personality, rules, language. ``context``: customer profile and recent
    notifications."""

    SYSTEM = "system"
    CONTEXT = "context"


@dataclass(slots=True, frozen=True)
class PromptVariant:
    """One A/B arm of a template: its own body and a positive integer weight."""

    name: str
    body: str
    weight: int = 1


@dataclass(slots=True)
class PromptTemplate:
    """A prompt template. Every update is a new ``version`` (history kept by the repository).

    Rules: non-empty name and body; ``variables`` are the declared names the body may use
    (checked by the template renderer at save time); variant names are unique and weights
    positive.
    """

    id: str
    kind: PromptKind
    name: str
    language: str
    body: str
    created_at: datetime
    updated_at: datetime
    variables: list[str] = field(default_factory=list)
    version: int = 1
    active: bool = True
    variants: list[PromptVariant] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = require_text(self.name, "name", max_length=200)
        self.body = require_text(self.body, "body", max_length=100_000)
        self.language = normalize_language(self.language)
        if self.version < 1:
            raise InvalidInput("version starts at 1", code="invalid_version")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise InvalidInput("variant names must be unique", code="invalid_variants")
        for variant in self.variants:
            require_text(variant.body, "body", max_length=100_000)
            if variant.weight < 1:
                raise InvalidInput(f"variant {variant.name!r} needs a weight >= 1",
                                   code="invalid_variants")

    def choose_variant(self, customer_id: str) -> PromptVariant:
        """The variant this customer always gets: SHA-256 of ``"<template id>:<customer id>"``
        modulo the total weight picks an arm, so the choice is sticky and spread by weight.
        Without variants the template's own body is the single arm named ``"default"``."""
        if not self.variants:
            return PromptVariant(name="default", body=self.body, weight=1)
        digest = hashlib.sha256(f"{self.id}:{customer_id}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") % sum(v.weight for v in self.variants)
        for variant in self.variants:
            if point < variant.weight:
                return variant
            point -= variant.weight
        return self.variants[-1]  # unreachable: point < total weight


def prompt_version_conflict(template: PromptTemplate, current_version: int) -> Conflict:
    """The Conflict ``prompt_template_version_conflict`` of an update offering
    ``template.version`` while ``current_version`` is stored."""
    return Conflict(
        f"prompt template {template.id} is at version {current_version}; an update must "
        f"bring version {current_version + 1}, not {template.version}",
        code="prompt_template_version_conflict",
        details={"id": template.id, "current_version": current_version,
                 "version": template.version})


def prompt_version_not_found(template_id: str, version: int) -> NotFound:
    """The NotFound ``prompt_template_version_not_found`` of a missing version."""
    return NotFound("prompt_template_version", f"{template_id}@{version}",
                    message=f"prompt template {template_id} has no version {version}")
