"""``/auth``: log in, refresh tokens, who am I, register users."""

from __future__ import annotations

import falcon
from falcon.asgi import Request, Response

from notibot.application.services import AuthService
from notibot.entrypoints.http.middleware import OPTIONAL_USER, PUBLIC
from notibot.entrypoints.http.openapi import TAG_AUTH, endpoint
from notibot.entrypoints.http.schemas import (
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    TokenOut,
    UserOut,
    token_json,
    user_json,
)
from notibot.entrypoints.http.validation import parse_body


def _no_store(resp: Response) -> None:
    # Token responses must not be cached (RFC 6749 section 5.1).
    resp.set_header("Cache-Control", "no-store")


class Login:
    """``POST /auth/login``."""

    access = {"POST": PUBLIC}

    def __init__(self, auth: AuthService) -> None:
        self._auth = auth

    @endpoint(tag=TAG_AUTH, operation_id="login", body=LoginRequest, response=TokenOut,
              errors=[400, 401])
    async def on_post(self, req: Request, resp: Response) -> None:
        """Log in

        Exchange a username and password for an access token and a refresh token.
        A wrong username or password answers 401 `invalid_credentials`.
        """
        body = await parse_body(req, LoginRequest)
        resp.media = token_json(await self._auth.login(body.username, body.password))
        _no_store(resp)


class Refresh:
    """``POST /auth/refresh``."""

    access = {"POST": PUBLIC}

    def __init__(self, auth: AuthService) -> None:
        self._auth = auth

    @endpoint(tag=TAG_AUTH, operation_id="refreshToken", body=RefreshRequest,
              response=TokenOut, errors=[400, 401])
    async def on_post(self, req: Request, resp: Response) -> None:
        """Refresh tokens

        Exchange a valid refresh token for a new token pair (401 `invalid_token` or
        `token_expired` otherwise).
        """
        body = await parse_body(req, RefreshRequest)
        resp.media = token_json(await self._auth.refresh(body.refresh_token))
        _no_store(resp)


class Me:
    """``GET /auth/me``: the authentication middleware already found the user."""

    @endpoint(tag=TAG_AUTH, operation_id="getCurrentUser", response=UserOut)
    async def on_get(self, req: Request, resp: Response) -> None:
        """Current user

        The user the bearer token belongs to.
        """
        resp.media = user_json(req.context.user)


class Register:
    """``POST /auth/register``."""

    access = {"POST": OPTIONAL_USER}

    def __init__(self, auth: AuthService) -> None:
        self._auth = auth

    @endpoint(tag=TAG_AUTH, operation_id="registerUser", status=201, body=RegisterRequest,
              response=UserOut, errors=[400, 409])
    async def on_post(self, req: Request, resp: Response) -> None:
        """Register a user

        Admins create users of any role. When sign-up is open (NOTIBOT_ALLOW_SIGNUP) anyone
        may create an operator without a token; otherwise an anonymous call answers 401
        `authentication_required`. A taken username answers 409 `username_taken`.
        """
        body = await parse_body(req, RegisterRequest)
        user = await self._auth.register(req.context.user, body.username, body.password,
                                         body.role.value)
        resp.status = falcon.HTTP_201
        resp.media = user_json(user)
