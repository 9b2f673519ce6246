# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""What every object that owns a diffcoll handle shares: turning a call's
status into an exception, and the handle's lifetime (``close()``, ``with``,
garbage collection)."""
from __future__ import annotations

from typing import Any, List, TypeVar

from ._errors import error_for
from ._native import c

_Self = TypeVar("_Self", bound="OwnedHandle")


def _check(result: Any, function: str) -> List[Any]:
    """Raises the matching DiffcollError if the call failed; returns its out-values.

    The message is read with diffcoll_last_error() right away, on the thread
    that made the call (the library keeps it per thread).
    """
    if isinstance(result, list):
        status, rest = result[0], result[1:]
    else:
        status, rest = result, []
    if status != c.DIFFCOLL_SUCCESS:
        raise error_for(status, c.diffcoll_last_error(), function)
    return rest


class OwnedHandle:
    """Owns one diffcoll handle, destroyed by :meth:`close`, at the end of a
    ``with`` block, or when the object is collected."""

    #: The C function that destroys the handle.
    _destroy_function = ""

    def __init__(self, handle: Any) -> None:
        self._handle: Any = handle

    def close(self) -> None:
        """Destroys the handle. Idempotent; later calls raise InvalidHandleError."""
        handle, self._handle = self._handle, None
        if handle is not None:
            _check(getattr(c, self._destroy_function)(handle), self._destroy_function)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._handle is None

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and c is not None:
            try:
                getattr(c, self._destroy_function)(handle)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass
            self._handle = None
