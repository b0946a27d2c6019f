"""In-memory adapter of the prompt template port: templates with their version history.

Like the other in-memory adapters it is thread-safe (one ``threading.Lock``, never held across
an ``await``) and stores copies: a template changed by a caller without being saved changes
nothing stored, and what a method returns can be changed freely.
"""

from __future__ import annotations

import builtins
import copy
import threading

from notibot.application.ports import Page, PromptTemplateFilter, PromptTemplateRepository
from notibot.domain import Conflict, InvalidInput, NotFound, PromptKind, PromptTemplate
from notibot.domain.prompt import prompt_version_conflict, prompt_version_not_found
from notibot.domain.rules import normalize_language

_NameKey = tuple[str, str, str]


def prompt_name_key(template: PromptTemplate) -> _NameKey:
    """``(kind, language, case-folded name)``: the key that is unique among current
    templates (names are compared case-insensitively, like campaign names)."""
    return PromptKind(template.kind).value, template.language, template.name.casefold()


def prompt_language_key(language: str) -> str | None:
    """The stored form of a language asked for (``"VI"`` -> ``"vi"``), or None when it is no
    language code at all (then no template can match it)."""
    try:
        return normalize_language(language)
    except InvalidInput:
        return None


def _order(template: PromptTemplate) -> tuple[str, str, str, str]:
    """List order: kind, language, name (code point order, case-sensitive), id."""
    return PromptKind(template.kind).value, template.language, template.name, template.id


class MemoryPromptTemplateRepository(PromptTemplateRepository):
    """Prompt templates in a dict, each with the list of its earlier versions.

    Names are unique per ``(kind, language)`` among current templates, compared by their
    case-folded form (``"Greeting"`` and ``"greeting"`` collide). :meth:`add` stores the
    template as given (its ``version`` normally 1) with an empty history; :meth:`update`
    accepts exactly the stored version + 1 and moves the previous current version into the
    history. The ``language`` of :meth:`list`'s filter and of :meth:`find_active` is
    normalised like an entity's (``"VI"`` matches ``"vi"``); a value that is no language code
    matches nothing.

    Errors:
        Conflict: ``prompt_template_exists`` (details ``field: "id"``, ``existing_id``),
            ``prompt_template_name_taken`` (details ``field: "name"``, ``existing_id``),
            ``prompt_template_version_conflict`` (details ``id``, ``current_version``,
            ``version``: the one offered).
        NotFound: ``prompt_template_not_found``, ``prompt_template_version_not_found``
            (details ``key``: ``"<id>@<version>"``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[str, PromptTemplate] = {}
        self._history: dict[str, builtins.list[PromptTemplate]] = {}  # earlier versions
        self._by_name: dict[_NameKey, str] = {}  # name key -> id

    def _stored(self, template_id: str) -> PromptTemplate:
        try:
            return self._current[template_id]
        except KeyError:
            raise NotFound("prompt_template", template_id) from None

    def _check_name(self, template: PromptTemplate) -> None:
        owner = self._by_name.get(prompt_name_key(template))
        if owner is not None and owner != template.id:
            raise Conflict(
                f"a {PromptKind(template.kind).value} prompt template named "
                f"{template.name!r} exists in language {template.language!r}",
                code="prompt_template_name_taken",
                details={"field": "name", "existing_id": owner})

    async def add(self, template: PromptTemplate) -> None:
        """Store ``template`` as a new template with no earlier versions.

        Raises:
            Conflict: ``prompt_template_exists`` or ``prompt_template_name_taken``.
        """
        stored = copy.deepcopy(template)
        with self._lock:
            if template.id in self._current:
                raise Conflict(f"prompt template {template.id} exists",
                               code="prompt_template_exists",
                               details={"field": "id", "existing_id": template.id})
            self._check_name(stored)
            self._current[stored.id] = stored
            self._history[stored.id] = []
            self._by_name[prompt_name_key(stored)] = stored.id

    async def get(self, template_id: str, *, version: int | None = None) -> PromptTemplate:
        """The current version (``version`` None or the current number) or an earlier one.

        Raises:
            NotFound: ``prompt_template_not_found`` (unknown id) or
                ``prompt_template_version_not_found`` (known id, no such version).
        """
        with self._lock:
            current = self._stored(template_id)
            if version is None or version == current.version:
                return _copy_template(current)
            for earlier in self._history[template_id]:
                if earlier.version == version:
                    return copy.deepcopy(earlier)
        raise prompt_version_not_found(template_id, version)

    async def update(self, template: PromptTemplate) -> None:
        """Make ``template`` the current version; the previous one joins the history.

        Raises:
            NotFound: ``prompt_template_not_found``.
            Conflict: ``prompt_template_version_conflict`` (``template.version`` is not the
                stored version + 1; nothing is changed) or ``prompt_template_name_taken``.
        """
        stored = copy.deepcopy(template)
        with self._lock:
            old = self._stored(template.id)
            if template.version != old.version + 1:
                raise prompt_version_conflict(template, old.version)
            self._check_name(stored)
            self._history[template.id].append(old)
            del self._by_name[prompt_name_key(old)]
            self._current[template.id] = stored
            self._by_name[prompt_name_key(stored)] = stored.id

    async def delete(self, template_id: str) -> None:
        """Delete the template and its history.

        Raises:
            NotFound: ``prompt_template_not_found``.
        """
        with self._lock:
            old = self._stored(template_id)
            del self._current[template_id]
            del self._history[template_id]
            del self._by_name[prompt_name_key(old)]

    async def list(self, filter: PromptTemplateFilter, *, limit: int,
                   offset: int) -> Page[PromptTemplate]:
        """One page of current versions matching ``filter`` (kind, language, active), ordered
        by kind, language, name, id; ``total`` counts every match. A ``limit`` of 0 or less
        gives no items."""
        kind = PromptKind(filter.kind).value if filter.kind is not None else None
        language = prompt_language_key(filter.language) if filter.language is not None else None
        if filter.language is not None and language is None:
            return Page(items=[], total=0, limit=limit, offset=offset)
        with self._lock:
            found = [t for t in self._current.values()
                     if (kind is None or PromptKind(t.kind).value == kind)
                     and (language is None or t.language == language)
                     and (filter.active is None or t.active is filter.active)]
            found.sort(key=_order)
            start = max(0, offset)
            chosen = found[start:start + limit] if limit > 0 else []
            return Page(items=[copy.deepcopy(t) for t in chosen], total=len(found),
                        limit=limit, offset=offset)

    async def versions(self, template_id: str) -> builtins.list[PromptTemplate]:
        """Every version, oldest first; the last is the current one.

        Raises:
            NotFound: ``prompt_template_not_found``.
        """
        with self._lock:
            current = self._stored(template_id)
            return copy.deepcopy([*self._history[template_id], current])

    async def find_active(self, kind: PromptKind, language: str) -> PromptTemplate | None:
        """The active template of ``kind`` in ``language`` updated last (ties: smallest id),
        or None."""
        wanted_kind = PromptKind(kind).value
        wanted_language = prompt_language_key(language)
        if wanted_language is None:
            return None
        with self._lock:
            found = [t for t in self._current.values()
                     if t.active and PromptKind(t.kind).value == wanted_kind
                     and t.language == wanted_language]
            if not found:
                return None
            found.sort(key=lambda t: t.id)
            found.sort(key=lambda t: t.updated_at, reverse=True)  # stable: ids stay ordered
            return _copy_template(found[0])

    async def count(self) -> int:
        """How many templates exist (current versions)."""
        with self._lock:
            return len(self._current)


def _copy_template(template: PromptTemplate) -> PromptTemplate:
    """A copy of ``template``: its variants are frozen; the lists are copied (a chat turn
    reads two templates, a deep copy each would cost more than the rest of the read)."""
    copied = copy.copy(template)
    copied.variables = list(template.variables)
    copied.variants = list(template.variants)
    return copied
