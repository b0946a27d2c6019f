"""``/auth``: login, refresh, me, register; and the bearer-token checks of every route."""

from __future__ import annotations

import pytest
from http_support import (
    ADMIN_PASSWORD,
    ADMIN_USERNAME,
    OPERATOR_PASSWORD,
    Api,
    MakeApi,
    error_of,
)


def assert_unauthorized(result, code: str) -> None:  # type: ignore[no-untyped-def]
    assert result.status_code == 401
    assert result.headers["WWW-Authenticate"] == "Bearer"
    assert error_of(result)["code"] == code


# -- login -----------------------------------------------------------------------------------


async def test_login_returns_a_bearer_token_pair(api: Api) -> None:
    result = await api.post("/auth/login", json={"username": ADMIN_USERNAME,
                                                 "password": ADMIN_PASSWORD})

    assert result.status_code == 200
    body = result.json
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 1800
    assert result.headers["Cache-Control"] == "no-store"
    me = await api.get("/auth/me", token=body["access_token"])
    assert me.json["username"] == ADMIN_USERNAME


@pytest.mark.parametrize("username, password", [
    (ADMIN_USERNAME, "wrong-password"),
    ("nobody", ADMIN_PASSWORD),
])
async def test_login_with_wrong_credentials_is_401_invalid_credentials(
        api: Api, username: str, password: str) -> None:
    result = await api.post("/auth/login", json={"username": username, "password": password})

    assert_unauthorized(result, "invalid_credentials")


async def test_login_body_is_validated(api: Api) -> None:
    result = await api.post("/auth/login", json={"username": ADMIN_USERNAME, "extra": 1})

    assert result.status_code == 422
    error = error_of(result)
    assert error["code"] == "validation_error"
    fields = {item["field"] for item in error["details"]}
    assert fields == {"password", "extra"}


# -- refresh ---------------------------------------------------------------------------------


async def test_refresh_exchanges_a_refresh_token_for_a_new_pair(api: Api) -> None:
    pair = await api.login(ADMIN_USERNAME, ADMIN_PASSWORD)

    result = await api.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})

    assert result.status_code == 200
    assert result.json["token_type"] == "bearer"
    assert result.json["access_token"] != pair["access_token"]
    me = await api.get("/auth/me", token=result.json["access_token"])
    assert me.status_code == 200


async def test_refresh_refuses_an_access_token(api: Api) -> None:
    pair = await api.login(ADMIN_USERNAME, ADMIN_PASSWORD)

    result = await api.post("/auth/refresh", json={"refresh_token": pair["access_token"]})

    assert_unauthorized(result, "invalid_token")


async def test_refresh_refuses_garbage_and_expired_tokens(api: Api) -> None:
    pair = await api.login(ADMIN_USERNAME, ADMIN_PASSWORD)

    garbage = await api.post("/auth/refresh", json={"refresh_token": "not-a-token"})
    api.clock.advance(7 * 24 * 3600 + 1)
    expired = await api.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})

    assert_unauthorized(garbage, "invalid_token")
    assert_unauthorized(expired, "token_expired")


# -- me and token checks ---------------------------------------------------------------------


async def test_me_returns_the_user_without_password_hash(api: Api, operator_token: str) -> None:
    result = await api.get("/auth/me", token=operator_token)

    assert result.status_code == 200
    body = result.json
    assert set(body) == {"id", "username", "role", "active", "created_at"}
    assert body["username"] == "operator1"
    assert body["role"] == "operator"
    assert body["active"] is True
    assert body["created_at"] == "2026-01-01T09:00:00Z"


async def test_a_protected_route_without_token_is_401_authentication_required(
        api: Api) -> None:
    assert_unauthorized(await api.get("/auth/me"), "authentication_required")
    assert_unauthorized(await api.get("/auth/me", headers={"Authorization": "Basic YTpi"}),
                        "authentication_required")


@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Bearer", "bearer a.b.c"])
async def test_a_bad_token_is_401_invalid_token(api: Api, header: str) -> None:
    result = await api.get("/auth/me", headers={"Authorization": header})

    assert_unauthorized(result, "invalid_token")


async def test_an_expired_access_token_is_401_token_expired(api: Api, admin_token: str) -> None:
    api.clock.advance(1800 + 1)

    assert_unauthorized(await api.get("/auth/me", token=admin_token), "token_expired")


async def test_a_refresh_token_is_not_an_access_token(api: Api) -> None:
    pair = await api.login(ADMIN_USERNAME, ADMIN_PASSWORD)

    result = await api.get("/customers", token=pair["refresh_token"])

    assert_unauthorized(result, "invalid_token")


async def test_a_token_signed_with_another_secret_is_invalid(make_api: MakeApi) -> None:
    first = await make_api()
    other = await make_api(settings={"jwt_secret": "another-secret-0123456789abcdef-xyz"})
    token = await first.token_of(ADMIN_USERNAME, ADMIN_PASSWORD)

    assert_unauthorized(await other.get("/auth/me", token=token), "invalid_token")


# -- register --------------------------------------------------------------------------------


async def test_admin_registers_a_user_who_can_then_log_in(api: Api, admin_token: str) -> None:
    result = await api.post("/auth/register", token=admin_token,
                            json={"username": "alice", "password": "alice-password"})

    assert result.status_code == 201
    body = result.json
    assert set(body) == {"id", "username", "role", "active", "created_at"}
    assert body["role"] == "operator"
    assert "alice-password" not in result.text
    assert "argon2" not in result.text
    alice = await api.login("alice", "alice-password")
    me = await api.get("/auth/me", token=alice["access_token"])
    assert me.json["id"] == body["id"]


async def test_admin_registers_another_admin(api: Api, admin_token: str) -> None:
    result = await api.post("/auth/register", token=admin_token,
                            json={"username": "root2", "password": "root2-password",
                                  "role": "admin"})

    assert result.status_code == 201
    assert result.json["role"] == "admin"


async def test_register_without_token_is_401_when_signup_is_closed(api: Api) -> None:
    result = await api.post("/auth/register",
                            json={"username": "mallory", "password": "mallory-password"})

    assert_unauthorized(result, "authentication_required")
    assert (await api.post("/auth/login", json={"username": "mallory",
                                                "password": "mallory-password"})
            ).status_code == 401


async def test_register_by_an_operator_is_403(api: Api, operator_token: str) -> None:
    result = await api.post("/auth/register", token=operator_token,
                            json={"username": "bob", "password": "bob-password"})

    assert result.status_code == 403
    assert error_of(result)["code"] == "permission_denied"


async def test_register_with_a_bad_token_is_401_even_when_signup_is_open(
        make_api: MakeApi) -> None:
    api = await make_api(settings={"allow_signup": True})

    result = await api.post("/auth/register", token="garbage",
                            json={"username": "carol", "password": "carol-password"})

    assert_unauthorized(result, "invalid_token")


async def test_open_signup_lets_anyone_create_an_operator(make_api: MakeApi) -> None:
    api = await make_api(settings={"allow_signup": True})

    result = await api.post("/auth/register",
                            json={"username": "carol", "password": "carol-password"})

    assert result.status_code == 201
    assert result.json["role"] == "operator"
    assert (await api.login("carol", "carol-password"))["token_type"] == "bearer"


async def test_open_signup_never_creates_an_admin(make_api: MakeApi) -> None:
    api = await make_api(settings={"allow_signup": True})

    result = await api.post("/auth/register", json={"username": "eve",
                                                    "password": "eve-password", "role": "admin"})

    assert result.status_code == 403
    assert error_of(result)["code"] == "permission_denied"


async def test_register_a_taken_username_is_409(api: Api, admin_token: str) -> None:
    result = await api.post("/auth/register", token=admin_token,
                            json={"username": "ADMIN", "password": "whatever-password"})

    assert result.status_code == 409
    assert error_of(result)["code"] == "username_taken"


@pytest.mark.parametrize("body, code", [
    ({"username": "dave", "password": "short"}, "weak_password"),
    ({"username": "no spaces allowed", "password": OPERATOR_PASSWORD}, "invalid_username"),
    ({"username": "dave", "password": OPERATOR_PASSWORD, "role": "root"}, "validation_error"),
    ({"username": "dave"}, "validation_error"),
])
async def test_register_refuses_invalid_input_with_422(
        api: Api, admin_token: str, body: dict, code: str) -> None:
    result = await api.post("/auth/register", token=admin_token, json=body)

    assert result.status_code == 422
    assert error_of(result)["code"] == code
