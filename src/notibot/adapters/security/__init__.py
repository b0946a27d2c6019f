"""Security adapters: argon2id password hashing and JWT tokens (joserfc)."""

from notibot.adapters.security.hashing import Argon2PasswordHasher
from notibot.adapters.security.tokens import JwtTokenService

__all__ = ["Argon2PasswordHasher", "JwtTokenService"]
