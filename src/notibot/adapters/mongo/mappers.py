"""Explicit data mappers between entities and MongoDB documents (no ODM).

Conventions of every document:

- ``_id`` is the entity's id (a string).
- datetimes are BSON dates: stored as UTC with millisecond precision (BSON's resolution:
  microseconds are truncated) and returned timezone-aware in UTC.
- enums are stored as their values (``"running"``, ``"admin"``).
- free-form maps (customer ``attributes``, the ``values`` of a job error whose keys are CSV
  column names, job ``params``/``counters``/``result``) have their keys escaped so that any
  text can be a key, including inside ``$set`` updates:
  ``%`` -> ``%25``, ``.`` -> ``%2E``, a leading ``$`` -> ``%24`` (MongoDB reads ``.`` as a
  path and ``$`` as an operator). Reading reverses it exactly.
- ``*_key`` fields and ``last_seen_at`` are shadow fields for queries; they never reach an
  entity.

Shapes::

    customers  {_id, full_name, email, phone, company, position, address, city, country,
                language, tags: [str], attributes: {}, subscribed, created_at, updated_at,
                city_key, country_key, language_key}          (*_key: case-folded copies)
    users      {_id, username, username_key, password_hash, role, created_at, active}
    jobs       {_id, kind, status, created_at, created_by, params, total, counters,
                errors: [job error] (first 100), error_count, cancel_requested, attempts,
                started_at, finished_at, heartbeat_at, result, failure_reason,
                last_seen_at, error_seq}
                (last_seen_at = heartbeat_at or started_at or created_at, for stale search;
                 error_seq counts the rows of job_errors, written by the repository only)
    job_errors {job_id, seq, line, code, message, values}
    job error  {code, message, line, values}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from notibot.domain import Customer, Job, JobError, JobStatus, Role, User
from notibot.domain.job import MAX_INLINE_ERRORS

# -- helpers ---------------------------------------------------------------------------------


def as_utc(value: datetime | None) -> datetime | None:
    """A stored date as an aware UTC datetime (naive values from a client without tz_aware
    are UTC by BSON's definition)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def fold(value: str | None) -> str | None:
    """The case-folded form used by the ``*_key`` shadow fields and their filters."""
    return value.casefold() if value is not None else None


def _escape_key(key: str) -> str:
    if "%" in key or "." in key or key.startswith("$"):
        key = key.replace("%", "%25").replace(".", "%2E")
        if key.startswith("$"):
            key = "%24" + key[1:]
    return key


def _unescape_key(key: str) -> str:
    return unquote(key) if "%" in key else key


def escape_keys(value: Any) -> Any:
    """``value`` with the keys of every (nested) dict escaped for storage."""
    if isinstance(value, dict):
        return {_escape_key(str(k)): escape_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escape_keys(v) for v in value]
    return value


def unescape_keys(value: Any) -> Any:
    """The inverse of :func:`escape_keys`."""
    if isinstance(value, dict):
        return {_unescape_key(k): unescape_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unescape_keys(v) for v in value]
    return value


# -- customers -------------------------------------------------------------------------------


def customer_to_document(customer: Customer) -> dict[str, Any]:
    """The document of ``customer`` (a new dict sharing no list or dict with the entity)."""
    return {
        "_id": customer.id,
        "full_name": customer.full_name,
        "email": customer.email,
        "phone": customer.phone,
        "company": customer.company,
        "position": customer.position,
        "address": customer.address,
        "city": customer.city,
        "country": customer.country,
        "language": customer.language,
        "tags": list(customer.tags),
        "attributes": escape_keys(customer.attributes),
        "subscribed": customer.subscribed,
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
        "city_key": fold(customer.city),
        "country_key": fold(customer.country),
        "language_key": fold(customer.language),
    }


def document_to_customer(document: dict[str, Any]) -> Customer:
    """The customer stored as ``document``."""
    return Customer(
        id=document["_id"],
        full_name=document.get("full_name") or "",
        email=document.get("email"),
        phone=document.get("phone"),
        company=document.get("company"),
        position=document.get("position"),
        address=document.get("address"),
        city=document.get("city"),
        country=document.get("country"),
        language=document.get("language"),
        tags=list(document.get("tags") or []),
        attributes=unescape_keys(document.get("attributes") or {}),
        subscribed=bool(document.get("subscribed", True)),
        created_at=as_utc(document.get("created_at")),
        updated_at=as_utc(document.get("updated_at")),
    )


# -- users -----------------------------------------------------------------------------------


def username_key(username: str) -> str:
    """The case-folded username that the unique index ``username_key_unique`` holds."""
    return username.casefold()


def user_to_document(user: User) -> dict[str, Any]:
    """The document of ``user``."""
    return {
        "_id": user.id,
        "username": user.username,
        "username_key": username_key(user.username),
        "password_hash": user.password_hash,
        "role": user.role.value,
        "created_at": user.created_at,
        "active": user.active,
    }


def document_to_user(document: dict[str, Any]) -> User:
    """The user stored as ``document``."""
    created_at = as_utc(document.get("created_at"))
    assert created_at is not None, "users always have a creation time"
    return User(
        id=document["_id"],
        username=document["username"],
        password_hash=document["password_hash"],
        role=Role(document["role"]),
        created_at=created_at,
        active=bool(document.get("active", True)),
    )


# -- jobs ------------------------------------------------------------------------------------


def job_error_to_document(error: JobError) -> dict[str, Any]:
    """The embedded document of one job error."""
    return {
        "code": error.code,
        "message": error.message,
        "line": error.line,
        "values": escape_keys(error.values) if error.values is not None else None,
    }


def document_to_job_error(document: dict[str, Any]) -> JobError:
    """The job error stored as ``document`` (embedded, or a ``job_errors`` row)."""
    values = document.get("values")
    return JobError(
        code=document["code"],
        message=document.get("message") or "",
        line=document.get("line"),
        values=unescape_keys(values) if values is not None else None,
    )


def job_to_document(job: Job) -> dict[str, Any]:
    """The document of ``job`` without ``error_seq`` (the repository owns that counter);
    only the first :data:`~notibot.domain.job.MAX_INLINE_ERRORS` errors are embedded."""
    return {
        "_id": job.id,
        "kind": job.kind,
        "status": job.status.value,
        "created_at": job.created_at,
        "created_by": job.created_by,
        "params": escape_keys(job.params),
        "total": job.total,
        "counters": escape_keys(job.counters),
        "errors": [job_error_to_document(e) for e in job.errors[:MAX_INLINE_ERRORS]],
        "error_count": job.error_count,
        "cancel_requested": job.cancel_requested,
        "attempts": job.attempts,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "heartbeat_at": job.heartbeat_at,
        "result": escape_keys(job.result) if job.result is not None else None,
        "failure_reason": job.failure_reason,
        "last_seen_at": job.last_seen_at,
    }


def document_to_job(document: dict[str, Any]) -> Job:
    """The job stored as ``document``."""
    created_at = as_utc(document.get("created_at"))
    assert created_at is not None, "jobs always have a creation time"
    return Job(
        id=document["_id"],
        kind=document["kind"],
        created_at=created_at,
        status=JobStatus(document["status"]),
        created_by=document.get("created_by"),
        params=unescape_keys(document.get("params") or {}),
        total=document.get("total"),
        counters=unescape_keys(document.get("counters") or {}),
        errors=[document_to_job_error(e) for e in document.get("errors") or []],
        error_count=int(document.get("error_count") or 0),
        cancel_requested=bool(document.get("cancel_requested", False)),
        attempts=int(document.get("attempts") or 0),
        started_at=as_utc(document.get("started_at")),
        finished_at=as_utc(document.get("finished_at")),
        heartbeat_at=as_utc(document.get("heartbeat_at")),
        result=unescape_keys(document.get("result")),
        failure_reason=document.get("failure_reason"),
    )
