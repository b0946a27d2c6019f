"""Operator authentication and user management."""

from __future__ import annotations

from dataclasses import dataclass

from notibot.application.ports import (
    Clock,
    IdGenerator,
    PasswordHasher,
    TokenService,
    UserRepository,
)
from notibot.domain import AuthenticationFailed, Conflict, NotFound, PermissionDenied, Role, User
from notibot.domain.user import check_password, check_username, parse_role

ACCESS = "access"
REFRESH = "refresh"


@dataclass(slots=True, frozen=True)
class TokenPair:
    """What a login returns (OAuth 2.0 bearer token response shape, RFC 6749 section 5.1):
    ``expires_in`` is the access token's lifetime in seconds."""

    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


class AuthService:
    """Login, token refresh, token checks and user creation.

    Parameters:
        access_ttl: access token lifetime in seconds (default 1800).
        refresh_ttl: refresh token lifetime in seconds (default 7 days).
        allow_signup: when True anyone may register as an operator.
    """

    def __init__(
        self,
        users: UserRepository,
        hasher: PasswordHasher,
        tokens: TokenService,
        ids: IdGenerator,
        clock: Clock,
        *,
        access_ttl: int = 1800,
        refresh_ttl: int = 7 * 24 * 3600,
        allow_signup: bool = False,
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._tokens = tokens
        self._ids = ids
        self._clock = clock
        self._access_ttl = access_ttl
        self._refresh_ttl = refresh_ttl
        self._allow_signup = allow_signup
        self._dummy_hash: str | None = None

    async def _issue(self, user: User) -> TokenPair:
        extra = {"role": user.role.value, "username": user.username}
        return TokenPair(
            access_token=await self._tokens.issue(user.id, ACCESS, self._access_ttl, extra),
            refresh_token=await self._tokens.issue(user.id, REFRESH, self._refresh_ttl),
            expires_in=self._access_ttl,
        )

    async def login(self, username: str, password: str) -> TokenPair:
        """Check the credentials and return a fresh token pair.

        Raises:
            AuthenticationFailed: code ``invalid_credentials`` for an unknown user, a wrong
                password or a deactivated user (one message for all, so usernames cannot be
                probed; an unknown user still costs one hash verification).
        """
        user = await self._users.get_by_username(username.strip())
        if user is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self._hasher.hash("notibot-dummy-password")
            await self._hasher.verify(self._dummy_hash, password)
        elif user.active and await self._hasher.verify(user.password_hash, password):
            return await self._issue(user)
        raise AuthenticationFailed("wrong username or password", code="invalid_credentials")

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Exchange a valid refresh token for a new token pair.

        Raises:
            AuthenticationFailed: ``invalid_token`` / ``token_expired``, or the user is gone
                or deactivated.
        """
        claims = await self._tokens.verify(refresh_token, REFRESH)
        return await self._issue(await self._active_user(claims.subject))

    async def authenticate(self, access_token: str) -> User:
        """Return the active user an access token was issued to.

        Raises:
            AuthenticationFailed: bad or expired token, or the user is gone or deactivated.
        """
        claims = await self._tokens.verify(access_token, ACCESS)
        return await self._active_user(claims.subject)

    async def _active_user(self, user_id: str) -> User:
        try:
            user = await self._users.get(user_id)
        except NotFound:
            user = None  # a store outage (ServiceUnavailable) propagates as a 503
        if user is None or not user.active:
            raise AuthenticationFailed("the token's user no longer exists or is deactivated",
                                       code="invalid_token")
        return user

    async def register(
        self, actor: User | None, username: str, password: str, role: str = "operator"
    ) -> User:
        """Create a user on behalf of ``actor`` (None for an anonymous caller).

        Admins may create any role. Anonymous callers may create operators only, and only when
        sign-up is allowed.

        Raises:
            AuthenticationFailed: anonymous caller while sign-up is closed.
            PermissionDenied: an operator registering users, or an anonymous caller asking
                for the admin role.
            InvalidInput: bad username, password or role.
            Conflict: ``username_taken``.
        """
        wanted = parse_role(role)
        if actor is None:
            if not self._allow_signup:
                raise AuthenticationFailed("registration needs an admin's bearer token",
                                           code="authentication_required")
            if wanted is not Role.OPERATOR:
                raise PermissionDenied("self-registration creates operators only")
        elif not actor.is_admin:
            raise PermissionDenied("only admins manage users")
        return await self.create_user(username, password, wanted)

    async def create_user(self, username: str, password: str, role: Role | str) -> User:
        """Create a user without a caller check (CLI, start-up admin).

        Raises:
            InvalidInput: bad username, password or role.
            Conflict: ``username_taken``.
        """
        user = User(
            id=await self._ids.new_id(),
            username=check_username(username),
            password_hash=await self._hasher.hash(check_password(password)),
            role=role if isinstance(role, Role) else parse_role(role),
            created_at=await self._clock.now(),
        )
        await self._users.add(user)
        return user

    async def ensure_admin(self, username: str, password: str) -> bool:
        """Create the admin ``username`` unless a user of that name exists; return whether it
        was created. Used at start-up with NOTIBOT_ADMIN_USERNAME/PASSWORD. An existing user
        of that name is left as it is (its password is not reset).

        Raises:
            Conflict: ``admin_username_taken`` when that user exists but is not an active
                admin: start-up must not silently run without the admin it was asked for.
        """
        existing = await self._users.get_by_username(username)
        if existing is not None:
            if not (existing.is_admin and existing.active):
                raise Conflict(
                    f"NOTIBOT_ADMIN_USERNAME {username!r} belongs to a user who is not an "
                    "active admin; choose another name or change that user",
                    code="admin_username_taken")
            return False
        await self.create_user(username, password, Role.ADMIN)
        return True

    async def admin_count(self) -> int:
        """How many active admins exist."""
        return await self._users.count_admins()
