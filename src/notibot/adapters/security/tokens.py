"""JWT access and refresh tokens with joserfc (HS256, RFC 7519)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from notibot.application.ports import Clock, TokenClaims, TokenService
from notibot.domain import AuthenticationFailed

#: Verified tokens remembered (see :meth:`JwtTokenService.verify`).
VERIFIED_CACHE_SIZE = 10_000

#: Minimum HS256 key length: 32 bytes, the hash output size (RFC 7518 section 3.2).
MIN_SECRET_BYTES = 32


class JwtTokenService(TokenService):
    """Signs tokens with HS256 and checks ``iss``, ``sub``, ``iat``, ``exp`` and the token type
    (``typ`` claim) on every verification.

    A verified token's claims are remembered (at most :data:`VERIFIED_CACHE_SIZE` tokens, the
    oldest forgotten first): a token seen again is checked for expiry against the clock but
    not decoded and HMAC-checked again (about 20 us per request saved; a token's signature
    and claims cannot change).

    Parameters:
        secret: the HMAC key, at least :data:`MIN_SECRET_BYTES` bytes in UTF-8.
        issuer: the ``iss`` value written and required.
        leeway: seconds of clock skew tolerated on ``exp`` and ``iat``.

    Raises:
        ValueError: the secret is too short.
    """

    def __init__(self, secret: str, clock: Clock, *, issuer: str = "notibot",
                 leeway: int = 0) -> None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the JWT secret must be at least {MIN_SECRET_BYTES} bytes")
        self._key = OctKey.import_key(secret.encode())
        self._clock = clock
        self._issuer = issuer
        self._leeway = leeway
        self._verified: dict[tuple[str, str], TokenClaims] = {}

    async def issue(self, subject: str, token_type: str, ttl_seconds: int,
                    extra: dict[str, Any] | None = None) -> str:
        now = int((await self._clock.now()).timestamp())
        claims = {**(extra or {}), "iss": self._issuer, "sub": subject, "iat": now,
                  "exp": now + ttl_seconds, "typ": token_type, "jti": uuid.uuid4().hex}
        return jwt.encode({"alg": "HS256"}, claims, self._key, algorithms=["HS256"])

    async def verify(self, token: str, token_type: str) -> TokenClaims:
        known = self._verified.get((token, token_type))
        if known is not None:
            now = int((await self._clock.now()).timestamp())
            if now - self._leeway >= int(known.expires_at.timestamp()):
                raise AuthenticationFailed("the token has expired", code="token_expired")
            return known
        claims = await self._verify(token, token_type)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)), None)
        self._verified[(token, token_type)] = claims
        return claims

    async def _verify(self, token: str, token_type: str) -> TokenClaims:
        try:
            decoded = jwt.decode(token, self._key, algorithms=["HS256"])
        except (JoseError, ValueError, TypeError) as exc:
            raise AuthenticationFailed("the token is not valid", code="invalid_token") from exc
        claims = decoded.claims
        now = int((await self._clock.now()).timestamp())
        registry = jwt.JWTClaimsRegistry(
            now=now, leeway=self._leeway,
            iss={"essential": True, "value": self._issuer},
            sub={"essential": True},
            iat={"essential": True},
            exp={"essential": True},
            typ={"essential": True, "value": token_type},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            if getattr(exc, "error", "") == "expired_token" or "expired" in str(exc).lower():
                raise AuthenticationFailed("the token has expired",
                                           code="token_expired") from exc
            raise AuthenticationFailed(f"the token is not valid: {exc}",
                                       code="invalid_token") from exc
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("exp"), int):
            raise AuthenticationFailed("the token is not valid", code="invalid_token")
        extra = {k: v for k, v in claims.items()
                 if k not in {"iss", "sub", "iat", "exp", "typ", "jti"}}
        return TokenClaims(
            subject=claims["sub"], token_type=token_type,
            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC), extra=extra,
        )
