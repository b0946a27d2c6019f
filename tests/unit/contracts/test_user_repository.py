"""Contract of the UserRepository port: every adapter must pass these tests.

Add an adapter by appending a factory to ``ADAPTERS``: a zero-argument callable returning an
async context manager that yields an empty repository and cleans up on exit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from mongo_support import mongo_adapters

from notibot.adapters.memory import MemoryUserRepository
from notibot.adapters.mongo import MongoUserRepository
from notibot.application.ports import UserRepository
from notibot.domain import Conflict, NotFound, Role, User


@asynccontextmanager
async def memory_repository() -> AsyncIterator[UserRepository]:
    yield MemoryUserRepository()


ADAPTERS = [pytest.param(memory_repository, id="memory"), *mongo_adapters(MongoUserRepository)]

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=ADAPTERS)
async def repo(request: pytest.FixtureRequest) -> AsyncIterator[UserRepository]:
    async with request.param() as repository:
        yield repository


def make(id: str, username: str | None = None, *, role: Role = Role.OPERATOR,
         minute: int = 0, active: bool = True) -> User:
    return User(id=id, username=username or f"user-{id}", password_hash=f"hash-of-{id}",
                role=role, created_at=T0 + timedelta(minutes=minute), active=active)


async def test_add_then_get_returns_an_equal_user(repo: UserRepository) -> None:
    user = make("u1", "alice", role=Role.ADMIN)
    await repo.add(user)

    assert await repo.get("u1") == user


async def test_get_unknown_raises_user_not_found(repo: UserRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.get("ghost")

    assert exc.value.code == "user_not_found"


async def test_get_by_username_ignores_case(repo: UserRepository) -> None:
    await repo.add(make("u1", "Alice"))

    for name in ("Alice", "alice", "ALICE"):
        found = await repo.get_by_username(name)
        assert found is not None and found.id == "u1"
    assert await repo.get_by_username("bob") is None


async def test_username_taken_in_another_case_raises_conflict(repo: UserRepository) -> None:
    await repo.add(make("u1", "alice"))

    with pytest.raises(Conflict) as exc:
        await repo.add(make("u2", "ALICE"))

    assert exc.value.code == "username_taken"
    with pytest.raises(NotFound):
        await repo.get("u2")


async def test_returned_users_are_copies(repo: UserRepository) -> None:
    await repo.add(make("u1", "alice"))

    got = await repo.get("u1")
    got.active = False
    got.role = Role.ADMIN
    by_name = await repo.get_by_username("alice")
    assert by_name is not None
    by_name.password_hash = "tampered"

    stored = await repo.get("u1")
    assert stored.active is True
    assert stored.role is Role.OPERATOR
    assert stored.password_hash == "hash-of-u1"


async def test_update_replaces_the_stored_user(repo: UserRepository) -> None:
    await repo.add(make("u1", "alice"))
    user = await repo.get("u1")
    user.active = False
    user.password_hash = "new-hash"

    await repo.update(user)

    stored = await repo.get("u1")
    assert stored.active is False
    assert stored.password_hash == "new-hash"


async def test_update_unknown_raises_not_found(repo: UserRepository) -> None:
    with pytest.raises(NotFound) as exc:
        await repo.update(make("ghost"))

    assert exc.value.code == "user_not_found"


async def test_update_to_a_taken_username_raises_conflict(repo: UserRepository) -> None:
    await repo.add(make("u1", "alice"))
    await repo.add(make("u2", "bob"))
    bob = await repo.get("u2")
    bob.username = "Alice"

    with pytest.raises(Conflict) as exc:
        await repo.update(bob)

    assert exc.value.code == "username_taken"
    assert (await repo.get("u2")).username == "bob"


async def test_list_by_creation_time_with_paging_total(repo: UserRepository) -> None:
    await repo.add(make("u3", minute=3))
    await repo.add(make("u1", minute=1))
    await repo.add(make("u2", minute=2))

    first = await repo.list(limit=2, offset=0)
    rest = await repo.list(limit=2, offset=2)

    assert [u.id for u in first.items] == ["u1", "u2"]
    assert [u.id for u in rest.items] == ["u3"]
    assert first.total == rest.total == 3


async def test_count_admins_counts_active_admins_only(repo: UserRepository) -> None:
    assert await repo.count_admins() == 0
    await repo.add(make("u1", role=Role.ADMIN))
    await repo.add(make("u2", role=Role.ADMIN, active=False))
    await repo.add(make("u3", role=Role.OPERATOR))

    assert await repo.count_admins() == 1

    admin = await repo.get("u1")
    admin.active = False
    await repo.update(admin)
    assert await repo.count_admins() == 0


async def test_concurrent_adds_of_one_username_let_exactly_one_win(
    repo: UserRepository,
) -> None:
    results = await asyncio.gather(
        *(repo.add(make(f"u{i}", "Same" if i % 2 else "same")) for i in range(10)),
        return_exceptions=True,
    )

    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    assert (await repo.list(limit=50, offset=0)).total == 1
