"""The one error tree of notibot.

Every error the library raises on purpose derives from :class:`NotibotError`. Each carries a
stable machine-readable ``code`` (snake_case, used verbatim in the HTTP error body
``{"error": {"code", "message", "details"}}``), a human ``message`` and optional ``details``
(any JSON-serialisable value). Adapters translate library exceptions into these classes; the
HTTP layer maps the classes to status codes in one place.
"""

from __future__ import annotations

from typing import Any


class NotibotError(Exception):
    """Raised when notibot refuses or fails an operation; the root of the tree.

    Parameters:
        message: what went wrong, for a person.
        code: stable snake_case code; defaults to the class's ``default_code``.
        details: optional JSON-serialisable context (field errors, ids, ...).
    """

    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class NotFound(NotibotError):
    """Raised when an entity with the given id (or key) does not exist.

    Parameters:
        entity: the entity name in snake_case, e.g. ``"customer"``; the code becomes
            ``"<entity>_not_found"``.
        key: the id or key that was looked up.
    """

    default_code = "not_found"

    def __init__(self, entity: str, key: object, *, message: str | None = None) -> None:
        super().__init__(
            message or f"{entity.replace('_', ' ')} {key!s} not found",
            code=f"{entity}_not_found",
            details={"entity": entity, "key": str(key)},
        )
        self.entity = entity
        self.key = key


class Conflict(NotibotError):
    """Raised when a write would break a uniqueness rule or the current state of an entity
    (duplicate email, username taken, deleting a running job)."""

    default_code = "conflict"


class InvalidInput(NotibotError):
    """Raised when input breaks a domain rule (bad email, phone not E.164, empty name, ...).

    ``details`` usually holds ``{"field": name}`` or a list of field errors.
    """

    default_code = "invalid_input"


class FileTooLarge(InvalidInput):
    """Raised when an uploaded file is larger than the configured limit
    (NOTIBOT_MAX_UPLOAD_MB); ``details`` holds ``limit_bytes``."""

    default_code = "file_too_large"


class UnsupportedFile(InvalidInput):
    """Raised when an uploaded file is not text of the expected kind (binary data, not UTF-8)."""

    default_code = "unsupported_file"


class InvalidTransition(Conflict):
    """Raised when a state machine is asked for a transition its current state does not allow
    (e.g. cancelling a job that already succeeded)."""

    default_code = "invalid_transition"


class PermissionDenied(NotibotError):
    """Raised when the caller is known but its role does not allow the operation."""

    default_code = "permission_denied"


class AuthenticationFailed(NotibotError):
    """Raised when credentials or a token are missing, wrong, expired or revoked."""

    default_code = "authentication_failed"


class ServiceUnavailable(NotibotError):
    """Raised when an outside service (database, broker, SMTP server, LLM) cannot be reached
    or answers with an error that is not the caller's fault."""

    default_code = "service_unavailable"


class DeliveryFailed(ServiceUnavailable):
    """Raised when a message could not be handed to the email (or other channel) server.

    ``transient`` tells whether retrying later may succeed (SMTP 4xx, connection lost) or not
    (SMTP 5xx, RFC 5321 section 4.2.1).
    """

    default_code = "delivery_failed"

    def __init__(
        self, message: str, *, transient: bool, code: str | None = None, details: Any = None
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.transient = transient


class LLMUnavailable(ServiceUnavailable):
    """Raised when the chat model fails, times out or rate-limits the request."""

    default_code = "llm_unavailable"


class JobCancelled(NotibotError):
    """Raised inside a running job at a checkpoint once cancellation was requested; the job
    runner catches it and marks the job cancelled. Never reaches an HTTP client."""

    default_code = "job_cancelled"
