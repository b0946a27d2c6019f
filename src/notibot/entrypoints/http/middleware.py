"""Middleware: start-up/shut-down of notibot, and bearer-token authentication with roles.

Who may call what is declared on each resource class, per HTTP method::

    class CustomerItem:
        access = {"DELETE": ADMIN}      # methods not listed: STAFF (admin or operator)

and checked once, here, before the responder runs (:class:`AuthMiddleware`). The same
declarations produce the ``security`` and 401/403 entries of the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from falcon.asgi import Request, Response

from notibot.application.services import AuthService
from notibot.container import Notibot
from notibot.domain import AuthenticationFailed, PermissionDenied, Role


@dataclass(frozen=True, slots=True)
class Access:
    """Who may call a responder.

    Attributes:
        token: ``"none"``: public, any token is ignored; ``"optional"``: a token, when sent, is
            checked and its user given to the responder (``req.context.user``, else None);
            ``"required"``: a valid access token is needed (HTTP 401 otherwise).
        roles: with ``"required"``, the roles allowed (HTTP 403 for the others).
    """

    token: Literal["none", "optional", "required"]
    roles: frozenset[Role] = frozenset()

    @property
    def description(self) -> str:
        """How the OpenAPI document states this rule."""
        if self.token == "none":
            return "Public: no token needed."
        if self.token == "optional":
            return "Bearer token optional: the service decides what an anonymous caller may do."
        names = " or ".join(sorted(role.value for role in self.roles))
        return f"Requires a bearer access token; role {names}."


#: No token needed.
PUBLIC = Access("none")
#: Token checked when present; the responder decides about anonymous callers.
OPTIONAL_USER = Access("optional")
#: Any signed-in user: admin or operator. The default of methods a resource does not list.
STAFF = Access("required", frozenset({Role.ADMIN, Role.OPERATOR}))
#: Admins only.
ADMIN = Access("required", frozenset({Role.ADMIN}))


def access_rule(resource: object, method: str) -> Access:
    """The :class:`Access` rule of ``method`` on ``resource``: its ``access`` mapping's entry,
    else :data:`STAFF`."""
    rules: Mapping[str, Access] = getattr(resource, "access", {})
    return rules.get(method.upper(), STAFF)


def bearer_token(req: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 section 2.1), or
    None when there is no such header or it uses another scheme.

    Raises:
        AuthenticationFailed: ``invalid_token`` when the Bearer scheme has no token.
    """
    header = req.get_header("Authorization")
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not token:
        raise AuthenticationFailed("the bearer token is empty", code="invalid_token")
    return token


class AuthMiddleware:
    """Authenticates the caller and enforces the resource's :class:`Access` rule.

    Sets ``req.context.user`` to the :class:`~notibot.domain.User` (None for anonymous calls).
    Unknown routes and methods a resource does not implement pass through untouched, so they
    answer 404 and 405.

    Raises (rendered by :mod:`~notibot.entrypoints.http.errors`):
        AuthenticationFailed: 401 ``authentication_required`` (no bearer token),
            ``invalid_token`` (bad signature, refresh token, user gone), ``token_expired``.
        PermissionDenied: 403 ``permission_denied`` (role not allowed).
    """

    def __init__(self, auth: AuthService) -> None:
        self._auth = auth

    async def process_request(self, req: Request, resp: Response) -> None:
        """Every request starts anonymous."""
        req.context.user = None

    async def process_resource(self, req: Request, resp: Response, resource: object,
                               params: dict[str, Any]) -> None:
        """Check the caller against the rule of the responder about to run."""
        if resource is None or getattr(resource, f"on_{req.method.lower()}", None) is None:
            return
        rule = access_rule(resource, req.method)
        if rule.token == "none":
            return
        token = bearer_token(req)
        if token is None:
            if rule.token == "optional":
                return
            raise AuthenticationFailed("this endpoint needs an `Authorization: Bearer` access "
                                       "token; get one at POST /auth/login",
                                       code="authentication_required")
        user = await self._auth.authenticate(token)
        req.context.user = user
        if rule.roles and user.role not in rule.roles:
            raise PermissionDenied(
                f"role {user.role.value} may not {req.method} {req.path}",
                code="permission_denied",
                details={"required_roles": sorted(role.value for role in rule.roles)},
            )


class LifecycleMiddleware:
    """Starts notibot when the server starts (ASGI lifespan start-up) and stops it at
    shut-down: job queue, resources, first admin (:meth:`Notibot.start` / :meth:`Notibot.stop`).
    A failing start-up fails the server's start."""

    def __init__(self, notibot: Notibot) -> None:
        self._notibot = notibot

    async def process_startup(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        """Run :meth:`Notibot.start`."""
        await self._notibot.start()

    async def process_shutdown(self, scope: dict[str, Any], event: dict[str, Any]) -> None:
        """Run :meth:`Notibot.stop`."""
        await self._notibot.stop()
