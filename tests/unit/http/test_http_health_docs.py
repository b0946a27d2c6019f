"""``/health``, ``/health/ready``, ``/docs`` (offline Swagger UI) and ``/openapi.json``."""

from __future__ import annotations

import re
from typing import Any

import pytest
from http_support import Api, MakeApi, error_of

from notibot.application.ports import HealthCheck
from notibot.domain import ServiceUnavailable
from notibot.entrypoints.http import openapi_spec
from notibot.entrypoints.http.resources.docs import ASSETS

#: Every operation of the API: path -> methods.
OPERATIONS = {
    "/auth/login": {"post"},
    "/auth/refresh": {"post"},
    "/auth/me": {"get"},
    "/auth/register": {"post"},
    "/customers": {"get", "post"},
    "/customers/{customer_id}": {"get", "put", "patch", "delete"},
    "/customers/import": {"post"},
    "/customers/import/{job_id}/status": {"get"},
    "/customers/import/{job_id}/errors.csv": {"get"},
    "/tasks": {"get"},
    "/tasks/stats": {"get"},
    "/tasks/{job_id}": {"get", "delete"},
    "/tasks/{job_id}/cancel": {"post"},
    "/tasks/{job_id}/retry-failed": {"post"},
    "/notifications/config": {"post"},
    "/notifications/configs": {"get"},
    "/notifications/config/{config_id}": {"get", "put", "delete"},
    "/notifications/send": {"post"},
    "/notifications/history": {"get"},
    "/notifications/stats": {"get"},
    "/notifications/config/{config_id}/retry-failed": {"post"},
    "/unsubscribe": {"get", "post"},
    "/messages/send": {"post"},
    "/messages/history": {"get"},
    "/messages/history/{session_id}": {"delete"},
    "/messages/sessions": {"get"},
    "/messages/memory/stats": {"get"},
    "/prompts/templates": {"get", "post"},
    "/prompts/templates/{template_id}": {"get", "put", "delete"},
    "/prompts/templates/{template_id}/versions": {"get"},
    "/prompts/render": {"post"},
    "/health": {"get"},
    "/health/ready": {"get"},
    "/openapi.json": {"get"},
    "/docs": {"get"},
}
PUBLIC = {("/auth/login", "post"), ("/auth/refresh", "post"), ("/health", "get"),
          ("/health/ready", "get"), ("/openapi.json", "get"), ("/docs", "get"),
          ("/unsubscribe", "get"), ("/unsubscribe", "post")}
ADMIN_ONLY = {("/customers/{customer_id}", "delete"), ("/tasks/{job_id}", "delete"),
              ("/notifications/config/{config_id}", "delete"),
              ("/messages/history/{session_id}", "delete"),
              ("/prompts/templates/{template_id}", "delete")}


# -- health ----------------------------------------------------------------------------------


async def test_health_is_public_and_ok(api: Api) -> None:
    result = await api.get("/health")

    assert result.status_code == 200
    assert result.json == {"status": "ok"}


async def test_ready_reports_each_check(api: Api) -> None:
    result = await api.get("/health/ready")

    assert result.status_code == 200
    body = result.json
    assert body["status"] == "ready"
    assert body["checks"]["store"]["status"] == "ok"
    assert body["checks"]["store"]["adapter"] == "memory"
    assert "latency_ms" in body["checks"]["store"]


class DownCheck(HealthCheck):
    """A dependency that does not answer."""

    name = "broker"

    async def check(self) -> dict[str, Any]:
        raise ServiceUnavailable("connection refused")


class UpCheck(HealthCheck):
    name = "store"

    async def check(self) -> dict[str, Any]:
        return {"adapter": "fake"}


async def test_ready_is_503_when_a_dependency_is_down(make_api: MakeApi) -> None:
    api = await make_api(health_checks=[UpCheck(), DownCheck()])

    result = await api.get("/health/ready")

    assert result.status_code == 503
    body = result.json
    assert body["status"] == "unavailable"
    assert body["checks"]["store"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "down"
    assert body["checks"]["broker"]["error"] == "connection refused"


# -- docs ------------------------------------------------------------------------------------


async def test_docs_page_works_offline(api: Api) -> None:
    result = await api.get("/docs")

    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("text/html")
    page = result.text
    assert "SwaggerUIBundle" in page
    assert '"/openapi.json"' in page
    assert not re.search(r"https?://", page), "the page must load nothing from the internet"
    assert "validatorUrl: null" in page
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert url.startswith("/docs/static/"), url
        asset = await api.get(url)
        assert asset.status_code == 200, url
        assert asset.content


@pytest.mark.parametrize("name", sorted(ASSETS))
async def test_docs_assets_are_served_from_the_package(api: Api, name: str) -> None:
    result = await api.get(f"/docs/static/{name}")

    assert result.status_code == 200
    assert result.headers["Content-Type"] == ASSETS[name]
    assert len(result.content) > 100


@pytest.mark.parametrize("name", ["index.html", "swagger-ui.js.map", "..%2Fsecret", "x"])
async def test_only_listed_docs_assets_are_served(api: Api, name: str) -> None:
    result = await api.get(f"/docs/static/{name}")

    assert result.status_code == 404
    assert error_of(result)["code"] in {"asset_not_found", "route_not_found"}


# -- OpenAPI ---------------------------------------------------------------------------------


async def test_openapi_json_is_served_and_equals_openapi_spec(api: Api) -> None:
    result = await api.get("/openapi.json")

    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("application/json")
    assert result.json == openapi_spec()


def test_openapi_spec_is_a_new_dict_each_call() -> None:
    first = openapi_spec()
    first["paths"].clear()

    assert openapi_spec()["paths"]


def test_openapi_lists_every_operation() -> None:
    spec = openapi_spec()

    assert spec["openapi"].startswith("3.0.")
    assert {path: set(item) for path, item in spec["paths"].items()} == OPERATIONS
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_openapi_security_follows_the_access_rules() -> None:
    spec = openapi_spec()

    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "the `access_token` of POST /auth/login or /auth/refresh"}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            if (path, method) in PUBLIC:
                assert op["security"] == [], (path, method)
                if path not in ("/auth/login", "/auth/refresh"):  # wrong credentials: 401
                    assert "401" not in responses
            elif (path, method) == ("/auth/register", "post"):
                assert op["security"] == [{}, {"bearerAuth": []}]
            else:
                assert op["security"] == [{"bearerAuth": []}], (path, method)
                assert "401" in responses
                assert ("403" in responses) == ((path, method) in ADMIN_ONLY), (path, method)


def test_openapi_documents_models_and_errors() -> None:
    spec = openapi_spec()
    paths = spec["paths"]
    error = {"$ref": "#/components/schemas/ErrorResponse"}

    def schema(op: dict, status: str) -> dict:
        return op["responses"][status]["content"]["application/json"]["schema"]

    create = paths["/customers"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CustomerCreate"}
    assert schema(create, "201") == {"$ref": "#/components/schemas/CustomerOut"}
    assert schema(create, "409") == error
    assert schema(create, "422") == error
    assert schema(paths["/customers/{customer_id}"]["get"], "404") == error
    assert "422" not in paths["/customers/{customer_id}"]["get"]["responses"]
    assert set(paths["/tasks/{job_id}"]["delete"]["responses"]) == {
        "204", "401", "403", "404", "409"}
    listing = paths["/customers"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert set(params) == {"limit", "offset", "tag", "city", "country", "language",
                           "subscribed", "q"}
    assert params["limit"]["schema"]["maximum"] == 200
    assert params["limit"]["in"] == "query"
    assert schema(paths["/health/ready"]["get"], "503") == {
        "$ref": "#/components/schemas/ReadinessOut"}
    assert {t["name"] for t in spec["tags"]} == {"auth", "customers", "tasks", "notifications",
                                                  "messages", "prompts", "health", "docs"}


def _walk(node: Any):  # type: ignore[no-untyped-def]
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_openapi_is_openapi_3_0_compatible() -> None:
    spec = openapi_spec()
    schemas = spec["components"]["schemas"]

    for node in _walk(spec):
        assert node.get("type") != "null"
        assert "const" not in node
        assert "$defs" not in node
        if "$ref" in node:
            assert set(node) == {"$ref"}, node
            ref = node["$ref"]
            assert ref.startswith("#/components/schemas/"), ref
            assert ref.removeprefix("#/components/schemas/") in schemas, ref
    for name in schemas:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name), name
    nullable = schemas["CustomerOut"]["properties"]["email"]
    assert nullable == {"type": "string", "title": "Email", "nullable": True}
