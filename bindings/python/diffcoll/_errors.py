# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Exceptions: one subclass of DiffcollError per diffcoll_status_t."""
from __future__ import annotations

import builtins
from typing import Dict, Optional, Type, Union

from ._types import Status


class DiffcollError(RuntimeError):
    """A diffcoll call failed.

    Attributes:
        status: the :class:`Status` the library returned.
        message: the library's diffcoll_last_error() text (or the bindings' own
            message for errors found before calling the library).
        function: the C function (or binding method) that failed, if known.
    """

    #: The status this class stands for (overridden by each subclass).
    default_status: Status = Status.INTERNAL

    def __init__(
        self,
        message: str,
        status: Union[Status, int, None] = None,
        function: Optional[str] = None,
    ) -> None:
        self.status: Status = Status(self.default_status if status is None else status)
        self.message: str = message
        self.function: Optional[str] = function
        text = f"{function}: {message}" if function else message
        super().__init__(text)

    def __reduce__(self):  # keep status and message across pickling (multiprocessing)
        return (type(self), (self.message, int(self.status), self.function))


class InvalidArgumentError(DiffcollError, ValueError):
    """DIFFCOLL_ERR_INVALID_ARGUMENT: a bad argument (shape, dtype, rank, root, ...)."""

    default_status = Status.INVALID_ARGUMENT


class InvalidHandleError(DiffcollError):
    """DIFFCOLL_ERR_INVALID_HANDLE: a closed, null or unknown communicator."""

    default_status = Status.INVALID_HANDLE


class UnsupportedError(DiffcollError, NotImplementedError):
    """DIFFCOLL_ERR_UNSUPPORTED: valid but not supported here (e.g. a CUDA tensor on a host-only communicator)."""

    default_status = Status.UNSUPPORTED


class MismatchError(DiffcollError):
    """DIFFCOLL_ERR_MISMATCH: ranks passed different shapes, dtypes, strides or ops (check=True)."""

    default_status = Status.MISMATCH


class TimeoutError(DiffcollError, builtins.TimeoutError):  # noqa: A001 (like asyncio.TimeoutError)
    """DIFFCOLL_ERR_TIMEOUT: a blocking call ran past the communicator's timeout."""

    default_status = Status.TIMEOUT


class RemoteError(DiffcollError):
    """DIFFCOLL_ERR_REMOTE: a peer failed or went away; the communicator is unusable."""

    default_status = Status.REMOTE


class SystemFailureError(DiffcollError):
    """DIFFCOLL_ERR_SYSTEM: the operating system, a store or the transport failed."""

    default_status = Status.SYSTEM


class OutOfMemoryError(DiffcollError, MemoryError):
    """DIFFCOLL_ERR_OUT_OF_MEMORY: host or device memory could not be allocated."""

    default_status = Status.OUT_OF_MEMORY


class CudaError(DiffcollError):
    """DIFFCOLL_ERR_CUDA: a CUDA runtime call failed."""

    default_status = Status.CUDA


class NcclError(DiffcollError):
    """DIFFCOLL_ERR_NCCL: an NCCL call failed."""

    default_status = Status.NCCL


class InCaptureError(DiffcollError):
    """DIFFCOLL_ERR_IN_CAPTURE: not allowed inside a CUDA graph capture."""

    default_status = Status.IN_CAPTURE


class VersionError(DiffcollError):
    """DIFFCOLL_ERR_VERSION: an unknown API or struct version was requested."""

    default_status = Status.VERSION


class InternalError(DiffcollError):
    """DIFFCOLL_ERR_INTERNAL: a bug in diffcoll; please report it with the message."""

    default_status = Status.INTERNAL


ERROR_CLASSES: Dict[Status, Type[DiffcollError]] = {
    cls.default_status: cls
    for cls in (
        InvalidArgumentError,
        InvalidHandleError,
        UnsupportedError,
        MismatchError,
        TimeoutError,
        RemoteError,
        SystemFailureError,
        OutOfMemoryError,
        CudaError,
        NcclError,
        InCaptureError,
        VersionError,
        InternalError,
    )
}


def error_for(status: int, message: str, function: Optional[str] = None) -> DiffcollError:
    """The exception for a failed call: the subclass that matches ``status``."""
    try:
        st = Status(status)
    except ValueError:  # a status newer than these bindings
        return DiffcollError(f"{message} (unknown status {status})", Status.INTERNAL, function)
    return ERROR_CLASSES.get(st, DiffcollError)(message, st, function)
