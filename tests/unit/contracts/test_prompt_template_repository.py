"""Contract of the PromptTemplateRepository port: every adapter must pass these tests.

Add an adapter by appending a factory to ``ADAPTERS``: a zero-argument callable returning an
async context manager that yields an empty repository and cleans up on exit. Times are whole
milliseconds (BSON's precision). Names are unique per (kind, language), case-insensitively.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mongo_support import database_params, mongo_adapters

from notibot.adapters.memory import MemoryPromptTemplateRepository
from notibot.adapters.mongo import MongoPromptTemplateRepository
from notibot.adapters.mongo.indexes import PROMPT_TEMPLATE_VERSIONS
from notibot.adapters.mongo.prompt_mappers import prompt_version_to_document
from notibot.application.ports import PromptTemplateFilter, PromptTemplateRepository
from notibot.domain import Conflict, NotFound, PromptKind, PromptTemplate, PromptVariant


@asynccontextmanager
async def memory_repository() -> AsyncIterator[PromptTemplateRepository]:
    yield MemoryPromptTemplateRepository()


ADAPTERS = [pytest.param(memory_repository, id="memory"),
            *mongo_adapters(MongoPromptTemplateRepository)]

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
SYSTEM, CONTEXT = PromptKind.SYSTEM, PromptKind.CONTEXT


@pytest.fixture(params=ADAPTERS)
async def repo(request: pytest.FixtureRequest) -> AsyncIterator[PromptTemplateRepository]:
    async with request.param() as repository:
        yield repository


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def make(id: str, name: str | None = None, *, kind: PromptKind = SYSTEM,
         language: str = "vi", minute: float = 0, active: bool = True,
         body: str | None = None) -> PromptTemplate:
    return PromptTemplate(id=id, kind=kind, name=name or f"Prompt {id}", language=language,
                          body=body or f"You are the assistant of {id}.",
                          created_at=at(minute), updated_at=at(minute), active=active)


def next_version(template: PromptTemplate, *, minute: float, **changes: object
                 ) -> PromptTemplate:
    """The template's next version, updated at ``minute`` with ``changes``."""
    return dataclasses.replace(template, version=template.version + 1, updated_at=at(minute),
                               **changes)  # type: ignore[arg-type]


def rich(id: str = "p1") -> PromptTemplate:
    return PromptTemplate(
        id=id, kind=CONTEXT, name="Customer context", language="pt-BR",
        body="Khách hàng: {{ customer.full_name }}\nThông báo: {{ notifications }}",
        created_at=datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=UTC),
        updated_at=datetime(2026, 2, 4, 4, 5, 6, 1000, tzinfo=UTC),
        variables=["customer", "notifications"], version=1, active=False,
        variants=[PromptVariant(name="short", body="Ngắn: {{ customer }}", weight=1),
                  PromptVariant(name="long", body="Dài: {{ customer }} {{ notifications }}",
                                weight=3)],
    )


# -- add / get -------------------------------------------------------------------------------


async def test_add_then_get_returns_an_equal_template(repo: PromptTemplateRepository) -> None:
    template = rich()
    await repo.add(template)

    got = await repo.get("p1")

    assert got == template
    assert got.language == "pt-br"
    assert got.kind is CONTEXT
    assert got.variants[1] == PromptVariant(name="long", body=template.variants[1].body,
                                            weight=3)
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == timedelta(0)
    assert await repo.get("p1", version=1) == template


async def test_get_unknown_raises_prompt_template_not_found(
    repo: PromptTemplateRepository,
) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.get("ghost")
    assert exc.value.code == "prompt_template_not_found"

    with pytest.raises(NotFound) as exc:
        await repo.get("ghost", version=1)
    assert exc.value.code == "prompt_template_not_found"


async def test_a_taken_id_raises_exists_and_keeps_the_stored_one(
    repo: PromptTemplateRepository,
) -> None:
    await repo.add(make("p1", "First"))

    with pytest.raises(Conflict) as exc:
        await repo.add(make("p1", "Second", kind=CONTEXT, language="en"))

    assert exc.value.code == "prompt_template_exists"
    with pytest.raises(Conflict) as exc:
        await repo.add(make("p1", "First"))  # the same id and name: the id decides
    assert exc.value.code == "prompt_template_exists"
    assert (await repo.get("p1")).name == "First"
    assert await repo.count() == 1


async def test_a_name_taken_in_the_same_kind_and_language_raises_name_taken(
    repo: PromptTemplateRepository,
) -> None:
    await repo.add(make("p1", "Greeting"))

    for name in ("Greeting", "GREETING"):
        with pytest.raises(Conflict) as exc:
            await repo.add(make("p2", name))
        assert exc.value.code == "prompt_template_name_taken"
        assert exc.value.details["existing_id"] == "p1"

    assert await repo.count() == 1
    with pytest.raises(NotFound):
        await repo.get("p2")


async def test_a_name_is_free_in_another_language_or_kind(
    repo: PromptTemplateRepository,
) -> None:
    await repo.add(make("p1", "Greeting"))
    await repo.add(make("p2", "Greeting", language="en"))
    await repo.add(make("p3", "Greeting", kind=CONTEXT))

    assert await repo.count() == 3


async def test_concurrent_adds_of_one_name_let_exactly_one_win(
    repo: PromptTemplateRepository,
) -> None:
    results = await asyncio.gather(*(repo.add(make(f"p{i}", "Same")) for i in range(8)),
                                   return_exceptions=True)

    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) and r.code == "prompt_template_name_taken"
               for r in results if r is not None)
    assert await repo.count() == 1


def test_threads_adding_one_name_let_exactly_one_win_in_memory() -> None:
    repository = MemoryPromptTemplateRepository()
    threads = 16
    barrier = threading.Barrier(threads)
    results: list[BaseException | None] = [None] * threads

    def add(i: int) -> None:
        barrier.wait()
        try:
            asyncio.run(repository.add(make(f"p{i}", "Same")))
        except BaseException as exc:
            results[i] = exc

    workers = [threading.Thread(target=add, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sum(r is None for r in results) == 1
    assert asyncio.run(repository.count()) == 1


# -- copies ----------------------------------------------------------------------------------


async def test_returned_templates_are_copies(repo: PromptTemplateRepository) -> None:
    original = rich()
    await repo.add(original)
    original.variables.append("added-after-save")
    original.variants.clear()
    original.body = "changed after save"

    got = await repo.get("p1")
    got.variables.append("x")
    got.variants.pop()
    got.name = "tampered"
    listed = (await repo.list(PromptTemplateFilter(), limit=10, offset=0)).items[0]
    listed.variables.clear()
    history = await repo.versions("p1")
    history[0].variants.clear()
    history.clear()

    assert await repo.get("p1") == rich()
    assert await repo.versions("p1") == [rich()]


async def test_changing_an_updated_template_changes_nothing_stored(
    repo: PromptTemplateRepository,
) -> None:
    first = make("p1")
    await repo.add(first)
    second = next_version(first, minute=1, variables=["customer"])
    await repo.update(second)
    second.variables.append("later")

    assert (await repo.get("p1")).variables == ["customer"]


# -- update and versions ---------------------------------------------------------------------


async def test_updates_keep_every_version_oldest_first(repo: PromptTemplateRepository) -> None:
    v1 = make("p1", "Greeting", body="Body one")
    await repo.add(v1)
    v2 = next_version(v1, minute=1, body="Body two", variables=["customer"])
    await repo.update(v2)
    v3 = next_version(v2, minute=2, name="Welcome", active=False,
                      variants=[PromptVariant(name="a", body="A", weight=2)])
    await repo.update(v3)

    assert await repo.get("p1") == v3
    assert await repo.versions("p1") == [v1, v2, v3]
    assert await repo.get("p1", version=1) == v1
    assert await repo.get("p1", version=2) == v2
    assert await repo.get("p1", version=3) == v3
    assert await repo.count() == 1
    page = await repo.list(PromptTemplateFilter(), limit=10, offset=0)
    assert page.items == [v3] and page.total == 1


async def test_get_of_a_missing_version_raises_version_not_found(
    repo: PromptTemplateRepository,
) -> None:
    v1 = make("p1")
    await repo.add(v1)
    await repo.update(next_version(v1, minute=1))

    for version in (0, 3, 99):
        with pytest.raises(NotFound) as exc:
            await repo.get("p1", version=version)
        assert exc.value.code == "prompt_template_version_not_found"


async def test_a_stale_update_raises_version_conflict_and_changes_nothing(
    repo: PromptTemplateRepository,
) -> None:
    v1 = make("p1", body="Original")
    await repo.add(v1)
    v2 = next_version(v1, minute=1, body="First writer")
    await repo.update(v2)

    for offered in (next_version(v1, minute=2, body="Second writer"),       # version 2 again
                    dataclasses.replace(v2, version=4, body="Skips one"),   # version 4
                    dataclasses.replace(v2, body="Same version")):          # version 2
        with pytest.raises(Conflict) as exc:
            await repo.update(offered)
        assert exc.value.code == "prompt_template_version_conflict"

    assert await repo.get("p1") == v2
    assert await repo.versions("p1") == [v1, v2]


async def test_concurrent_updates_of_one_version_let_exactly_one_win(
    repo: PromptTemplateRepository,
) -> None:
    v1 = make("p1")
    await repo.add(v1)
    offers = [next_version(v1, minute=1, body=f"writer {i}") for i in range(6)]

    results = await asyncio.gather(*(repo.update(o) for o in offers), return_exceptions=True)

    winners = [o for o, r in zip(offers, results, strict=True) if r is None]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) and r.code == "prompt_template_version_conflict"
               for r in results if r is not None)
    assert await repo.versions("p1") == [v1, winners[0]]


async def test_update_of_an_unknown_template_raises_not_found(
    repo: PromptTemplateRepository,
) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.update(next_version(make("ghost"), minute=1))

    assert exc.value.code == "prompt_template_not_found"
    assert await repo.count() == 0


async def test_a_rename_into_a_taken_name_raises_name_taken_and_changes_nothing(
    repo: PromptTemplateRepository,
) -> None:
    await repo.add(make("p1", "Greeting"))
    other = make("p2", "Farewell")
    await repo.add(other)

    with pytest.raises(Conflict) as exc:
        await repo.update(next_version(other, minute=1, name="greeting"))

    assert exc.value.code == "prompt_template_name_taken"
    assert exc.value.details["existing_id"] == "p1"
    assert await repo.get("p2") == other
    assert await repo.versions("p2") == [other]
    await repo.update(next_version(other, minute=2, name="Bye"))  # version 2 still free
    assert (await repo.get("p2")).version == 2


async def test_an_update_may_keep_its_name_or_change_its_case(
    repo: PromptTemplateRepository,
) -> None:
    v1 = make("p1", "Greeting")
    await repo.add(v1)
    v2 = next_version(v1, minute=1, name="GREETING")
    await repo.update(v2)

    assert (await repo.get("p1")).name == "GREETING"


async def test_a_rename_or_move_frees_the_old_name(repo: PromptTemplateRepository) -> None:
    v1 = make("p1", "Greeting")
    await repo.add(v1)
    v2 = next_version(v1, minute=1, name="Welcome")
    await repo.update(v2)
    await repo.add(make("p2", "Greeting"))
    await repo.update(next_version(v2, minute=2, language="en"))
    await repo.add(make("p3", "Welcome"))

    assert await repo.count() == 3


# -- delete ----------------------------------------------------------------------------------


async def test_delete_removes_the_template_its_history_and_its_name(
    repo: PromptTemplateRepository,
) -> None:
    v1 = make("p1", "Greeting")
    await repo.add(v1)
    await repo.update(next_version(v1, minute=1))

    await repo.delete("p1")

    for read in (repo.get("p1"), repo.get("p1", version=1), repo.versions("p1")):
        with pytest.raises(NotFound) as exc:
            await read
        assert exc.value.code == "prompt_template_not_found"
    assert await repo.count() == 0
    again = make("p1", "Greeting", body="A new life")
    await repo.add(again)
    assert await repo.versions("p1") == [again]
    again_v2 = next_version(again, minute=5)
    await repo.update(again_v2)
    assert await repo.versions("p1") == [again, again_v2]


async def test_delete_unknown_raises_not_found(repo: PromptTemplateRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.delete("ghost")

    assert exc.value.code == "prompt_template_not_found"


async def test_versions_of_unknown_raises_not_found(repo: PromptTemplateRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.versions("ghost")

    assert exc.value.code == "prompt_template_not_found"


# -- list / count ----------------------------------------------------------------------------


async def fill(repo: PromptTemplateRepository) -> None:
    """Templates added in an order unrelated to the list order."""
    for template in (
        make("s-vi-b", "beta", kind=SYSTEM, language="vi"),
        make("c-en-a", "alpha", kind=CONTEXT, language="en", active=False),
        make("s-en-z", "Zulu", kind=SYSTEM, language="en"),
        make("s-vi-a", "Alpha", kind=SYSTEM, language="vi", active=False),
        make("c-vi-a", "alpha", kind=CONTEXT, language="vi"),
        make("s-en-a", "alpha", kind=SYSTEM, language="en"),
    ):
        await repo.add(template)


ORDER = ["c-en-a", "c-vi-a", "s-en-z", "s-en-a", "s-vi-a", "s-vi-b"]  # kind, language, name, id


async def test_list_orders_by_kind_language_name_id_with_paging_and_total(
    repo: PromptTemplateRepository,
) -> None:
    await fill(repo)
    everything = PromptTemplateFilter()

    first = await repo.list(everything, limit=4, offset=0)
    second = await repo.list(everything, limit=4, offset=4)
    beyond = await repo.list(everything, limit=4, offset=10)
    none = await repo.list(everything, limit=0, offset=0)

    assert [t.id for t in first.items] == ORDER[:4]
    assert [t.id for t in second.items] == ORDER[4:]
    assert (first.total, second.total, beyond.total, none.total) == (6, 6, 6, 6)
    assert beyond.items == [] and none.items == []
    assert (first.limit, first.offset, second.offset) == (4, 0, 4)


async def test_list_orders_by_kind_before_language_before_name(
    repo: PromptTemplateRepository,
) -> None:
    await repo.add(make("b", "Same", language="en"))
    await repo.add(make("a", "Same", language="vi"))
    await repo.add(make("c", "Same", language="en", kind=CONTEXT))

    page = await repo.list(PromptTemplateFilter(), limit=10, offset=0)

    assert [t.id for t in page.items] == ["c", "b", "a"]


@pytest.mark.parametrize(("filter", "expected"), [
    (PromptTemplateFilter(kind=SYSTEM), ["s-en-z", "s-en-a", "s-vi-a", "s-vi-b"]),
    (PromptTemplateFilter(kind=CONTEXT), ["c-en-a", "c-vi-a"]),
    (PromptTemplateFilter(language="vi"), ["c-vi-a", "s-vi-a", "s-vi-b"]),
    (PromptTemplateFilter(language="EN"), ["c-en-a", "s-en-z", "s-en-a"]),
    (PromptTemplateFilter(active=True), ["c-vi-a", "s-en-z", "s-en-a", "s-vi-b"]),
    (PromptTemplateFilter(active=False), ["c-en-a", "s-vi-a"]),
    (PromptTemplateFilter(kind=SYSTEM, language="vi", active=True), ["s-vi-b"]),
    (PromptTemplateFilter(kind=CONTEXT, language="fr"), []),
    (PromptTemplateFilter(language="not a language!"), []),
])
async def test_list_filters(repo: PromptTemplateRepository, filter: PromptTemplateFilter,
                            expected: list[str]) -> None:
    await fill(repo)

    page = await repo.list(filter, limit=10, offset=0)

    assert [t.id for t in page.items] == expected
    assert page.total == len(expected)


async def test_list_paging_counts_the_filtered_total(repo: PromptTemplateRepository) -> None:
    await fill(repo)

    page = await repo.list(PromptTemplateFilter(kind=SYSTEM), limit=2, offset=1)

    assert [t.id for t in page.items] == ["s-en-a", "s-vi-a"]
    assert page.total == 4


async def test_list_and_count_of_an_empty_store(repo: PromptTemplateRepository) -> None:
    page = await repo.list(PromptTemplateFilter(), limit=10, offset=0)

    assert (page.items, page.total, page.limit, page.offset) == ([], 0, 10, 0)
    assert await repo.count() == 0


async def test_count_counts_templates_not_versions(repo: PromptTemplateRepository) -> None:
    await fill(repo)
    v1 = make("x", "Extra")
    await repo.add(v1)
    await repo.update(next_version(v1, minute=1))

    assert await repo.count() == 7


# -- find_active -----------------------------------------------------------------------------


async def test_find_active_picks_the_most_recently_updated_active_template(
    repo: PromptTemplateRepository,
) -> None:
    await repo.add(make("old", "Old", minute=1))
    newest_inactive = make("off", "Off", minute=50, active=False)
    await repo.add(newest_inactive)
    await repo.add(make("other-lang", "Other", language="en", minute=60))
    await repo.add(make("other-kind", "Ctx", kind=CONTEXT, minute=70))
    await repo.add(make("new", "New", minute=5))

    found = await repo.find_active(SYSTEM, "vi")

    assert found is not None and found.id == "new"
    found_upper = await repo.find_active(SYSTEM, "VI")
    assert found_upper is not None and found_upper.id == "new"
    en = await repo.find_active(SYSTEM, "en")
    assert en is not None and en.id == "other-lang"
    ctx = await repo.find_active(CONTEXT, "vi")
    assert ctx is not None and ctx.id == "other-kind"


async def test_find_active_follows_updates(repo: PromptTemplateRepository) -> None:
    a = make("a", "A", minute=1)
    b = make("b", "B", minute=2)
    await repo.add(a)
    await repo.add(b)
    assert (await repo.find_active(SYSTEM, "vi")).id == "b"  # type: ignore[union-attr]

    a2 = next_version(a, minute=3)
    await repo.update(a2)
    assert await repo.find_active(SYSTEM, "vi") == a2

    await repo.update(next_version(a2, minute=4, active=False))
    assert (await repo.find_active(SYSTEM, "vi")).id == "b"  # type: ignore[union-attr]


async def test_find_active_ties_go_to_the_smallest_id(repo: PromptTemplateRepository) -> None:
    for id in ("m", "c", "x"):
        await repo.add(make(id, f"Name {id}", minute=7))

    found = await repo.find_active(SYSTEM, "vi")

    assert found is not None and found.id == "c"


async def test_find_active_without_a_match_returns_none(repo: PromptTemplateRepository) -> None:
    await repo.add(make("off", active=False))
    await repo.add(make("ctx", kind=CONTEXT))

    assert await repo.find_active(SYSTEM, "vi") is None
    assert await repo.find_active(SYSTEM, "fr") is None
    assert await repo.find_active(SYSTEM, "not a language!") is None


async def test_find_active_returns_a_copy(repo: PromptTemplateRepository) -> None:
    template = rich()
    template.active = True
    await repo.add(template)

    found = await repo.find_active(CONTEXT, "pt-br")
    assert found is not None
    found.variants.clear()

    assert await repo.get("p1") == template


# -- MongoDB only: the history collection's leftovers ----------------------------------------


@pytest.fixture(params=database_params())
async def database(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    open_database: Any = request.param
    context: AbstractAsyncContextManager[Any] = open_database()
    async with context as db:
        yield db


async def test_mongo_ignores_a_history_copy_of_the_current_version(database: Any) -> None:
    """A process that died between the history write and the swap leaves a copy of the
    current version in the history: reads ignore it, the next update overwrites it."""
    repo = MongoPromptTemplateRepository(database)
    v1 = make("p1", body="Current")
    await repo.add(v1)
    stale = dataclasses.replace(v1, body="Stale copy")
    await database[PROMPT_TEMPLATE_VERSIONS].insert_one(prompt_version_to_document(stale))

    assert await repo.versions("p1") == [v1]
    assert await repo.get("p1", version=1) == v1
    v2 = next_version(v1, minute=1)
    await repo.update(v2)
    assert await repo.versions("p1") == [v1, v2]
    assert await database[PROMPT_TEMPLATE_VERSIONS].count_documents({}) == 1


async def test_mongo_add_clears_the_history_of_an_earlier_template_of_that_id(
    database: Any,
) -> None:
    repo = MongoPromptTemplateRepository(database)
    leftovers = [dataclasses.replace(make("p1", body=f"Old {n}"), version=n) for n in (1, 2, 3)]
    await database[PROMPT_TEMPLATE_VERSIONS].insert_many(
        [prompt_version_to_document(t) for t in leftovers])
    v3 = dataclasses.replace(make("p1", body="Imported at version 3"), version=3)

    await repo.add(v3)

    assert await repo.versions("p1") == [v3]
    with pytest.raises(NotFound) as exc:
        await repo.get("p1", version=2)
    assert exc.value.code == "prompt_template_version_not_found"
