"""Campaigns (the "notification configs" of the HTTP API) and sending them.

- :class:`CampaignService` creates, reads, lists, replaces and deletes campaigns. Every
  template (subject, text body, HTML body, of the default content and of each language
  variant) is checked by the :class:`~notibot.application.ports.TemplateRenderer` when the
  campaign is saved, so a template that does not compile or uses an unknown variable is
  refused with its field, line and name.
- :class:`CampaignSender` starts sends (``campaign_send`` jobs), with an optional
  ``Idempotency-Key``; re-sends the failed deliveries of a send (:meth:`CampaignSender.
  retry_failed`); and reads the delivery history and statistics.
- :class:`CampaignSendHandler` is the ``campaign_send`` job handler: it pages the audience,
  and for each recipient creates the :class:`~notibot.domain.Delivery` if absent (unique per
  job and customer: a batch run twice never emails anyone twice), renders the templates,
  sends the email (rate-limited, transient failures retried with exponential backoff),
  records the outcome and appends a ``notification`` message to the customer's conversation.

Template variables: ``customer.*`` (:data:`CUSTOMER_VARIABLES`), ``data.*`` (the campaign's
``default_data`` overlaid with the send's ``data``), ``campaign.*`` (:data:`CAMPAIGN_VARIABLES`)
and ``unsubscribe_url`` (``{unsubscribe_base_url}/unsubscribe?token=<signed token>``: see
"Unsubscribing" below).

Retry semantics: ``retry_failed(job_id)`` queues a *new* ``campaign_send`` job with params
``{"retry_of": <original job id>}``. It re-sends exactly the deliveries of the original job
that are ``failed`` and **reuses those Delivery records** (failed -> sent, attempts counted on
the same record), so each recipient of a send keeps one Delivery, and a delivery that is sent
is never picked again. Two retries running at once cannot both send one delivery: each
attempt first claims ``(delivery id, attempts so far)`` in the IdempotencyStore.

Retrying on the campaign: :meth:`CampaignSender.retry_failed_campaign` queues a *new*
``campaign_send`` job with params ``{"campaign_id", "retry_campaign": true, "retry_sends":
{<send job id>: <that send's data>}}``. It re-sends the deliveries of that campaign that are
``failed`` in the sends listed (every send with a failed delivery when it was asked), through
the same per-delivery retry as above (same records, same claims, each with its own send's
``data``), but one delivery per customer (the oldest), and never to a customer who has a
``sent`` delivery of the campaign in any send (counted as skipped, error ``already_sent``;
that failed delivery stays failed: a delivery cannot go from failed to skipped).

Unsubscribing: ``unsubscribe_url`` carries a signed token (:class:`~notibot.application.
ports.TokenService`, type :data:`UNSUBSCRIBE_TOKEN_TYPE`, subject the customer id, valid
:data:`UNSUBSCRIBE_TOKEN_TTL` seconds); :meth:`CampaignSender.unsubscribe` checks it and sets
the customer's ``subscribed`` to false. Emails carry ``List-Unsubscribe`` (RFC 2369) and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058, one-click: the URL must be
``https`` for mailbox providers to use it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from notibot.application.ports import (
    CampaignRepository,
    Clock,
    ConversationRepository,
    CustomerFilter,
    CustomerRepository,
    DeliveryCounts,
    DeliveryFilter,
    DeliveryRepository,
    EmailMessage,
    EmailSender,
    IdempotencyStore,
    IdGenerator,
    Page,
    RateLimiter,
    TemplateRenderer,
    TokenService,
)
from notibot.application.services.jobs import JobContext, JobService
from notibot.application.services.paging import check_page
from notibot.domain import (
    AuthenticationFailed,
    Campaign,
    CampaignContent,
    Channel,
    Conflict,
    Customer,
    Delivery,
    DeliveryFailed,
    DeliveryStatus,
    InvalidInput,
    InvalidTransition,
    Job,
    JobError,
    JobKind,
    Message,
    MessageRole,
    NotFound,
    NotibotError,
)
from notibot.domain.campaign import check_channel
from notibot.domain.rules import normalize_language, require_text

T = TypeVar("T")

#: Attributes of ``customer`` a template may use.
CUSTOMER_VARIABLES = frozenset({
    "id", "full_name", "email", "phone", "company", "position", "address", "city", "country",
    "language", "tags", "attributes",
})
#: Attributes of ``campaign`` a template may use.
CAMPAIGN_VARIABLES = frozenset({"id", "name", "description"})
#: The template fields of one content, in the order they are checked and rendered.
TEMPLATE_FIELDS = ("subject", "text_body", "html_body")
#: Fields of a campaign given to :meth:`CampaignService.create` and :meth:`~CampaignService.
#: replace`.
CAMPAIGN_FIELDS = frozenset({
    "name", "description", "channel", "subject", "text_body", "html_body", "variants",
    "default_data", "active",
})
#: Most customer ids one send may list.
MAX_AUDIENCE_IDS = 10_000
#: Longest Idempotency-Key accepted.
MAX_IDEMPOTENCY_KEY = 255
#: Days of history :meth:`CampaignSender.stats` covers by default.
STATS_DAYS = 30
#: ``token_type`` of unsubscribe tokens (:class:`~notibot.application.ports.TokenService`).
UNSUBSCRIBE_TOKEN_TYPE = "unsubscribe"
#: Lifetime of an unsubscribe token: 365 days, so a link in an old email still works.
UNSUBSCRIBE_TOKEN_TTL = 365 * 24 * 3600

#: How long :meth:`CampaignSendHandler.unsubscribe_url` reuses a customer's URL, and for
#: how many customers at most.
_UNSUBSCRIBE_URL_REUSE = timedelta(hours=1)
_UNSUBSCRIBE_URLS_KEPT = 4096

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as HTTP field values
_SPACES = re.compile(r"\s+")


def template_variables(data_keys: Sequence[str] | None = None
                       ) -> dict[str, set[str] | None]:
    """The variables templates may use, for :meth:`TemplateRenderer.check`: ``data`` allows
    any key, unless ``data_keys`` restricts it (the keys a send actually provides)."""
    return {
        "customer": set(CUSTOMER_VARIABLES),
        "data": None if data_keys is None else set(data_keys),
        "campaign": set(CAMPAIGN_VARIABLES),
        "unsubscribe_url": set(),
    }


def _contents(campaign: Campaign) -> list[tuple[str, CampaignContent]]:
    """``(field prefix, content)`` of the default content and of every variant."""
    return [("", campaign.content), *((f"variants.{lang}.", content)
                                      for lang, content in sorted(campaign.variants.items()))]


def _templates(campaign: Campaign) -> list[tuple[str, str]]:
    """``(field, template)`` of every non-empty template of ``campaign``."""
    found = []
    for prefix, content in _contents(campaign):
        for name in TEMPLATE_FIELDS:
            template = getattr(content, name)
            if template:
                found.append((prefix + name, template))
    return found


# -- campaigns -------------------------------------------------------------------------------


class CampaignService:
    """Campaign use cases: create, get, list, replace, delete.

    A campaign's fields (``values`` of :meth:`create` and :meth:`replace`): ``name``
    (required, unique ignoring case), ``description``, ``channel`` (``email``, the default, or
    ``chat``: only appended to the conversation), ``subject`` and ``text_body`` (required),
    ``html_body``, ``variants`` (language code -> ``{subject, text_body, html_body}`` or a
    :class:`~notibot.domain.CampaignContent`; a customer's language picks one, the default
    content otherwise), ``default_data`` (an object, the base of a send's ``data``) and
    ``active`` (default true; an inactive campaign cannot be sent).
    """

    def __init__(self, campaigns: CampaignRepository, renderer: TemplateRenderer,
                 ids: IdGenerator, clock: Clock) -> None:
        self._campaigns = campaigns
        self._renderer = renderer
        self._ids = ids
        self._clock = clock

    async def create(self, values: Mapping[str, Any]) -> Campaign:
        """Create a campaign from ``values`` (see the class).

        Raises:
            InvalidInput: a missing or invalid field (``missing_name``, ``missing_subject``,
                ``invalid_channel``, ``invalid_language``, ``unknown_field``, ...), or a
                template that does not compile or uses an unknown variable
                (``invalid_template``, ``details`` ``{field, line, name?}``).
            Conflict: ``campaign_name_taken``.
        """
        now = await self._clock.now()
        campaign = _build_campaign(await self._ids.new_id(), values, created_at=now, now=now)
        await self._check_templates(campaign)
        await self._campaigns.add(campaign)
        return campaign

    async def get(self, campaign_id: str) -> Campaign:
        """Return a campaign. Raises NotFound (``campaign_not_found``)."""
        return await self._campaigns.get(campaign_id)

    async def list(self, *, limit: int | None = None, offset: int | None = None,
                   active: bool | None = None) -> Page[Campaign]:
        """A page of campaigns, oldest first, optionally only the (in)active ones.
        Raises InvalidInput (``invalid_paging``)."""
        limit, offset = check_page(limit, offset)
        return await self._campaigns.list(limit=limit, offset=offset, active=active)

    async def replace(self, campaign_id: str, values: Mapping[str, Any]) -> Campaign:
        """Replace every field of a campaign (omitted optional fields are cleared; ``active``
        defaults to true). Sends already running keep the campaign as it was when they
        started.

        Raises:
            NotFound: ``campaign_not_found``.
            InvalidInput: as :meth:`create`.
            Conflict: ``campaign_name_taken``.
        """
        old = await self._campaigns.get(campaign_id)
        campaign = _build_campaign(old.id, values, created_at=old.created_at,
                                   now=await self._clock.now())
        await self._check_templates(campaign)
        await self._campaigns.update(campaign)
        return campaign

    async def delete(self, campaign_id: str) -> None:
        """Delete a campaign; its deliveries stay in the history. Raises NotFound."""
        await self._campaigns.delete(campaign_id)

    async def _check_templates(self, campaign: Campaign) -> None:
        allowed = template_variables()
        for name, template in _templates(campaign):
            await self._renderer.check(template, allowed=allowed, field=name)


def _field_error(exc: InvalidInput, path: str) -> InvalidInput:
    return InvalidInput(f"{path}: {exc.message}", code=exc.code, details={"field": path})


def _text(values: Mapping[str, Any], name: str, path: str, *, required: bool) -> str | None:
    value = values.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{path} must be a string", code=f"invalid_{name}",
                           details={"field": path})
    if not required:
        return value if value and value.strip() else None
    try:
        require_text(value, name, max_length=998 if name == "subject" else 1_000_000)
    except InvalidInput as exc:
        raise _field_error(exc, path) from None
    return value


def _content(value: Any, prefix: str) -> CampaignContent:
    if isinstance(value, CampaignContent):
        value = {name: getattr(value, name) for name in TEMPLATE_FIELDS}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{prefix.rstrip('.')} must be an object with subject, text_body "
                           "and html_body", code="invalid_variant",
                           details={"field": prefix.rstrip(".")})
    unknown = set(value) - set(TEMPLATE_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown field(s) in {prefix.rstrip('.')}: "
                           f"{', '.join(sorted(unknown))}", code="unknown_field",
                           details={"fields": sorted(prefix + name for name in unknown)})
    subject = _text(value, "subject", prefix + "subject", required=True)
    text_body = _text(value, "text_body", prefix + "text_body", required=True)
    html_body = _text(value, "html_body", prefix + "html_body", required=False)
    return CampaignContent(subject=subject or "", text_body=text_body or "",
                           html_body=html_body)


def _build_campaign(campaign_id: str, values: Mapping[str, Any], *, created_at: datetime,
                    now: datetime) -> Campaign:
    """A valid :class:`Campaign` from ``values`` (see :class:`CampaignService`)."""
    unknown = set(values) - CAMPAIGN_FIELDS
    if unknown:
        raise InvalidInput(f"unknown campaign field(s): {', '.join(sorted(unknown))}",
                           code="unknown_field", details={"fields": sorted(unknown)})
    content = _content({name: values.get(name) for name in TEMPLATE_FIELDS}, "")
    raw_variants = values.get("variants") or {}
    if not isinstance(raw_variants, Mapping):
        raise InvalidInput("variants must be an object: language code -> content",
                           code="invalid_variants", details={"field": "variants"})
    variants: dict[str, CampaignContent] = {}
    for key, raw in raw_variants.items():
        try:
            language = normalize_language(str(key))
        except InvalidInput as exc:
            raise _field_error(exc, f"variants.{key}") from None
        if language in variants:
            raise InvalidInput(f"variants: language {language!r} appears twice",
                               code="duplicate_variant", details={"field": f"variants.{key}"})
        variants[language] = _content(raw, f"variants.{language}.")
    default_data = values.get("default_data") or {}
    if not isinstance(default_data, Mapping) or not all(isinstance(k, str)
                                                        for k in default_data):
        raise InvalidInput("default_data must be an object", code="invalid_default_data",
                           details={"field": "default_data"})
    active = values.get("active", True)
    if not isinstance(active, bool):
        raise InvalidInput("active must be true or false", code="invalid_active",
                           details={"field": "active"})
    description = _text(values, "description", "description", required=False)
    return Campaign(
        id=campaign_id, name=values.get("name") or "",
        channel=check_channel(values.get("channel") or Channel.EMAIL.value),
        content=content, created_at=created_at, updated_at=now,
        description=description.strip() if description else None, variants=variants,
        default_data=dict(default_data), active=active)


# -- audience --------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class Audience:
    """Who a send goes to: the listed ``customer_ids`` or every customer matching
    ``filter`` (``CustomerFilter()`` matches everyone). Build one with :meth:`of`."""

    customer_ids: tuple[str, ...] | None = None
    filter: CustomerFilter | None = None

    @classmethod
    def of(cls, customer_ids: Sequence[str] | str | None = None,
           filter: CustomerFilter | None = None) -> Audience:
        """The audience of a send request: ``customer_ids`` a list of ids (repeats
        dropped), or ``"all"``; ``filter`` the fields of ``GET /customers``. ``"all"`` with a
        filter is the filter.

        Raises:
            InvalidInput: ``invalid_audience`` when neither or both a list and a filter are
                given, or an id is blank; ``too_many_customers`` over
                :data:`MAX_AUDIENCE_IDS` ids.
        """
        if isinstance(customer_ids, str):
            if customer_ids != "all":
                raise InvalidInput('customer_ids must be a list of ids or "all"',
                                   code="invalid_audience", details={"field": "customer_ids"})
            return cls(filter=filter or CustomerFilter())
        if customer_ids is None:
            if filter is None:
                raise InvalidInput('say who gets it: customer_ids (a list, or "all") or a '
                                   "filter", code="invalid_audience",
                                   details={"field": "customer_ids"})
            return cls(filter=filter)
        if filter is not None:
            raise InvalidInput("give a list of customer_ids or a filter, not both",
                               code="invalid_audience", details={"field": "filter"})
        ids: dict[str, None] = {}
        for value in customer_ids:
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput("customer ids must be non-empty strings",
                                   code="invalid_audience", details={"field": "customer_ids"})
            ids.setdefault(value.strip(), None)
        if len(ids) > MAX_AUDIENCE_IDS:
            raise InvalidInput(f"at most {MAX_AUDIENCE_IDS} customer ids per send; use a "
                               "filter for more", code="too_many_customers",
                               details={"field": "customer_ids", "limit": MAX_AUDIENCE_IDS})
        return cls(customer_ids=tuple(ids))

    def to_params(self) -> dict[str, Any]:
        """The JSON form kept in the job's params."""
        if self.customer_ids is not None:
            return {"customer_ids": list(self.customer_ids)}
        chosen = self.filter or CustomerFilter()
        return {"filter": {f.name: getattr(chosen, f.name) for f in fields(chosen)
                           if getattr(chosen, f.name) is not None}}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Audience:
        """The audience :meth:`to_params` wrote."""
        if params.get("customer_ids") is not None:
            return cls(customer_ids=tuple(params["customer_ids"]))
        return cls(filter=CustomerFilter(**(params.get("filter") or {})))


# -- sending ---------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class SendPolicy:
    """How a send job works.

    Attributes:
        batch_size: recipients per batch: between two progress reports (and cancel checks).
        concurrency: messages of a batch sent at the same time (the SMTP adapter's pool
            size is a good value); as many more are rendered meanwhile, ready to go.
        max_attempts: tries of one message on transient failures (SMTP 4xx, connection
            lost) before its delivery is marked failed.
        base_delay: seconds before the first retry; each later retry waits twice as long,
            at most ``max_delay``.
        sleep: how to wait (tests pass a fake that records the delays).
    """

    batch_size: int = 100
    concurrency: int = 4
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...)."""
        return min(self.max_delay, self.base_delay * 2 ** (retry - 1))


@dataclass(slots=True, frozen=True)
class CampaignCounts:
    """Delivery counts of one campaign in :class:`CampaignStats`; ``name`` is None when the
    campaign was deleted."""

    campaign_id: str
    name: str | None
    counts: DeliveryCounts


@dataclass(slots=True, frozen=True)
class CampaignStats:
    """Deliveries created in ``[since, until)`` by status: overall and per campaign (most
    deliveries first)."""

    since: datetime
    until: datetime
    overall: DeliveryCounts
    campaigns: list[CampaignCounts] = field(default_factory=list)


def _fingerprint(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str,
                      ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CampaignSender:
    """Starts campaign sends (``campaign_send`` jobs) and their retries, reads their history
    and stats, and unsubscribes customers from the links in the emails.

    Sends are jobs like any other (``GET /tasks/{id}``, cancel, delete), submitted through
    :meth:`JobService.submit`; with an ``Idempotency-Key`` the job's id is reserved under the
    key first and handed to ``submit``.

    Parameters:
        tokens: verifies the unsubscribe tokens the send handler signs (same secret).
    """

    def __init__(
        self,
        campaigns: CampaignRepository,
        customers: CustomerRepository,
        deliveries: DeliveryRepository,
        jobs: JobService,
        idempotency: IdempotencyStore,
        renderer: TemplateRenderer,
        ids: IdGenerator,
        clock: Clock,
        *,
        tokens: TokenService,
    ) -> None:
        self._campaigns = campaigns
        self._customers = customers
        self._deliveries = deliveries
        self._jobs = jobs
        self._idempotency = idempotency
        self._renderer = renderer
        self._ids = ids
        self._clock = clock
        self._tokens = tokens

    async def submit(
        self,
        campaign_id: str,
        audience: Audience,
        *,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        created_by: str | None = None,
    ) -> Job:
        """Queue a send of campaign ``campaign_id`` to ``audience`` with ``data``.

        With ``idempotency_key``, a repeat of the same request (same campaign, audience and
        data, by the same user) returns the job of the first one, whatever its state.

        Raises:
            NotFound: ``campaign_not_found`` (HTTP 404).
            Conflict: ``campaign_inactive`` (HTTP 409): the campaign is switched off.
            InvalidInput: ``empty_audience`` (no customer matches), ``missing_data`` (a
                template uses ``data.x`` that neither ``data`` nor the campaign's
                ``default_data`` has), ``invalid_idempotency_key``,
                ``idempotency_key_reused`` (the key came with a different request).
            ServiceUnavailable: the queue is down (the job is then marked failed).
        """
        data = dict(data or {})
        request = {"campaign_id": campaign_id, "audience": audience.to_params(), "data": data}
        job_id, existing = await self._reserve(idempotency_key, created_by, request)
        if existing is not None:
            return existing
        campaign = await self._sendable(campaign_id)
        await self._check_data(campaign, data)
        total = await self._audience_size(audience)
        if total == 0:
            raise InvalidInput("no customer matches the audience", code="empty_audience",
                               details=audience.to_params())
        params = {"campaign_id": campaign.id, "campaign_name": campaign.name,
                  "audience": audience.to_params(), "data": data}
        return await self._jobs.submit(JobKind.CAMPAIGN_SEND.value, params,
                                       created_by=created_by, total=total, job_id=job_id)

    async def retry_failed(self, job_id: str, *, created_by: str | None = None) -> Job:
        """Queue a job that re-sends the failed deliveries of send ``job_id`` (a retry of a
        retry re-sends the failed deliveries of the original send). The new job has params
        ``{"retry_of": <original send id>}`` and updates those deliveries in place.

        Raises:
            NotFound: ``job_not_found``; ``campaign_send_not_found`` when the job is not a
                campaign send; ``campaign_not_found``.
            InvalidTransition: ``job_not_finished`` (409) while the send is queued or running.
            Conflict: ``no_failed_deliveries`` (409); ``campaign_inactive`` (409).
            InvalidInput: ``missing_data`` (the campaign's templates changed since).
        """
        job = await self._jobs.get(job_id)
        if job.kind != JobKind.CAMPAIGN_SEND:
            raise NotFound("campaign_send", job_id)
        if not job.is_finished:
            raise InvalidTransition(
                f"send {job_id} is {job.status.value}; retry its failed deliveries once it "
                "finished", code="job_not_finished",
                details={"job_id": job_id, "status": job.status.value})
        root = job.params.get("retry_of") or job.id
        original = job if root == job.id else await self._jobs.get(root)
        failed = await self._deliveries.list(
            DeliveryFilter(job_id=root, status=DeliveryStatus.FAILED), limit=1, offset=0)
        if failed.total == 0:
            raise Conflict(f"send {root} has no failed deliveries", code="no_failed_deliveries",
                           details={"job_id": root})
        campaign = await self._sendable(original.params["campaign_id"])
        data = dict(original.params.get("data") or {})
        await self._check_data(campaign, data)
        params = {"campaign_id": campaign.id, "campaign_name": campaign.name,
                  "retry_of": root, "data": data}
        return await self._jobs.submit(JobKind.CAMPAIGN_SEND.value, params,
                                       created_by=created_by, total=failed.total)

    async def retry_failed_campaign(self, campaign_id: str, *,
                                    idempotency_key: str | None = None,
                                    created_by: str | None = None) -> Job:
        """Queue a job that re-sends the failed deliveries of campaign ``campaign_id`` across
        all its sends: one per customer, and never to a customer who already got the campaign
        (a ``sent`` delivery in any send). Each is re-sent with the ``data`` of its own send
        and updated in place (see the module's "Retrying on the campaign"). The new job has
        params ``{"campaign_id", "campaign_name", "retry_campaign": true, "retry_sends":
        {send job id: data}}``.

        With ``idempotency_key``, a repeat of the same request (same campaign, same user)
        returns the job of the first one, whatever its state.

        Raises:
            NotFound: ``campaign_not_found`` (HTTP 404).
            Conflict: ``campaign_inactive`` (409); ``no_failed_deliveries`` (409): no failed
                delivery, or each customer of one got the campaign in another send.
            InvalidInput: ``missing_data`` (the templates now use a ``data.x`` one of the
                sends did not have), ``invalid_idempotency_key``, ``idempotency_key_reused``.
            ServiceUnavailable: the queue is down (the job is then marked failed).
        """
        request = {"retry_failed_of_campaign": campaign_id}
        job_id, existing = await self._reserve(idempotency_key, created_by, request)
        if existing is not None:
            return existing
        campaign = await self._sendable(campaign_id)
        failed = await _failed_of_campaign(self._deliveries, campaign.id)
        customers = {d.customer_id for d in failed}
        # one customer still to reach is enough to queue the job (it counts them exactly)
        for customer_id in sorted(customers):
            if not await _has_received(self._deliveries, campaign.id, customer_id):
                break
        else:
            raise Conflict(
                f"campaign {campaign.name!r} has no failed deliveries to re-send"
                + (f" ({len(failed)} failed, but each of those customers got it in another "
                   "send)" if failed else ""),
                code="no_failed_deliveries",
                details={"campaign_id": campaign.id, "failed": len(failed)})
        sends: dict[str, dict[str, Any]] = {}
        for send_id in sorted({d.job_id for d in failed}):
            try:
                data = dict((await self._jobs.get(send_id)).params.get("data") or {})
            except NotFound:  # the send's job was deleted: the campaign's default_data
                data = {}
            await self._check_data(campaign, data)
            sends[send_id] = data
        params = {"campaign_id": campaign.id, "campaign_name": campaign.name,
                  "retry_campaign": True, "retry_sends": sends}
        return await self._jobs.submit(JobKind.CAMPAIGN_SEND.value, params,
                                       created_by=created_by, total=len(customers),
                                       job_id=job_id)

    async def unsubscribe_customer(self, token: str) -> Customer:
        """The customer an unsubscribe token (from ``unsubscribe_url``) is for, without
        changing anything (the confirmation page of ``GET /unsubscribe``).

        Raises:
            NotibotError: ``invalid_unsubscribe_token`` (HTTP 400): missing, malformed,
                forged, of another type, or expired (``details.reason``).
            NotFound: ``customer_not_found``: the customer was deleted.
        """
        if not token or not token.strip():
            raise NotibotError("the unsubscribe link has no token",
                               code="invalid_unsubscribe_token", details={"reason": "missing"})
        try:
            claims = await self._tokens.verify(token.strip(), UNSUBSCRIBE_TOKEN_TYPE)
        except AuthenticationFailed as exc:
            expired = exc.code == "token_expired"
            raise NotibotError(
                "this unsubscribe link has expired" if expired
                else "this unsubscribe link is not valid",
                code="invalid_unsubscribe_token",
                details={"reason": "expired" if expired else "invalid"}) from None
        return await self._customers.get(claims.subject)

    async def unsubscribe(self, token: str) -> Customer:
        """Set ``subscribed`` to false for the customer of an unsubscribe token and return
        the customer. Idempotent: an unsubscribed customer is returned unchanged.

        Raises:
            NotibotError: ``invalid_unsubscribe_token`` (HTTP 400), as
                :meth:`unsubscribe_customer`.
            NotFound: ``customer_not_found``: the customer was deleted.
        """
        customer = await self.unsubscribe_customer(token)
        if not customer.subscribed:
            return customer
        customer = customer.with_changes(now=await self._clock.now(), subscribed=False)
        await self._customers.update(customer)
        return customer

    async def history(self, filter: DeliveryFilter, *, limit: int | None = None,
                      offset: int | None = None) -> Page[Delivery]:
        """Deliveries matching ``filter``, newest first.

        Raises:
            InvalidInput: ``invalid_paging``; ``invalid_range`` when ``since`` is not before
                ``until``.
        """
        limit, offset = check_page(limit, offset)
        if filter.since is not None and filter.until is not None \
                and filter.since >= filter.until:
            raise InvalidInput("since must be before until", code="invalid_range",
                               details={"field": "since"})
        return await self._deliveries.list(filter, limit=limit, offset=offset)

    async def stats(self, *, days: int = STATS_DAYS) -> CampaignStats:
        """Deliveries of the last ``days`` days (by creation time) by status, overall and
        per campaign. Raises InvalidInput (``invalid_days``) unless 1 <= days <= 366."""
        if not 1 <= days <= 366:
            raise InvalidInput("days must be between 1 and 366", code="invalid_days",
                               details={"field": "days"})
        until = await self._clock.now()
        since = until - timedelta(days=days)
        overall = await self._deliveries.counts(since=since)
        per_campaign = await self._deliveries.counts_by_campaign(since=since)
        campaigns = []
        for campaign_id, counts in per_campaign.items():
            try:
                name: str | None = (await self._campaigns.get(campaign_id)).name
            except NotFound:
                name = None
            campaigns.append(CampaignCounts(campaign_id=campaign_id, name=name, counts=counts))
        campaigns.sort(key=lambda c: (-c.counts.total, c.name or "", c.campaign_id))
        return CampaignStats(since=since, until=until, overall=overall, campaigns=campaigns)

    # -- helpers ---------------------------------------------------------------------------

    async def _reserve(self, key: str | None, created_by: str | None,
                       request: dict[str, Any]) -> tuple[str, Job | None]:
        """The id the new job gets, and the job of an earlier request with the same key."""
        if key is None:
            return await self._ids.new_id(), None
        if not _KEY_RE.match(key):
            raise InvalidInput(f"the Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} "
                               "visible ASCII characters", code="invalid_idempotency_key",
                               details={"field": "Idempotency-Key"})
        fingerprint = _fingerprint(request)
        job_id, stored = await self._idempotency.claim(
            f"{JobKind.CAMPAIGN_SEND.value}:{created_by or '-'}", key, fingerprint,
            await self._ids.new_id())
        if stored != fingerprint:
            raise InvalidInput("this Idempotency-Key was used with a different request; use a "
                               "new key for a new send", code="idempotency_key_reused",
                               details={"field": "Idempotency-Key"})
        try:
            return job_id, await self._jobs.get(job_id)
        except NotFound:
            # first use, or the first request was refused before its job was made (then
            # this one is checked again and, if it passes now, gets the reserved id)
            return job_id, None

    async def _sendable(self, campaign_id: str) -> Campaign:
        campaign = await self._campaigns.get(campaign_id)
        if not campaign.active:
            raise Conflict(f"campaign {campaign.name!r} is inactive; activate it to send it",
                           code="campaign_inactive", details={"campaign_id": campaign_id})
        return campaign

    async def _check_data(self, campaign: Campaign, data: Mapping[str, Any]) -> None:
        """Refuse a send whose templates use a ``data`` key it does not provide (under
        StrictUndefined every message would fail)."""
        keys = [*campaign.default_data, *data]
        allowed = template_variables(keys)
        for name, template in _templates(campaign):
            try:
                await self._renderer.check(template, allowed=allowed, field=name)
            except InvalidInput as exc:
                details = exc.details if isinstance(exc.details, dict) else {}
                missing = str(details.get("name") or "")
                if not missing.startswith("data."):
                    raise
                raise InvalidInput(
                    f"{name} uses {missing} (line {details.get('line')}), which neither the "
                    "send's data nor the campaign's default_data has",
                    code="missing_data", details=details) from None

    async def _audience_size(self, audience: Audience) -> int:
        if audience.customer_ids is None:
            page = await self._customers.list(audience.filter or CustomerFilter(), limit=1,
                                              offset=0)
            return page.total
        for customer_id in audience.customer_ids:  # usually the first one exists
            try:
                await self._customers.get(customer_id)
            except NotFound:
                continue
            return len(audience.customer_ids)
        return 0


async def _failed_of_campaign(deliveries: DeliveryRepository,
                              campaign_id: str) -> list[Delivery]:
    """Every failed delivery of a campaign as it is now (all its sends)."""
    failed: list[Delivery] = []
    while True:
        page = await deliveries.list(
            DeliveryFilter(campaign_id=campaign_id, status=DeliveryStatus.FAILED),
            limit=200, offset=len(failed))
        failed.extend(page.items)
        if not page.items or len(failed) >= page.total:
            return failed


async def _has_received(deliveries: DeliveryRepository, campaign_id: str,
                        customer_id: str) -> bool:
    """Whether the customer has a ``sent`` delivery of the campaign, in any send."""
    page = await deliveries.list(
        DeliveryFilter(campaign_id=campaign_id, customer_id=customer_id,
                       status=DeliveryStatus.SENT), limit=1, offset=0)
    return page.total > 0


# -- the job ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    processed: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[JobError] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"processed": self.processed, "sent": self.sent, "failed": self.failed,
                "skipped": self.skipped}


@dataclass(slots=True, frozen=True)
class _Send:
    """What every recipient of one send job shares; ``sending`` admits the messages being
    sent (``policy.concurrency`` at a time)."""

    job_id: str
    campaign: Campaign
    data: dict[str, Any]
    campaign_vars: dict[str, Any]
    sending: asyncio.Semaphore


@dataclass(slots=True, frozen=True)
class _Rendered:
    language: str | None
    subject: str
    text: str
    html: str | None


class CampaignSendHandler:
    """The ``campaign_send`` job handler (register :meth:`run` for ``JobKind.CAMPAIGN_SEND``).

    Parameters:
        tokens: signs the unsubscribe tokens (:meth:`unsubscribe_url`).
        policy: batch size, concurrency, retries and backoff.
        unsubscribe_base_url: the base of ``unsubscribe_url`` and of the
            ``List-Unsubscribe`` header: ``{base}/unsubscribe?token=...``, which notibot's
            HTTP API serves (``GET`` and ``POST /unsubscribe``), so the base is the API's
            public URL (NOTIBOT_PUBLIC_URL, with any path prefix); ``https`` in production
            (RFC 8058 one-click needs it).
        message_id_domain: the right-hand side of the Message-IDs, which are
            ``<{delivery_id}@{domain}>``: the same delivery always has the same Message-ID,
            so a message re-sent after a lost reply can be recognised by mail systems.
    """

    def __init__(
        self,
        campaigns: CampaignRepository,
        customers: CustomerRepository,
        deliveries: DeliveryRepository,
        conversations: ConversationRepository,
        idempotency: IdempotencyStore,
        renderer: TemplateRenderer,
        email: EmailSender,
        rate_limiter: RateLimiter,
        ids: IdGenerator,
        clock: Clock,
        *,
        tokens: TokenService,
        policy: SendPolicy | None = None,
        unsubscribe_base_url: str = "http://127.0.0.1:8000",
        message_id_domain: str = "notibot.local",
    ) -> None:
        self._campaigns = campaigns
        self._customers = customers
        self._deliveries = deliveries
        self._conversations = conversations
        self._idempotency = idempotency
        self._renderer = renderer
        self._email = email
        self._rate_limiter = rate_limiter
        self._ids = ids
        self._clock = clock
        self._policy = policy or SendPolicy()
        self._unsubscribe_base = unsubscribe_base_url.rstrip("/")
        self._message_id_domain = message_id_domain
        self._tokens = tokens
        self._unsubscribe_urls: dict[str, tuple[datetime, str]] = {}

    async def unsubscribe_url(self, customer_id: str) -> str:
        """The unsubscribe URL of a customer: ``{base}/unsubscribe?token=<token>``, the token
        signed by the TokenService (type :data:`UNSUBSCRIBE_TOKEN_TYPE`, subject the customer
        id, valid :data:`UNSUBSCRIBE_TOKEN_TTL` seconds).

        A customer's URL is reused for an hour (the last 4,096 customers), so the body link
        and the ``List-Unsubscribe`` header of one message are the same URL and cost one
        HS256 signature (about 15 us).
        """
        now = await self._clock.now()
        cached = self._unsubscribe_urls.get(customer_id)
        if cached is not None and timedelta(0) <= now - cached[0] < _UNSUBSCRIBE_URL_REUSE:
            return cached[1]
        token = await self._tokens.issue(customer_id, UNSUBSCRIBE_TOKEN_TYPE,
                                         UNSUBSCRIBE_TOKEN_TTL)
        url = f"{self._unsubscribe_base}/unsubscribe?token={quote(token, safe='')}"
        if len(self._unsubscribe_urls) >= _UNSUBSCRIBE_URLS_KEPT:
            self._unsubscribe_urls.clear()
        self._unsubscribe_urls[customer_id] = (now, url)
        return url

    async def unsubscribe_headers(self, customer_id: str) -> dict[str, str]:
        """The unsubscribe headers of an email to a customer: ``List-Unsubscribe`` (RFC 2369)
        with :meth:`unsubscribe_url`, and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
        (RFC 8058: mailbox providers may then POST that body to the URL, which must be
        ``https``, to unsubscribe in one click)."""
        return {"List-Unsubscribe": f"<{await self.unsubscribe_url(customer_id)}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        """Send the campaign of ``ctx.params`` to its audience (or, with ``retry_of``, re-send
        the failed deliveries of that send; with ``retry_campaign``, those of the campaign's
        sends in ``retry_sends``), batch by batch.

        Returns ``{campaign_id, total, sent, failed, skipped}`` (plus ``retry_of``).

        Raises:
            JobCancelled: at a batch boundary after a cancel request.
            NotFound: the campaign was deleted before the job started.
            Conflict: ``campaign_inactive``: it was switched off before the job started.
        """
        params = ctx.params
        campaign = await self._campaigns.get(params["campaign_id"])
        if not campaign.active:
            raise Conflict(f"campaign {campaign.name!r} was switched off before the send "
                           "started", code="campaign_inactive")
        send = _Send(
            job_id=ctx.job.id, campaign=campaign,
            data={**campaign.default_data, **(params.get("data") or {})},
            campaign_vars={"id": campaign.id, "name": campaign.name,
                           "description": campaign.description},
            sending=asyncio.Semaphore(max(1, self._policy.concurrency)))
        retry_of = params.get("retry_of")
        tally = _Tally()
        if params.get("retry_campaign"):
            await self._run_campaign_retry(ctx, send, params.get("retry_sends") or {}, tally)
        elif retry_of:
            await self._run_retry(ctx, send, retry_of, tally)
        else:
            await self._run_send(ctx, send, Audience.from_params(params["audience"]), tally)
        result: dict[str, Any] = {"campaign_id": campaign.id, "total": ctx.job.total or 0,
                                  "sent": tally.sent, "failed": tally.failed,
                                  "skipped": tally.skipped}
        if retry_of:
            result["retry_of"] = retry_of
        return result

    async def _start(self, ctx: JobContext, total: int) -> None:
        ctx.job.counters["total"] = total
        await ctx.report(total=total, processed=0, sent=0, failed=0, skipped=0)

    async def _report(self, ctx: JobContext, tally: _Tally, batch: _Tally) -> None:
        tally.processed += batch.processed
        tally.sent += batch.sent
        tally.failed += batch.failed
        tally.skipped += batch.skipped
        await ctx.report(errors=batch.errors, **batch.counts())

    async def _run_send(self, ctx: JobContext, send: _Send, audience: Audience,
                        tally: _Tally) -> None:
        size = self._policy.batch_size
        if audience.customer_ids is not None:
            ids = audience.customer_ids
            await self._start(ctx, len(ids))
            for start in range(0, len(ids), size):
                batch = _Tally()
                customers: list[Customer] = []
                for customer_id in ids[start:start + size]:
                    try:
                        customers.append(await self._customers.get(customer_id))
                    except NotFound:
                        batch.processed += 1
                        batch.skipped += 1
                        batch.errors.append(JobError(
                            code="customer_not_found",
                            message=f"customer {customer_id} does not exist",
                            values={"customer_id": customer_id}))
                await self._send_batch(send, customers, batch)
                await self._report(ctx, tally, batch)
            return
        customer_filter = audience.filter or CustomerFilter()
        offset = 0
        page = await self._customers.list(customer_filter, limit=size, offset=0)
        await self._start(ctx, page.total)
        while page.items:
            batch = _Tally()
            await self._send_batch(send, page.items, batch)
            await self._report(ctx, tally, batch)
            offset += len(page.items)
            page = await self._customers.list(customer_filter, limit=size, offset=offset)

    async def _run_retry(self, ctx: JobContext, send: _Send, retry_of: str,
                         tally: _Tally) -> None:
        # the failed deliveries as they are now: re-sending them changes the set
        failed: list[Delivery] = []
        while True:
            page = await self._deliveries.list(
                DeliveryFilter(job_id=retry_of, status=DeliveryStatus.FAILED), limit=200,
                offset=len(failed))
            failed.extend(page.items)
            if not page.items or len(failed) >= page.total:
                break
        await self._start(ctx, len(failed))
        size = self._policy.batch_size
        for start in range(0, len(failed), size):
            batch = _Tally()
            await self._gather(functools.partial(self._retry_one, send, batch=batch),
                               failed[start:start + size])
            await self._report(ctx, tally, batch)

    async def _run_campaign_retry(self, ctx: JobContext, send: _Send,
                                  sends: Mapping[str, Mapping[str, Any]],
                                  tally: _Tally) -> None:
        """Re-send the failed deliveries of the campaign in ``sends`` (send job id -> its
        data): one per customer (the oldest), each through :meth:`_retry_one` with its own
        send's data; a customer who has a ``sent`` delivery of the campaign is skipped
        (error ``already_sent``)."""
        chosen: dict[str, Delivery] = {}
        for delivery in sorted(await _failed_of_campaign(self._deliveries, send.campaign.id),
                               key=lambda d: (d.created_at, d.id)):
            if delivery.job_id in sends:
                chosen.setdefault(delivery.customer_id, delivery)
        per_send = {send_id: dataclasses.replace(
            send, data={**send.campaign.default_data, **data}) for send_id, data in sends.items()}

        async def retry(delivery: Delivery, batch: _Tally) -> None:
            if await _has_received(self._deliveries, send.campaign.id, delivery.customer_id):
                batch.processed += 1
                batch.skipped += 1
                batch.errors.append(JobError(
                    code="already_sent",
                    message=f"customer {delivery.customer_id} already got this campaign in "
                            "another send",
                    values={"customer_id": delivery.customer_id, "delivery_id": delivery.id}))
                return
            await self._retry_one(per_send[delivery.job_id], delivery, batch=batch)

        failed = list(chosen.values())
        await self._start(ctx, len(failed))
        size = self._policy.batch_size
        for start in range(0, len(failed), size):
            batch = _Tally()
            await self._gather(functools.partial(retry, batch=batch), failed[start:start + size])
            await self._report(ctx, tally, batch)

    async def _gather(self, work: Callable[[T], Awaitable[None]], items: Sequence[T]) -> None:
        """Run ``work(item)`` for every item, at most twice ``policy.concurrency`` at a time
        (:meth:`_send_email` lets ``concurrency`` of them send at once: the others render
        their message meanwhile, so this process's work overlaps the mail server's), in
        order: that many tasks take the next item as they finish one. The first error
        cancels the rest and is raised."""
        pending = iter(items)

        async def worker() -> None:
            for item in pending:  # shared: each item goes to one worker
                await work(item)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(len(items), 2 * max(1, self._policy.concurrency))):
                group.create_task(worker())

    async def _send_batch(self, send: _Send, customers: Sequence[Customer],
                          batch: _Tally) -> None:
        """Create the batch's deliveries that do not exist yet, in one repository call (a
        batch run before finds its own), then send to each recipient."""
        if not customers:
            return
        now = await self._clock.now()
        ids = await self._ids.new_ids(len(customers))
        stored = await self._deliveries.add_many_if_absent([Delivery(
            id=delivery_id, job_id=send.job_id, campaign_id=send.campaign.id,
            customer_id=customer.id, channel=send.campaign.channel, created_at=now,
            language=send.campaign.content_for(customer.language)[0])
            for delivery_id, customer in zip(ids, customers, strict=True)])
        await self._gather(functools.partial(self._send_one, send, batch=batch),
                           list(zip(customers, stored, strict=True)))

    async def _send_one(self, send: _Send, recipient: tuple[Customer, tuple[Delivery, bool]],
                        *, batch: _Tally) -> None:
        customer, (delivery, created) = recipient
        batch.processed += 1
        if not created and delivery.status is not DeliveryStatus.QUEUED:
            # this batch ran before (the job was re-run): never send twice
            if delivery.status is DeliveryStatus.SENT:
                batch.sent += 1
            elif delivery.status is DeliveryStatus.FAILED:
                batch.failed += 1
            else:
                batch.skipped += 1
            return
        reason = self._skip_reason(send, customer)
        if reason is not None:
            delivery.mark_skipped(await self._clock.now(), reason)
            await self._deliveries.update(delivery)
            batch.skipped += 1
            return
        await self._deliver(send, customer, delivery, batch)

    async def _retry_one(self, send: _Send, delivery: Delivery, *, batch: _Tally) -> None:
        batch.processed += 1
        try:
            customer = await self._customers.get(delivery.customer_id)
        except NotFound:
            batch.skipped += 1
            batch.errors.append(JobError(
                code="customer_not_found",
                message=f"customer {delivery.customer_id} no longer exists",
                values={"customer_id": delivery.customer_id, "delivery_id": delivery.id}))
            return
        reason = self._skip_reason(send, customer)
        if reason is not None:  # the delivery stays failed: nothing was ever sent
            batch.skipped += 1
            batch.errors.append(JobError(
                code=reason, message=f"customer {customer.id}: not re-sent ({reason})",
                values={"customer_id": customer.id, "delivery_id": delivery.id}))
            return
        owner, _ = await self._idempotency.claim(
            "delivery_attempt", f"{delivery.id}:{delivery.attempts}", "", send.job_id)
        if owner != send.job_id:  # another retry is sending this very attempt
            batch.skipped += 1
            return
        current = await self._deliveries.get(delivery.id)
        if current.status is not DeliveryStatus.FAILED:
            if current.status is DeliveryStatus.SENT:
                batch.sent += 1
            else:
                batch.skipped += 1
            return
        await self._deliver(send, customer, current, batch)

    @staticmethod
    def _skip_reason(send: _Send, customer: Customer) -> str | None:
        if not customer.subscribed:
            return "unsubscribed"
        if send.campaign.channel is Channel.EMAIL and not customer.email:
            return "no_email"
        return None

    async def _render(self, send: _Send, customer: Customer) -> _Rendered:
        language, content = send.campaign.content_for(customer.language)
        context = {
            "customer": {
                "id": customer.id, "full_name": customer.full_name, "email": customer.email,
                "phone": customer.phone, "company": customer.company,
                "position": customer.position, "address": customer.address,
                "city": customer.city, "country": customer.country,
                "language": customer.language, "tags": list(customer.tags),
                "attributes": dict(customer.attributes),
            },
            "data": send.data,
            "campaign": send.campaign_vars,
            "unsubscribe_url": await self.unsubscribe_url(customer.id),
        }
        subject = await self._renderer.render(content.subject, context)
        text = await self._renderer.render(content.text_body, context)
        html = None
        if content.html_body:
            html = await self._renderer.render(content.html_body, context, autoescape=True)
        # one line (RFC 5322 2.1.1): a value with a line break must not become a header
        subject = _SPACES.sub(" ", subject).strip()[:998]
        return _Rendered(language=language, subject=subject, text=text, html=html)

    async def _deliver(self, send: _Send, customer: Customer, delivery: Delivery,
                       batch: _Tally) -> None:
        try:
            rendered = await self._render(send, customer)
        except InvalidInput as exc:
            await self._fail(delivery, f"template_error: {exc.message}", batch, customer)
            return
        delivery.language = rendered.language
        delivery.subject = rendered.subject
        message_id = None
        if send.campaign.channel is Channel.EMAIL:
            assert customer.email is not None  # checked by _skip_reason
            try:
                message_id, tries = await self._send_email(send, EmailMessage(
                    to=customer.email, subject=rendered.subject, text=rendered.text,
                    html=rendered.html,
                    message_id=f"<{delivery.id}@{self._message_id_domain}>",
                    headers=await self.unsubscribe_headers(customer.id)))
            except _SendFailed as failure:
                delivery.attempts += failure.tries - 1
                await self._fail(delivery, failure.reply, batch, customer)
                return
            delivery.attempts += tries - 1
        delivery.mark_sent(await self._clock.now(), message_id)
        await self._deliveries.update(delivery)
        batch.sent += 1
        await self._remember(send, customer, delivery, rendered)

    async def _send_email(self, send: _Send, message: EmailMessage) -> tuple[str, int]:
        """Send with retries, at most ``policy.concurrency`` messages of the job at once;
        return ``(Message-ID, tries)``. Raises _SendFailed."""
        tries = 0
        while True:
            tries += 1
            await self._rate_limiter.acquire("email")
            try:
                async with send.sending:
                    return await self._email.send(message), tries
            except DeliveryFailed as exc:
                if not exc.transient:
                    raise _SendFailed(exc.message, tries) from None
                if tries >= self._policy.max_attempts:
                    raise _SendFailed(f"{exc.message} (temporary failure; gave up after "
                                      f"{tries} tries)", tries) from None
            await self._policy.sleep(self._policy.delay(tries))

    async def _fail(self, delivery: Delivery, reason: str, batch: _Tally,
                    customer: Customer) -> None:
        delivery.mark_failed(await self._clock.now(), reason)
        await self._deliveries.update(delivery)
        batch.failed += 1
        batch.errors.append(JobError(
            code="delivery_failed", message=f"customer {customer.id}: {reason}",
            values={"customer_id": customer.id, "delivery_id": delivery.id}))

    async def _remember(self, send: _Send, customer: Customer, delivery: Delivery,
                        rendered: _Rendered) -> None:
        """Append the notification to the customer's latest conversation (a new one when
        there is none), so the chat bot knows what was sent: one repository call."""
        now = await self._clock.now()
        note_id, conversation_id = await self._ids.new_ids(2)
        message = Message(
            id=note_id, role=MessageRole.NOTIFICATION,
            content=f"{rendered.subject}\n\n{rendered.text}", created_at=now,
            metadata={"campaign_id": send.campaign.id, "campaign_name": send.campaign.name,
                      "subject": rendered.subject, "delivery_id": delivery.id,
                      "message_id": delivery.message_id, "job_id": send.job_id,
                      "channel": send.campaign.channel.value})
        await self._conversations.append_to_latest(customer.id, message,
                                                   new_conversation_id=conversation_id)


class _SendFailed(Exception):
    """A message could not be sent: permanently, or transiently too many times."""

    def __init__(self, reply: str, tries: int) -> None:
        super().__init__(reply)
        self.reply = reply
        self.tries = tries
