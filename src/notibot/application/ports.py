"""Ports: the interfaces the application needs from the outside world.

Every port is an :class:`abc.ABC` with async methods. Adapters in ``notibot.adapters``
implement them; only ``notibot.container`` chooses which. Each port has an in-memory adapter
and a contract test suite (``tests/unit/contracts``) that every adapter must pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO, Generic, TypeVar

from notibot.domain import (
    Campaign,
    Conversation,
    Customer,
    Delivery,
    DeliveryStatus,
    Job,
    JobError,
    JobStatus,
    Message,
    PromptKind,
    PromptTemplate,
    User,
)

T = TypeVar("T")

#: Largest page any list operation returns.
MAX_PAGE_SIZE = 200
#: Page size when the caller gives none.
DEFAULT_PAGE_SIZE = 50


@dataclass(slots=True, frozen=True)
class Page(Generic[T]):
    """One page of a list: ``items`` plus the ``total`` matching the filter."""

    items: list[T]
    total: int
    limit: int
    offset: int


@dataclass(slots=True, frozen=True)
class CustomerFilter:
    """Filters of ``GET /customers``; ``None`` means "any". ``q`` is a case-insensitive
    substring of full_name, email or phone; ``tag``, ``city``, ``country`` and ``language``
    match exactly (case-insensitively)."""

    tag: str | None = None
    city: str | None = None
    country: str | None = None
    language: str | None = None
    subscribed: bool | None = None
    q: str | None = None


@dataclass(slots=True, frozen=True)
class JobFilter:
    """Filters of ``GET /tasks``; ``None`` means "any"."""

    status: JobStatus | None = None
    kind: str | None = None
    created_by: str | None = None


@dataclass(slots=True, frozen=True)
class JobStats:
    """Job counts by status and by kind (every status appears, zero included)."""

    by_status: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    total: int = 0


@dataclass(slots=True, frozen=True)
class BulkWriteResult:
    """Outcome of :meth:`CustomerRepository.bulk_upsert`: counts written, and for each write
    left out the customer id with the reason (``{"customer id": "email x is taken"}``)."""

    created: int = 0
    updated: int = 0
    rejected: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class StoredUpload:
    """An uploaded file kept by the :class:`UploadStore`; ``size`` in bytes."""

    id: str
    filename: str
    size: int
    content_type: str | None = None


@dataclass(slots=True, frozen=True)
class CustomerFileOptions:
    """How to read a customer file.

    Attributes:
        delimiter: one of ``,`` ``;`` tab ``|``; None sniffs it from the header line.
        default_region: ISO 3166-1 alpha-2 region for phones without a country code.
        chunk_rows: data rows per batch.
    """

    delimiter: str | None = None
    default_region: str = "VN"
    chunk_rows: int = 50_000


#: The customer fields of a :class:`CustomerBatch`, in order.
CUSTOMER_FILE_FIELDS = ("full_name", "email", "phone", "company", "position", "address", "city",
                        "country", "language", "tags", "attributes")


@dataclass(slots=True, frozen=True)
class CustomerFileSummary:
    """What a first look at a customer file found: the delimiter, the header's columns, the
    field each known column maps to, the unknown columns (kept as attributes) and the data
    rows estimated by counting lines."""

    delimiter: str
    columns: list[str]
    mapping: dict[str, str]
    extra_columns: list[str]
    estimated_rows: int


@dataclass(slots=True)
class CustomerBatch:
    """One chunk of a customer file, column by column (a million rows are cheap this way).

    Attributes:
        lines: 1-based line number in the file of each valid row (the header is line 1).
        columns: every name of :data:`CUSTOMER_FILE_FIELDS` -> one value per valid row,
            normalised: email lower-cased and valid, phone E.164, language a lower-case code,
            tags a list; empty cells are None. ``attributes`` holds the unknown columns.
        errors: the rejected rows, one :class:`~notibot.domain.JobError` each, with the row's
            original cells as ``values``.
        rows: data rows in the chunk (valid + rejected; blank lines are not rows).
    """

    lines: list[int]
    columns: dict[str, list[Any]]
    errors: list[JobError]
    rows: int

    def row(self, index: int) -> dict[str, Any]:
        """The valid row at ``index`` as ``{field: value}``."""
        return {name: values[index] for name, values in self.columns.items()}


@dataclass(slots=True, frozen=True)
class TokenClaims:
    """What a verified token says: ``subject`` is the user id, ``token_type`` is ``access`` or
    ``refresh``; times are UTC."""

    subject: str
    token_type: str
    issued_at: datetime
    expires_at: datetime
    extra: dict[str, Any] = field(default_factory=dict)


# -- repositories ----------------------------------------------------------------------------


class CustomerRepository(ABC):
    """Stores customers. Email and phone are each unique across customers."""

    @abstractmethod
    async def add(self, customer: Customer) -> None:
        """Store a new customer.

        Raises:
            Conflict: code ``customer_conflict`` when the id, email or phone is taken;
                ``details`` names the ``field`` and the ``existing_id``.
        """

    @abstractmethod
    async def get(self, customer_id: str) -> Customer:
        """Return the customer. Raises NotFound (``customer_not_found``)."""

    @abstractmethod
    async def update(self, customer: Customer) -> None:
        """Replace the stored customer with the same id.

        Raises:
            NotFound: no such customer.
            Conflict: ``customer_conflict`` when another customer has the email or phone.
        """

    @abstractmethod
    async def delete(self, customer_id: str) -> None:
        """Delete the customer. Raises NotFound."""

    @abstractmethod
    async def find_by_email(self, email: str) -> Customer | None:
        """The customer with this (lower-cased) email, or None."""

    @abstractmethod
    async def find_by_phone(self, phone: str) -> Customer | None:
        """The customer with this E.164 phone, or None."""

    @abstractmethod
    async def list(self, filter: CustomerFilter, *, limit: int, offset: int) -> Page[Customer]:
        """Customers matching ``filter``, oldest first (creation time, then id)."""

    @abstractmethod
    async def find_by_emails(self, emails: Sequence[str]) -> dict[str, Customer]:
        """The customers owning any of ``emails`` (lower-cased), keyed by email."""

    @abstractmethod
    async def find_by_phones(self, phones: Sequence[str]) -> dict[str, Customer]:
        """The customers owning any of ``phones`` (E.164), keyed by phone."""

    @abstractmethod
    async def bulk_upsert(
        self, creates: Sequence[Customer], updates: Sequence[Customer]
    ) -> BulkWriteResult:
        """Insert ``creates`` and replace ``updates`` (matched by id) in one batch, unordered:
        a write that would break uniqueness (email, phone, id) or whose customer vanished is
        left out and reported in the result, the others are written. The repository takes
        ownership of the objects (callers must not change them afterwards)."""

    @abstractmethod
    async def count(self) -> int:
        """How many customers are stored."""


class UserRepository(ABC):
    """Stores API users. Usernames are unique (case-insensitively)."""

    @abstractmethod
    async def add(self, user: User) -> None:
        """Store a new user. Raises Conflict (``username_taken``)."""

    @abstractmethod
    async def get(self, user_id: str) -> User:
        """Return the user. Raises NotFound (``user_not_found``)."""

    @abstractmethod
    async def get_by_username(self, username: str) -> User | None:
        """The user with this username (case-insensitive), or None."""

    @abstractmethod
    async def update(self, user: User) -> None:
        """Replace the stored user with the same id. Raises NotFound."""

    @abstractmethod
    async def list(self, *, limit: int, offset: int) -> Page[User]:
        """Users by creation time."""

    @abstractmethod
    async def count_admins(self) -> int:
        """How many active admins exist."""


class JobRepository(ABC):
    """Stores jobs. Writes of the runner and of the API may race; the methods say how each
    resolves that."""

    @abstractmethod
    async def add(self, job: Job) -> None:
        """Store a new job. Raises Conflict when the id exists."""

    @abstractmethod
    async def get(self, job_id: str) -> Job:
        """Return the job. Raises NotFound (``job_not_found``)."""

    @abstractmethod
    async def update(self, job: Job, *, expected_status: JobStatus | None = None) -> bool:
        """Write the job's state. ``cancel_requested`` is sticky: once stored as True it stays
        True whatever ``job`` says. With ``expected_status``, write only when the stored status
        still equals it (compare-and-set) and return whether the write happened.

        Raises:
            NotFound: no such job.
        """

    @abstractmethod
    async def request_cancel(self, job_id: str) -> bool:
        """Atomically set ``cancel_requested`` on a job that is running; return False (and
        change nothing) when the job is not running. Raises NotFound."""

    @abstractmethod
    async def touch(self, job_id: str, heartbeat_at: datetime) -> None:
        """Record a heartbeat of the process running the job (nothing else changes)."""

    @abstractmethod
    async def delete(self, job_id: str) -> None:
        """Delete the job. Raises NotFound."""

    @abstractmethod
    async def list(self, filter: JobFilter, *, limit: int, offset: int) -> Page[Job]:
        """Jobs matching ``filter``, newest first (creation time, then id, descending)."""

    @abstractmethod
    async def stats(self) -> JobStats:
        """Counts by status and by kind."""

    @abstractmethod
    async def find_stale(self, heartbeat_before: datetime) -> list[Job]:
        """Running jobs whose last heartbeat (or start) is older than ``heartbeat_before``."""

    @abstractmethod
    async def add_errors(self, job_id: str, errors: Sequence[JobError]) -> None:
        """Keep ``errors`` (all of them, in order) beside the job; removed with the job."""

    @abstractmethod
    async def list_errors(self, job_id: str, *, offset: int = 0,
                          limit: int | None = None) -> list[JobError]:
        """The errors kept for the job, in the order they were added (empty when none)."""


@dataclass(slots=True, frozen=True)
class DeliveryFilter:
    """Filters of ``GET /notifications/history``; ``None`` means "any". ``since``/``until``
    bound ``created_at`` (UTC, ``since`` inclusive, ``until`` exclusive)."""

    customer_id: str | None = None
    campaign_id: str | None = None
    job_id: str | None = None
    status: DeliveryStatus | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(slots=True, frozen=True)
class DeliveryCounts:
    """Deliveries by status (every status present, zero included) for one campaign or all."""

    by_status: dict[str, int] = field(default_factory=dict)
    total: int = 0


class CampaignRepository(ABC):
    """Stores campaigns. Names are unique (case-insensitively)."""

    @abstractmethod
    async def add(self, campaign: Campaign) -> None:
        """Store a new campaign. Raises Conflict (``campaign_name_taken``)."""

    @abstractmethod
    async def get(self, campaign_id: str) -> Campaign:
        """Return the campaign. Raises NotFound (``campaign_not_found``)."""

    @abstractmethod
    async def update(self, campaign: Campaign) -> None:
        """Replace the stored campaign with the same id. Raises NotFound, Conflict
        (``campaign_name_taken``)."""

    @abstractmethod
    async def delete(self, campaign_id: str) -> None:
        """Delete the campaign. Raises NotFound."""

    @abstractmethod
    async def list(self, *, limit: int, offset: int,
                   active: bool | None = None) -> Page[Campaign]:
        """Campaigns by creation time (oldest first), optionally only (in)active ones."""


class DeliveryRepository(ABC):
    """Stores deliveries. ``(job_id, customer_id)`` is unique: that is what makes a campaign
    send idempotent."""

    @abstractmethod
    async def add_if_absent(self, delivery: Delivery) -> tuple[Delivery, bool]:
        """Store ``delivery`` unless one exists for its ``(job_id, customer_id)``; return the
        stored delivery and whether it was created now (atomic)."""

    @abstractmethod
    async def add_many_if_absent(self, deliveries: Sequence[Delivery]
                                 ) -> list[tuple[Delivery, bool]]:
        """:meth:`add_if_absent` for each of ``deliveries``, in one call (one round trip
        where the store allows: a campaign send creates a batch's deliveries at once).

        Returns:
            For each delivery, in the order given: the stored delivery and whether it was
            created now. Each is atomic on its own, as :meth:`add_if_absent`; two deliveries
            of one ``(job_id, customer_id)`` in the call store the first one, and the second
            gets it back with ``False``.

        Raises:
            Conflict: ``delivery_conflict``: a delivery's id belongs to another ``(job_id,
                customer_id)``. The other deliveries of the call are stored all the same.
        """

    @abstractmethod
    async def get(self, delivery_id: str) -> Delivery:
        """Return the delivery. Raises NotFound (``delivery_not_found``)."""

    @abstractmethod
    async def update(self, delivery: Delivery) -> None:
        """Replace the stored delivery with the same id. Raises NotFound."""

    @abstractmethod
    async def list(self, filter: DeliveryFilter, *, limit: int,
                   offset: int) -> Page[Delivery]:
        """Deliveries matching ``filter``, newest first (creation time, then id)."""

    @abstractmethod
    async def counts(self, *, since: datetime | None = None,
                     campaign_id: str | None = None) -> DeliveryCounts:
        """Counts by status of deliveries created at or after ``since``."""

    @abstractmethod
    async def counts_by_campaign(self, *, since: datetime | None = None
                                 ) -> dict[str, DeliveryCounts]:
        """Counts by status per campaign id, of deliveries created at or after ``since``."""


class ConversationRepository(ABC):
    """Long-term memory: conversations and every message, kept in time order."""

    @abstractmethod
    async def add(self, conversation: Conversation) -> None:
        """Store a new conversation (with its messages). Raises Conflict when the id exists."""

    @abstractmethod
    async def get(self, conversation_id: str, *, tail: int | None = None) -> Conversation:
        """The conversation with all its messages, or only its newest ``tail`` messages
        (oldest first; ``tail=0``: none). Raises NotFound (``conversation_not_found``)."""

    @abstractmethod
    async def latest_for_customer(self, customer_id: str, *,
                                  tail: int | None = None) -> Conversation | None:
        """The customer's most recently updated conversation (with all its messages, or its
        newest ``tail``), or None."""

    @abstractmethod
    async def append(self, conversation_id: str, message: Message) -> None:
        """Add ``message`` to the conversation (in time order) and move its ``updated_at``.
        Raises NotFound."""

    @abstractmethod
    async def append_to_latest(self, customer_id: str, message: Message, *,
                               new_conversation_id: str) -> str:
        """Add ``message`` to the customer's most recently updated conversation, as
        :meth:`append`; when the customer has none, store a new conversation
        ``new_conversation_id`` holding only ``message`` (created and updated at the
        message's time). One step, one round trip: a campaign send records each notification
        without loading the conversation. (Two calls at once for a customer who has no
        conversation may each start one, as :meth:`latest_for_customer` then :meth:`add`
        could.)

        Returns:
            The id of the conversation the message went to.

        Raises:
            Conflict: ``conversation_conflict``: a new conversation was needed and
                ``new_conversation_id`` is taken.
        """

    @abstractmethod
    async def list_for_customer(self, customer_id: str, *, limit: int,
                                offset: int) -> Page[Conversation]:
        """The customer's conversations, most recently updated first (messages included)."""

    @abstractmethod
    async def delete(self, conversation_id: str) -> None:
        """Delete the conversation and its messages. Raises NotFound."""


class IdempotencyStore(ABC):
    """Remembers what a request with an ``Idempotency-Key`` produced, so a repeat returns the
    same result (IETF draft "The Idempotency-Key HTTP Header Field")."""

    @abstractmethod
    async def claim(self, scope: str, key: str, fingerprint: str,
                    value: str) -> tuple[str, str]:
        """Atomically store ``value`` (e.g. a job id) and ``fingerprint`` (a hash of the
        request) under ``(scope, key)`` unless something is stored there already; return what
        is stored ``(value, fingerprint)`` afterwards: the caller's own when it was first."""


# -- gateways --------------------------------------------------------------------------------

#: What a job queue calls to run a job: takes the job id.
JobExecutor = Callable[[str], Awaitable[None]]


class JobQueue(ABC):
    """Hands queued jobs to whatever runs them (asyncio tasks, a worker fleet).

    Messages carry only the job id; the runner reads the job from the JobRepository, so a job
    cancelled while queued never starts and a redelivered message is harmless.
    """

    @abstractmethod
    async def enqueue(self, job: Job) -> None:
        """Queue ``job`` (already stored, status queued). Raises ServiceUnavailable when the
        queue cannot be reached."""

    @abstractmethod
    async def close(self) -> None:
        """Stop taking jobs and release resources; jobs still running are interrupted and left
        for the runner to mark."""


class UploadStore(ABC):
    """Keeps uploaded files where any worker can read them (memory, disk, GridFS)."""

    @abstractmethod
    async def save(self, content: bytes, *, filename: str,
                   content_type: str | None = None) -> StoredUpload:
        """Store ``content`` under a new id. Raises ServiceUnavailable when the store is down."""

    @abstractmethod
    async def open(self, upload_id: str) -> BinaryIO:
        """A readable, seekable binary file of the upload; the caller closes it.
        Raises NotFound (``upload_not_found``)."""

    @abstractmethod
    async def delete(self, upload_id: str) -> None:
        """Remove the upload; no error when it is already gone."""


class CustomerFileReader(ABC):
    """Reads a customer file (CSV) into normalised batches, validating whole columns at once
    with the domain's rules."""

    @abstractmethod
    async def inspect(self, file: BinaryIO, options: CustomerFileOptions) -> CustomerFileSummary:
        """Check the whole file (encoding, binary data, header) without importing anything;
        leaves the file at its start.

        Raises:
            UnsupportedFile: ``binary_file`` or ``not_utf8``.
            InvalidInput: ``empty_file``, ``invalid_delimiter``, ``missing_columns``,
                ``duplicate_columns``.
        """

    @abstractmethod
    def batches(
        self, file: BinaryIO, options: CustomerFileOptions
    ) -> AsyncIterator[CustomerBatch]:
        """Yield the file's rows in batches of ``options.chunk_rows``.

        Before the first batch the whole file is checked, so a bad file fails before anything
        is imported.

        Raises:
            InvalidInput: code ``empty_file``, ``binary_file``, ``not_utf8``,
                ``invalid_delimiter``, ``missing_columns`` or ``duplicate_columns``.
        """


@dataclass(slots=True, frozen=True)
class EmailMessage:
    """One email to one recipient, ready to send.

    Attributes:
        to: the recipient's address.
        subject: the subject line (one line, at most 998 characters, RFC 5322 section 2.1.1).
        text: the plain-text body.
        html: an optional HTML alternative (sent as multipart/alternative).
        message_id: the Message-ID to use (RFC 5322 section 3.6.4, ``<id@domain>``); None lets
            the sender make one.
        headers: extra headers, e.g. ``List-Unsubscribe`` and ``List-Unsubscribe-Post``
            (RFC 2369, RFC 8058).
        from_address: overrides the sender's configured From.
    """

    to: str
    subject: str
    text: str
    html: str | None = None
    message_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    from_address: str | None = None


class TemplateRenderer(ABC):
    """Renders user-written templates (Jinja2 in a sandbox in production)."""

    @abstractmethod
    async def check(self, template: str, *, allowed: dict[str, set[str] | None],
                    field: str) -> None:
        """Refuse a template that does not compile or uses an unknown variable.

        Parameters:
            allowed: top-level variable -> the attribute names allowed under it (None: any).
            field: the template's field name, for the error.

        Raises:
            InvalidInput: code ``invalid_template`` with ``details`` ``{field, line, name?}``
                (the line of the syntax error, or the unknown variable's name and line).
        """

    @abstractmethod
    async def render(self, template: str, context: dict[str, Any], *,
                     autoescape: bool = False) -> str:
        """Render ``template`` with ``context``; ``autoescape`` for HTML bodies.

        Raises:
            InvalidInput: ``template_error`` when rendering fails (undefined variable, a
                sandbox violation), with the line in ``details``.
        """


class EmailSender(ABC):
    """Hands emails to a mail server (SMTP) or keeps them (the outbox folder)."""

    @abstractmethod
    async def send(self, message: EmailMessage) -> str:
        """Send ``message``; return the Message-ID it was sent with.

        Raises:
            DeliveryFailed: ``transient=True`` when trying again later may work (SMTP 4xx
                replies, connection lost or refused, timeouts: RFC 5321 section 4.2.1),
                ``transient=False`` for a permanent refusal (SMTP 5xx); the message holds the
                server's reply.
        """

    @abstractmethod
    async def close(self) -> None:
        """Close pooled connections; a later send opens new ones."""


class RateLimiter(ABC):
    """Caps how often something happens, across every process that shares the limiter's
    storage (NOTIBOT_EMAIL_RATE messages per second for email)."""

    @abstractmethod
    async def acquire(self, key: str) -> None:
        """Wait until one more event under ``key`` is allowed by the configured rate, then
        count it. Raises ServiceUnavailable when the shared storage does not answer."""


class PasswordHasher(ABC):
    """One-way password hashing (argon2id in production)."""

    @abstractmethod
    async def hash(self, password: str) -> str:
        """Return an encoded hash that embeds its salt and parameters."""

    @abstractmethod
    async def verify(self, password_hash: str, password: str) -> bool:
        """True when ``password`` matches ``password_hash``; False otherwise (never raises for
        a wrong password)."""


class TokenService(ABC):
    """Issues and verifies signed bearer tokens (JWT, RFC 7519)."""

    @abstractmethod
    async def issue(
        self, subject: str, token_type: str, ttl_seconds: int, extra: dict[str, Any] | None = None
    ) -> str:
        """Return a signed token for ``subject`` valid for ``ttl_seconds``."""

    @abstractmethod
    async def verify(self, token: str, token_type: str) -> TokenClaims:
        """Return the claims of a valid token of ``token_type``.

        Raises:
            AuthenticationFailed: code ``invalid_token`` (bad signature, issuer, type or
                shape) or ``token_expired``.
        """


class PhoneNumberParser(ABC):
    """Turns what people write ("0912 345 678", "(+84) 91-234-5678") into E.164."""

    @abstractmethod
    async def to_e164(self, raw: str, default_region: str) -> str:
        """Return the E.164 form of ``raw``; ``default_region`` (ISO 3166-1 alpha-2, e.g.
        ``"VN"``) applies to numbers written without a country code.

        Raises:
            InvalidInput: code ``invalid_phone`` when it is not a possible, valid number.
        """


class Clock(ABC):
    """The current time."""

    @abstractmethod
    async def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class IdGenerator(ABC):
    """New unique ids."""

    @abstractmethod
    async def new_id(self) -> str:
        """A new id: a string of URL-safe characters, unique across processes."""

    async def new_ids(self, count: int) -> list[str]:
        """``count`` new ids at once (bulk imports); adapters may do it faster."""
        return [await self.new_id() for _ in range(count)]


class HealthCheck(ABC):
    """One dependency's readiness, for ``GET /health/ready``."""

    #: Name shown in the readiness report ("store", "redis", "broker", ...).
    name: str = "dependency"

    @abstractmethod
    async def check(self) -> dict[str, Any]:
        """Return details (adapter, latency, ...) when ready.

        Raises:
            ServiceUnavailable: when the dependency does not answer.
        """


# -- AI chat: short-term memory, prompt templates, the model --------------------------------


@dataclass(slots=True, frozen=True)
class ShortTermStats:
    """What short-term memory holds for one conversation.

    Attributes:
        count: messages in the window (0 when expired or never written).
        ttl_seconds: seconds until the window expires; None when there is no window.
    """

    count: int
    ttl_seconds: float | None


class ShortTermMemory(ABC):
    """Short-term chat memory: the last messages of each conversation, capped and expiring.

    One window per conversation id, holding at most ``max_messages`` messages (the newest) and
    expiring ``ttl_seconds`` after the last write. Messages come back equal to what was written
    (id, role, content, created_at with its time zone, metadata).
    """

    #: the cap of one window (NOTIBOT_SHORT_TERM_MAX)
    max_messages: int
    #: seconds a window lives after its last write (NOTIBOT_SHORT_TERM_TTL)
    ttl_seconds: float

    def __init__(self, *, max_messages: int, ttl_seconds: float) -> None:
        """Keep the window's cap and lifetime, which every adapter checks the same way.

        Raises:
            ValueError: ``max_messages`` < 1 or ``ttl_seconds`` <= 0.
        """
        if max_messages < 1:
            raise ValueError(f"max_messages must be >= 1, not {max_messages}")
        if not ttl_seconds > 0:
            raise ValueError(f"ttl_seconds must be > 0, not {ttl_seconds}")
        self.max_messages = max_messages
        self.ttl_seconds = float(ttl_seconds)

    @abstractmethod
    async def append(self, conversation_id: str, messages: Sequence[Message]) -> None:
        """Append ``messages`` (in the given order), keep only the newest ``max_messages`` and
        set the window to expire ``ttl_seconds`` from now, as one atomic step: concurrent
        appends never lose a message below the cap nor leave a window without expiry."""

    @abstractmethod
    async def recent(self, conversation_id: str) -> list[Message]:
        """The window's messages, oldest first; ``[]`` when it expired or never existed."""

    @abstractmethod
    async def replace(self, conversation_id: str, messages: Sequence[Message]) -> None:
        """Make the window exactly the newest ``max_messages`` of ``messages`` with a fresh
        expiry, atomically (used to refill an expired window from long-term memory). An
        empty ``messages`` deletes the window."""

    @abstractmethod
    async def delete(self, conversation_id: str) -> None:
        """Forget the window (no error when there is none)."""

    @abstractmethod
    async def stats(self, conversation_id: str) -> ShortTermStats:
        """Message count and seconds left of the window."""


@dataclass(slots=True, frozen=True)
class PromptTemplateFilter:
    """Optional filters of :meth:`PromptTemplateRepository.list` (None: any)."""

    kind: PromptKind | None = None
    language: str | None = None
    active: bool | None = None


class PromptTemplateRepository(ABC):
    """Prompt templates with their version history.

    The repository keeps the current version of each template and every earlier version.
    Names are unique among current templates of the same kind and language.
    """

    @abstractmethod
    async def add(self, template: PromptTemplate) -> None:
        """Store a new template (its version 1).

        Raises:
            Conflict: ``prompt_template_exists`` (same id) or ``prompt_template_name_taken``
                (same kind, language and name as another template).
        """

    @abstractmethod
    async def get(self, template_id: str, *, version: int | None = None) -> PromptTemplate:
        """The current version, or the given earlier ``version``.

        Raises:
            NotFound: ``prompt_template_not_found`` or ``prompt_template_version_not_found``.
        """

    @abstractmethod
    async def update(self, template: PromptTemplate) -> None:
        """Store ``template`` as the new current version; the previous one joins the history.

        ``template.version`` must be the stored current version + 1 (compare-and-set: two
        concurrent updates of one version cannot both win).

        Raises:
            NotFound: ``prompt_template_not_found``.
            Conflict: ``prompt_template_version_conflict`` (the stored version moved on) or
                ``prompt_template_name_taken``.
        """

    @abstractmethod
    async def delete(self, template_id: str) -> None:
        """Delete the template and its history. Raises NotFound."""

    @abstractmethod
    async def list(self, filter: PromptTemplateFilter, *, limit: int,
                   offset: int) -> Page[PromptTemplate]:
        """Current versions, ordered by kind, language, name, id."""

    @abstractmethod
    async def versions(self, template_id: str) -> list[PromptTemplate]:
        """Every version of the template, oldest first (the last is the current one).
        Raises NotFound."""

    @abstractmethod
    async def find_active(self, kind: PromptKind, language: str) -> PromptTemplate | None:
        """The active template of ``kind`` in ``language`` (the most recently updated one,
        then the smallest id, when several are active), or None."""

    @abstractmethod
    async def count(self) -> int:
        """How many templates exist (current versions)."""


@dataclass(slots=True, frozen=True)
class PromptMessage:
    """One message of a prompt, in a model's terms.

    Attributes:
        role: ``system`` (instructions and delimited data), ``user`` (the customer) or
            ``assistant`` (what the bot, an operator or a campaign said to the customer).
        content: the text.
    """

    role: str
    content: str


@dataclass(slots=True, frozen=True)
class ChatRequest:
    """What a chat model is asked.

    Attributes:
        messages: the whole prompt, already trimmed: system messages first, then the history
            oldest first, then the customer's new message (``user``) last.
        language: the language to answer in (ISO 639-1, e.g. ``"vi"``).
        facts: the structured data the context template was rendered from (``customer``
            profile dict, ``notifications`` list of dicts with campaign, subject, status,
            sent_at), for models that do not read prose (the offline model).
    """

    messages: list[PromptMessage]
    language: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class ChatReply:
    """A model's answer.

    Attributes:
        text: the reply (non-empty).
        model: the model's name as the provider reports it (e.g. ``gemini-2.5-flash``).
        tokens_in: prompt tokens billed/counted, None when the model does not say.
        tokens_out: reply tokens, None when the model does not say.
    """

    text: str
    model: str
    tokens_in: int | None = None
    tokens_out: int | None = None


class ChatModel(ABC):
    """A large language model (or a stand-in) that answers a chat prompt."""

    #: the configured model name (shown before any reply)
    name: str = "model"

    @abstractmethod
    async def generate(self, request: ChatRequest) -> ChatReply:
        """Answer ``request``.

        Raises:
            LLMUnavailable: the model failed, timed out (``llm_timeout``), refused for rate
                limits (``llm_rate_limited``), or answered nothing (``llm_empty_reply``);
                code ``llm_unavailable`` otherwise.
        """

    async def close(self) -> None:
        """Release clients (default: nothing to release)."""
        return None


class PromptTrimmer(ABC):
    """Fits a prompt into a token budget."""

    @abstractmethod
    async def count_tokens(self, messages: Sequence[PromptMessage]) -> int:
        """Tokens of ``messages`` as the trimmer counts them (an estimate for most models)."""

    @abstractmethod
    async def trim(self, messages: Sequence[PromptMessage], budget: int) -> list[PromptMessage]:
        """Drop the oldest history until ``messages`` fit in ``budget`` tokens.

        The leading system messages and the last message (the customer's new one) are always
        kept, even when they alone exceed the budget; the order of what is kept is unchanged.
        """
