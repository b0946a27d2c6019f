"""User rules: username pattern, password length policy, roles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notibot.domain import InvalidInput, Role, User
from notibot.domain.user import (
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    check_password,
    check_username,
    parse_role,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("abc", "abc"),
        ("  alice  ", "alice"),
        ("An.Nguyen", "An.Nguyen"),
        ("ops_team-1", "ops_team-1"),
        ("an@example.org", "an@example.org"),
        ("x" * 64, "x" * 64),
    ],
)
def test_valid_usernames(raw: str, expected: str) -> None:
    assert check_username(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "ab", "x" * 65, "alice smith", "ñandú", "root!", "a/b", "tab\there", "   "]
)
def test_invalid_usernames(raw: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_username(raw)

    assert exc.value.code == "invalid_username"
    assert exc.value.details == {"field": "username"}


def test_password_length_policy_follows_nist_minimum_of_eight() -> None:
    assert PASSWORD_MIN_LENGTH == 8
    assert check_password("x" * 8) == "x" * 8
    assert check_password("x" * PASSWORD_MAX_LENGTH) == "x" * PASSWORD_MAX_LENGTH
    assert check_password("mật khẩu") == "mật khẩu"  # 8 characters, more bytes
    assert check_password("        ") == "        "  # NIST: no composition rules


@pytest.mark.parametrize("password", ["", "x" * 7, "x" * (PASSWORD_MAX_LENGTH + 1)])
def test_passwords_outside_the_length_policy_are_weak(password: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        check_password(password)

    assert exc.value.code == "weak_password"


def test_parse_role() -> None:
    assert parse_role("admin") is Role.ADMIN
    assert parse_role("operator") is Role.OPERATOR


@pytest.mark.parametrize("value", ["root", "", "Admin", " admin"])
def test_unknown_roles_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_role(value)

    assert exc.value.code == "invalid_role"


def test_is_admin() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert User("u1", "alice", "h", Role.ADMIN, now).is_admin
    assert not User("u2", "bob", "h", Role.OPERATOR, now).is_admin
