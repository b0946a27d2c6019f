"""AuthService on in-memory users, the fast argon2 hasher and real JWTs over a FakeClock."""

from __future__ import annotations

import pytest

from notibot.adapters.memory import MemoryUserRepository
from notibot.adapters.security import JwtTokenService
from notibot.application.services import AuthService
from notibot.domain import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    PermissionDenied,
    Role,
    User,
)
from notibot.testing import TEST_JWT_SECRET, FakeClock, SequentialIdGenerator, fast_password_hasher

ACCESS_TTL = 600
REFRESH_TTL = 3600


def build(clock: FakeClock, users: MemoryUserRepository, *, allow_signup: bool = False
          ) -> AuthService:
    return AuthService(users, fast_password_hasher(), JwtTokenService(TEST_JWT_SECRET, clock),
                       SequentialIdGenerator("u"), clock, access_ttl=ACCESS_TTL,
                       refresh_ttl=REFRESH_TTL, allow_signup=allow_signup)


@pytest.fixture
def users() -> MemoryUserRepository:
    return MemoryUserRepository()


@pytest.fixture
def auth(clock: FakeClock, users: MemoryUserRepository) -> AuthService:
    return build(clock, users)


@pytest.fixture
async def alice(auth: AuthService) -> User:
    return await auth.create_user("alice", "alice-password", Role.OPERATOR)


@pytest.fixture
async def admin(auth: AuthService) -> User:
    return await auth.create_user("root", "root-password", "admin")


async def failed_login(auth: AuthService, username: str, password: str) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as exc:
        await auth.login(username, password)
    return exc.value


# -- users -----------------------------------------------------------------------------------


async def test_create_user_stores_only_a_hash_of_the_password(
    auth: AuthService, users: MemoryUserRepository, clock: FakeClock
) -> None:
    user = await auth.create_user("  alice ", "alice-password", "operator")

    stored = await users.get(user.id)
    assert stored.username == "alice"
    assert stored.role is Role.OPERATOR
    assert stored.active is True
    assert stored.created_at == clock.current
    assert "alice-password" not in stored.password_hash
    assert stored.password_hash.startswith("$argon2id$")


@pytest.mark.parametrize(
    ("username", "password", "role", "code"),
    [
        ("al", "alice-password", "operator", "invalid_username"),
        ("alice", "short", "operator", "weak_password"),
        ("alice", "alice-password", "root", "invalid_role"),
    ],
)
async def test_create_user_checks_the_rules(
    auth: AuthService, users: MemoryUserRepository, username: str, password: str, role: str,
    code: str,
) -> None:
    with pytest.raises(InvalidInput) as exc:
        await auth.create_user(username, password, role)

    assert exc.value.code == code
    assert (await users.list(limit=10, offset=0)).total == 0


async def test_usernames_are_unique_ignoring_case(auth: AuthService, alice: User) -> None:
    with pytest.raises(Conflict) as exc:
        await auth.create_user("ALICE", "another-password", "operator")

    assert exc.value.code == "username_taken"


# -- login / refresh / authenticate ----------------------------------------------------------


async def test_login_returns_a_token_pair_for_the_user(auth: AuthService, alice: User) -> None:
    pair = await auth.login("alice", "alice-password")

    assert pair.token_type == "bearer"
    assert pair.expires_in == ACCESS_TTL
    assert await auth.authenticate(pair.access_token) == alice


async def test_login_ignores_username_case_and_surrounding_spaces(
    auth: AuthService, alice: User
) -> None:
    pair = await auth.login("  ALICE ", "alice-password")

    assert (await auth.authenticate(pair.access_token)).id == alice.id


async def test_wrong_password_unknown_user_and_deactivated_user_fail_alike(
    auth: AuthService, users: MemoryUserRepository, alice: User
) -> None:
    await auth.create_user("bob", "bob-password", "operator")
    bob = await users.get_by_username("bob")
    assert bob is not None
    bob.active = False
    await users.update(bob)

    errors = [
        await failed_login(auth, "alice", "wrong-password"),
        await failed_login(auth, "nobody", "alice-password"),
        await failed_login(auth, "bob", "bob-password"),
    ]

    assert {e.code for e in errors} == {"invalid_credentials"}
    assert len({e.message for e in errors}) == 1


async def test_password_check_is_case_sensitive(auth: AuthService, alice: User) -> None:
    assert (await failed_login(auth, "alice", "ALICE-PASSWORD")).code == "invalid_credentials"


async def test_refresh_returns_a_new_working_pair(
    auth: AuthService, alice: User, clock: FakeClock
) -> None:
    first = await auth.login("alice", "alice-password")
    clock.advance(ACCESS_TTL + 1)  # the access token expired, the refresh token did not

    second = await auth.refresh(first.refresh_token)

    assert second.access_token != first.access_token
    assert (await auth.authenticate(second.access_token)).id == alice.id
    with pytest.raises(AuthenticationFailed) as exc:
        await auth.authenticate(first.access_token)
    assert exc.value.code == "token_expired"


async def test_refresh_rejects_an_access_token(auth: AuthService, alice: User) -> None:
    pair = await auth.login("alice", "alice-password")

    with pytest.raises(AuthenticationFailed) as exc:
        await auth.refresh(pair.access_token)

    assert exc.value.code == "invalid_token"


async def test_refresh_rejects_an_expired_refresh_token(
    auth: AuthService, alice: User, clock: FakeClock
) -> None:
    pair = await auth.login("alice", "alice-password")
    clock.advance(REFRESH_TTL)

    with pytest.raises(AuthenticationFailed) as exc:
        await auth.refresh(pair.refresh_token)

    assert exc.value.code == "token_expired"


async def test_authenticate_rejects_a_refresh_token(auth: AuthService, alice: User) -> None:
    pair = await auth.login("alice", "alice-password")

    with pytest.raises(AuthenticationFailed) as exc:
        await auth.authenticate(pair.refresh_token)

    assert exc.value.code == "invalid_token"


async def test_tokens_of_a_deactivated_user_stop_working(
    auth: AuthService, users: MemoryUserRepository, alice: User
) -> None:
    pair = await auth.login("alice", "alice-password")
    alice.active = False
    await users.update(alice)

    for call in (auth.authenticate(pair.access_token), auth.refresh(pair.refresh_token)):
        with pytest.raises(AuthenticationFailed) as exc:
            await call
        assert exc.value.code == "invalid_token"


async def test_a_token_for_an_unknown_user_is_rejected(clock: FakeClock) -> None:
    tokens = JwtTokenService(TEST_JWT_SECRET, clock)
    auth = build(clock, MemoryUserRepository())

    with pytest.raises(AuthenticationFailed) as exc:
        await auth.authenticate(await tokens.issue("ghost", "access", 60))

    assert exc.value.code == "invalid_token"


async def test_access_tokens_carry_role_and_username(
    auth: AuthService, admin: User, clock: FakeClock
) -> None:
    pair = await auth.login("root", "root-password")

    claims = await JwtTokenService(TEST_JWT_SECRET, clock).verify(pair.access_token, "access")

    assert claims.subject == admin.id
    assert claims.extra == {"role": "admin", "username": "root"}


# -- register --------------------------------------------------------------------------------


async def test_anonymous_registration_is_refused_while_signup_is_closed(
    auth: AuthService, users: MemoryUserRepository
) -> None:
    with pytest.raises(AuthenticationFailed) as exc:
        await auth.register(None, "newbie", "newbie-password")

    assert exc.value.code == "authentication_required"
    assert await users.get_by_username("newbie") is None


async def test_anonymous_registration_with_signup_open_creates_an_operator(
    clock: FakeClock, users: MemoryUserRepository
) -> None:
    auth = build(clock, users, allow_signup=True)

    user = await auth.register(None, "newbie", "newbie-password")

    assert user.role is Role.OPERATOR
    assert (await users.get(user.id)).username == "newbie"
    assert (await auth.authenticate((await auth.login("newbie", "newbie-password"))
                                    .access_token)).id == user.id


async def test_anonymous_registration_cannot_create_an_admin(
    clock: FakeClock, users: MemoryUserRepository
) -> None:
    auth = build(clock, users, allow_signup=True)

    with pytest.raises(PermissionDenied):
        await auth.register(None, "sneaky", "sneaky-password", "admin")

    assert await users.get_by_username("sneaky") is None


async def test_operators_cannot_register_users(
    auth: AuthService, users: MemoryUserRepository, alice: User
) -> None:
    for role in ("operator", "admin"):
        with pytest.raises(PermissionDenied):
            await auth.register(alice, "friend", "friend-password", role)

    assert await users.get_by_username("friend") is None


async def test_operators_cannot_register_users_even_with_signup_open(
    clock: FakeClock, users: MemoryUserRepository
) -> None:
    auth = build(clock, users, allow_signup=True)
    operator = await auth.create_user("alice", "alice-password", "operator")

    with pytest.raises(PermissionDenied):
        await auth.register(operator, "friend", "friend-password")


async def test_admins_can_create_admins_and_operators(auth: AuthService, admin: User) -> None:
    second_admin = await auth.register(admin, "root2", "root2-password", "admin")
    operator = await auth.register(admin, "ops", "ops-password")

    assert second_admin.role is Role.ADMIN
    assert operator.role is Role.OPERATOR
    assert await auth.admin_count() == 2


async def test_register_checks_the_role_name(auth: AuthService, admin: User) -> None:
    with pytest.raises(InvalidInput) as exc:
        await auth.register(admin, "ops", "ops-password", "superuser")

    assert exc.value.code == "invalid_role"


# -- ensure_admin ----------------------------------------------------------------------------


async def test_ensure_admin_creates_the_admin_once(
    auth: AuthService, users: MemoryUserRepository
) -> None:
    assert await auth.ensure_admin("root", "first-password") is True
    assert await auth.ensure_admin("root", "second-password") is False
    assert await auth.ensure_admin("ROOT", "third-password") is False

    page = await users.list(limit=10, offset=0)
    assert [(u.username, u.role) for u in page.items] == [("root", Role.ADMIN)]
    await auth.login("root", "first-password")
    assert (await failed_login(auth, "root", "second-password")).code == "invalid_credentials"


async def test_admin_count_counts_active_admins(
    auth: AuthService, users: MemoryUserRepository, admin: User, alice: User
) -> None:
    assert await auth.admin_count() == 1

    admin.active = False
    await users.update(admin)

    assert await auth.admin_count() == 0
