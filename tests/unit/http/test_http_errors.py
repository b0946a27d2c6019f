"""Errors in one shape, whatever raised them; the access rules; start-up and shut-down."""

from __future__ import annotations

import logging

import falcon
import pytest
from falcon import testing
from http_support import ADMIN_PASSWORD, ADMIN_USERNAME, Api, MakeApi, error_of

from notibot.adapters.memory import MemoryCustomerRepository
from notibot.application.ports import CustomerFilter, Page
from notibot.domain import (
    AuthenticationFailed,
    Conflict,
    Customer,
    DeliveryFailed,
    InvalidInput,
    InvalidTransition,
    JobCancelled,
    LLMUnavailable,
    NotFound,
    NotibotError,
    PermissionDenied,
    ServiceUnavailable,
)
from notibot.entrypoints.http import create_app
from notibot.entrypoints.http.app import routes
from notibot.entrypoints.http.errors import http_error_code, status_for
from notibot.entrypoints.http.middleware import ADMIN, OPTIONAL_USER, PUBLIC, STAFF, access_rule
from notibot.testing import memory_notibot

# -- the mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize("error, status", [
    (NotFound("customer", "c1"), 404),
    (Conflict("taken"), 409),
    (InvalidTransition("finished"), 409),
    (InvalidInput("bad"), 422),
    (PermissionDenied("no"), 403),
    (AuthenticationFailed("who?"), 401),
    (ServiceUnavailable("down"), 503),
    (DeliveryFailed("smtp", transient=True), 503),
    (LLMUnavailable("quota"), 503),
    (JobCancelled("stop"), 400),
    (NotibotError("other"), 400),
])
def test_status_of_each_domain_error(error: NotibotError, status: int) -> None:
    assert status_for(error) == status


@pytest.mark.parametrize("error, code", [
    (falcon.HTTPRouteNotFound(), "route_not_found"),
    (falcon.HTTPMethodNotAllowed(["GET"]), "method_not_allowed"),
    (falcon.MediaMalformedError("application/json"), "invalid_json"),
    (falcon.HTTPUnsupportedMediaType(), "unsupported_media_type"),
    (falcon.HTTPContentTooLarge(), "payload_too_large"),
    (falcon.HTTPNotFound(), "not_found"),
    (falcon.HTTPBadRequest(), "bad_request"),
    (falcon.HTTPTooManyRequests(), "too_many_requests"),
])
def test_code_of_falcon_errors(error: falcon.HTTPError, code: str) -> None:
    assert http_error_code(error) == code


# -- falcon's own errors in our shape --------------------------------------------------------


async def test_unknown_route_is_404_route_not_found(api: Api) -> None:
    result = await api.get("/nowhere")

    assert result.status_code == 404
    assert error_of(result)["code"] == "route_not_found"


async def test_unsupported_method_is_405_with_allow(api: Api, admin_token: str) -> None:
    public = await api.put("/health")
    protected = await api.request("PUT", "/customers", token=admin_token, json={})

    assert public.status_code == protected.status_code == 405
    assert error_of(public)["code"] == "method_not_allowed"
    assert "GET" in public.headers["Allow"]
    assert set(protected.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


async def test_malformed_json_is_400_invalid_json(api: Api, operator_token: str) -> None:
    result = await api.post("/customers", token=operator_token, body='{"full_name": ',
                            headers={"Content-Type": "application/json"})

    assert result.status_code == 400
    assert error_of(result)["code"] == "invalid_json"


async def test_empty_body_is_422(api: Api, operator_token: str) -> None:
    result = await api.post("/customers", token=operator_token)

    assert result.status_code == 422
    assert error_of(result)["code"] == "validation_error"


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/merge-patch+json"])
async def test_non_json_body_is_415(api: Api, content_type: str) -> None:
    result = await api.post("/auth/login", body="username=admin&password=x",
                            headers={"Content-Type": content_type})

    assert result.status_code == 415
    assert error_of(result)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("content_type", [
    None, "application/json", "application/json; charset=utf-8"])
async def test_json_bodies_are_read_with_or_without_content_type(
        api: Api, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = f'{{"username": "{ADMIN_USERNAME}", "password": "{ADMIN_PASSWORD}"}}'

    result = await api.post("/auth/login", body=body, headers=headers)

    assert result.status_code == 200


async def test_a_trailing_slash_is_ignored(api: Api, operator_token: str) -> None:
    assert (await api.get("/customers/", token=operator_token)).status_code == 200


# -- failures of the dependencies ------------------------------------------------------------


class FailingCustomers(MemoryCustomerRepository):
    """A customer store whose ``list`` fails with ``error`` (``get`` works)."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def list(self, filter: CustomerFilter, *, limit: int,
                   offset: int) -> Page[Customer]:
        raise self.error


async def test_an_unexpected_error_is_500_without_details(
        make_api: MakeApi, caplog: pytest.LogCaptureFixture) -> None:
    secret = "password=hunter2 at db.internal:5432"
    api = await make_api(customer_repository=FailingCustomers(RuntimeError(secret)))
    token = await api.token_of(ADMIN_USERNAME, ADMIN_PASSWORD)

    with caplog.at_level(logging.ERROR, logger="notibot.http"):
        result = await api.get("/customers", token=token)

    assert result.status_code == 500
    error = error_of(result)
    assert error["code"] == "internal_error"
    assert error["details"] is None
    assert secret not in result.text
    assert "RuntimeError" not in result.text
    logged = [r for r in caplog.records if r.name == "notibot.http"]
    assert logged and logged[0].exc_info is not None
    assert "GET /customers" in logged[0].getMessage()


async def test_an_unavailable_dependency_is_503(make_api: MakeApi) -> None:
    api = await make_api(customer_repository=FailingCustomers(
        ServiceUnavailable("the store does not answer", code="store_unavailable")))
    token = await api.token_of(ADMIN_USERNAME, ADMIN_PASSWORD)

    result = await api.get("/customers", token=token)

    assert result.status_code == 503
    assert error_of(result) == {"code": "store_unavailable",
                                "message": "the store does not answer", "details": None}


async def test_any_other_notibot_error_is_400_with_its_code(make_api: MakeApi) -> None:
    api = await make_api(customer_repository=FailingCustomers(
        NotibotError("strange", code="strange_error", details={"why": "test"})))
    token = await api.token_of(ADMIN_USERNAME, ADMIN_PASSWORD)

    result = await api.get("/customers", token=token)

    assert result.status_code == 400
    assert error_of(result) == {"code": "strange_error", "message": "strange",
                                "details": {"why": "test"}}


# -- access rules ----------------------------------------------------------------------------


def test_access_rules_of_every_route() -> None:
    table = dict(routes(_NoServices()))  # type: ignore[arg-type]
    expected = {
        ("/auth/login", "POST"): PUBLIC,
        ("/auth/refresh", "POST"): PUBLIC,
        ("/auth/register", "POST"): OPTIONAL_USER,
        ("/auth/me", "GET"): STAFF,
        ("/customers", "GET"): STAFF,
        ("/customers", "POST"): STAFF,
        ("/customers/{customer_id}", "GET"): STAFF,
        ("/customers/{customer_id}", "PUT"): STAFF,
        ("/customers/{customer_id}", "PATCH"): STAFF,
        ("/customers/{customer_id}", "DELETE"): ADMIN,
        ("/customers/import", "POST"): STAFF,
        ("/customers/import/{job_id}/status", "GET"): STAFF,
        ("/customers/import/{job_id}/errors.csv", "GET"): STAFF,
        ("/tasks", "GET"): STAFF,
        ("/tasks/stats", "GET"): STAFF,
        ("/tasks/{job_id}", "GET"): STAFF,
        ("/tasks/{job_id}", "DELETE"): ADMIN,
        ("/tasks/{job_id}/cancel", "POST"): STAFF,
        ("/tasks/{job_id}/retry-failed", "POST"): STAFF,
        ("/notifications/config", "POST"): STAFF,
        ("/notifications/configs", "GET"): STAFF,
        ("/notifications/config/{config_id}", "GET"): STAFF,
        ("/notifications/config/{config_id}", "PUT"): STAFF,
        ("/notifications/config/{config_id}", "DELETE"): ADMIN,
        ("/notifications/send", "POST"): STAFF,
        ("/notifications/history", "GET"): STAFF,
        ("/notifications/stats", "GET"): STAFF,
        ("/notifications/config/{config_id}/retry-failed", "POST"): STAFF,
        ("/unsubscribe", "GET"): PUBLIC,
        ("/unsubscribe", "POST"): PUBLIC,
        ("/messages/send", "POST"): STAFF,
        ("/messages/history", "GET"): STAFF,
        ("/messages/history/{session_id}", "DELETE"): ADMIN,
        ("/messages/sessions", "GET"): STAFF,
        ("/messages/memory/stats", "GET"): STAFF,
        ("/prompts/templates", "GET"): STAFF,
        ("/prompts/templates", "POST"): STAFF,
        ("/prompts/templates/{template_id}", "GET"): STAFF,
        ("/prompts/templates/{template_id}", "PUT"): STAFF,
        ("/prompts/templates/{template_id}", "DELETE"): ADMIN,
        ("/prompts/templates/{template_id}/versions", "GET"): STAFF,
        ("/prompts/render", "POST"): STAFF,
        ("/health", "GET"): PUBLIC,
        ("/health/ready", "GET"): PUBLIC,
        ("/openapi.json", "GET"): PUBLIC,
        ("/docs", "GET"): PUBLIC,
        ("/docs/static/{name}", "GET"): PUBLIC,
    }
    actual = {
        (path, method): access_rule(resource, method)
        for path, resource in table.items()
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
        if hasattr(resource, f"on_{method.lower()}")
    }
    assert actual == expected


class _NoServices:
    def __getattr__(self, name: str) -> object:
        return object()


@pytest.mark.parametrize("method, path", [
    ("GET", "/auth/me"), ("GET", "/customers"), ("POST", "/customers"),
    ("GET", "/customers/c1"), ("PUT", "/customers/c1"), ("PATCH", "/customers/c1"),
    ("DELETE", "/customers/c1"), ("GET", "/tasks"), ("GET", "/tasks/stats"),
    ("GET", "/tasks/j1"), ("DELETE", "/tasks/j1"), ("POST", "/tasks/j1/cancel"),
])
async def test_every_protected_route_refuses_missing_bad_and_expired_tokens(
        api: Api, method: str, path: str) -> None:
    pair = await api.login(ADMIN_USERNAME, ADMIN_PASSWORD)
    attempts = {
        "authentication_required": await api.request(method, path, json={}),
        "invalid_token": await api.request(method, path, token="x.y.z", json={}),
    }
    refresh = await api.request(method, path, token=pair["refresh_token"], json={})
    api.clock.advance(1801)
    expired = await api.request(method, path, token=pair["access_token"], json={})

    for code, result in attempts.items():
        assert result.status_code == 401, code
        assert error_of(result)["code"] == code
    assert error_of(refresh)["code"] == "invalid_token"
    assert error_of(expired)["code"] == "token_expired"
    assert refresh.status_code == expired.status_code == 401


async def test_public_routes_ignore_a_bad_token(api: Api) -> None:
    assert (await api.get("/health", token="garbage")).status_code == 200
    assert (await api.get("/docs", token="garbage")).status_code == 200
    login = await api.post("/auth/login", token="garbage",
                           json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    assert login.status_code == 200


async def test_a_deactivated_user_loses_access(api: Api, operator_token: str) -> None:
    me = await api.get("/auth/me", token=operator_token)
    user = await api.notibot.container.user_repository().get(me.json["id"])
    user.active = False
    await api.notibot.container.user_repository().update(user)

    result = await api.get("/auth/me", token=operator_token)

    assert result.status_code == 401
    assert error_of(result)["code"] == "invalid_token"


# -- lifecycle -------------------------------------------------------------------------------


async def test_start_up_creates_the_admin_and_shut_down_stops_the_queue() -> None:
    notibot = memory_notibot(admin=(ADMIN_USERNAME, ADMIN_PASSWORD))
    app = create_app(notibot.container)
    assert await notibot.container.user_repository().get_by_username(ADMIN_USERNAME) is None

    async with testing.ASGIConductor(app) as conductor:
        assert await notibot.container.user_repository().get_by_username(ADMIN_USERNAME)
        login = await conductor.simulate_post("/auth/login", json={
            "username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        assert login.status_code == 200

    with pytest.raises(ServiceUnavailable):
        await notibot.jobs.submit("test")
