"""The composition root: the only module that chooses adapters (dependency-injector).

``Container`` wires settings, adapters and services; ``providers.Selector`` picks adapters from
the settings (NOTIBOT_STORE, NOTIBOT_QUEUE). Tests override any provider. :class:`Notibot` is
the embedding facade around a container: start/stop its resources and reach the services.
"""

from __future__ import annotations

import logging
import secrets
import sys
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from notibot.adapters.memory import (
    InlineJobQueue,
    MemoryCampaignRepository,
    MemoryConversationRepository,
    MemoryCustomerRepository,
    MemoryDeliveryRepository,
    MemoryIdempotencyStore,
    MemoryJobRepository,
    MemoryStoreHealth,
    MemoryUploadStore,
    MemoryUserRepository,
)
from notibot.adapters.phone import PhonenumbersParser
from notibot.adapters.security import Argon2PasswordHasher, JwtTokenService
from notibot.adapters.system import SystemClock, UuidIdGenerator
from notibot.adapters.tabular import PandasCustomerFileReader
from notibot.adapters.templating import Jinja2TemplateRenderer
from notibot.application.ports import (
    ChatModel,
    EmailSender,
    HealthCheck,
    PromptTemplateRepository,
    PromptTrimmer,
    RateLimiter,
    ShortTermMemory,
)
from notibot.application.services import (
    AuthService,
    CustomerService,
    HealthService,
    JobRunner,
    JobService,
)
from notibot.application.services.campaigns import (
    CampaignSender,
    CampaignSendHandler,
    CampaignService,
    SendPolicy,
)
from notibot.application.services.chat import ChatJobs, ChatService
from notibot.application.services.imports import CustomerImporter, CustomerImportService
from notibot.application.services.prompts import PromptService
from notibot.domain import JobKind
from notibot.settings import Settings

if TYPE_CHECKING:
    from dramatiq import Broker

    from notibot.adapters.dramatiq import DramatiqJobQueue
    from notibot.adapters.mongo import LazyDatabase, MongoClientFactory
    from notibot.adapters.redis import RedisConnection

log = logging.getLogger("notibot")


def _jwt_secret(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    log.warning("NOTIBOT_JWT_SECRET is not set: using a random secret for this process; "
                "tokens stop working when it restarts")
    return secrets.token_urlsafe(48)


# Redis and Dramatiq adapters are imported when first used: the embedded default never loads
# (nor connects to) them.


def _redis_connection(url: str) -> RedisConnection:
    from notibot.adapters.redis import RedisConnection

    return RedisConnection(url)


def _dramatiq_broker(url: str) -> Broker:
    from notibot.adapters.dramatiq import configure_broker

    return configure_broker(url)


def _dramatiq_job_queue(broker: Broker) -> DramatiqJobQueue:
    from notibot.adapters.dramatiq import DramatiqJobQueue

    return DramatiqJobQueue(broker)


# MongoDB adapters are imported when first used, too. Repositories get a LazyDatabase: the
# container builds them before any event loop runs; the motor client is made inside the loop.


def _mongo_factory(url: str | None, database: str) -> MongoClientFactory:
    from notibot.adapters.mongo import MongoClientFactory

    if not url:
        raise ValueError("NOTIBOT_STORE=mongo needs NOTIBOT_MONGODB_URL")
    return MongoClientFactory(url, database)


def _mongo_database(factory: MongoClientFactory) -> LazyDatabase:
    from notibot.adapters.mongo import LazyDatabase

    return LazyDatabase(factory)


def _mongo(name: str) -> Any:
    """A factory building the Mongo adapter class ``name`` over a database."""

    def build(database: Any) -> Any:
        from notibot.adapters import mongo

        return getattr(mongo, name)(database)

    build.__name__ = f"build_{name}"
    return build


# Campaign sending: the email sender (NOTIBOT_EMAIL) and the rate limiter
# (NOTIBOT_EMAIL_RATE), their adapters imported when first used.


def _outbox_email_sender(settings: Settings) -> EmailSender:
    from notibot.adapters.outbox import OutboxEmailSender

    return OutboxEmailSender(settings.resolved_outbox_dir, settings.email_from)


def _smtp_email_sender(settings: Settings) -> EmailSender:
    from notibot.adapters.smtp import SmtpEmailSender

    if not settings.smtp_host:
        raise ValueError("NOTIBOT_EMAIL=smtp needs NOTIBOT_SMTP_HOST")
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SmtpEmailSender(settings.smtp_host, settings.smtp_port,
                           username=settings.smtp_username, password=password,
                           tls=settings.smtp_tls, from_address=settings.email_from)


class _Unlimited(RateLimiter):
    """No limit (NOTIBOT_EMAIL_RATE unset)."""

    async def acquire(self, key: str) -> None:
        return None


def _rate_limiter(settings: Settings, redis: Any) -> RateLimiter:
    """No limit; a limit in this process (inline queue); or one limit held in Redis by every
    worker (NOTIBOT_QUEUE=dramatiq). ``redis`` is a provider, called only when needed."""
    if settings.email_rate is None:
        return _Unlimited()
    if settings.queue == "dramatiq":
        from notibot.adapters.ratelimit import RedisRateLimiter

        return RedisRateLimiter(redis(), settings.email_rate)
    from notibot.adapters.ratelimit import MemoryRateLimiter

    return MemoryRateLimiter(settings.email_rate)


def _uses_redis_url(settings: Settings) -> bool:
    """True when the configuration talks to NOTIBOT_REDIS_URL: short-term chat memory in
    Redis, the Dramatiq broker when NOTIBOT_BROKER_URL is unset, or the email rate limit
    shared by the workers."""
    return settings.memory == "redis" or (settings.queue == "dramatiq" and (
        settings.broker_url is None or settings.email_rate is not None))


# AI chat: short-term memory (NOTIBOT_MEMORY), the chat model (NOTIBOT_LLM) and the prompt
# trimmer, imported when first used.


def _memory_short_term(settings: Settings, clock: Any) -> ShortTermMemory:
    from notibot.adapters.memory import MemoryShortTermMemory

    return MemoryShortTermMemory(clock, max_messages=settings.short_term_max,
                                 ttl_seconds=settings.short_term_ttl)


def _redis_short_term(settings: Settings, redis: Any) -> ShortTermMemory:
    from notibot.adapters.redis import RedisShortTermMemory

    return RedisShortTermMemory(redis, max_messages=settings.short_term_max,
                                ttl_seconds=settings.short_term_ttl)


def _offline_chat_model() -> ChatModel:
    from notibot.adapters.offline import OfflineChatModel

    return OfflineChatModel()


def _gemini_chat_model(settings: Settings) -> ChatModel:
    from notibot.adapters.gemini import GeminiChatModel

    api_key = settings.resolved_gemini_api_key
    if not api_key:
        raise ValueError("NOTIBOT_LLM=gemini needs NOTIBOT_GEMINI_API_KEY (or GOOGLE_API_KEY)")
    return GeminiChatModel(api_key=api_key, model=settings.gemini_model,
                           temperature=settings.gemini_temperature,
                           max_tokens=settings.gemini_max_tokens,
                           timeout=settings.gemini_timeout, base_url=settings.gemini_base_url)


def _prompt_trimmer() -> PromptTrimmer:
    from notibot.adapters.langchain import LangChainPromptTrimmer

    return LangChainPromptTrimmer()


def _memory_prompt_templates() -> PromptTemplateRepository:
    from notibot.adapters.memory import MemoryPromptTemplateRepository

    return MemoryPromptTemplateRepository()


def _service_health_checks(settings: Settings, redis: Any, broker: Any) -> list[HealthCheck]:
    """Readiness checks of the outside services the settings use: ``redis`` and ``broker``
    are providers, called only when needed."""
    checks: list[HealthCheck] = []
    if _uses_redis_url(settings):
        from notibot.adapters.redis import RedisHealthCheck

        checks.append(RedisHealthCheck(redis()))
    if settings.queue == "dramatiq":
        from notibot.adapters.dramatiq import BrokerHealthCheck

        checks.append(BrokerHealthCheck(broker(), settings.resolved_broker_url))
    return checks


def _email_health_checks(settings: Settings, sender: Any) -> list[HealthCheck]:
    """The SMTP server's readiness when NOTIBOT_EMAIL=smtp (``sender`` is a provider)."""
    if settings.email != "smtp":
        return []
    from notibot.adapters.smtp import SmtpHealthCheck

    return [SmtpHealthCheck(sender())]


def _concat(*lists: list[HealthCheck]) -> list[HealthCheck]:
    return [item for items in lists for item in items]


class Container(containers.DeclarativeContainer):
    """All providers of notibot. Build one per process (or per event loop) with
    :func:`build_container`; override providers in tests (``container.clock.override(...)``)."""

    settings = providers.Singleton(Settings)

    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidIdGenerator)
    phones = providers.Singleton(PhonenumbersParser)
    password_hasher = providers.Singleton(Argon2PasswordHasher)
    token_service = providers.Singleton(
        JwtTokenService, secret=providers.Singleton(_jwt_secret, settings), clock=clock)

    #: NOTIBOT_STORE=mongo: the motor client factory (one client per event loop) and the
    #: database handle the Mongo adapters share
    mongo_factory = providers.Singleton(
        _mongo_factory, url=settings.provided.mongodb_url, database=settings.provided.mongodb_db)
    mongo_database = providers.Singleton(_mongo_database, factory=mongo_factory)

    customer_repository = providers.Selector(
        settings.provided.store, memory=providers.Singleton(MemoryCustomerRepository),
        mongo=providers.Singleton(_mongo("MongoCustomerRepository"), mongo_database))
    user_repository = providers.Selector(
        settings.provided.store, memory=providers.Singleton(MemoryUserRepository),
        mongo=providers.Singleton(_mongo("MongoUserRepository"), mongo_database))
    job_repository = providers.Selector(
        settings.provided.store, memory=providers.Singleton(MemoryJobRepository),
        mongo=providers.Singleton(_mongo("MongoJobRepository"), mongo_database))
    health_checks = providers.List(
        providers.Selector(settings.provided.store, memory=providers.Singleton(MemoryStoreHealth),
                           mongo=providers.Singleton(_mongo("MongoHealthCheck"), mongo_database)),
    )

    #: the Redis client holder: one redis.asyncio client, created in the running event loop
    redis_connection = providers.Singleton(_redis_connection, url=settings.provided.redis_url)
    #: the Dramatiq broker jobs are sent to (NOTIBOT_QUEUE=dramatiq); connects on first send
    dramatiq_broker = providers.Singleton(
        _dramatiq_broker, url=settings.provided.resolved_broker_url)
    #: readiness of Redis and the broker, when the settings use them
    service_health_checks = providers.Singleton(
        _service_health_checks, settings=settings, redis=redis_connection.provider,
        broker=dramatiq_broker.provider)

    upload_store = providers.Selector(
        settings.provided.store, memory=providers.Singleton(MemoryUploadStore),
        mongo=providers.Singleton(_mongo("MongoUploadStore"), mongo_database))
    customer_file_reader = providers.Singleton(PandasCustomerFileReader)
    customer_importer = providers.Singleton(
        CustomerImporter, customers=customer_repository, uploads=upload_store,
        reader=customer_file_reader, ids=ids, clock=clock,
        chunk_rows=settings.provided.import_chunk_rows)

    # -- campaigns: templates, sending, delivery tracking
    campaign_repository = providers.Selector(
        settings.provided.store, memory=providers.Singleton(MemoryCampaignRepository),
        mongo=providers.Singleton(_mongo("MongoCampaignRepository"), mongo_database))
    delivery_repository = providers.Selector(
        settings.provided.store, memory=providers.Singleton(MemoryDeliveryRepository),
        mongo=providers.Singleton(_mongo("MongoDeliveryRepository"), mongo_database))
    conversation_repository = providers.Selector(
        settings.provided.store, memory=providers.Singleton(MemoryConversationRepository),
        mongo=providers.Singleton(_mongo("MongoConversationRepository"), mongo_database))
    idempotency_store = providers.Selector(
        settings.provided.store, memory=providers.Singleton(MemoryIdempotencyStore),
        mongo=providers.Singleton(_mongo("MongoIdempotencyStore"), mongo_database))
    template_renderer = providers.Singleton(Jinja2TemplateRenderer)
    email_sender = providers.Selector(
        settings.provided.email,
        outbox=providers.Singleton(_outbox_email_sender, settings),
        smtp=providers.Singleton(_smtp_email_sender, settings))
    rate_limiter = providers.Singleton(_rate_limiter, settings, redis=redis_connection.provider)
    #: batch size, concurrency, retries of a send; tests override it (``SendPolicy(...)``)
    campaign_send_policy = providers.Object(SendPolicy())
    campaign_send_handler = providers.Singleton(
        CampaignSendHandler, campaigns=campaign_repository, customers=customer_repository,
        deliveries=delivery_repository, conversations=conversation_repository,
        idempotency=idempotency_store, renderer=template_renderer, email=email_sender,
        rate_limiter=rate_limiter, ids=ids, clock=clock, tokens=token_service,
        policy=campaign_send_policy, unsubscribe_base_url=settings.provided.resolved_public_url)

    # -- AI chat: memory, prompt templates, the model
    short_term_memory = providers.Selector(
        settings.provided.memory,
        memory=providers.Singleton(_memory_short_term, settings, clock),
        redis=providers.Singleton(_redis_short_term, settings, redis_connection))
    prompt_template_repository = providers.Selector(
        settings.provided.store, memory=providers.Singleton(_memory_prompt_templates),
        mongo=providers.Singleton(_mongo("MongoPromptTemplateRepository"), mongo_database))
    chat_model = providers.Selector(
        settings.provided.llm, offline=providers.Singleton(_offline_chat_model),
        gemini=providers.Singleton(_gemini_chat_model, settings))
    prompt_trimmer = providers.Singleton(_prompt_trimmer)
    prompt_service = providers.Singleton(
        PromptService, templates=prompt_template_repository, customers=customer_repository,
        renderer=template_renderer, ids=ids, clock=clock)
    chat_service = providers.Singleton(
        ChatService, customers=customer_repository, conversations=conversation_repository,
        deliveries=delivery_repository, campaigns=campaign_repository,
        short_term=short_term_memory, prompts=prompt_service, model=chat_model,
        trimmer=prompt_trimmer, ids=ids, clock=clock,
        token_budget=settings.provided.prompt_token_budget)

    #: job kind -> handler (JobHandler); tests add kinds with ``job_handlers.add_kwargs``.
    job_handlers = providers.Dict({
        JobKind.CSV_IMPORT.value: customer_importer.provided.run,
        JobKind.CAMPAIGN_SEND.value: campaign_send_handler.provided.run,
        JobKind.CHAT_REPLY.value: chat_service.provided.run_job,
    })
    #: job kind -> what to release when a job is cancelled before it started
    job_discards = providers.Dict({JobKind.CSV_IMPORT.value: customer_importer.provided.discard})
    job_runner = providers.Singleton(
        JobRunner, jobs=job_repository, clock=clock, handlers=job_handlers,
        heartbeat_interval=settings.provided.job_heartbeat_interval, discards=job_discards)
    job_queue = providers.Selector(
        settings.provided.queue,
        inline=providers.Singleton(InlineJobQueue, executor=job_runner.provided.run,
                                   concurrency=settings.provided.job_concurrency),
        dramatiq=providers.Singleton(_dramatiq_job_queue, broker=dramatiq_broker),
    )

    auth_service = providers.Singleton(
        AuthService, users=user_repository, hasher=password_hasher, tokens=token_service,
        ids=ids, clock=clock, access_ttl=settings.provided.access_token_ttl,
        refresh_ttl=settings.provided.refresh_token_ttl,
        allow_signup=settings.provided.allow_signup)
    customer_service = providers.Singleton(
        CustomerService, customers=customer_repository, phones=phones, ids=ids, clock=clock,
        default_region=settings.provided.default_region)
    job_service = providers.Singleton(
        JobService, jobs=job_repository, queue=job_queue, ids=ids, clock=clock,
        kinds=job_handlers.provided.keys.call())
    email_health_checks = providers.Singleton(
        _email_health_checks, settings=settings, sender=email_sender.provider)
    health_service = providers.Singleton(
        HealthService, checks=providers.Callable(
            _concat, health_checks, service_health_checks, email_health_checks))
    import_service = providers.Singleton(
        CustomerImportService, jobs=job_service, job_repository=job_repository,
        uploads=upload_store, reader=customer_file_reader,
        max_upload_bytes=providers.Callable(
            lambda mb: int(mb * 1024 * 1024), settings.provided.max_upload_mb),
        default_region=settings.provided.default_region,
        chunk_rows=settings.provided.import_chunk_rows)
    campaign_service = providers.Singleton(
        CampaignService, campaigns=campaign_repository, renderer=template_renderer, ids=ids,
        clock=clock)
    chat_jobs = providers.Singleton(
        ChatJobs, chat=chat_service, customers=customer_repository, jobs=job_service,
        ids=ids)
    campaign_sender = providers.Singleton(
        CampaignSender, campaigns=campaign_repository, customers=customer_repository,
        deliveries=delivery_repository, jobs=job_service,
        idempotency=idempotency_store, renderer=template_renderer, ids=ids, clock=clock,
        tokens=token_service)


def build_container(settings: Settings | None = None, **overrides: Any) -> Container:
    """Return a new container for ``settings`` (default: read from the environment).

    Parameters:
        overrides: provider name -> object, e.g. ``clock=FakeClock()``; each replaces that
            provider with the given object.

    Raises:
        pydantic.ValidationError: a setting is missing or invalid.
    """
    container = Container()
    container.settings.override(providers.Object(settings or Settings()))
    for name, value in overrides.items():
        getattr(container, name).override(providers.Object(value))
    return container


class Notibot:
    """The embedding API: one notibot instance over a container.

    Usage::

        app = Notibot.from_settings()
        await app.start()
        customer = await app.customers.create({"full_name": "An", "email": "an@example.org"})
        await app.stop()

    Attributes:
        generated_admin_password: set by :meth:`start` when it created the ``admin`` user with
            a random password (embedded default with no admin configured), else None.
    """

    def __init__(self, container: Container) -> None:
        self.container = container
        self.generated_admin_password: str | None = None
        self._started = False
        self._stopped = False

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> Notibot:
        """Build an instance over :func:`build_container` (same parameters)."""
        return cls(build_container(settings, **overrides))

    @property
    def settings(self) -> Settings:
        """The settings in force."""
        return self.container.settings()

    @property
    def auth(self) -> AuthService:
        """Login, tokens, users."""
        return self.container.auth_service()

    @property
    def customers(self) -> CustomerService:
        """Customer use cases."""
        return self.container.customer_service()

    @property
    def jobs(self) -> JobService:
        """Job use cases."""
        return self.container.job_service()

    @property
    def imports(self) -> CustomerImportService:
        """Customer file imports."""
        return self.container.import_service()

    @property
    def campaigns(self) -> CampaignService:
        """Campaigns ("notification configs"): create, read, replace, delete."""
        return self.container.campaign_service()

    @property
    def campaign_sender(self) -> CampaignSender:
        """Sending campaigns (jobs), retrying failed deliveries, history and stats."""
        return self.container.campaign_sender()

    @property
    def prompts(self) -> PromptService:
        """Prompt templates: create, version, render; the defaults."""
        return self.container.prompt_service()

    @property
    def chat(self) -> ChatService:
        """AI chat: send a message, history, sessions, memory stats."""
        return self.container.chat_service()

    @property
    def chat_jobs(self) -> ChatJobs:
        """AI chat as ``chat_reply`` jobs (``mode=async``)."""
        return self.container.chat_jobs()

    @property
    def health(self) -> HealthService:
        """Dependency readiness."""
        return self.container.health_service()

    async def start(self, *, ensure_admin: bool = True, run_jobs: bool = True) -> None:
        """Initialise resources, mark jobs abandoned by dead processes failed, and make sure an
        admin exists (NOTIBOT_ADMIN_USERNAME/PASSWORD, or on the embedded default a generated
        ``admin`` whose password is printed once to stderr). Idempotent.

        Parameters:
            ensure_admin: False skips the admin step (CLI commands that manage users or only
                run a job in-process).
            run_jobs: hand jobs still queued to the queue again (the inline queue loses them
                with the process that held them; a Dramatiq message may have run out of
                retries). Workers pass False: the API servers do this.

        Raises:
            Conflict: ``admin_username_taken`` (see :meth:`AuthService.ensure_admin`).
            RuntimeError: the instance was stopped.
        """
        if self._stopped:
            raise RuntimeError("this Notibot instance was stopped; build a new one")
        if self._started:
            return
        result = self.container.init_resources()
        if result is not None:
            await result
        settings = self.settings
        self.container.token_service()  # resolve the secret now: a bad one fails at start-up
        if settings.store == "memory" and settings.queue == "dramatiq":
            log.warning("NOTIBOT_QUEUE=dramatiq with the memory store: only workers inside this "
                        "process can run jobs; `notibot worker` needs NOTIBOT_STORE=mongo")
        if settings.store == "mongo":
            from notibot.adapters.mongo import ensure_indexes

            # reaches the server now: a wrong URL or a down server fails start-up
            await ensure_indexes(self.container.mongo_database().resolve())
        for job in await self.jobs.fail_stale(settings.job_stale_after):
            log.warning("job %s was abandoned by a dead process; marked failed", job.id)
        for template in await self.prompts.install_defaults():
            log.info("installed default prompt template %s (%s, %s)", template.name,
                     template.kind.value, template.language)
        if ensure_admin:
            await self._ensure_admin(settings)
        if run_jobs:
            # the inline queue lost its tasks with the previous process; a Dramatiq message
            # may have run out of retries. Runners skip jobs no longer queued, so a second
            # message for a job still in the broker is harmless.
            for job in await self.jobs.requeue_queued():
                log.info("job %s was still queued; queued again", job.id)
        self._started = True

    async def _ensure_admin(self, settings: Settings) -> None:
        if settings.admin_username and settings.admin_password:
            if await self.auth.ensure_admin(settings.admin_username,
                                            settings.admin_password.get_secret_value()):
                log.info("created admin user %r from settings", settings.admin_username)
        elif settings.is_embedded_default and await self.auth.admin_count() == 0:
            password = secrets.token_urlsafe(12)
            await self.auth.create_user("admin", password, "admin")
            self.generated_admin_password = password
            print(f"notibot: created user 'admin' with password {password}\n"
                  "notibot: it is shown only once; set NOTIBOT_ADMIN_USERNAME and "
                  "NOTIBOT_ADMIN_PASSWORD to choose your own.", file=sys.stderr, flush=True)

    async def stop(self) -> None:
        """Stop the job queue (interrupting inline jobs) and release resources. Final: a
        stopped instance cannot be started again; build a new one."""
        if not self._started:
            return
        await self.container.job_queue().close()
        await self.container.email_sender().close()
        await self.container.chat_model().close()
        if _uses_redis_url(self.settings):
            await self.container.redis_connection().aclose()
        if self.settings.store == "mongo":
            await self.container.mongo_factory().close()
        result = self.container.shutdown_resources()
        if result is not None:
            await result
        self._started = False
        self._stopped = True
