"""Contract of the PasswordHasher port: every adapter must pass these tests.

Add an adapter by appending a zero-argument factory returning a hasher to ``ADAPTERS``.
"""

from __future__ import annotations

import pytest

from notibot.adapters.security import Argon2PasswordHasher
from notibot.application.ports import PasswordHasher
from notibot.testing import fast_password_hasher

ADAPTERS = [
    pytest.param(Argon2PasswordHasher, id="argon2-default"),
    pytest.param(fast_password_hasher, id="argon2-fast"),
]


@pytest.fixture(params=ADAPTERS)
def hasher(request: pytest.FixtureRequest) -> PasswordHasher:
    return request.param()


async def test_a_hash_verifies_its_password_and_no_other(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash("correct horse battery")

    assert await hasher.verify(encoded, "correct horse battery") is True
    assert await hasher.verify(encoded, "correct horse batterY") is False
    assert await hasher.verify(encoded, "") is False


async def test_the_hash_does_not_contain_the_password_and_is_salted(
    hasher: PasswordHasher,
) -> None:
    first = await hasher.hash("s3cret-password")
    second = await hasher.hash("s3cret-password")

    assert "s3cret-password" not in first
    assert first != second
    assert await hasher.verify(second, "s3cret-password") is True


async def test_unicode_passwords_round_trip(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash("mật khẩu bí mật 🔑")

    assert await hasher.verify(encoded, "mật khẩu bí mật 🔑") is True
    assert await hasher.verify(encoded, "mat khau bi mat 🔑") is False


@pytest.mark.parametrize("garbage", ["", "not-a-hash", "$argon2id$v=19$m=8,t=1,p=1$broken"])
async def test_verify_against_a_malformed_hash_is_false_not_an_error(
    hasher: PasswordHasher, garbage: str
) -> None:
    assert await hasher.verify(garbage, "password") is False


# -- argon2 specifics ------------------------------------------------------------------------


async def test_the_default_is_argon2id_with_the_rfc_9106_low_memory_parameters() -> None:
    encoded = await Argon2PasswordHasher().hash("password1")

    assert encoded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


async def test_a_hash_embeds_its_parameters_so_any_instance_verifies_it() -> None:
    cheap = await fast_password_hasher().hash("password1")

    assert cheap.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert await Argon2PasswordHasher().verify(cheap, "password1") is True
