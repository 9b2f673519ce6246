# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""diffcoll: the communication layer of multi-GPU diffusion inference.

A thin pythonic layer over the C library (through the SWIG module diffcoll_c,
generated from the public header):

* :class:`Comm` -- communicators and every collective, operating in place on
  anything with ``__dlpack__``, ``__cuda_array_interface__`` or
  ``__array_interface__`` (numpy, PyTorch, CuPy, JAX), with any strides and no
  copy;
* :class:`CfgPolicy` -- classifier-free guidance: which branches each CFG
  rank runs, serial and CFG-parallel combines (:meth:`Comm.cfg_combine`);
* :class:`HaloPlan` -- halo exchange of spatially split activations, with
  :func:`split_extent` and :meth:`Comm.gather_slabs`;
* :meth:`Comm.group_norm` -- GroupNorm of a split activation with the whole
  activation's statistics;
* :class:`FusedNormWorkspace` -- fused all-reduce + residual add + RMSNorm of
  tensor-parallel blocks;
* sequence parallelism -- :meth:`Comm.ulysses_all_to_all` (grouped-query k/v
  heads sent once, :func:`ulysses_kv_heads`; FP8 transport, :class:`WireFormat`),
  :class:`UspMesh`
  (the Ulysses / ring / sp / CFG / data groups of a rank) and :class:`Ring`
  (the double-buffered block exchange of ring attention);
* :class:`ParallelState` -- every group of a USP + tensor-parallel mesh, this
  rank's place in each and the shard helpers a model needs;
* :mod:`diffcoll.torch` (imported on its own) -- every operation as a PyTorch
  custom operator that torch.compile and CUDA graphs take whole, its objects
  named by the small integers of :func:`handle`;
* exceptions -- :class:`DiffcollError` and one subclass per status, carrying
  the status and the library's message;
* enums -- :class:`ReduceOp`, :class:`DType`, :class:`DeviceType`, :class:`Status`,
  :class:`UlyssesDirection`, :class:`FusedNormPath`, :class:`WireFormat`.

Example (two ranks as threads of one process)::

    import threading, numpy as np, diffcoll

    def rank_main(rank):
        with diffcoll.Comm.create("local://demo", rank, 2) as comm:
            x = np.full(4, rank + 1.0, dtype=np.float32)
            comm.all_reduce(x, op="sum")      # x is now [3, 3, 3, 3]

    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(2)]
    for t in threads: t.start()
    for t in threads: t.join()
"""
from __future__ import annotations

from typing import Tuple

from ._cfg import BranchRef, CfgOptions, CfgOrder, CfgOrderLike, CfgPolicy, CfgRole, CfgRoleLike
from ._comm import DEFAULT_TIMEOUT_MS, SPLIT_NOCOLOR, Comm, Stats
from ._halo import HaloBoundary, HaloBoundaryLike, HaloPlan, split_extent
from ._errors import (
    CudaError,
    DiffcollError,
    InCaptureError,
    InternalError,
    InvalidArgumentError,
    InvalidHandleError,
    MismatchError,
    NcclError,
    OutOfMemoryError,
    RemoteError,
    SystemFailureError,
    TimeoutError,
    UnsupportedError,
    VersionError,
    error_for,
)
from ._native import c as _c
from ._norm import FusedNormWorkspace
from ._parallel import GROUPS, ParallelDims, ParallelState
from ._registry import handle, release as release_handle
from ._usp import Ring, UspDegrees, UspMesh, ulysses_kv_heads
from ._tensor import StreamLike, Tensor, TensorLike
from ._types import (
    DeviceType,
    DType,
    FusedNormPath,
    FusedNormPathLike,
    ReduceOp,
    ReduceOpLike,
    Status,
    UlyssesDirection,
    UlyssesDirectionLike,
    WireFormat,
    WireFormatLike,
)

#: Most dimensions a tensor can have.
MAX_DIMS: int = _c.DIFFCOLL_MAX_DIMS


def version() -> Tuple[int, int, int]:
    """(major, minor, patch) of the library actually loaded."""
    v = int(_c.diffcoll_version())
    return (v // 10000, v // 100 % 100, v % 100)


def status_string(status: int) -> str:
    """The library's English description of a status code."""
    return str(_c.diffcoll_status_string(int(status)))


__version__ = "%d.%d.%d" % version()

__all__ = [
    "Comm",
    "Stats",
    "CfgPolicy",
    "CfgRole",
    "CfgOrder",
    "CfgOptions",
    "CfgRoleLike",
    "CfgOrderLike",
    "BranchRef",
    "HaloPlan",
    "HaloBoundary",
    "HaloBoundaryLike",
    "split_extent",
    "FusedNormWorkspace",
    "FusedNormPath",
    "FusedNormPathLike",
    "UlyssesDirection",
    "UlyssesDirectionLike",
    "UspMesh",
    "UspDegrees",
    "Ring",
    "ParallelState",
    "ParallelDims",
    "GROUPS",
    "handle",
    "release_handle",
    "ulysses_kv_heads",
    "WireFormat",
    "WireFormatLike",
    "Tensor",
    "TensorLike",
    "StreamLike",
    "DType",
    "DeviceType",
    "ReduceOp",
    "ReduceOpLike",
    "Status",
    "DiffcollError",
    "InvalidArgumentError",
    "InvalidHandleError",
    "UnsupportedError",
    "MismatchError",
    "TimeoutError",
    "RemoteError",
    "SystemFailureError",
    "OutOfMemoryError",
    "CudaError",
    "NcclError",
    "InCaptureError",
    "VersionError",
    "InternalError",
    "error_for",
    "version",
    "status_string",
    "MAX_DIMS",
    "SPLIT_NOCOLOR",
    "DEFAULT_TIMEOUT_MS",
]
