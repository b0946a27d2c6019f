"""Cheap copies of JSON-like values and messages for the memory adapters, which hand out
copies so that callers never share state with the store."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from notibot.domain import Message

#: Types :func:`copy_value` returns as they are: immutable.
_ATOMIC = frozenset({str, int, float, bool, type(None), datetime})


def copy_value(value: Any) -> Any:
    """A deep copy of JSON-like ``value`` (message metadata: dicts, lists, strings, numbers),
    several times cheaper than :func:`copy.deepcopy`, which copies anything else."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if kind is dict:
        return {k: v if type(v) in _ATOMIC else copy_value(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _ATOMIC else copy_value(v) for v in value]
    return copy.deepcopy(value)


def copy_message(message: Message) -> Message:
    """A copy of ``message``: its fields are immutable but for ``metadata``, which is
    copied (JSON-like values, :func:`copy_value`). Calls the constructor directly: a few
    times cheaper than :func:`dataclasses.replace`, and a chat turn copies its history."""
    return Message(message.id, message.role, message.content, message.created_at,
                   copy_value(message.metadata))


class ReadOnlyDict(dict):  # type: ignore[type-arg]
    """A dict that refuses changes (TypeError): shared metadata of stored messages. Equal to
    the dict it was made from, JSON-serialisable as a dict; :func:`copy.copy` and
    :func:`copy.deepcopy` give plain, changeable copies."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("this metadata is read-only (a stored message); copy it to change it")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse  # type: ignore[assignment]

    def __copy__(self) -> dict[Any, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return thaw(self)

    def __reduce__(self) -> Any:
        return (dict, (thaw(self),))


class ReadOnlyList(list):  # type: ignore[type-arg]
    """A list that refuses changes (TypeError); see :class:`ReadOnlyDict`."""

    __slots__ = ()

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("this metadata is read-only (a stored message); copy it to change it")

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = _refuse
    sort = reverse = _refuse
    __iadd__ = __imul__ = _refuse  # type: ignore[assignment]

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return thaw(self)

    def __reduce__(self) -> Any:
        return (list, (thaw(self),))


def freeze(value: Any) -> Any:
    """A read-only deep copy of JSON-like ``value`` (dicts and lists become
    :class:`ReadOnlyDict` and :class:`ReadOnlyList`; other values are kept as they are)."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if isinstance(value, dict):
        return ReadOnlyDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return ReadOnlyList(freeze(v) for v in value)
    return copy.deepcopy(value)


def thaw(value: Any) -> Any:
    """A plain, changeable deep copy of a value made by :func:`freeze`."""
    if isinstance(value, dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, list):
        return [thaw(v) for v in value]
    return value


def frozen_message(message: Message) -> Message:
    """A copy of ``message`` whose metadata is read-only (:func:`freeze`): it can be handed
    out to any number of readers without copying again."""
    return Message(message.id, message.role, message.content, message.created_at,
                   freeze(message.metadata))
