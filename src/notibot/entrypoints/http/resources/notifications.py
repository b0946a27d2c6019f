"""``/notifications/*``: campaigns ("notification configs"), sending them, history and stats;
and ``/tasks/{job_id}/retry-failed``.

A send is a background job of kind ``campaign_send``: ``POST /notifications/send`` answers
202 with the job's id; the job is watched, cancelled and deleted under ``/tasks``.
"""

from __future__ import annotations

import falcon
from falcon.asgi import Request, Response
from spectree import Tag

from notibot.application.ports import CustomerFilter, DeliveryFilter
from notibot.application.services.campaigns import Audience, CampaignSender, CampaignService
from notibot.entrypoints.http.middleware import ADMIN
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
