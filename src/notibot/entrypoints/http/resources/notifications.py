"""``/notifications/*``: campaigns ("notification configs"), sending them, retrying their
failed deliveries, history and stats; ``/tasks/{job_id}/retry-failed``; and the public
``/unsubscribe`` page of the links in the emails.

A send is a background job of kind ``campaign_send``: ``POST /notifications/send`` answers
202 with the job's id; the job is watched, cancelled and deleted under ``/tasks``.
"""

from __future__ import annotations

from html import escape
from typing import Any

import falcon
from falcon.asgi import Request, Response
from spectree import Tag

from notibot.application.ports import CustomerFilter, DeliveryFilter
from notibot.application.services.campaigns import Audience, CampaignSender, CampaignService
from notibot.domain import Customer, NotibotError
from notibot.entrypoints.http.errors import RequestValidationError, status_for
from notibot.entrypoints.http.middleware import ADMIN, PUBLIC
from notibot.entrypoints.http.openapi import TAG_TASKS, endpoint
from notibot.entrypoints.http.schemas import (
    CampaignIn,
    CampaignOut,
    CampaignPage,
    CampaignQuery,
    DeliveryPage,
    HistoryQuery,
    SendAccepted,
    SendRequest,
    StatsOut,
    StatsQuery,
    UnsubscribeForm,
    UnsubscribeOut,
    UnsubscribeQuery,
    campaign_json,
    campaign_page_json,
    delivery_page_json,
    stats_json,
)
from notibot.entrypoints.http.validation import parse_body, parse_query

TAG_NOTIFICATIONS = Tag(name="notifications", description=(
    "Campaigns (notification configs) with Jinja2 templates, sending them as background "
    "jobs, delivery history and statistics."))

#: The request header of idempotent sends (IETF draft "The Idempotency-Key HTTP Header
#: Field").
IDEMPOTENCY_HEADER = "Idempotency-Key"


def _accepted(req: Request, resp: Response, job_id: str) -> None:
    task_url = f"{req.root_path}/tasks/{job_id}"
    resp.status = falcon.HTTP_202
    resp.location = task_url
    resp.media = SendAccepted(job_id=job_id, task_url=task_url).model_dump(mode="json")


def _user_id(req: Request) -> str | None:
    user = req.context.user
    return user.id if user is not None else None


class NotificationConfigCreate:
    """``POST /notifications/config``."""

    def __init__(self, campaigns: CampaignService) -> None:
        self._campaigns = campaigns

    @endpoint(tag=TAG_NOTIFICATIONS, operation_id="createNotificationConfig", status=201,
              body=CampaignIn, response=CampaignOut, errors=[400, 409])
    async def on_post(self, req: Request, resp: Response) -> None:
        """Create a campaign (notification config)

        A campaign has a unique `name`, a `channel`, the default templates (`subject`,
        `text_body`, optional `html_body`), per-language `variants`, `default_data` and an
        `active` flag. Templates are Jinja2, rendered in a sandbox with undefined variables
        as errors; HTML bodies are autoescaped. A template that does not compile or uses an
        unknown variable (`{{ foo }}`, `{{ customer.password }}`) answers 422
        `invalid_template` with `details` `{field, line, name}`. A taken name answers 409
        `campaign_name_taken`. The `Location` header gives the campaign's URL.
        """
        body = await parse_body(req, CampaignIn)
        campaign = await self._campaigns.create(body.model_dump())
        resp.status = falcon.HTTP_201
        resp.location = f"{req.root_path}/notifications/config/{campaign.id}"
        resp.media = campaign_json(campaign)


class NotificationConfigList:
    """``GET /notifications/configs``."""

    def __init__(self, campaigns: CampaignService) -> None:
        self._campaigns = campaigns

    @endpoint(tag=TAG_NOTIFICATIONS, operation_id="listNotificationConfigs",
              query=CampaignQuery, response=CampaignPage)
    async def on_get(self, req: Request, resp: Response) -> None:
        """List campaigns

        Campaigns oldest first, optionally only the active or inactive ones, with the total
        number of matches.
        """
        query = parse_query(req, CampaignQuery)
        page = await self._campaigns.list(limit=query.limit, offset=query.offset,
                                          active=query.active)
        resp.media = campaign_page_json(page)


class NotificationConfigItem:
    """``GET``, ``PUT``, ``DELETE /notifications/config/{config_id}``."""

    access = {"DELETE": ADMIN}

    def __init__(self, campaigns: CampaignService) -> None:
        self._campaigns = campaigns

    @endpoint(tag=TAG_NOTIFICATIONS, operation_id="getNotificationConfig",
              response=CampaignOut, errors=[404])
    async def on_get(self, req: Request, resp: Response, config_id: str) -> None:
        """Get a campaign"""
        resp.media = campaign_json(await self._campaigns.get(config_id))

    @endpoint(tag=TAG_NOTIFICATIONS, operation_id="replaceNotificationConfig",
              body=CampaignIn, response=CampaignOut, errors=[400, 404, 409])
    async def on_put(self, req: Request, resp: Response, config_id: str) -> None:
        """Replace a campaign

        Every field takes the value sent; omitted optional fields are cleared and `active`
        becomes true. Templates are checked as on create (422 `invalid_template`). Sends
        already running keep the campaign as it was when they started.
        """
        body = await parse_body(req, CampaignIn)
        resp.media = campaign_json(await self._campaigns.replace(config_id, body.model_dump()))

    @endpoint(tag=TAG_NOTIFICATIONS, operation_id="deleteNotificationConfig", status=204,
              errors=[404])
    async def on_delete(self, req: Request, resp: Response, config_id: str) -> None:
        """Delete a campaign

        Its deliveries stay in the history and the statistics.
        """
        await self._campaigns.delete(config_id)
        resp.status = falcon.HTTP_204


class NotificationSend:
    """``POST /notifications/send``."""

    def __init__(self, sender: CampaignSender) -> None:
        self._sender = sender

    @endpoint(tag=TAG_NOTIFICATIONS, operation_id="sendNotification", status=202,
              body=SendRequest, response=SendAccepted, errors=[400, 404, 409],
              headers={"Location": "the job's URL (`task_url`)"})
    async def on_post(self, req: Request, resp: Response) -> None:
        """Send a campaign

        Queues a job of kind `campaign_send` and answers 202 with its id. The recipients are
        `customer_ids` (a list, or `"all"`) or the customers matching `filter` (the filters
        of `GET /customers`). The job pages the audience and sends in batches: one delivery
        per customer, never two emails to one customer; customers without an email or
        unsubscribed are skipped (counted, with `skip_reason`). Each customer gets the
        variant of their language. Watch it at `task_url`; cancel it (it stops before the
        next batch) with `POST /tasks/{job_id}/cancel`; re-send its failed deliveries with
        `POST /tasks/{job_id}/retry-failed`.

        Send an `Idempotency-Key` header (1-255 visible ASCII characters) to make the
        request safe to repeat: the same key with the same body returns the same job; the
        same key with another body answers 422 `idempotency_key_reused`.

        Refused: an unknown campaign (404 `campaign_not_found`), an inactive one (409
        `campaign_inactive`), an audience that matches no customer (422 `empty_audience`),
        `customer_ids` and `filter` both or neither (422 `invalid_audience`), a `data.x`
        that the templates use but neither `data` nor the campaign's `default_data` has
        (422 `missing_data`).
        """
        body = await parse_body(req, SendRequest)
        audience_filter = None
        if body.filter is not None:
            audience_filter = CustomerFilter(**body.filter.model_dump())
        job = await self._sender.submit(
            body.notification_config_id, Audience.of(body.customer_ids, audience_filter),
            data=body.data, idempotency_key=req.get_header(IDEMPOTENCY_HEADER),
            created_by=_user_id(req))
        _accepted(req, resp, job.id)


class NotificationHistory:
    """``GET /notifications/history``."""

    def __init__(self, sender: CampaignSender) -> None:
        self._sender = sender

    @endpoint(tag=TAG_NOTIFICATIONS, operation_id="getNotificationHistory",
              query=HistoryQuery, response=DeliveryPage)
    async def on_get(self, req: Request, resp: Response) -> None:
        """List deliveries

        Deliveries (one per customer and send) matching every filter given, newest first,
        with the total number of matches. `since` is inclusive, `until` exclusive; `since`
        must be before `until` (422 `invalid_range`).
        """
        query = parse_query(req, HistoryQuery)
        page = await self._sender.history(
            DeliveryFilter(customer_id=query.customer_id, campaign_id=query.campaign_id,
                           job_id=query.job_id, status=query.status, since=query.since,
                           until=query.until),
            limit=query.limit, offset=query.offset)
        resp.media = delivery_page_json(page)


class NotificationStats:
    """``GET /notifications/stats``."""

    def __init__(self, sender: CampaignSender) -> None:
        self._sender = sender

    @endpoint(tag=TAG_NOTIFICATIONS, operation_id="getNotificationStats", query=StatsQuery,
              response=StatsOut)
    async def on_get(self, req: Request, resp: Response) -> None:
        """Delivery statistics

        Deliveries created in the last `days` days (default 30) by status (`sent`,
        `failed`, `skipped`, `queued`), overall and per campaign.
        """
        query = parse_query(req, StatsQuery)
        resp.media = stats_json(await self._sender.stats(days=query.days))


class TaskRetryFailed:
    """``POST /tasks/{job_id}/retry-failed``."""

    def __init__(self, sender: CampaignSender) -> None:
        self._sender = sender

    @endpoint(tag=TAG_TASKS, operation_id="retryFailedDeliveries", status=202,
              response=SendAccepted, errors=[404, 409],
              headers={"Location": "the new job's URL (`task_url`)"})
    async def on_post(self, req: Request, resp: Response, job_id: str) -> None:
        """Re-send the failed deliveries of a campaign send

        Queues a new `campaign_send` job (params `retry_of`: the original send) that re-sends
        exactly the deliveries of that send that failed, updating those same deliveries:
        customers already sent to are never sent to again. Retrying a retry retries the
        original send. Customers who unsubscribed or lost their email since are skipped.

        Refused: an unknown job (404 `job_not_found`) or one that is not a campaign send
        (404 `campaign_send_not_found`); a send still queued or running (409
        `job_not_finished`), without failed deliveries (409 `no_failed_deliveries`), or
        whose campaign is inactive (409 `campaign_inactive`); a campaign whose templates now
        use a `data.x` the send did not have (422 `missing_data`).
        """
        job = await self._sender.retry_failed(job_id, created_by=_user_id(req))
        _accepted(req, resp, job.id)


class NotificationConfigRetryFailed:
    """``POST /notifications/config/{config_id}/retry-failed``."""

    def __init__(self, sender: CampaignSender) -> None:
        self._sender = sender

    @endpoint(tag=TAG_NOTIFICATIONS, operation_id="retryFailedCampaignDeliveries", status=202,
              response=SendAccepted, errors=[404, 409],
              headers={"Location": "the new job's URL (`task_url`)"})
    async def on_post(self, req: Request, resp: Response, config_id: str) -> None:
        """Re-send the failed deliveries of a campaign, across all its sends

        Queues a new `campaign_send` job (params `retry_campaign: true` and `retry_sends`:
        each send that has failed deliveries, with its `data`) that re-sends the deliveries
        of this campaign that are failed now, in every send, updating those same deliveries
        (as `POST /tasks/{job_id}/retry-failed` does for one send). A customer is sent to at
        most once, and never when they already got this campaign (a `sent` delivery) in any
        send: that failed delivery stays failed and the job counts it as skipped
        (`already_sent`). Customers who unsubscribed or lost their email since are skipped.

        Send an `Idempotency-Key` header to make the request safe to repeat (as for
        `POST /notifications/send`): the same key returns the same job.

        Refused: an unknown campaign (404 `campaign_not_found`), an inactive one (409
        `campaign_inactive`), no failed delivery left to re-send (409
        `no_failed_deliveries`), templates that now use a `data.x` one of the sends lacks
        (422 `missing_data`), a bad or reused `Idempotency-Key` (422).
        """
        job = await self._sender.retry_failed_campaign(
            config_id, idempotency_key=req.get_header(IDEMPOTENCY_HEADER),
            created_by=_user_id(req))
        _accepted(req, resp, job.id)


# -- unsubscribing (public) ------------------------------------------------------------------

#: Largest body ``POST /unsubscribe`` reads (a token is about 300 bytes).
MAX_UNSUBSCRIBE_BODY = 16 * 1024
#: Headers of the unsubscribe pages: never cached, no Referer carrying the token away, not
#: indexed, no script.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'",
}
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="robots" content="noindex">
  <title>{title}</title>
  <style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;
  padding:0 1rem;line-height:1.5}}button{{font-size:1rem;padding:.5rem 1.2rem}}</style>
</head>
<body>
<h1>{title}</h1>
{body}
</body>
</html>
"""


def masked_email(email: str | None) -> str | None:
    """``an@example.org`` -> ``a***@example.org``: enough for the owner to recognise, little
    for anyone else holding the link."""
    if not email:
        return None
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def _wants_html(req: Request, *, default: bool) -> bool:
    """Whether to answer with an HTML page: ``default`` when the client states no preference
    (no ``Accept``, or ``*/*``), else whether it prefers ``text/html`` to JSON."""
    accept = (req.get_header("Accept") or "").strip()
    if accept in ("", "*/*"):
        return default
    return req.client_prefers([falcon.MEDIA_JSON, falcon.MEDIA_HTML]) == falcon.MEDIA_HTML


def _page(resp: Response, title: str, body: str, status: int = 200) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_HTML
    resp.set_headers(PAGE_HEADERS)
    resp.text = _PAGE.format(title=escape(title), body=body)


def _error_page(resp: Response, error: NotibotError) -> None:
    title = ("This unsubscribe link does not work" if error.code == "invalid_unsubscribe_token"
             else "We could not find you")
    _page(resp, title, f"<p>{escape(error.message)}.</p>\n<p>Error code: "
                       f"<code>{escape(error.code)}</code></p>", status=status_for(error))


def _who(customer: Customer, *, first: bool = False) -> str:
    shown = masked_email(customer.email)
    if shown:
        return f"<strong>{escape(shown)}</strong>"
    return "You" if first else "you"


def _unsubscribed_page(resp: Response, customer: Customer) -> None:
    _page(resp, "You are unsubscribed",
          f"<p>{_who(customer, first=True)} will get no more emails from us.</p>")


async def _form_values(req: Request) -> dict[str, Any]:
    """The fields of a ``POST /unsubscribe`` body: URL-encoded or multipart form, or JSON.

    Raises:
        falcon.HTTPContentTooLarge: over :data:`MAX_UNSUBSCRIBE_BODY` (413).
        falcon.HTTPUnsupportedMediaType: another content type (415).
        falcon.MediaMalformedError: malformed JSON or multipart (400).
    """
    if (req.content_length or 0) > MAX_UNSUBSCRIBE_BODY:
        raise falcon.HTTPContentTooLarge(
            description=f"an unsubscribe request is at most {MAX_UNSUBSCRIBE_BODY} bytes")
    media_type = (req.content_type or "").partition(";")[0].strip().lower()
    if not media_type:
        return {}
    if media_type == falcon.MEDIA_MULTIPART:
        values: dict[str, Any] = {}
        async for part in await req.get_media():
            if part.name in ("token", "List-Unsubscribe"):
                values[part.name] = await part.get_text()
        return values
    if media_type not in (falcon.MEDIA_URLENCODED, falcon.MEDIA_JSON):
        raise falcon.HTTPUnsupportedMediaType(description=(
            f"send the form as {falcon.MEDIA_URLENCODED} or {falcon.MEDIA_MULTIPART}"))
    media = await req.get_media(default_when_empty={})
    if not isinstance(media, dict):
        raise RequestValidationError("the request body must be a form or a JSON object",
                                     details=[{"field": "body", "message": "not an object"}])
    return media


class Unsubscribe:
    """``GET /unsubscribe?token=...`` (confirmation page) and ``POST /unsubscribe`` (do it;
    RFC 8058 one-click). Public: the signed token is the authorisation."""

    access = {"GET": PUBLIC, "POST": PUBLIC}

    def __init__(self, sender: CampaignSender) -> None:
        self._sender = sender

    @endpoint(tag=TAG_NOTIFICATIONS, operation_id="unsubscribePage", query=UnsubscribeQuery,
              media_type=falcon.MEDIA_HTML, errors=[400, 404])
    async def on_get(self, req: Request, resp: Response) -> None:
        """Unsubscribe page (the link in the emails)

        An HTML page asking the customer to confirm, with a form that posts the token to
        `POST /unsubscribe`. Opening it changes nothing (link scanners open links). A bad,
        forged or expired token answers 400 `invalid_unsubscribe_token`; a deleted customer
        404 `customer_not_found`: an HTML page, or the JSON error when the client prefers
        `application/json`.
        """
        html = _wants_html(req, default=True)
        try:
            customer = await self._sender.unsubscribe_customer(req.get_param("token") or "")
        except NotibotError as error:
            if not html:
                raise
            _error_page(resp, error)
            return
        if not customer.subscribed:
            _unsubscribed_page(resp, customer)
            return
        token = escape(req.get_param("token") or "", quote=True)
        _page(resp, "Unsubscribe", (
            f"<p>Stop sending emails to {_who(customer)}?</p>\n"
            f'<form method="post" action="{escape(req.root_path, quote=True)}/unsubscribe">\n'
            f'  <input type="hidden" name="token" value="{token}">\n'
            '  <button type="submit">Unsubscribe</button>\n</form>'))

    @endpoint(tag=TAG_NOTIFICATIONS, operation_id="unsubscribe", query=UnsubscribeQuery,
              form=UnsubscribeForm, response=UnsubscribeOut, errors=[400, 404])
    async def on_post(self, req: Request, resp: Response) -> None:
        """Unsubscribe (form, or RFC 8058 one-click)

        Sets the customer's `subscribed` to false: campaign sends skip them from then on
        (`skip_reason` `unsubscribed`). The token comes from the form field `token`
        (`application/x-www-form-urlencoded` or `multipart/form-data`) or from the query
        string, as in the `List-Unsubscribe` URL to which mailbox providers POST
        `List-Unsubscribe=One-Click` (RFC 8058). Idempotent. Answers JSON, or an HTML page
        when the client prefers `text/html` (a browser posting the form).

        Refused: a missing, bad, forged or expired token (400 `invalid_unsubscribe_token`),
        a deleted customer (404 `customer_not_found`).
        """
        html = _wants_html(req, default=False)
        try:
            values = await _form_values(req)
            token = values.get("token") or req.get_param("token") or ""
            if not isinstance(token, str):
                raise RequestValidationError("token must be one string", details=[
                    {"field": "token", "message": "give one token"}])
            customer = await self._sender.unsubscribe(token)
        except NotibotError as error:
            if not html:
                raise
            _error_page(resp, error)
            return
        if html:
            _unsubscribed_page(resp, customer)
            return
        resp.media = UnsubscribeOut(email=masked_email(customer.email)).model_dump(mode="json")
