"""The one place where pymongo/motor exceptions become notibot errors.

Every adapter method of this package runs its driver calls inside :func:`translate_errors`,
so no pymongo (or bson) exception escapes an adapter:

==========================================================  =====================================
driver exception                                            notibot error (``code``)
==========================================================  =====================================
``ConnectionFailure`` (``AutoReconnect``, ``NetworkTimeout``,  ServiceUnavailable
``ServerSelectionTimeoutError``), ``ExecutionTimeout``,      (``mongodb_unavailable``)
``WTimeoutError``
``DuplicateKeyError`` not handled by the repository          Conflict (the ``conflict_code`` given)
any other ``PyMongoError`` (``OperationFailure``, ...)       ServiceUnavailable (``mongodb_error``),
                                                             generic message, details logged
``bson.errors.BSONError``, ``OverflowError`` (a value BSON   InvalidInput (``unstorable_value``)
cannot hold, e.g. an integer above 2**63)
==========================================================  =====================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from bson.errors import BSONError
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    PyMongoError,
    WTimeoutError,
)

from notibot.domain import Conflict, InvalidInput, NotibotError, ServiceUnavailable

log = logging.getLogger("notibot.adapters.mongo")

#: Code of the ServiceUnavailable raised when MongoDB cannot be reached in time.
UNAVAILABLE_CODE = "mongodb_unavailable"
#: Code of the ServiceUnavailable raised when MongoDB answers with an unexpected error.
ERROR_CODE = "mongodb_error"

_UNREACHABLE = (ConnectionFailure, ExecutionTimeout, WTimeoutError)
_INDEX_IN_MESSAGE = re.compile(r"index: (\S+)")


def unavailable(exc: BaseException | None = None) -> ServiceUnavailable:
    """The ServiceUnavailable (``mongodb_unavailable``) for a server that does not answer."""
    detail = f": {type(exc).__name__}" if exc is not None else ""
    return ServiceUnavailable(f"MongoDB does not answer{detail}", code=UNAVAILABLE_CODE)


@contextmanager
def translate_errors(action: str, *, conflict_code: str = "conflict") -> Iterator[None]:
    """Run the body, turning driver exceptions into the domain's error tree (see the module
    docstring). NotibotErrors raised by the body pass through unchanged.

    Parameters:
        action: what the body does ("add customer"), for log lines and messages.
        conflict_code: code of the Conflict for a DuplicateKeyError the body let through.

    Raises:
        ServiceUnavailable: ``mongodb_unavailable`` or ``mongodb_error``.
        Conflict: a unique index refused the write.
        InvalidInput: ``unstorable_value``.
    """
    try:
        yield
    except NotibotError:
        raise
    except DuplicateKeyError as exc:
        raise Conflict(f"cannot {action}: a unique value is already taken",
                       code=conflict_code, details=duplicate_key_details(exc)) from exc
    except _UNREACHABLE as exc:
        log.warning("MongoDB did not answer (%s): %s", action, exc)
        raise unavailable(exc) from exc
    except PyMongoError as exc:
        log.error("MongoDB failed (%s): %r", action, exc)
        raise ServiceUnavailable(f"the database failed to {action}", code=ERROR_CODE) from exc
    except (BSONError, OverflowError) as exc:
        raise InvalidInput(f"cannot {action}: a value cannot be stored ({exc})",
                           code="unstorable_value") from exc


def duplicate_key_details(exc: DuplicateKeyError) -> dict[str, Any]:
    """``{"field": key}`` of a duplicate-key error when the server named the index's first
    key (``keyPattern``, MongoDB 4.4+), else ``{}``."""
    field = duplicate_key_field(exc.details or {}, str(exc))
    return {"field": field} if field else {}


def duplicate_key_field(
    details: Mapping[str, Any], message: str = "", index_keys: Mapping[str, str] | None = None
) -> str | None:
    """The first key of the unique index a duplicate-key error names, or None.

    ``details`` is a DuplicateKeyError's ``details`` or one ``writeErrors`` entry of a
    BulkWriteError; servers before 4.4 only name the index in the message, which
    ``index_keys`` (index name -> key) resolves. The answer is a hint: callers confirm it
    by looking the owner up (the owner may be gone, and test doubles may name the wrong index).
    """
    pattern = details.get("keyPattern")
    if isinstance(pattern, Mapping) and pattern:
        return str(next(iter(pattern)))
    text = str(details.get("errmsg") or message)
    match = _INDEX_IN_MESSAGE.search(text)
    if match and index_keys:
        return index_keys.get(match.group(1))
    return None
