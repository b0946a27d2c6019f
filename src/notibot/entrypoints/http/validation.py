"""Parsing requests into the pydantic models of :mod:`notibot.entrypoints.http.schemas`.

The HTTP layer validates requests itself (spectree only documents them), so every failure has
the error shape of :mod:`notibot.entrypoints.http.errors`: HTTP 422 ``validation_error`` with
``details`` = ``[{"field", "message"}]``.
"""

from __future__ import annotations

from typing import TypeVar

from falcon import MEDIA_JSON, HTTPUnsupportedMediaType
from falcon.asgi import Request
from pydantic import BaseModel, ValidationError

from notibot.entrypoints.http.errors import RequestValidationError

M = TypeVar("M", bound=BaseModel)


async def parse_body(req: Request, model: type[M]) -> M:
    """Read the JSON body of ``req`` into ``model``.

    A request without ``Content-Type`` is read as JSON; otherwise it must be
    ``application/json`` (parameters such as ``charset`` allowed).

    Raises:
        falcon.HTTPUnsupportedMediaType: another content type, such as a form (HTTP 415
            ``unsupported_media_type``).
        falcon.MediaMalformedError: the body is not JSON (HTTP 400 ``invalid_json``).
        RequestValidationError: the body does not match ``model``, or is empty (HTTP 422).
    """
    media_type = (req.content_type or MEDIA_JSON).partition(";")[0].strip().lower()
    if media_type != MEDIA_JSON:
        raise HTTPUnsupportedMediaType(
            description=f"send the body as {MEDIA_JSON}, not {media_type or 'nothing'}")
    media = await req.get_media(default_when_empty=None)
    try:
        return model.model_validate(media)
    except ValidationError as error:
        raise RequestValidationError.from_pydantic(error, "body") from None


def parse_query(req: Request, model: type[M]) -> M:
    """Read the query string of ``req`` into ``model`` (blank values count as absent; a
    parameter given twice is an error unless the model takes a list).

    Raises:
        RequestValidationError: a parameter is unknown or invalid (HTTP 422).
    """
    try:
        return model.model_validate(req.params)
    except ValidationError as error:
        raise RequestValidationError.from_pydantic(error, "query") from None
