# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""Small integer handles for diffcoll objects.

A compiler cannot trace a Python object into a graph, but it can bake an
integer into one. :func:`handle` gives a communicator, CFG policy, halo plan,
fused-norm workspace or ring a small integer that :func:`lookup` turns back
into the object, so that the PyTorch operators of :mod:`diffcoll.torch` take
their communicator as a constant. The registry holds objects weakly (a handle
does not keep its object alive), never reuses a number (a stale handle cannot
name a newer object), and caches a communicator's size and rank (they never
change), which the operators need on every call.
"""
from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any, Dict, NamedTuple, Optional, Tuple, Type, TypeVar

from ._comm import Comm
from ._errors import InvalidArgumentError, InvalidHandleError

_T = TypeVar("_T")


class _Entry(NamedTuple):
    ref: "weakref.ref[Any]"
    #: Size and rank of a communicator (-1 for other objects).
    size: int
    rank: int


_lock = threading.Lock()
_numbers = itertools.count(1)
_entries: Dict[int, _Entry] = {}
_handles: "weakref.WeakKeyDictionary[Any, int]" = weakref.WeakKeyDictionary()


#: The registry entry of handle ``number`` (``.ref()`` its object, None once
#: collected), or None: dict.get itself, for the per-step ring kernel, which
#: cannot spare :func:`lookup`'s frames. Check the object's type.
entry = _entries.get


def _forget(number: int) -> None:
    _entries.pop(number, None)


def handle(obj: Any) -> int:
    """The handle of ``obj`` (a :class:`~diffcoll.Comm`, :class:`~diffcoll.CfgPolicy`,
    :class:`~diffcoll.HaloPlan`, :class:`~diffcoll.FusedNormWorkspace` or
    :class:`~diffcoll.Ring`), registering it on first use; the same object
    always gets the same handle. An int is returned as it is."""
    if isinstance(obj, int):
        return obj
    with _lock:
        number = _handles.get(obj)
        if number is not None:
            return number
        if getattr(obj, "_handle", None) is None:
            raise InvalidHandleError(f"{obj!r} is closed or is not a diffcoll object",
                                     function="diffcoll.handle")
        size, rank = (obj.size, obj.rank) if isinstance(obj, Comm) else (-1, -1)
        number = next(_numbers)
        _entries[number] = _Entry(weakref.ref(obj, lambda _, n=number: _forget(n)), size, rank)
        _handles[obj] = number
        return number


def _live(number: int, kind: type, function: str) -> Tuple[Any, _Entry]:
    entry = _entries.get(number)
    obj = None if entry is None else entry.ref()
    if obj is None:
        raise InvalidHandleError(
            f"handle {number!r} names no live diffcoll object (never registered, released, "
            "or its object was collected: keep the object alive while graphs use its handle)",
            function=function,
        )
    if not isinstance(obj, kind):
        raise InvalidArgumentError(
            f"handle {number} is a {type(obj).__name__}, not a {kind.__name__}", function=function
        )
    return obj, entry


def lookup(number: int, kind: Type[_T], function: str = "diffcoll.lookup") -> _T:
    """The object of handle ``number``, which must be a ``kind``.

    Raises :class:`InvalidHandleError` for a handle that names no live object
    and :class:`InvalidArgumentError` for one that names another kind."""
    return _live(number, kind, function)[0]


def comm_place(number: int, function: str) -> Tuple[Comm, int, int]:
    """(communicator, size, rank) of the communicator handle ``number``."""
    comm, entry = _live(number, Comm, function)
    return comm, entry.size, entry.rank


def release(obj_or_handle: Any) -> None:
    """Forgets a handle (and its object's registration); later lookups of it fail.
    Unknown handles are ignored."""
    with _lock:
        number: Optional[int] = (
            obj_or_handle if isinstance(obj_or_handle, int) else _handles.get(obj_or_handle)
        )
        if number is None:
            return
        entry = _entries.pop(number, None)
        obj = entry.ref() if entry is not None else None
        if obj is not None:
            _handles.pop(obj, None)


__all__ = ["handle", "lookup", "comm_place", "release"]
