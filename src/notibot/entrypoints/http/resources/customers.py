"""``/customers`` and ``/customers/{customer_id}``."""

from __future__ import annotations

import falcon
from falcon.asgi import Request, Response

from notibot.application.ports import CustomerFilter
from notibot.application.services import CustomerService
from notibot.entrypoints.http.middleware import ADMIN
from notibot.entrypoints.http.openapi import TAG_CUSTOMERS, endpoint
from notibot.entrypoints.http.schemas import (
    CustomerCreate,
    CustomerOut,
    CustomerPage,
    CustomerPatch,
    CustomerQuery,
    CustomerReplace,
    customer_json,
    customer_page_json,
)
from notibot.entrypoints.http.validation import parse_body, parse_query


class CustomerCollection:
    """``GET /customers`` (list) and ``POST /customers`` (create)."""

    def __init__(self, customers: CustomerService) -> None:
        self._customers = customers

    @endpoint(tag=TAG_CUSTOMERS, operation_id="listCustomers", query=CustomerQuery,
              response=CustomerPage)
    async def on_get(self, req: Request, resp: Response) -> None:
        """List customers

        Customers matching every filter given, oldest first, with the total number of
        matches.
        """
        query = parse_query(req, CustomerQuery)
        page = await self._customers.list(
            CustomerFilter(tag=query.tag, city=query.city, country=query.country,
                           language=query.language, subscribed=query.subscribed, q=query.q),
            limit=query.limit, offset=query.offset)
        resp.media = customer_page_json(page)

    @endpoint(tag=TAG_CUSTOMERS, operation_id="createCustomer", status=201,
              body=CustomerCreate, response=CustomerOut, errors=[400, 409])
    async def on_post(self, req: Request, resp: Response) -> None:
        """Create a customer

        `full_name` and an email or a phone are required. The email is lower-cased and the
        phone stored in E.164. An email or phone that another customer has answers 409
        `customer_conflict`. The `Location` header gives the new customer's URL.
        """
        body = await parse_body(req, CustomerCreate)
        customer = await self._customers.create(body.model_dump(exclude_unset=True))
        resp.status = falcon.HTTP_201
        resp.location = f"{req.root_path}/customers/{customer.id}"
        resp.media = customer_json(customer)


class CustomerItem:
    """``GET``, ``PUT``, ``PATCH``, ``DELETE /customers/{customer_id}``."""

    access = {"DELETE": ADMIN}

    def __init__(self, customers: CustomerService) -> None:
        self._customers = customers

    @endpoint(tag=TAG_CUSTOMERS, operation_id="getCustomer", response=CustomerOut,
              errors=[404])
    async def on_get(self, req: Request, resp: Response, customer_id: str) -> None:
        """Get a customer"""
        resp.media = customer_json(await self._customers.get(customer_id))

    @endpoint(tag=TAG_CUSTOMERS, operation_id="replaceCustomer", body=CustomerReplace,
              response=CustomerOut, errors=[400, 404, 409])
    async def on_put(self, req: Request, resp: Response, customer_id: str) -> None:
        """Replace a customer

        Every field takes the value sent; omitted fields are cleared, except `subscribed`
        (consent), which keeps its value.
        """
        body = await parse_body(req, CustomerReplace)
        customer = await self._customers.replace(customer_id,
                                                 body.model_dump(exclude_unset=True))
        resp.media = customer_json(customer)

    @endpoint(tag=TAG_CUSTOMERS, operation_id="updateCustomer", body=CustomerPatch,
              response=CustomerOut, errors=[400, 404, 409])
    async def on_patch(self, req: Request, resp: Response, customer_id: str) -> None:
        """Update some fields of a customer

        Only the fields present in the body change; `null` clears an optional field.
        """
        body = await parse_body(req, CustomerPatch)
        customer = await self._customers.patch(customer_id, body.model_dump(exclude_unset=True))
        resp.media = customer_json(customer)

    @endpoint(tag=TAG_CUSTOMERS, operation_id="deleteCustomer", status=204, errors=[404])
    async def on_delete(self, req: Request, resp: Response, customer_id: str) -> None:
        """Delete a customer"""
        await self._customers.delete(customer_id)
        resp.status = falcon.HTTP_204
