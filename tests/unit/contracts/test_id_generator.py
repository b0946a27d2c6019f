"""Contract of the IdGenerator port: every adapter must pass these tests.

Add an adapter by appending a zero-argument factory returning a generator to ``ADAPTERS``.
"""

from __future__ import annotations

import re

import pytest

from notibot.adapters.system import UuidIdGenerator
from notibot.application.ports import IdGenerator
from notibot.testing import SequentialIdGenerator

ADAPTERS = [
    pytest.param(UuidIdGenerator, id="uuid"),
    pytest.param(SequentialIdGenerator, id="sequential"),
]

#: Unreserved characters of RFC 3986 section 2.3 minus "." and "~": safe in any URL path.
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


@pytest.fixture(params=ADAPTERS)
def ids(request: pytest.FixtureRequest) -> IdGenerator:
    return request.param()


async def test_ten_thousand_ids_are_unique_url_safe_strings(ids: IdGenerator) -> None:
    generated = [await ids.new_id() for _ in range(10_000)]

    assert len(set(generated)) == len(generated)
    assert all(isinstance(i, str) and URL_SAFE.match(i) for i in generated)


async def test_two_generators_do_not_share_state_but_uuids_never_collide() -> None:
    a, b = UuidIdGenerator(), UuidIdGenerator()

    assert {await a.new_id() for _ in range(100)}.isdisjoint({await b.new_id() for _ in range(100)})


async def test_uuid_ids_are_32_lower_case_hex_digits() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", await UuidIdGenerator().new_id())


async def test_sequential_ids_count_up_from_one_after_the_prefix() -> None:
    ids = SequentialIdGenerator("cust-")

    assert [await ids.new_id() for _ in range(3)] == ["cust-1", "cust-2", "cust-3"]
    assert await SequentialIdGenerator().new_id() == "id1"


async def test_new_ids_returns_that_many_unique_ids(ids: IdGenerator) -> None:
    batch = await ids.new_ids(500)
    more = await ids.new_ids(500)

    assert len(batch) == 500
    assert len(set(batch) | set(more)) == 1000
    assert await ids.new_ids(0) == []
