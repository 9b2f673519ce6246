# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Enumerations mirroring the C header (values are the header's, fixed forever)."""
from __future__ import annotations

import enum
from typing import Union


class Status(enum.IntEnum):
    """diffcoll_status_t: the result of every library call."""

    SUCCESS = 0
    INVALID_ARGUMENT = 1
    INVALID_HANDLE = 2
    UNSUPPORTED = 3
    MISMATCH = 4
    TIMEOUT = 5
    REMOTE = 6
    SYSTEM = 7
    OUT_OF_MEMORY = 8
    CUDA = 9
    NCCL = 10
    IN_CAPTURE = 11
    VERSION = 12
    INTERNAL = 13


class DType(enum.IntEnum):
    """diffcoll_dtype_t: element types."""

    FLOAT16 = 1
    BFLOAT16 = 2
    FLOAT32 = 3
    FLOAT64 = 4
    INT8 = 5
    UINT8 = 6
    INT32 = 7
    INT64 = 8

    @property
    def itemsize(self) -> int:
        """Size of one element in bytes."""
        return _ITEMSIZE[self]


_ITEMSIZE = {
    DType.FLOAT16: 2,
    DType.BFLOAT16: 2,
    DType.FLOAT32: 4,
    DType.FLOAT64: 8,
    DType.INT8: 1,
    DType.UINT8: 1,
    DType.INT32: 4,
    DType.INT64: 8,
}


class DeviceType(enum.IntEnum):
    """diffcoll_device_type_t: where a tensor lives (DLPack's device codes)."""

    CPU = 1
    CUDA = 2


class ReduceOp(enum.IntEnum):
    """diffcoll_red_op_t: reduction operators."""

    SUM = 0
    PROD = 1
    MIN = 2
    MAX = 3
    #: Sum divided by the group size (integer division for integer dtypes).
    AVG = 4
    #: Each rank's input is multiplied by its own ``scalar``, then summed.
    PREMUL_SUM = 5


#: What the collectives accept as ``op``: a :class:`ReduceOp`, its integer
#: value, or a name such as ``"sum"``, ``"avg"`` or ``"premul_sum"``.
ReduceOpLike = Union[ReduceOp, int, str]

_OP_NAMES = {
    "sum": ReduceOp.SUM,
    "prod": ReduceOp.PROD,
    "product": ReduceOp.PROD,
    "min": ReduceOp.MIN,
    "max": ReduceOp.MAX,
    "avg": ReduceOp.AVG,
    "mean": ReduceOp.AVG,
    "premul_sum": ReduceOp.PREMUL_SUM,
    "premul": ReduceOp.PREMUL_SUM,
}


def to_reduce_op(op: ReduceOpLike) -> ReduceOp:
    """Converts ``op`` to a :class:`ReduceOp` (ValueError if unknown)."""
    if isinstance(op, str):
        try:
            return _OP_NAMES[op.lower()]
        except KeyError:
            raise ValueError(
                f"unknown reduction {op!r}; expected one of {sorted(_OP_NAMES)}"
            ) from None
    return ReduceOp(int(op))


class UlyssesDirection(enum.IntEnum):
    """diffcoll_ulysses_direction_t: which way a Ulysses all-to-all goes."""

    #: Sequence-sharded to head-sharded (before attention): [.., S_r, .., H, ..] -> [.., S, .., H_r, ..].
    SEQ_TO_HEAD = 0
    #: Head-sharded to sequence-sharded (after attention): [.., S, .., H_r, ..] -> [.., S_r, .., H, ..].
    HEAD_TO_SEQ = 1


#: A direction: a :class:`UlyssesDirection`, its value, or "seq_to_head" / "head_to_seq".
UlyssesDirectionLike = Union[UlyssesDirection, int, str]


class WireFormat(enum.IntEnum):
    """diffcoll_wire_format_t: how an all-to-all or all-gather moves values
    between ranks (FP8: quantised in the pack with one float scale per
    token block and head, dequantised in the unpack; see docs/ULYSSES.md for
    the error bound)."""

    #: The tensors' own dtype, bit for bit.
    NATIVE = 0
    #: FP8 e4m3 (max 448, 3 mantissa bits): |x' - x| <= 2^-4 |x| + 2^-10 scale + rounding.
    FP8_E4M3 = 1
    #: FP8 e5m2 (max 57344, 2 mantissa bits): |x' - x| <= 2^-3 |x| + 2^-17 scale + rounding.
    FP8_E5M2 = 2


#: A wire format: a :class:`WireFormat`, its value, or "native", "fp8_e4m3", "fp8_e5m2".
WireFormatLike = Union[WireFormat, int, str]


class FusedNormPath(enum.IntEnum):
    """diffcoll_fused_norm_path_t: how :class:`diffcoll.FusedNormWorkspace` runs on
    CUDA tensors (host tensors always take the host path)."""

    #: Chosen by message size (one-shot, two-shot, or NCCL + kernel).
    AUTO = 0
    #: One kernel reading every peer's x through NCCL symmetric windows (NVLink).
    ONE_SHOT = 1
    #: One kernel: reduce-scatter + normalise + all-gather.
    TWO_SHOT = 2
    #: NCCL all-reduce, then one residual + RMSNorm kernel.
    NCCL = 3


#: A path: a :class:`FusedNormPath`, its value, or "auto", "one_shot", "two_shot", "nccl".
FusedNormPathLike = Union[FusedNormPath, int, str]
