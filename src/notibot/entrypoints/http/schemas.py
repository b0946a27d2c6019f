"""The JSON shapes of the HTTP API (pydantic models) and the domain -> JSON mappers.

Request models (``...Request``, ``...Query``, ``Customer...`` bodies) are parsed by
:mod:`notibot.entrypoints.http.validation`; unknown fields are refused (HTTP 422). Response
models (``...Out``) are built from domain objects by one ``*_json`` function per entity, so a
field is renamed or added in one place. Datetimes are written as ISO 8601 in UTC
(``2026-01-01T09:00:00Z``).

These models belong to the HTTP layer only; the domain never sees them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, StrictBool

from notibot.application.ports import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    DeliveryCounts,
    JobStats,
    Page,
)
from notibot.application.services import TokenPair
from notibot.application.services.campaigns import CampaignStats
from notibot.application.services.chat import (
    DEFAULT_HISTORY,
    ChatTurn,
    HistoryPage,
    SessionSummary,
)
from notibot.application.services.prompts import RenderedPrompt
from notibot.domain import (
    Campaign,
    CampaignContent,
    Channel,
    Customer,
    Delivery,
    DeliveryStatus,
    Job,
    JobStatus,
    Message,
    MessageRole,
    PromptKind,
    PromptTemplate,
    Role,
    User,
)
from notibot.domain.conversation import MESSAGE_MAX_LENGTH


def _as_utc(value: datetime) -> datetime:
    """Aware datetimes are converted to UTC; naive ones are taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: A datetime written as ISO 8601 in UTC.
UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]


class _Input(BaseModel):
    """Base of request bodies and query strings: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class _Output(BaseModel):
    """Base of response bodies. Clients must accept fields added in later versions, so the
    schemas do not forbid extra properties."""


# -- errors ----------------------------------------------------------------------------------


class FieldError(_Output):
    """One invalid field of a request (``details`` of ``validation_error``)."""

    field: str = Field(description="dotted path of the field, e.g. `tags.0` or `limit`")
    message: str


class ErrorInfo(_Output):
    """What went wrong: a stable snake_case ``code``, a ``message`` for people, and optional
    ``details`` (field errors, ids, ...)."""

    code: str = Field(description="stable machine-readable code, e.g. `customer_not_found`")
    message: str
    details: Any = Field(None, description="context: for `validation_error` a list of "
                                           "{field, message}; otherwise an object or null")


class ErrorResponse(_Output):
    """The body of every error response."""

    error: ErrorInfo


# -- auth ------------------------------------------------------------------------------------


class LoginRequest(_Input):
    """``POST /auth/login``."""

    username: str
    password: str


class RefreshRequest(_Input):
    """``POST /auth/refresh``."""

    refresh_token: str


class RegisterRequest(_Input):
    """``POST /auth/register``."""

    username: str = Field(description="3-64 characters: letters, digits, `_ . @ -`")
    password: str = Field(description="8 to 256 characters")
    role: Role = Field(Role.OPERATOR, description="`admin` or `operator`")


class TokenOut(_Output):
    """A bearer token pair (RFC 6749 section 5.1 shape)."""

    access_token: str = Field(description="send as `Authorization: Bearer <access_token>`")
    refresh_token: str = Field(description="exchange at `POST /auth/refresh` for a new pair")
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="lifetime of the access token, seconds")


class UserOut(_Output):
    """An API user (the password hash is never shown)."""

    id: str
    username: str
    role: Role
    active: bool
    created_at: UtcDateTime


def token_json(pair: TokenPair) -> dict[str, Any]:
    """The JSON of a :class:`~notibot.application.services.TokenPair`."""
    return TokenOut(access_token=pair.access_token, refresh_token=pair.refresh_token,
                    token_type="bearer", expires_in=pair.expires_in).model_dump(mode="json")


def user_json(user: User) -> dict[str, Any]:
    """The JSON of a :class:`~notibot.domain.User`, without its password hash."""
    return UserOut(id=user.id, username=user.username, role=user.role, active=user.active,
                   created_at=user.created_at).model_dump(mode="json")


# -- customers -------------------------------------------------------------------------------

_PHONE = ("as people write it (`0912 345 678`, `+84 91 234 5678`); stored in E.164 "
          "(`+84912345678`); numbers without a country code use NOTIBOT_DEFAULT_REGION")


class CustomerCreate(_Input):
    """``POST /customers``: a new customer. ``full_name`` and an email or a phone are
    required; omitted fields take their defaults."""

    full_name: str
    email: str | None = Field(None, description="lower-cased on save; unique")
    phone: str | None = Field(None, description=_PHONE + "; unique")
    company: str | None = None
    position: str | None = None
    address: str | None = None
    city: str | None = None
    country: str | None = None
    language: str | None = Field(None, description="BCP 47 tag such as `vi`, `en`, `pt-br`")
    tags: list[str] | None = Field(None, description="lower-cased, de-duplicated")
    attributes: dict[str, Any] | None = Field(None, description="free data")
    subscribed: StrictBool = Field(True, description="consent to notifications")


class CustomerReplace(CustomerCreate):
    """``PUT /customers/{id}``: the whole customer. Omitted fields are cleared (tags and
    attributes emptied), except ``subscribed`` (consent), which keeps its value."""

    subscribed: StrictBool | None = Field(  # type: ignore[assignment]
        None, description="consent to notifications; unchanged when omitted")


class CustomerPatch(_Input):
    """``PATCH /customers/{id}``: only the fields present change; ``null`` clears one."""

    full_name: str | None = None
    email: str | None = None
    phone: str | None = Field(None, description=_PHONE)
    company: str | None = None
    position: str | None = None
    address: str | None = None
    city: str | None = None
    country: str | None = None
    language: str | None = None
    tags: list[str] | None = None
    attributes: dict[str, Any] | None = None
    subscribed: StrictBool | None = None


class CustomerQuery(_Input):
    """Query string of ``GET /customers``. Text filters match exactly, ignoring case; ``q`` is
    a substring of the name, email or phone."""

    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="page size")
    offset: int = Field(0, ge=0, description="items to skip")
    tag: str | None = Field(None, description="customers having this tag")
    city: str | None = None
    country: str | None = None
    language: str | None = None
    subscribed: bool | None = Field(None, description="`true` or `false`")
    q: str | None = Field(None, description="search in full name, email and phone")


class CustomerOut(_Output):
    """A customer."""

    id: str
    full_name: str
    email: str | None
    phone: str | None = Field(description="E.164")
    company: str | None
    position: str | None
    address: str | None
    city: str | None
    country: str | None
    language: str | None
    tags: list[str]
    attributes: dict[str, Any]
    subscribed: bool
    created_at: UtcDateTime | None
    updated_at: UtcDateTime | None


class CustomerPage(_Output):
    """A page of customers, oldest first; ``total`` counts every match."""

    items: list[CustomerOut]
    total: int
    limit: int
    offset: int


def customer_json(customer: Customer) -> dict[str, Any]:
    """The JSON of a :class:`~notibot.domain.Customer`."""
    return CustomerOut(
        id=customer.id, full_name=customer.full_name, email=customer.email,
        phone=customer.phone, company=customer.company, position=customer.position,
        address=customer.address, city=customer.city, country=customer.country,
        language=customer.language, tags=list(customer.tags),
        attributes=dict(customer.attributes), subscribed=customer.subscribed,
        created_at=customer.created_at, updated_at=customer.updated_at,
    ).model_dump(mode="json")


def customer_page_json(page: Page[Customer]) -> dict[str, Any]:
    """The JSON of a page of customers."""
    return {"items": [customer_json(c) for c in page.items], "total": page.total,
            "limit": page.limit, "offset": page.offset}


# -- jobs ------------------------------------------------------------------------------------


class JobQuery(_Input):
    """Query string of ``GET /tasks``."""

    status: JobStatus | None = None
    kind: str | None = Field(None, description="e.g. `csv_import`, `campaign_send`")
    created_by: str | None = Field(None, description="id of the user who submitted the job")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="page size")
    offset: int = Field(0, ge=0, description="items to skip")


class JobErrorOut(_Output):
    """One error a job recorded, usually a rejected input row."""

    line: int | None = Field(description="1-based line of the input file, when about a row")
    code: str
    message: str


class JobOut(_Output):
    """A background job (task) and its progress."""

    id: str
    kind: str
    status: JobStatus
    created_by: str | None
    params: dict[str, Any]
    created_at: UtcDateTime
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None
    heartbeat_at: UtcDateTime | None
    total: int | None = Field(description="units of work, when known")
    counters: dict[str, int]
    progress: float | None = Field(ge=0, le=1, description="fraction done; null while the "
                                                           "total is unknown")
    eta_seconds: float | None = Field(description="estimated seconds left while running")
    errors: list[JobErrorOut] = Field(description="the first errors (up to 100)")
    error_count: int = Field(description="all errors, kept or not")
    cancel_requested: bool
    attempts: int
    result: dict[str, Any] | None
    failure_reason: str | None


class JobPage(_Output):
    """A page of jobs, newest first; ``total`` counts every match."""

    items: list[JobOut]
    total: int
    limit: int
    offset: int


class JobStatsOut(_Output):
    """Job counts (every status appears, zero included)."""

    by_status: dict[str, int]
    by_kind: dict[str, int]
    total: int


def job_json(job: Job, eta_seconds: float | None) -> dict[str, Any]:
    """The JSON of a :class:`~notibot.domain.Job`; ``eta_seconds`` comes from
    :meth:`~notibot.application.services.JobService.eta_seconds`."""
    return JobOut(
        id=job.id, kind=job.kind, status=job.status, created_by=job.created_by,
        params=dict(job.params), created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at, heartbeat_at=job.heartbeat_at, total=job.total,
        counters=dict(job.counters), progress=job.progress, eta_seconds=eta_seconds,
        errors=[JobErrorOut(line=e.line, code=e.code, message=e.message) for e in job.errors],
        error_count=job.error_count, cancel_requested=job.cancel_requested,
        attempts=job.attempts, result=job.result, failure_reason=job.failure_reason,
    ).model_dump(mode="json")


def job_stats_json(stats: JobStats) -> dict[str, Any]:
    """The JSON of :class:`~notibot.application.ports.JobStats`."""
    return JobStatsOut(by_status=dict(stats.by_status), by_kind=dict(stats.by_kind),
                       total=stats.total).model_dump(mode="json")


# -- customer imports ------------------------------------------------------------------------

#: The import modes (the values of :class:`~notibot.application.services.imports.ImportMode`).
ImportModeName = Literal["upsert", "skip", "dry_run"]


def _no_default(schema: dict[str, Any]) -> None:
    """Leave ``default: null`` out of a form field's schema (form fields are text: a client
    should send nothing, not ``null``)."""
    schema.pop("default", None)


class ImportForm(_Input):
    """``POST /customers/import``: a ``multipart/form-data`` form. Only ``file`` is required;
    a blank option means its default. Other fields are refused (422)."""

    file: bytes = Field(description=(
        "the customer file: CSV text in UTF-8 (with or without BOM), a header line first. "
        "Columns (case and spaces ignored, common aliases accepted): `full_name`, `email` "
        "and/or `phone`, `company`, `position`, `address`, `city`, `country`, `language`, "
        "`tags` (comma-separated); other columns are kept as attributes. Up to "
        "NOTIBOT_MAX_UPLOAD_MB (413 above)"))
    mode: ImportModeName = Field("upsert", description=(
        "`upsert`: create new customers, update the non-empty fields of existing ones "
        "(never `subscribed`); `skip`: create new ones, leave existing ones untouched; "
        "`dry_run`: write nothing, report what upsert would do"))
    delimiter: str | None = Field(None, json_schema_extra=_no_default, description=(
        "`,` `;` `|` or a tab (`\\t`); sniffed from the header line when omitted"))
    default_region: str | None = Field(None, json_schema_extra=_no_default, description=(
        "ISO 3166-1 alpha-2 region of phone numbers written without a country code; "
        "default NOTIBOT_DEFAULT_REGION"))


class ImportAccepted(_Output):
    """The import was queued as a job (HTTP 202); watch it at ``status_url``."""

    job_id: str
    status_url: str = Field(description="`/customers/import/{job_id}/status`")
    errors_url: str = Field(description="`/customers/import/{job_id}/errors.csv`: the "
                                        "rejected rows")
    task_url: str = Field(description="`/tasks/{job_id}`: the job (cancel at `.../cancel`)")


class ImportCountersOut(_Output):
    """Row counts of an import. Once it succeeded, ``created + updated + skipped + failed
    == total_rows``."""

    total_rows: int = Field(description="data rows in the file (estimated from its line "
                                        "count until the import finishes)")
    processed: int = Field(description="rows read so far")
    created: int = Field(description="new customers (dry_run: would be created)")
    updated: int = Field(description="existing customers updated (dry_run: would be)")
    skipped: int = Field(description="duplicates inside the file, and existing customers "
                                     "in `skip` mode")
    failed: int = Field(description="rows rejected: invalid email, no name, no contact, ...")


class ImportStatusOut(_Output):
    """A customer import: its state, counters and first rejected rows."""

    job_id: str
    status: JobStatus
    mode: ImportModeName
    filename: str
    counters: ImportCountersOut
    progress: float | None = Field(ge=0, le=1, description="fraction of the rows done")
    eta_seconds: float | None = Field(description="estimated seconds left while running")
    error_count: int = Field(description="rejected or duplicate rows, all of them (see "
                                         "errors.csv)")
    errors: list[JobErrorOut] = Field(description="the first rejected rows (up to 100): "
                                                  "1-based file line, reason code, message")
    failure_reason: str | None = Field(description="why the import failed, when it did")
    created_at: UtcDateTime
    started_at: UtcDateTime | None
    finished_at: UtcDateTime | None


#: Names of :class:`ImportCountersOut`, in order.
IMPORT_COUNTERS = ("total_rows", "processed", "created", "updated", "skipped", "failed")


def import_status_json(job: Job, eta_seconds: float | None) -> dict[str, Any]:
    """The JSON of a csv_import :class:`~notibot.domain.Job` (``GET /customers/import/{id}/
    status``); ``eta_seconds`` comes from :meth:`~notibot.application.services.JobService.
    eta_seconds`. ``total_rows`` is the job's total (the line-count estimate until the
    import has read the whole file)."""
    counters = {name: job.counters.get(name, 0) for name in IMPORT_COUNTERS}
    if job.total is not None:
        counters["total_rows"] = job.total
    return ImportStatusOut(
        job_id=job.id, status=job.status, mode=job.params.get("mode", "upsert"),
        filename=job.params.get("filename", ""),
        counters=ImportCountersOut(**counters), progress=job.progress,
        eta_seconds=eta_seconds, error_count=job.error_count,
        errors=[JobErrorOut(line=e.line, code=e.code, message=e.message) for e in job.errors],
        failure_reason=job.failure_reason, created_at=job.created_at,
        started_at=job.started_at, finished_at=job.finished_at,
    ).model_dump(mode="json")


# -- campaigns ("notification configs") and sending them -------------------------------------

_TEMPLATE = ("a Jinja2 template (sandboxed, undefined variables are errors) with the variables "
             "`customer.*` (id, full_name, email, phone, company, position, address, city, "
             "country, language, tags, attributes), `data.*`, `campaign.*` (id, name, "
             "description) and `unsubscribe_url`")


class CampaignContentIn(_Input):
    """The templates of one language."""

    subject: str = Field(description="one line; " + _TEMPLATE)
    text_body: str = Field(description="the plain-text body; " + _TEMPLATE)
    html_body: str | None = Field(None, description="optional HTML body, autoescaped; "
                                                    + _TEMPLATE)


class CampaignIn(_Input):
    """``POST /notifications/config`` and ``PUT /notifications/config/{id}``: a campaign.
    Every template is checked on save: one that does not compile or uses an unknown variable
    answers 422 ``invalid_template`` with ``details`` ``{field, line, name}``."""

    name: str = Field(description="unique, ignoring case")
    description: str | None = None
    channel: Channel = Field(Channel.EMAIL, description="`email`, or `chat`: only appended "
                                                        "to the customer's conversation")
    subject: str = Field(description="default content: " + _TEMPLATE)
    text_body: str = Field(description="default content: the plain-text body")
    html_body: str | None = Field(None, description="default content: optional HTML body")
    variants: dict[str, CampaignContentIn] = Field(
        default_factory=dict, description="language code (`vi`, `en`, `pt-br`) -> content; "
        "a customer's `language` picks one (else its primary subtag), the default otherwise. "
        "A variant is complete: without `html_body` its emails have no HTML part")
    default_data: dict[str, Any] = Field(default_factory=dict, description=(
        "the base of `data.*`; a send's `data` overrides it key by key"))
    active: StrictBool = Field(True, description="an inactive campaign cannot be sent (409)")


class CampaignContentOut(_Output):
    """The templates of one language."""

    subject: str
    text_body: str
    html_body: str | None


class CampaignOut(_Output):
    """A campaign ("notification config")."""

    id: str
    name: str
    description: str | None
    channel: Channel
    subject: str
    text_body: str
    html_body: str | None
    variants: dict[str, CampaignContentOut]
    default_data: dict[str, Any]
    active: bool
    created_at: UtcDateTime
    updated_at: UtcDateTime


class CampaignPage(_Output):
    """A page of campaigns, oldest first; ``total`` counts every match."""

    items: list[CampaignOut]
    total: int
    limit: int
    offset: int


class CampaignQuery(_Input):
    """Query string of ``GET /notifications/configs``."""

    active: bool | None = Field(None, description="only active (`true`) or inactive "
                                                  "(`false`) campaigns")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="page size")
    offset: int = Field(0, ge=0, description="items to skip")


def _content_json(content: CampaignContent) -> CampaignContentOut:
    return CampaignContentOut(subject=content.subject, text_body=content.text_body,
                              html_body=content.html_body)


def campaign_json(campaign: Campaign) -> dict[str, Any]:
    """The JSON of a :class:`~notibot.domain.Campaign`."""
    return CampaignOut(
        id=campaign.id, name=campaign.name, description=campaign.description,
        channel=campaign.channel, subject=campaign.content.subject,
        text_body=campaign.content.text_body, html_body=campaign.content.html_body,
        variants={lang: _content_json(c) for lang, c in campaign.variants.items()},
        default_data=dict(campaign.default_data), active=campaign.active,
        created_at=campaign.created_at, updated_at=campaign.updated_at,
    ).model_dump(mode="json")


def campaign_page_json(page: Page[Campaign]) -> dict[str, Any]:
    """The JSON of a page of campaigns."""
    return {"items": [campaign_json(c) for c in page.items], "total": page.total,
            "limit": page.limit, "offset": page.offset}


class AudienceFilter(_Input):
    """Customers matching every field given (the filters of ``GET /customers``); ``{}``
    matches everyone."""

    tag: str | None = None
    city: str | None = None
    country: str | None = None
    language: str | None = None
    subscribed: StrictBool | None = None
    q: str | None = Field(None, description="search in full name, email and phone")


class SendRequest(_Input):
    """``POST /notifications/send``: who gets which campaign, with which data. Give
    ``customer_ids`` (a list, or ``"all"``) or a ``filter``."""

    notification_config_id: str = Field(description="the campaign's id")
    customer_ids: list[str] | Literal["all"] | None = Field(
        None, description='ids of the recipients (at most 10,000), or `"all"`')
    filter: AudienceFilter | None = Field(None, description="the recipients by filter "
                                                            "(with `\"all\"` or alone)")
    data: dict[str, Any] = Field(default_factory=dict, description=(
        "`data.*` of the templates, over the campaign's `default_data`; every `data.x` the "
        "templates use must be in one of them (422 `missing_data`)"))


class SendAccepted(_Output):
    """The send was queued as a job of kind ``campaign_send`` (HTTP 202)."""

    job_id: str
    task_url: str = Field(description="`/tasks/{job_id}`: progress and counters (`total`, "
                                      "`processed`, `sent`, `failed`, `skipped`); cancel at "
                                      "`.../cancel`, re-send failures at `.../retry-failed`")


class DeliveryOut(_Output):
    """One campaign message to one customer within one send (job)."""

    id: str
    job_id: str
    campaign_id: str
    customer_id: str
    channel: Channel
    status: DeliveryStatus
    attempts: int = Field(description="tries so far, transient failures included")
    last_error: str | None = Field(description="the server's reply of the last failure")
    skip_reason: str | None = Field(description="`unsubscribed` or `no_email`")
    message_id: str | None = Field(description="the email's Message-ID once sent")
    language: str | None = Field(description="the variant used; null: the default content")
    subject: str | None = Field(None, description="the rendered subject (null until rendered)")
    created_at: UtcDateTime
    sent_at: UtcDateTime | None
    updated_at: UtcDateTime | None


class DeliveryPage(_Output):
    """A page of deliveries, newest first; ``total`` counts every match."""

    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int


class HistoryQuery(_Input):
    """Query string of ``GET /notifications/history``."""

    customer_id: str | None = None
    campaign_id: str | None = None
    job_id: str | None = Field(None, description="the send (job) id")
    status: DeliveryStatus | None = None
    since: UtcDateTime | None = Field(None, description="created at or after (ISO 8601)")
    until: UtcDateTime | None = Field(None, description="created before (ISO 8601)")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="page size")
    offset: int = Field(0, ge=0, description="items to skip")


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    """The JSON of a :class:`~notibot.domain.Delivery`."""
    return DeliveryOut(
        id=delivery.id, job_id=delivery.job_id, campaign_id=delivery.campaign_id,
        customer_id=delivery.customer_id, channel=delivery.channel, status=delivery.status,
        attempts=delivery.attempts, last_error=delivery.last_error,
        skip_reason=delivery.skip_reason, message_id=delivery.message_id,
        language=delivery.language, subject=delivery.subject, created_at=delivery.created_at,
        sent_at=delivery.sent_at, updated_at=delivery.updated_at,
    ).model_dump(mode="json")


def delivery_page_json(page: Page[Delivery]) -> dict[str, Any]:
    """The JSON of a page of deliveries."""
    return {"items": [delivery_json(d) for d in page.items], "total": page.total,
            "limit": page.limit, "offset": page.offset}


class StatsQuery(_Input):
    """Query string of ``GET /notifications/stats``."""

    days: int = Field(30, ge=1, le=366, description="how many days back")


class DeliveryCountsOut(_Output):
    """Deliveries by status."""

    sent: int
    failed: int
    skipped: int
    queued: int
    total: int


class CampaignCountsOut(DeliveryCountsOut):
    """Deliveries of one campaign by status; ``name`` is null when it was deleted."""

    campaign_id: str
    name: str | None


class StatsOut(_Output):
    """Deliveries created in ``[since, until)``: overall and per campaign (most first)."""

    since: UtcDateTime
    until: UtcDateTime
    overall: DeliveryCountsOut
    campaigns: list[CampaignCountsOut]


def _counts(counts: DeliveryCounts) -> dict[str, int]:
    return {**{s.value: counts.by_status.get(s.value, 0) for s in DeliveryStatus},
            "total": counts.total}


def stats_json(stats: CampaignStats) -> dict[str, Any]:
    """The JSON of :class:`~notibot.application.services.campaigns.CampaignStats`."""
    return StatsOut(
        since=stats.since, until=stats.until,
        overall=DeliveryCountsOut(**_counts(stats.overall)),
        campaigns=[CampaignCountsOut(campaign_id=c.campaign_id, name=c.name,
                                     **_counts(c.counts)) for c in stats.campaigns],
    ).model_dump(mode="json")


class UnsubscribeQuery(_Input):
    """Query string of ``GET`` and ``POST /unsubscribe``: the link of the emails."""

    token: str | None = Field(None, description=(
        "the signed unsubscribe token of `unsubscribe_url` (valid 365 days); with POST it may "
        "come in the form instead"))


class UnsubscribeForm(_Input):
    """Body of ``POST /unsubscribe`` (``application/x-www-form-urlencoded`` or
    ``multipart/form-data``; RFC 8058 one-click sends ``List-Unsubscribe=One-Click``).
    Other fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    token: str | None = Field(None, description="the unsubscribe token; else the query's")
    list_unsubscribe: Literal["One-Click"] | None = Field(
        None, alias="List-Unsubscribe", description="RFC 8058 one-click unsubscription")


class UnsubscribeOut(_Output):
    """The customer is unsubscribed (``subscribed`` false): no more campaign emails."""

    status: Literal["unsubscribed"] = "unsubscribed"
    email: str | None = Field(description="the customer's email, masked (`a***@example.org`)")


# -- health and docs -------------------------------------------------------------------------


class HealthOut(_Output):
    """Liveness: the process answers."""

    status: Literal["ok"] = "ok"


class ReadinessOut(_Output):
    """Readiness: every dependency answered (HTTP 200) or one did not (HTTP 503)."""

    status: Literal["ready", "unavailable"]
    checks: dict[str, dict[str, Any]] = Field(
        description='per dependency: {"status": "ok"|"down", "latency_ms", ...}')


def readiness_json(ready: bool, checks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The JSON of :meth:`~notibot.application.services.HealthService.readiness`."""
    return ReadinessOut(status="ready" if ready else "unavailable",
                        checks=checks).model_dump(mode="json")


class OpenApiDocument(RootModel[dict[str, Any]]):
    """An OpenAPI 3.0 document."""


# -- AI chat ("messages") --------------------------------------------------------------------

#: How a message is answered: ``sync`` (the reply in the response) or ``async`` (a job).
ChatMode = Literal["sync", "async"]


class ChatSendRequest(_Input):
    """``POST /messages/send``: a customer's message to answer."""

    customer_id: str = Field(description="the customer who wrote (404 `customer_not_found`)")
    message: str = Field(description=(
        f"the customer's text, 1 to {MESSAGE_MAX_LENGTH} characters after trimming (422 "
        "`missing_message`, `message_too_long`)"))
    session_id: str | None = Field(None, description=(
        "the conversation: 1-128 letters, digits or `_ . : -`; an unknown id starts a "
        "conversation with that id; default: the customer's latest conversation (where "
        "campaign notifications land), else a new one"))
    language: str | None = Field(None, description=(
        "answer in this language (ISO 639-1 such as `vi`, `en`) instead of the customer's "
        "`language` (default `en`); 422 `invalid_language`"))
    mode: ChatMode | None = Field(None, description=(
        "`sync` or `async`, like the `mode` query parameter (give one or the other; both "
        "must agree, else 422 `conflicting_mode`)"))


class ChatSendQuery(_Input):
    """Query string of ``POST /messages/send``."""

    mode: ChatMode | None = Field(None, description=(
        "`sync` (default): answer 200 with the reply; `async`: queue a `chat_reply` job "
        "and answer 202"))


class UsageOut(_Output):
    """Tokens of one model call (null when the model does not say)."""

    tokens_in: int | None = Field(description="prompt tokens")
    tokens_out: int | None = Field(description="reply tokens")


class TemplateRefOut(_Output):
    """Which prompt template version and A/B variant a reply used."""

    id: str = Field(description="the template's id (`builtin-...` for a built-in default "
                                "that is not stored)")
    version: int
    variant: str = Field(description="the A/B arm (`default` when the template has none)")


class ChatTurnOut(_Output):
    """The answer to one customer message (``POST /messages/send``, and the ``result`` of a
    ``chat_reply`` job)."""

    session_id: str = Field(description="the conversation")
    message_id: str = Field(description="the assistant message's id")
    customer_message_id: str = Field(description="the stored customer message's id")
    reply: str
    model: str = Field(description="the model's name, e.g. `gemini-2.5-flash`, "
                                   "`notibot-offline`")
    usage: UsageOut
    latency_ms: float = Field(description="the model call's wall time, milliseconds")
    prompt_template: TemplateRefOut = Field(description="the system template used")
    context_template: TemplateRefOut = Field(description="the context template used")
    language: str = Field(description="the reply's language (ISO 639-1)")
    created_at: UtcDateTime = Field(description="the reply's time")


class ChatAccepted(_Output):
    """The message was stored and a ``chat_reply`` job queued to answer it (HTTP 202)."""

    job_id: str
    session_id: str = Field(description="the conversation the reply will be added to: read "
                                        "it at `GET /messages/history?session_id=...`")
    customer_message_id: str = Field(description="the id the customer's message is stored "
                                                 "under once the job runs")
    status_url: str = Field(description="`/tasks/{job_id}`: once `succeeded`, its `result` "
                                        "is the reply (the body of a sync send)")


class ChatHistoryQuery(_Input):
    """Query string of ``GET /messages/history``: give ``customer_id``, ``session_id`` or
    both."""

    customer_id: str | None = Field(None, description="every conversation of this customer "
                                                      "(or, with `session_id`, its owner)")
    session_id: str | None = Field(None, description="one conversation")
    limit: int = Field(DEFAULT_HISTORY, ge=1, le=MAX_PAGE_SIZE,
                       description="the newest messages to return")
    before: UtcDateTime | None = Field(None, description=(
        "only messages created before this time (ISO 8601): pass `next_before` to read "
        "older messages"))


class ChatMessageOut(_Output):
    """One message of a conversation."""

    id: str
    session_id: str
    role: MessageRole = Field(description="`customer`, `assistant`, `notification` (a "
                                          "delivered campaign) or `operator`")
    content: str
    created_at: UtcDateTime
    metadata: dict[str, Any] = Field(description=(
        "assistant: `model`, `tokens_in`, `tokens_out`, `latency_ms`, `language`, "
        "`prompt_template`, `context_template`, `in_reply_to`; notification: `campaign_id`, "
        "`campaign_name`, `subject`, `delivery_id`, `channel`, ...; customer: `language`"))


class ChatHistoryOut(_Output):
    """Messages oldest first; ``has_more`` says older ones exist."""

    items: list[ChatMessageOut]
    has_more: bool
    next_before: UtcDateTime | None = Field(description=(
        "when `has_more`: the `created_at` of the first item, the `before` of the next "
        "(older) page; else null"))


class ChatSessionQuery(_Input):
    """Query string of ``GET /messages/sessions``."""

    customer_id: str
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="page size")
    offset: int = Field(0, ge=0, description="items to skip")


class ChatSessionOut(_Output):
    """One conversation of a customer, without its messages."""

    session_id: str
    customer_id: str
    created_at: UtcDateTime
    updated_at: UtcDateTime = Field(description="the time of its newest message")
    message_count: int = Field(description="messages in long-term memory")
    last_message: ChatMessageOut | None = Field(description="its newest message")


class ChatSessionPage(_Output):
    """A page of conversations, most recently updated first; ``total`` counts them all."""

    items: list[ChatSessionOut]
    total: int
    limit: int
    offset: int


class MemoryStatsQuery(_Input):
    """Query string of ``GET /messages/memory/stats``."""

    customer_id: str
    session_id: str | None = Field(None, description="default: the customer's latest "
                                                     "conversation")


class ShortTermStatsOut(_Output):
    """The short-term window (recent messages kept for prompts) of one conversation."""

    count: int = Field(description="messages in the window")
    ttl_seconds: float | None = Field(description="seconds until the window expires; null "
                                                  "when it holds nothing")
    max_messages: int = Field(description="NOTIBOT_SHORT_TERM_MAX")
    ttl_max_seconds: float = Field(description="NOTIBOT_SHORT_TERM_TTL, refreshed on write")


class LongTermStatsOut(_Output):
    """What long-term memory (the conversation store) holds."""

    messages: int = Field(description="messages of every conversation of the customer")
    sessions: int = Field(description="the customer's conversations")
    session_messages: int = Field(description="messages of `session_id`")


class MemoryStatsOut(_Output):
    """What memory holds for a customer."""

    customer_id: str
    session_id: str | None = Field(description="the conversation described (null: the "
                                               "customer has none)")
    short_term: ShortTermStatsOut
    long_term: LongTermStatsOut


def chat_turn_json(turn: ChatTurn) -> dict[str, Any]:
    """The JSON of a :class:`~notibot.application.services.chat.ChatTurn`."""
    return ChatTurnOut.model_validate(turn.to_dict()).model_dump(mode="json")


def _message_out(session_id: str, message: Message) -> ChatMessageOut:
    return ChatMessageOut(id=message.id, session_id=session_id, role=message.role,
                          content=message.content, created_at=message.created_at,
                          metadata=dict(message.metadata))


def chat_history_json(page: HistoryPage) -> dict[str, Any]:
    """The JSON of a :class:`~notibot.application.services.chat.HistoryPage`."""
    items = [_message_out(session_id, message) for session_id, message in page.items]
    next_before = items[0].created_at if page.has_more and items else None
    return ChatHistoryOut(items=items, has_more=page.has_more,
                          next_before=next_before).model_dump(mode="json")


def chat_session_page_json(page: Page[SessionSummary]) -> dict[str, Any]:
    """The JSON of a page of :class:`~notibot.application.services.chat.SessionSummary`."""
    items = [ChatSessionOut(
        session_id=s.session_id, customer_id=s.customer_id, created_at=s.created_at,
        updated_at=s.updated_at, message_count=s.message_count,
        last_message=(_message_out(s.session_id, s.last_message)
                      if s.last_message is not None else None)) for s in page.items]
    return ChatSessionPage(items=items, total=page.total, limit=page.limit,
                           offset=page.offset).model_dump(mode="json")


def memory_stats_json(stats: dict[str, Any]) -> dict[str, Any]:
    """The JSON of :meth:`~notibot.application.services.chat.ChatService.memory_stats`."""
    return MemoryStatsOut.model_validate(stats).model_dump(mode="json")


# -- prompt templates ------------------------------------------------------------------------

_PROMPT_BODY = (
    "a Jinja2 template (sandboxed) that may use only the declared `variables`: `customer.*` "
    "(the profile: id, full_name, email, phone, company, position, address, city, country, "
    "language, tags, attributes, ...), `notifications` (list of {campaign, subject, channel, "
    "status, sent_at, delivery_id, error}, newest first), `summary`, `language` (ISO 639-1 "
    "of the reply), `language_name` (its English name) and `data` (`POST /prompts/render` "
    "only). Put customer data in delimited blocks (`{{ customer | tojson }}`), never as "
    "instructions")


class PromptVariantIn(_Input):
    """One A/B arm: a customer always gets the same arm (sticky by hash), spread by weight."""

    name: str = Field(description="1-64 letters, digits, `_ . -`; unique in the template")
    body: str = Field(description="replaces the template's body for this arm; " + _PROMPT_BODY)
    weight: int = Field(1, ge=1, description="relative share of customers")


class PromptTemplateReplace(_Input):
    """``PUT /prompts/templates/{id}``: the whole template, stored as a new version. Omitted
    fields take their defaults; ``kind`` may be given but not changed (422
    ``immutable_field``)."""

    kind: PromptKind | None = Field(None, description="`system` or `context` (fixed)")
    name: str = Field(description="unique per kind and language, ignoring case (409 "
                                  "`prompt_template_name_taken`)")
    language: str | None = Field(None, description="ISO 639-1 such as `en`, `vi` (default "
                                                   "`en`)")
    body: str = Field(description=_PROMPT_BODY)
    variables: list[str] | None = Field(None, description=(
        "the variables the body may use: a subset of `customer`, `notifications`, `summary`, "
        "`language`, `language_name`, `data` (default: all); another name answers 422 "
        "`invalid_variables`"))
    active: StrictBool = Field(True, description=(
        "conversations in this language use the active template of each kind updated last"))
    variants: list[PromptVariantIn] = Field(default_factory=list, description="A/B arms")


class PromptTemplateCreate(PromptTemplateReplace):
    """``POST /prompts/templates``: a new template (version 1). Bodies are checked on save:
    one that does not compile or uses an undeclared variable answers 422
    ``invalid_template`` with ``details`` ``{field, line, name}``."""

    kind: PromptKind = Field(description="`system` (personality, rules, language) or "  # type: ignore[assignment]
                                         "`context` (the customer's data blocks)")


class PromptVariantOut(_Output):
    """One A/B arm."""

    name: str
    body: str
    weight: int


class PromptTemplateOut(_Output):
    """A prompt template (one version)."""

    id: str
    kind: PromptKind
    name: str
    language: str
    body: str
    variables: list[str]
    version: int = Field(description="1, then +1 on every update")
    active: bool
    variants: list[PromptVariantOut]
    created_at: UtcDateTime
    updated_at: UtcDateTime = Field(description="when this version was stored")


class PromptTemplatePage(_Output):
    """A page of templates (current versions) by kind, language and name; ``total`` counts
    every match."""

    items: list[PromptTemplateOut]
    total: int
    limit: int
    offset: int


class PromptTemplateVersions(_Output):
    """Every version of a template, oldest first; the last is the current one."""

    items: list[PromptTemplateOut]
    total: int


class PromptTemplateQuery(_Input):
    """Query string of ``GET /prompts/templates``."""

    kind: PromptKind | None = None
    language: str | None = Field(None, description="ISO 639-1 such as `en`, `vi`")
    active: bool | None = Field(None, description="`true` or `false`")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="page size")
    offset: int = Field(0, ge=0, description="items to skip")


class PromptVersionQuery(_Input):
    """Query string of ``GET /prompts/templates/{id}``."""

    version: int | None = Field(None, ge=1, description="an earlier version (default: the "
                                                        "current one)")


class PromptRenderRequest(_Input):
    """``POST /prompts/render``: render a stored template to see what a model would get."""

    template_id: str
    customer_id: str | None = Field(None, description="fills `customer.*` (and `language`) "
                                                      "from this customer; every field null "
                                                      "without it")
    data: dict[str, Any] = Field(default_factory=dict, description="the `data` variable")
    version: int | None = Field(None, ge=1, description="default: the current version")
    variant: str | None = Field(None, description=(
        "the A/B arm to render (422 `unknown_variant`); default: the customer's sticky arm, "
        "or the main body without a customer"))


class RenderedPromptOut(_Output):
    """A rendered prompt template."""

    text: str
    template_id: str
    version: int
    variant: str
    kind: PromptKind
    language: str


def prompt_template_json(template: PromptTemplate) -> dict[str, Any]:
    """The JSON of a :class:`~notibot.domain.PromptTemplate`."""
    return PromptTemplateOut(
        id=template.id, kind=template.kind, name=template.name, language=template.language,
        body=template.body, variables=list(template.variables), version=template.version,
        active=template.active,
        variants=[PromptVariantOut(name=v.name, body=v.body, weight=v.weight)
                  for v in template.variants],
        created_at=template.created_at, updated_at=template.updated_at,
    ).model_dump(mode="json")


def prompt_template_page_json(page: Page[PromptTemplate]) -> dict[str, Any]:
    """The JSON of a page of prompt templates."""
    return {"items": [prompt_template_json(t) for t in page.items], "total": page.total,
            "limit": page.limit, "offset": page.offset}


def prompt_versions_json(templates: list[PromptTemplate]) -> dict[str, Any]:
    """The JSON of a template's versions (oldest first)."""
    return {"items": [prompt_template_json(t) for t in templates], "total": len(templates)}


def rendered_prompt_json(rendered: RenderedPrompt) -> dict[str, Any]:
    """The JSON of a :class:`~notibot.application.services.prompts.RenderedPrompt`."""
    return RenderedPromptOut(
        text=rendered.text, template_id=rendered.template_id, version=rendered.version,
        variant=rendered.variant, kind=rendered.kind, language=rendered.language,
    ).model_dump(mode="json")
