# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Fused all-reduce + residual add + RMSNorm, the end of a tensor-parallel
transformer block::

    residual_out = allreduce_sum(x) + residual
    y = residual_out / sqrt(mean(residual_out ** 2 over the row) + eps) * weight
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional, Union

from ._cfg import _to_enum
from ._handle import OwnedHandle, _check
from ._native import c
from ._tensor import StreamLike, TensorLike, stream_handle, to_dtype
from ._types import DType, FusedNormPath, FusedNormPathLike

if TYPE_CHECKING:
    from ._comm import Comm


_OPTIONS: Dict[int, Any] = {}


def fused_norm_options(path: int) -> Any:
    """The diffcoll_fused_norm_options_t of ``path``, made once per path (the
    library only reads it): a SWIG struct per call would cost more than the
    call."""
    options = _OPTIONS.get(path)
    if options is None:
        options = c.diffcoll_fused_norm_options_t()  # DIFFCOLL_FUSED_NORM_OPTIONS_INIT
        options.path = path
        _OPTIONS[path] = options
    return options


class FusedNormWorkspace(OwnedHandle):
    """Everything :meth:`apply` needs, set up once (diffcoll_fused_norm_workspace_create).

    Creating is collective over ``comm``: every rank passes the same limits
    (MismatchError otherwise). With a device side it allocates and registers
    NCCL symmetric windows for the one-kernel paths, so create it before any
    CUDA-graph capture; :meth:`apply` then allocates and exchanges nothing.
    ::

        with diffcoll.FusedNormWorkspace(comm, max_tokens=4096, max_hidden=3072,
                                         dtype="bfloat16") as ws:
            ws(x, residual, weight, eps=1e-6, y=x, residual_out=residual)

    Args:
        comm: the (tensor-parallel) group; it must outlive the workspace.
        max_tokens: the most rows a call will have, >= 1.
        max_hidden: the largest hidden size a call will have, >= 1.
        dtype: the widest dtype a call will use: float16, bfloat16 or float32
            (a :class:`DType`, its name or a numpy dtype).

    Close it (:meth:`close`, or the end of a ``with`` block) before closing
    ``comm``: on a communicator with a device side closing is collective.
    Like its communicator, a workspace is used by one thread at a time.
    """

    _destroy_function = "diffcoll_fused_norm_workspace_destroy"

    def __init__(
        self, comm: "Comm", max_tokens: int, max_hidden: int, dtype: Union[DType, int, str, Any]
    ) -> None:
        (handle,) = _check(
            c.diffcoll_fused_norm_workspace_create(
                comm._handle, int(max_tokens), int(max_hidden), int(to_dtype(dtype))
            ),
            "diffcoll_fused_norm_workspace_create",
        )
        super().__init__(handle)
        self._comm = comm

    @property
    def comm(self) -> "Comm":
        """The communicator the workspace reduces over."""
        return self._comm

    def __repr__(self) -> str:
        if self._handle is None:
            return "<diffcoll.FusedNormWorkspace closed>"
        return f"<diffcoll.FusedNormWorkspace on {self._comm!r}>"

    def apply(
        self,
        x: TensorLike,
        residual: Optional[TensorLike] = None,
        weight: Optional[TensorLike] = None,
        *,
        eps: float,
        y: TensorLike,
        residual_out: Optional[TensorLike] = None,
        path: FusedNormPathLike = FusedNormPath.AUTO,
        stream: StreamLike = None,
    ) -> TensorLike:
        """``residual_out = allreduce_sum(x) + residual``; ``y =
        rmsnorm(residual_out) * weight`` (diffcoll_fused_norm); returns ``y``.

        Collective over the workspace's communicator. ``x``, ``residual``,
        ``y`` and ``residual_out`` are contiguous tensors of one shape [...,
        hidden], one dtype (float16, bfloat16, float32) and one device;
        ``weight`` is a contiguous [hidden] tensor of that dtype. Arithmetic is
        in float32 with the roundings of separate all-reduce, add and RMSNorm.

        Args:
            x: this rank's partial sums; only read (unless it is ``y``).
            residual: the residual stream, or None (adds nothing).
            weight: the RMSNorm weight, or None (scales by 1).
            eps: added to the mean square, finite and >= 0 (e.g. 1e-6).
            y: receives the normalised rows; may be ``x`` itself.
            residual_out: receives allreduce(x) + residual, or None (not
                stored); may be ``residual`` itself.
            path: for CUDA tensors, a :class:`FusedNormPath` or its name
                ("auto", "one_shot", "two_shot", "nccl"); ignored on the host.
            stream: CUDA stream for CUDA tensors.
        """
        s = stream_handle(stream)
        t = self._comm._t
        xd, kx = t(x, "x", False, s)
        rd, kr = t(residual, "residual", False, s)
        wd, kw = t(weight, "weight", False, s)
        yd, ky = t(y, "y", True, s)
        od, ko = t(residual_out, "residual_out", True, s)
        options = fused_norm_options(int(_to_enum(FusedNormPath, path, "path", "FusedNormWorkspace.apply")))
        _check(
            c.diffcoll_fused_norm(self._handle, xd, rd, wd, float(eps), yd, od, options, s),
            "diffcoll_fused_norm",
        )
        del kx, kr, kw, ky, ko
        return y

    __call__ = apply


__all__ = ["FusedNormWorkspace"]
