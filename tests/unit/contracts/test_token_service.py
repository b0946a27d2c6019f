"""Contract of the TokenService port: every adapter must pass these tests.

Add an adapter by appending a factory ``(clock, secret, issuer) -> TokenService`` to
``ADAPTERS``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta

import pytest

from notibot.adapters.security import JwtTokenService
from notibot.application.ports import Clock, TokenService
from notibot.domain import AuthenticationFailed
from notibot.testing import TEST_JWT_SECRET, FakeClock

ADAPTERS = [pytest.param(JwtTokenService, id="jwt")]

OTHER_SECRET = "another-secret-that-is-long-enough-0123456789"

Factory = Callable[..., TokenService]


@pytest.fixture(params=ADAPTERS)
def factory(request: pytest.FixtureRequest) -> Factory:
    def build(clock: Clock, secret: str = TEST_JWT_SECRET, issuer: str = "notibot"):
        return request.param(secret, clock, issuer=issuer)

    return build


@pytest.fixture
def tokens(factory: Factory, clock: FakeClock) -> TokenService:
    return factory(clock)


async def rejected(tokens: TokenService, token: str, token_type: str = "access") -> str:
    """The error code verifying ``token`` raises."""
    with pytest.raises(AuthenticationFailed) as exc:
        await tokens.verify(token, token_type)
    return exc.value.code


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_round_trip_keeps_subject_type_times_and_extra_claims(
    tokens: TokenService, clock: FakeClock
) -> None:
    token = await tokens.issue("user-1", "access", 600, {"role": "admin", "username": "an"})

    claims = await tokens.verify(token, "access")

    assert claims.subject == "user-1"
    assert claims.token_type == "access"
    assert claims.issued_at == clock.current
    assert claims.expires_at == clock.current + timedelta(seconds=600)
    assert claims.extra == {"role": "admin", "username": "an"}
    assert claims.issued_at.utcoffset() == timedelta(0)


async def test_extra_claims_cannot_override_the_registered_ones(tokens: TokenService) -> None:
    token = await tokens.issue("user-1", "refresh", 600, {"sub": "admin", "typ": "access"})

    claims = await tokens.verify(token, "refresh")

    assert claims.subject == "user-1"
    assert await rejected(tokens, token, "access") == "invalid_token"


async def test_two_tokens_issued_at_once_differ(tokens: TokenService) -> None:
    assert await tokens.issue("u", "access", 60) != await tokens.issue("u", "access", 60)


async def test_a_token_of_another_type_is_rejected(tokens: TokenService) -> None:
    refresh = await tokens.issue("user-1", "refresh", 600)

    assert await rejected(tokens, refresh, "access") == "invalid_token"
    assert (await tokens.verify(refresh, "refresh")).token_type == "refresh"
    # once verified (and remembered) as a refresh token, it is still no access token
    assert await rejected(tokens, refresh, "access") == "invalid_token"


async def test_a_token_is_valid_until_its_expiry_and_then_expired(
    tokens: TokenService, clock: FakeClock
) -> None:
    token = await tokens.issue("user-1", "access", 60)

    clock.advance(59)
    assert (await tokens.verify(token, "access")).subject == "user-1"
    clock.advance(1)  # exp itself is past: "now must be before exp" (RFC 7519 4.1.4)
    assert await rejected(tokens, token) == "token_expired"
    clock.advance(3600)
    assert await rejected(tokens, token) == "token_expired"


async def test_a_token_issued_in_the_future_is_rejected(
    tokens: TokenService, clock: FakeClock
) -> None:
    token = await tokens.issue("user-1", "access", 600)

    clock.advance(-300)

    assert await rejected(tokens, token) == "invalid_token"


async def test_a_tampered_signature_is_rejected(tokens: TokenService) -> None:
    header, payload, signature = (await tokens.issue("user-1", "access", 600)).split(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]

    assert await rejected(tokens, f"{header}.{payload}.{flipped}") == "invalid_token"


async def test_a_tampered_payload_is_rejected(tokens: TokenService, clock: FakeClock) -> None:
    header, _, signature = (await tokens.issue("user-1", "access", 600)).split(".")
    now = int(clock.current.timestamp())
    forged = b64({"iss": "notibot", "sub": "admin-id", "iat": now, "exp": now + 600,
                  "typ": "access", "role": "admin"})

    assert await rejected(tokens, f"{header}.{forged}.{signature}") == "invalid_token"


async def test_an_unsigned_alg_none_token_is_rejected(
    tokens: TokenService, clock: FakeClock
) -> None:
    now = int(clock.current.timestamp())
    token = (b64({"alg": "none", "typ": "JWT"}) + "."
             + b64({"iss": "notibot", "sub": "u", "iat": now, "exp": now + 60, "typ": "access"})
             + ".")

    assert await rejected(tokens, token) == "invalid_token"


async def test_a_token_signed_with_another_secret_is_rejected(
    factory: Factory, clock: FakeClock
) -> None:
    foreign = await factory(clock, secret=OTHER_SECRET).issue("user-1", "access", 600)

    assert await rejected(factory(clock), foreign) == "invalid_token"


async def test_a_token_of_another_issuer_is_rejected(factory: Factory, clock: FakeClock) -> None:
    foreign = await factory(clock, issuer="someone-else").issue("user-1", "access", 600)

    assert await rejected(factory(clock), foreign) == "invalid_token"
    assert (await factory(clock, issuer="someone-else").verify(foreign, "access")).subject \
        == "user-1"


@pytest.mark.parametrize(
    "garbage",
    ["", "garbage", "a.b.c", "...", "a.b", "eyJhbGciOiJIUzI1NiJ9.e30.", "Bearer x.y.z"],
)
async def test_garbage_is_rejected_as_invalid_token(tokens: TokenService, garbage: str) -> None:
    assert await rejected(tokens, garbage) == "invalid_token"


def test_jwt_secret_shorter_than_32_bytes_is_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        JwtTokenService("x" * 31, clock)
    JwtTokenService("x" * 32, clock)
