"""Paging arguments shared by the list use cases."""

from __future__ import annotations

from notibot.application.ports import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from notibot.domain import InvalidInput


def check_page(limit: int | None, offset: int | None) -> tuple[int, int]:
    """Return ``(limit, offset)`` with defaults applied: limit 1 to
    :data:`~notibot.application.ports.MAX_PAGE_SIZE` (default
    :data:`~notibot.application.ports.DEFAULT_PAGE_SIZE`), offset >= 0 (default 0).

    Raises:
        InvalidInput: code ``invalid_paging``.
    """
    limit = DEFAULT_PAGE_SIZE if limit is None else limit
    offset = 0 if offset is None else offset
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}", code="invalid_paging",
                           details={"field": "limit"})
    if offset < 0:
        raise InvalidInput("offset must be >= 0", code="invalid_paging",
                           details={"field": "offset"})
    return limit, offset
