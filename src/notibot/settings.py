"""Settings from the environment (prefix ``NOTIBOT_``) or a ``.env`` file, via pydantic-settings.

Every name here is documented in README.md; operators and tests rely on them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import phonenumbers
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: URL schemes NOTIBOT_REDIS_URL accepts.
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
#: URL schemes NOTIBOT_BROKER_URL accepts (amqps: RabbitMQ over TLS).
BROKER_SCHEMES = frozenset({"redis", "rediss", "amqp", "amqps"})


class Settings(BaseSettings):
    """notibot's configuration. Invalid values fail at start-up with the setting's name.

    The *embedded default* is what runs with no configuration at all: in-memory store, inline
    job queue. Outside it, NOTIBOT_JWT_SECRET is required.
    """

    model_config = SettingsConfigDict(env_prefix="NOTIBOT_", env_file=".env",
                                      env_file_encoding="utf-8", extra="ignore")

    store: Literal["memory", "mongo"] = Field(
        "memory", description="where data lives: memory (this process) or mongo (MongoDB)")
    mongodb_url: str | None = Field(
        None, repr=False, description=(
            "MongoDB URL (mongodb:// or mongodb+srv://), required with NOTIBOT_STORE=mongo"))
    mongodb_db: str = Field("notibot", min_length=1, max_length=63,
                            description="MongoDB database name")
    queue: Literal["inline", "dramatiq"] = Field(
        "inline", description=("how jobs run: inline (asyncio tasks in the server process) or "
                               "dramatiq (worker processes, `notibot worker`)"))
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", repr=False,
        description=("Redis URL (redis://, rediss:// or unix://); also the Dramatiq broker "
                     "when NOTIBOT_BROKER_URL is unset"))
    broker_url: str | None = Field(
        None, repr=False, description=(
            "Dramatiq broker: redis://, rediss:// or amqp:// URL; unset uses NOTIBOT_REDIS_URL"))

    data_dir: Path = Field(Path("notibot-data"), description=(
        "local files of the embedded default (the email outbox, ...)"))
    email: Literal["outbox", "smtp"] = Field(
        "outbox", description="how email leaves: outbox (.eml files in a folder) or smtp")
    outbox_dir: Path | None = Field(
        None, description="outbox folder; unset: <NOTIBOT_DATA_DIR>/outbox")
    smtp_host: str | None = Field(None, description="SMTP server, required with NOTIBOT_EMAIL=smtp")
    smtp_port: int | None = Field(None, ge=1, le=65535, description=(
        "SMTP port; unset: 25 (none), 587 (starttls) or 465 (ssl)"))
    smtp_username: str | None = Field(None, description="SMTP user (AUTH), if the server asks")
    smtp_password: SecretStr | None = Field(None, description="SMTP password")
    smtp_tls: Literal["none", "starttls", "ssl"] = Field(
        "starttls", description="SMTP transport security: none, starttls or ssl (implicit TLS)")
    email_from: str = Field("notibot@localhost", description="From address of campaign emails")
    email_rate: float | None = Field(None, gt=0, description=(
        "email messages per second at most, across every worker (Redis with dramatiq); "
        "unset: no limit"))
    public_url: str | None = Field(None, description=(
        "public base URL of this API, used in emails' unsubscribe links (served at "
        "/unsubscribe; https for one-click unsubscribe); unset: "
        "http://NOTIBOT_HOST:NOTIBOT_PORT"))

    memory: Literal["memory", "redis"] = Field(
        "memory", description=("short-term chat memory: memory (this process) or redis "
                               "(NOTIBOT_REDIS_URL)"))
    short_term_ttl: float = Field(1800, gt=0, description=(
        "seconds a conversation's short-term window lives after its last message"))
    short_term_max: int = Field(50, ge=2, le=1000, description=(
        "messages kept in a conversation's short-term window"))
    llm: Literal["offline", "gemini"] = Field(
        "offline", description=("chat model: offline (deterministic, no AI) or gemini "
                                "(Google Gemini through LangChain)"))
    gemini_api_key: SecretStr | None = Field(
        None, repr=False, description="Gemini API key; unset: GOOGLE_API_KEY")
    gemini_model: str = Field("gemini-2.5-flash", min_length=1, description="Gemini model name")
    gemini_base_url: str | None = Field(
        None, description="Gemini API base URL (a gateway, or a stub in tests); unset: Google's")
    gemini_temperature: float = Field(0.3, ge=0, le=2, description="Gemini sampling temperature")
    gemini_max_tokens: int = Field(1024, ge=1, description="longest Gemini reply, tokens")
    gemini_timeout: float = Field(30.0, gt=0, description="seconds to wait for a Gemini reply")
    prompt_token_budget: int = Field(8000, ge=256, description=(
        "largest prompt sent to the chat model, tokens (oldest history dropped first)"))

    jwt_secret: SecretStr | None = Field(
        None, description="HS256 key, at least 32 bytes; random on the embedded default only")
    access_token_ttl: int = Field(1800, ge=60, description="access token lifetime, seconds")
    refresh_token_ttl: int = Field(7 * 24 * 3600, ge=60,
                                   description="refresh token lifetime, seconds")
    admin_username: str | None = Field(None, description="first admin, created at start-up")
    admin_password: SecretStr | None = Field(None, description="password of the first admin")
    allow_signup: bool = Field(False, description="open POST /auth/register to anyone")

    default_region: str = Field("VN", min_length=2, max_length=2,
                                description="ISO 3166-1 region for phones without country code")

    max_upload_mb: float = Field(50, gt=0, description="largest upload accepted, MiB (413 above)")
    import_chunk_rows: int = Field(50_000, ge=100, description=(
        "CSV import: rows per batch (between progress reports and cancel checks)"))

    job_concurrency: int = Field(4, ge=1, description="inline queue: jobs running at once")
    job_heartbeat_interval: float = Field(10.0, gt=0,
                                          description="seconds between job heartbeats")
    job_stale_after: float = Field(120.0, gt=0, description=(
        "seconds without heartbeat after which a running job is marked failed (at start-up, "
        "and by workers' periodic sweep)"))

    host: str = Field("127.0.0.1", description="notibot serve: bind address")
    port: int = Field(8000, ge=1, le=65535, description="notibot serve: port")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region with phone numbering metadata "
                             "(ISO 3166-1 alpha-2, e.g. VN, US, GB)")
        return region

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        scheme = urlsplit(value).scheme.lower()
        if scheme not in REDIS_SCHEMES:
            raise ValueError(f"{scheme or 'no scheme'!r} is not a Redis URL scheme: "
                             "use redis://host:6379/0, rediss:// (TLS) or unix://")
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.email == "smtp" and not self.smtp_host:
            raise ValueError("NOTIBOT_EMAIL=smtp needs NOTIBOT_SMTP_HOST")
        if self.llm == "gemini" and self.resolved_gemini_api_key is None:
            raise ValueError("NOTIBOT_LLM=gemini needs NOTIBOT_GEMINI_API_KEY (or GOOGLE_API_KEY)")
        if self.store == "mongo":
            if not self.mongodb_url:
                raise ValueError("NOTIBOT_STORE=mongo needs NOTIBOT_MONGODB_URL, e.g. "
                                 "mongodb://user:password@localhost:27017/?authSource=admin")
            scheme = urlsplit(self.mongodb_url).scheme.lower()
            if scheme not in ("mongodb", "mongodb+srv"):
                raise ValueError("NOTIBOT_MONGODB_URL must start with mongodb:// or "
                                 f"mongodb+srv:// (got {scheme or 'no scheme'!r})")
        if self.queue == "dramatiq":
            scheme = urlsplit(self.resolved_broker_url).scheme.lower()
            if scheme not in BROKER_SCHEMES:
                raise ValueError(
                    "NOTIBOT_QUEUE=dramatiq needs a broker URL with scheme redis://, rediss:// "
                    f"or amqp:// in NOTIBOT_BROKER_URL (got {scheme or 'no scheme'!r})")
        if self.jwt_secret is not None and len(self.jwt_secret.get_secret_value().encode()) < 32:
            raise ValueError("NOTIBOT_JWT_SECRET must be at least 32 bytes")
        if not self.is_embedded_default and self.jwt_secret is None:
            raise ValueError("NOTIBOT_JWT_SECRET is required outside the embedded default")
        if (self.admin_username is None) != (self.admin_password is None):
            raise ValueError("set both NOTIBOT_ADMIN_USERNAME and NOTIBOT_ADMIN_PASSWORD, "
                             "or neither")
        return self

    @property
    def resolved_outbox_dir(self) -> Path:
        """NOTIBOT_OUTBOX_DIR, else ``<NOTIBOT_DATA_DIR>/outbox``."""
        return self.outbox_dir or self.data_dir / "outbox"

    @property
    def resolved_public_url(self) -> str:
        """NOTIBOT_PUBLIC_URL without a trailing slash, else where `notibot serve` listens."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def resolved_gemini_api_key(self) -> str | None:
        """NOTIBOT_GEMINI_API_KEY, else the GOOGLE_API_KEY environment variable, else None
        (an empty value counts as unset)."""
        if self.gemini_api_key is not None and self.gemini_api_key.get_secret_value():
            return self.gemini_api_key.get_secret_value()
        return os.environ.get("GOOGLE_API_KEY") or None

    @property
    def resolved_broker_url(self) -> str:
        """The Dramatiq broker's URL: NOTIBOT_BROKER_URL, else NOTIBOT_REDIS_URL."""
        return self.broker_url or self.redis_url

    @property
    def is_embedded_default(self) -> bool:
        """True when every adapter is the in-process default (memory store, inline queue)."""
        return self.store == "memory" and self.queue == "inline"
