"""``/customers`` and ``/customers/{id}``."""

from __future__ import annotations

from typing import Any

import pytest
from http_support import Api, error_of

from notibot.domain.customer import EDITABLE_FIELDS
from notibot.entrypoints.http.schemas import CustomerCreate, CustomerPatch, CustomerReplace

CUSTOMER_FIELDS = {"id", *EDITABLE_FIELDS, "created_at", "updated_at"}


async def create(api: Api, token: str, **values: Any) -> dict[str, Any]:
    body = {"full_name": "Nguyen Van An", **values}
    result = await api.post("/customers", token=token, json=body)
    assert result.status_code == 201, result.json
    return result.json


def test_body_models_offer_exactly_the_editable_fields() -> None:
    for model in (CustomerCreate, CustomerReplace, CustomerPatch):
        assert set(model.model_fields) == set(EDITABLE_FIELDS), model


# -- create and read -------------------------------------------------------------------------


async def test_create_normalises_and_returns_the_customer(api: Api, operator_token: str) -> None:
    result = await api.post("/customers", token=operator_token, json={
        "full_name": "  Nguyen Van An ", "email": "An.Nguyen@Example.COM",
        "phone": "0912 345 678", "language": "VI", "tags": ["VIP", "vip", "new"],
        "attributes": {"tier": "gold"}, "city": "Hanoi"})

    assert result.status_code == 201
    body = result.json
    assert set(body) == CUSTOMER_FIELDS
    assert body["full_name"] == "Nguyen Van An"
    assert body["email"] == "an.nguyen@example.com"
    assert body["phone"] == "+84912345678"
    assert body["language"] == "vi"
    assert body["tags"] == ["vip", "new"]
    assert body["attributes"] == {"tier": "gold"}
    assert body["subscribed"] is True
    assert body["company"] is None
    assert body["created_at"] == body["updated_at"] == "2026-01-01T09:00:00Z"
    assert result.headers["Location"] == f"/customers/{body['id']}"
    stored = await api.get(result.headers["Location"], token=operator_token)
    assert stored.status_code == 200
    assert stored.json == body


async def test_get_an_unknown_customer_is_404(api: Api, operator_token: str) -> None:
    result = await api.get("/customers/nope", token=operator_token)

    assert result.status_code == 404
    error = error_of(result)
    assert error["code"] == "customer_not_found"
    assert error["details"] == {"entity": "customer", "key": "nope"}


@pytest.mark.parametrize("body, code, field", [
    ({"full_name": "A", "email": "not-an-email"}, "invalid_email", "email"),
    ({"full_name": "A", "phone": "12"}, "invalid_phone", "phone"),
    ({"full_name": "A"}, "no_contact", None),
    ({"full_name": "  ", "email": "a@example.org"}, "missing_full_name", "full_name"),
    ({"full_name": "A", "email": "a@example.org", "language": "?"}, "invalid_language",
     "language"),
])
async def test_create_refuses_broken_domain_rules_with_422(
        api: Api, operator_token: str, body: dict, code: str, field: str | None) -> None:
    result = await api.post("/customers", token=operator_token, json=body)

    assert result.status_code == 422
    error = error_of(result)
    assert error["code"] == code
    if field:
        assert error["details"]["field"] == field


@pytest.mark.parametrize("body, field", [
    ({"email": "a@example.org"}, "full_name"),
    ({"full_name": "A", "email": "a@example.org", "nickname": "x"}, "nickname"),
    ({"full_name": "A", "email": "a@example.org", "subscribed": "yes"}, "subscribed"),
    ({"full_name": "A", "email": "a@example.org", "tags": "vip"}, "tags"),
    ({"full_name": "A", "email": "a@example.org", "tags": ["ok", 3]}, "tags.1"),
    ({"full_name": 5, "email": "a@example.org"}, "full_name"),
])
async def test_create_refuses_bodies_off_the_schema_with_422_validation_error(
        api: Api, operator_token: str, body: dict, field: str) -> None:
    result = await api.post("/customers", token=operator_token, json=body)

    assert result.status_code == 422
    error = error_of(result)
    assert error["code"] == "validation_error"
    assert [item["field"] for item in error["details"]] == [field]
    assert all(item["message"] for item in error["details"])


async def test_a_body_that_is_not_an_object_is_422(api: Api, operator_token: str) -> None:
    result = await api.post("/customers", token=operator_token, json=["not", "an", "object"])

    assert result.status_code == 422
    assert error_of(result)["details"][0]["field"] == "body"


async def test_duplicate_email_is_409_customer_conflict(api: Api, operator_token: str) -> None:
    first = await create(api, operator_token, email="an@example.org")

    result = await api.post("/customers", token=operator_token,
                            json={"full_name": "Other", "email": "AN@example.org"})

    assert result.status_code == 409
    error = error_of(result)
    assert error["code"] == "customer_conflict"
    assert error["details"]["field"] == "email"
    assert error["details"]["existing_id"] == first["id"]


async def test_duplicate_phone_is_409_customer_conflict(api: Api, operator_token: str) -> None:
    await create(api, operator_token, phone="+84912345678")

    result = await api.post("/customers", token=operator_token,
                            json={"full_name": "Other", "phone": "0912 345 678"})

    assert result.status_code == 409
    assert error_of(result)["code"] == "customer_conflict"
    assert error_of(result)["details"]["field"] == "phone"
    listing = await api.get("/customers", token=operator_token)
    assert listing.json["total"] == 1


async def test_customers_need_a_token(api: Api) -> None:
    assert (await api.get("/customers")).status_code == 401
    assert (await api.post("/customers", json={"full_name": "A"})).status_code == 401
    assert (await api.get("/customers/x")).status_code == 401


# -- list ------------------------------------------------------------------------------------


@pytest.fixture
async def population(api: Api, operator_token: str) -> dict[str, str]:
    """Four customers; returns name -> id."""
    people = [
        {"full_name": "An", "email": "an@example.org", "city": "Hanoi", "country": "VN",
         "language": "vi", "tags": ["vip"]},
        {"full_name": "Binh", "phone": "0912 345 679", "city": "Hue", "country": "VN",
         "language": "vi", "subscribed": False},
        {"full_name": "Chris", "email": "chris@example.com", "city": "hanoi", "country": "US",
         "language": "en", "tags": ["vip", "new"]},
        {"full_name": "Dana", "email": "dana@mail.test", "country": "FR", "language": "fr"},
    ]
    ids = {}
    for person in people:
        api.clock.advance(1)  # distinct creation times: the list is oldest first
        ids[person["full_name"]] = (await create(api, operator_token, **person))["id"]
    return ids


async def names(api: Api, token: str, **params: str) -> list[str]:
    result = await api.get("/customers", token=token, params=params)
    assert result.status_code == 200, result.json
    return [item["full_name"] for item in result.json["items"]]


@pytest.mark.parametrize("params, expected", [
    ({}, ["An", "Binh", "Chris", "Dana"]),
    ({"tag": "VIP"}, ["An", "Chris"]),
    ({"city": "HANOI"}, ["An", "Chris"]),
    ({"country": "vn"}, ["An", "Binh"]),
    ({"language": "en"}, ["Chris"]),
    ({"subscribed": "false"}, ["Binh"]),
    ({"subscribed": "true"}, ["An", "Chris", "Dana"]),
    ({"q": "example"}, ["An", "Chris"]),
    ({"q": "+8491234"}, ["Binh"]),
    ({"q": "dan"}, ["Dana"]),
    ({"tag": "vip", "country": "US"}, ["Chris"]),
    ({"tag": "nobody"}, []),
])
async def test_list_filters(api: Api, operator_token: str, population: dict[str, str],
                            params: dict[str, str], expected: list[str]) -> None:
    assert await names(api, operator_token, **params) == expected


async def test_list_pages_with_the_total_of_all_matches(
        api: Api, operator_token: str, population: dict[str, str]) -> None:
    result = await api.get("/customers", token=operator_token,
                           params={"limit": "2", "offset": "1"})

    assert result.status_code == 200
    body = result.json
    assert (body["total"], body["limit"], body["offset"]) == (4, 2, 1)
    assert [item["full_name"] for item in body["items"]] == ["Binh", "Chris"]
    assert set(body["items"][0]) == CUSTOMER_FIELDS
    last = await api.get("/customers", token=operator_token, params={"offset": "3"})
    assert (last.json["total"], last.json["limit"]) == (4, 50)
    assert [item["full_name"] for item in last.json["items"]] == ["Dana"]


@pytest.mark.parametrize("params, field", [
    ({"limit": "201"}, "limit"),
    ({"limit": "0"}, "limit"),
    ({"limit": "abc"}, "limit"),
    ({"offset": "-1"}, "offset"),
    ({"subscribed": "maybe"}, "subscribed"),
    ({"colour": "red"}, "colour"),
])
async def test_list_refuses_bad_query_parameters_with_422(
        api: Api, operator_token: str, params: dict[str, str], field: str) -> None:
    result = await api.get("/customers", token=operator_token, params=params)

    assert result.status_code == 422
    error = error_of(result)
    assert error["code"] == "validation_error"
    assert [item["field"] for item in error["details"]] == [field]


async def test_limit_200_is_allowed(api: Api, operator_token: str) -> None:
    result = await api.get("/customers", token=operator_token, params={"limit": "200"})

    assert result.status_code == 200
    assert result.json == {"items": [], "total": 0, "limit": 200, "offset": 0}


# -- update ----------------------------------------------------------------------------------


async def test_patch_changes_only_the_fields_sent(api: Api, operator_token: str) -> None:
    customer = await create(api, operator_token, email="an@example.org", city="Hanoi",
                            company="ACME", tags=["vip"], subscribed=False)
    api.clock.advance(60)

    result = await api.patch(f"/customers/{customer['id']}", token=operator_token,
                             json={"city": "Hue", "company": None, "phone": "0912345678"})

    assert result.status_code == 200
    body = result.json
    assert body["city"] == "Hue"
    assert body["company"] is None
    assert body["phone"] == "+84912345678"
    assert body["email"] == "an@example.org"
    assert body["tags"] == ["vip"]
    assert body["subscribed"] is False
    assert body["full_name"] == customer["full_name"]
    assert body["created_at"] == customer["created_at"]
    assert body["updated_at"] == "2026-01-01T09:01:00Z"
    stored = await api.get(f"/customers/{customer['id']}", token=operator_token)
    assert stored.json == body


async def test_patch_with_an_empty_body_changes_nothing(api: Api, operator_token: str) -> None:
    customer = await create(api, operator_token, email="an@example.org", city="Hanoi")

    result = await api.patch(f"/customers/{customer['id']}", token=operator_token, json={})

    assert result.status_code == 200
    assert result.json == customer


async def test_patch_cannot_remove_the_last_contact(api: Api, operator_token: str) -> None:
    customer = await create(api, operator_token, email="an@example.org")

    result = await api.patch(f"/customers/{customer['id']}", token=operator_token,
                             json={"email": None})

    assert result.status_code == 422
    assert error_of(result)["code"] == "no_contact"
    stored = await api.get(f"/customers/{customer['id']}", token=operator_token)
    assert stored.json["email"] == "an@example.org"


async def test_put_replaces_the_customer_and_clears_omitted_fields(
        api: Api, operator_token: str) -> None:
    customer = await create(api, operator_token, email="an@example.org", phone="0912345678",
                            city="Hanoi", company="ACME", tags=["vip"],
                            attributes={"tier": "gold"}, subscribed=False)

    result = await api.put(f"/customers/{customer['id']}", token=operator_token,
                           json={"full_name": "An Nguyen", "email": "An@New.example"})

    assert result.status_code == 200
    body = result.json
    assert body["full_name"] == "An Nguyen"
    assert body["email"] == "an@new.example"
    assert body["phone"] is None
    assert body["city"] is None
    assert body["company"] is None
    assert body["tags"] == []
    assert body["attributes"] == {}
    assert body["subscribed"] is False  # consent is never reset by omission
    assert body["id"] == customer["id"]
    stored = await api.get(f"/customers/{customer['id']}", token=operator_token)
    assert stored.json == body


async def test_put_requires_full_name(api: Api, operator_token: str) -> None:
    customer = await create(api, operator_token, email="an@example.org")

    result = await api.put(f"/customers/{customer['id']}", token=operator_token,
                           json={"email": "an@example.org"})

    assert result.status_code == 422
    assert error_of(result)["details"] == [{"field": "full_name", "message": "Field required"}]


@pytest.mark.parametrize("method", ["put", "patch"])
async def test_update_to_another_customers_email_is_409(
        api: Api, operator_token: str, method: str) -> None:
    await create(api, operator_token, email="taken@example.org")
    customer = await create(api, operator_token, email="mine@example.org")

    result = await getattr(api, method)(
        f"/customers/{customer['id']}", token=operator_token,
        json={"full_name": "Mine", "email": "taken@example.org"})

    assert result.status_code == 409
    assert error_of(result)["code"] == "customer_conflict"


@pytest.mark.parametrize("method", ["put", "patch"])
async def test_update_an_unknown_customer_is_404(
        api: Api, operator_token: str, method: str) -> None:
    result = await getattr(api, method)("/customers/nope", token=operator_token,
                                        json={"full_name": "X", "email": "x@example.org"})

    assert result.status_code == 404
    assert error_of(result)["code"] == "customer_not_found"


@pytest.mark.parametrize("method", ["put", "patch"])
async def test_update_refuses_unknown_fields(api: Api, operator_token: str, method: str) -> None:
    customer = await create(api, operator_token, email="an@example.org")

    result = await getattr(api, method)(f"/customers/{customer['id']}", token=operator_token,
                                        json={"full_name": "X", "id": "other"})

    assert result.status_code == 422
    assert error_of(result)["details"][0]["field"] == "id"


# -- delete ----------------------------------------------------------------------------------


async def test_admin_deletes_a_customer(api: Api, admin_token: str) -> None:
    customer = await create(api, admin_token, email="an@example.org")

    result = await api.delete(f"/customers/{customer['id']}", token=admin_token)

    assert result.status_code == 204
    assert result.content == b""
    assert (await api.get(f"/customers/{customer['id']}", token=admin_token)).status_code == 404
    again = await api.delete(f"/customers/{customer['id']}", token=admin_token)
    assert again.status_code == 404
    assert error_of(again)["code"] == "customer_not_found"


async def test_an_operator_may_not_delete_a_customer(
        api: Api, operator_token: str) -> None:
    customer = await create(api, operator_token, email="an@example.org")

    result = await api.delete(f"/customers/{customer['id']}", token=operator_token)

    assert result.status_code == 403
    error = error_of(result)
    assert error["code"] == "permission_denied"
    assert error["details"] == {"required_roles": ["admin"]}
    assert (await api.get(f"/customers/{customer['id']}",
                          token=operator_token)).status_code == 200
