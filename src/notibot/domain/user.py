"""User: an operator who calls the API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from notibot.domain.errors import InvalidInput

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{3,64}$")

#: Shortest password accepted: 8 characters (NIST SP 800-63B section 5.1.1.2).
PASSWORD_MIN_LENGTH = 8
#: Longest password accepted, to bound hashing cost.
PASSWORD_MAX_LENGTH = 256


class Role(StrEnum):
    """What a user may do. ``admin`` manages users and deletes data; ``operator`` runs the
    day-to-day work (customers, imports, campaigns, chat)."""

    ADMIN = "admin"
    OPERATOR = "operator"


@dataclass(slots=True)
class User:
    """An API user. Only a hash of the password is ever stored (``password_hash``)."""

    id: str
    username: str
    password_hash: str
    role: Role
    created_at: datetime
    active: bool = True

    @property
    def is_admin(self) -> bool:
        """True for the admin role."""
        return self.role is Role.ADMIN


def check_username(username: str) -> str:
    """Return ``username`` trimmed: 3-64 characters of letters, digits and ``_ . @ -``.

    Raises:
        InvalidInput: code ``invalid_username``.
    """
    name = username.strip()
    if not USERNAME_RE.match(name):
        raise InvalidInput(
            "username must be 3-64 characters: letters, digits, '_', '.', '@' or '-'",
            code="invalid_username", details={"field": "username"},
        )
    return name


def check_password(password: str) -> str:
    """Return ``password`` when its length is within the policy
    (:data:`PASSWORD_MIN_LENGTH` to :data:`PASSWORD_MAX_LENGTH` characters).

    Raises:
        InvalidInput: code ``weak_password``.
    """
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise InvalidInput(
            f"password must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters",
            code="weak_password", details={"field": "password"},
        )
    return password


def parse_role(value: str) -> Role:
    """Return the :class:`Role` named ``value``.

    Raises:
        InvalidInput: code ``invalid_role``.
    """
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(f"role must be one of: {', '.join(r.value for r in Role)}",
                           code="invalid_role", details={"field": "role"}) from None
