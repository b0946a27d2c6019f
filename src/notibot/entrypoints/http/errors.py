"""Errors -> HTTP responses, in one place.

Every error response has the body ``{"error": {"code", "message", "details"}}``
(:class:`~notibot.entrypoints.http.schemas.ErrorResponse`). Status by exception:

- NotFound: 404, with the error's code (``customer_not_found``, ``job_not_found``, ...);
- Conflict and InvalidTransition: 409 (``customer_conflict``, ``job_not_finished``, ...);
- FileTooLarge: 413 (``file_too_large``); UnsupportedFile: 415 (``binary_file``,
  ``not_utf8``, ...): both are InvalidInput, matched first;
- InvalidInput, including :class:`RequestValidationError`: 422 (``validation_error``,
  ``invalid_email``, ...);
- PermissionDenied: 403 (``permission_denied``);
- AuthenticationFailed: 401 (``authentication_required``, ``invalid_token``,
  ``token_expired``, ``invalid_credentials``) with ``WWW-Authenticate: Bearer``;
- ServiceUnavailable and its subclasses: 503;
- any other NotibotError: 400 with its code;
- falcon's HTTPError (routing, media parsing): its own status, code from
  :func:`http_error_code` (``route_not_found``, ``method_not_allowed``, ``invalid_json``,
  ``invalid_multipart``, ``unsupported_media_type``, ...);
- anything else: 500 ``internal_error``, logged with its traceback, nothing revealed.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import falcon
from falcon.asgi import Request, Response
from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from notibot.domain import (
    AuthenticationFailed,
    Conflict,
    FileTooLarge,
    InvalidInput,
    NotFound,
    NotibotError,
    PermissionDenied,
    ServiceUnavailable,
    UnsupportedFile,
)

log = logging.getLogger("notibot.http")

#: Code of request validation errors (body or query string), HTTP 422.
VALIDATION_ERROR = "validation_error"
#: Code and message of unexpected errors, HTTP 500.
INTERNAL_ERROR = "internal_error"
INTERNAL_MESSAGE = "internal server error; it has been logged"

#: Domain error class -> HTTP status, most specific first (checked with ``isinstance``).
STATUS_BY_ERROR: tuple[tuple[type[NotibotError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),  # InvalidTransition is a Conflict
    (FileTooLarge, 413),  # an InvalidInput
    (UnsupportedFile, 415),  # an InvalidInput
    (InvalidInput, 422),
    (PermissionDenied, 403),
    (AuthenticationFailed, 401),
    (ServiceUnavailable, 503),
    (NotibotError, 400),
)

#: falcon error class -> code, most specific first.
_HTTP_ERROR_CODES: tuple[tuple[type[falcon.HTTPError], str], ...] = (
    (falcon.HTTPRouteNotFound, "route_not_found"),
    (falcon.HTTPMethodNotAllowed, "method_not_allowed"),
    (falcon.MultipartParseError, "invalid_multipart"),  # a MediaMalformedError
    (falcon.MediaMalformedError, "invalid_json"),
    (falcon.MediaNotFoundError, "missing_body"),
    (falcon.HTTPUnsupportedMediaType, "unsupported_media_type"),
    (falcon.HTTPContentTooLarge, "payload_too_large"),
)


class RequestValidationError(InvalidInput):
    """Raised when a request body or query string does not match its schema (HTTP 422).

    ``details`` is a list of ``{"field": dotted path, "message": ...}``.
    """

    default_code = VALIDATION_ERROR

    @classmethod
    def from_pydantic(cls, error: ValidationError, where: str) -> RequestValidationError:
        """Build from a pydantic error; ``where`` (``"body"`` or ``"query"``) names the
        field of an error about the whole input."""
        fields = [
            {"field": ".".join(str(part) for part in item["loc"]) or where,
             "message": item["msg"]}
            for item in error.errors(include_url=False, include_context=False,
                                     include_input=False)
        ]
        noun = "request body" if where == "body" else "query string"
        return cls(f"the {noun} is invalid", details=fields)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"error": {"code": code, "message": message,
                      "details": to_jsonable_python(details, fallback=str)}}


def status_for(error: NotibotError) -> int:
    """The HTTP status of a domain error (see the table of this module)."""
    for cls, status in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return 400  # unreachable: every NotibotError matches the last row


def http_error_code(error: falcon.HTTPError) -> str:
    """The code of a falcon error: a known one, else its title in snake_case
    (``"413 Content Too Large"`` title -> ``content_too_large``)."""
    for cls, code in _HTTP_ERROR_CODES:
        if isinstance(error, cls):
            return code
    title = error.title or falcon.code_to_http_status(error.status_code)
    title = re.sub(r"^\d{3}\s+", "", title)
    return re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") or "http_error"


async def handle_notibot_error(req: Request, resp: Response, error: NotibotError,
                               params: dict[str, Any]) -> None:
    """falcon error handler of :class:`~notibot.domain.NotibotError`."""
    status = status_for(error)
    resp.status = status
    resp.media = error_body(error.code, error.message, error.details)
    if status == 401:
        resp.set_header("WWW-Authenticate", "Bearer")
    if status >= 500:
        log.warning("%s %s: %s (%s)", req.method, req.path, error.message, error.code)


async def handle_http_error(req: Request, resp: Response, error: falcon.HTTPError,
                            params: dict[str, Any]) -> None:
    """falcon error handler of :class:`falcon.HTTPError`: falcon's own errors (unknown
    route, method not allowed, malformed JSON, unsupported media type, ...) in our shape."""
    resp.status = error.status
    if error.headers:
        resp.set_headers(error.headers)
    code = http_error_code(error)
    if code == "route_not_found":
        message = f"no resource at {req.path}; see /docs"
    elif code == "method_not_allowed":
        allowed = dict(error.headers or {}).get("Allow", "")
        message = f"{req.method} is not allowed on {req.path} (allowed: {allowed})"
    else:
        message = error.description or re.sub(r"^\d{3}\s+", "", error.title or "HTTP error")
    resp.media = error_body(code, message)


async def handle_unexpected(req: Request, resp: Response, error: Exception,
                            params: dict[str, Any]) -> None:
    """falcon error handler of any other exception: log it with its traceback and answer
    500 ``internal_error`` without revealing anything about it."""
    log.error("unhandled error in %s %s", req.method, req.path, exc_info=error)
    resp.status = 500
    resp.media = error_body(INTERNAL_ERROR, INTERNAL_MESSAGE)


def add_error_handlers(app: falcon.asgi.App) -> None:
    """Register the handlers above on ``app`` (falcon picks the most specific class)."""
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(NotibotError, handle_notibot_error)
