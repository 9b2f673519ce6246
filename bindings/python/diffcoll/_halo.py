# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Halo exchange and slabs for spatially parallel decoding (docs/HALO.md).

Ranks hold consecutive slabs of one activation split along one axis (a 1-D
chain) or two (a 2-D grid), each inside a caller-allocated *padded* tensor:
the slab surrounded by halo rows. :meth:`HaloPlan.exchange` fills every
rank's halo so that its padded tensor equals the matching window of the whole
tensor padded once by the boundary modes. :func:`split_extent` gives each
rank's rows and :meth:`diffcoll.Comm.gather_slabs` reassembles the whole.
"""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Optional, Tuple, Union

from ._handle import OwnedHandle, _check
from ._errors import InvalidArgumentError
from ._native import c
from ._tensor import StreamLike, TensorLike, stream_handle

if TYPE_CHECKING:
    from ._comm import Comm


class HaloBoundary(enum.IntEnum):
    """diffcoll_halo_boundary_t: how the halo beyond an end of the grid is filled."""

    #: Zeros (a convolution's zero padding).
    ZEROS = 0
    #: Copies of the edge row (torch's 'replicate', numpy's 'edge').
    REPLICATE = 1
    #: Rows next to the edge, mirrored, edge not repeated (torch's and numpy's 'reflect').
    REFLECT = 2
    #: Wrap around (torch's 'circular', numpy's 'wrap'); set at both ends of an axis.
    CIRCULAR = 3
    #: Leave the halo memory as it is.
    UNTOUCHED = 4


#: A boundary mode: a :class:`HaloBoundary`, its value, or a name
#: ("zeros", "replicate", "reflect", "circular", "untouched"; also numpy's
#: "constant", "edge", "wrap").
HaloBoundaryLike = Union[HaloBoundary, int, str]

_BOUNDARY_ALIASES = {
    "zero": HaloBoundary.ZEROS,
    "constant": HaloBoundary.ZEROS,
    "edge": HaloBoundary.REPLICATE,
    "wrap": HaloBoundary.CIRCULAR,
}


def _to_boundary(value: HaloBoundaryLike, what: str) -> int:
    if isinstance(value, HaloBoundary):
        return int(value)
    if isinstance(value, str):
        key = value.lower()
        if key in _BOUNDARY_ALIASES:
            return int(_BOUNDARY_ALIASES[key])
        try:
            return int(HaloBoundary[key.upper()])
        except KeyError:
            names = ", ".join(m.name.lower() for m in HaloBoundary)
            raise InvalidArgumentError(
                f"{what} {value!r} is not a boundary mode ({names})", function="diffcoll.HaloPlan"
            ) from None
    return int(value)  # unknown values are the library's to report


class HaloPlan(OwnedHandle):
    """A halo exchange plan over a communicator (diffcoll_halo_plan_create).

    Every rank of ``comm`` creates one with the same keyword configuration;
    creating is local (no communication). Keywords are the fields of
    ``diffcoll_halo_config_t``, defaults from ``DIFFCOLL_HALO_CONFIG_INIT``
    (a 1-D chain over all ranks along dimension -2, one halo row on each
    side, zero boundaries)::

        with diffcoll.HaloPlan(comm, row_axis=2, row_before=1, row_after=1,
                               row_boundary="replicate") as plan:
            plan.exchange(padded)

    Args:
        comm: the communicator; it must outlive the plan (the plan keeps a
            reference to it, but does not stop :meth:`Comm.close`).
        grid_rows, grid_cols: the rank grid, row-major over the ranks
            (rank = row * grid_cols + col); grid_rows 0: size // grid_cols.
        row_axis, col_axis: tensor dimensions split by the rows / cols
            (negative counts from the end).
        row_before, row_after, col_before, col_after: halo widths.
        row_boundary, col_boundary: shortcuts setting both ends of an axis.
        row_boundary_before, row_boundary_after, col_boundary_before,
        col_boundary_after: boundary modes (:class:`HaloBoundary` or a name).
        exchange_corners: fill the corner blocks of a 2-D halo.

    Raises :class:`InvalidArgumentError` for a configuration the library
    rejects (grid not matching the size, negative widths, CIRCULAR at one
    end only, the same axis twice, ...). Like its communicator, a plan is used
    by one thread at a time.
    """

    def __init__(
        self,
        comm: "Comm",
        *,
        grid_rows: int = 0,
        grid_cols: int = 1,
        row_axis: int = -2,
        col_axis: int = -1,
        row_before: int = 1,
        row_after: int = 1,
        col_before: int = 0,
        col_after: int = 0,
        row_boundary: Optional[HaloBoundaryLike] = None,
        col_boundary: Optional[HaloBoundaryLike] = None,
        row_boundary_before: Optional[HaloBoundaryLike] = None,
        row_boundary_after: Optional[HaloBoundaryLike] = None,
        col_boundary_before: Optional[HaloBoundaryLike] = None,
        col_boundary_after: Optional[HaloBoundaryLike] = None,
        exchange_corners: bool = True,
    ) -> None:
        self._handle: Any = None
        self._comm = comm

        def mode(specific: Optional[HaloBoundaryLike], both: Optional[HaloBoundaryLike], what: str) -> int:
            value = specific if specific is not None else both
            return int(HaloBoundary.ZEROS) if value is None else _to_boundary(value, what)

        cfg = c.diffcoll_halo_config_t()  # DIFFCOLL_HALO_CONFIG_INIT
        cfg.grid_rows = int(grid_rows)
        cfg.grid_cols = int(grid_cols)
        cfg.row_axis = int(row_axis)
        cfg.col_axis = int(col_axis)
        cfg.row_before = int(row_before)
        cfg.row_after = int(row_after)
        cfg.col_before = int(col_before)
        cfg.col_after = int(col_after)
        cfg.row_boundary_before = mode(row_boundary_before, row_boundary, "row_boundary_before")
        cfg.row_boundary_after = mode(row_boundary_after, row_boundary, "row_boundary_after")
        cfg.col_boundary_before = mode(col_boundary_before, col_boundary, "col_boundary_before")
        cfg.col_boundary_after = mode(col_boundary_after, col_boundary, "col_boundary_after")
        cfg.exchange_corners = int(bool(exchange_corners))
        (handle,) = _check(
            c.diffcoll_halo_plan_create(comm._handle, cfg), "diffcoll_halo_plan_create"
        )
        self._handle = handle

    # ---------------------------------------------------------------- lifetime

    @property
    def comm(self) -> "Comm":
        """The communicator the plan exchanges over."""
        return self._comm

    _destroy_function = "diffcoll_halo_plan_destroy"

    def __repr__(self) -> str:
        return "<diffcoll.HaloPlan closed>" if self._handle is None else f"<diffcoll.HaloPlan on {self._comm!r}>"

    # ---------------------------------------------------------------- exchange

    def exchange(self, padded: TensorLike, *, stream: StreamLike = None) -> TensorLike:
        """Fills the halo of ``padded`` (this rank's slab with its halo) from the
        neighbouring ranks, in place, and returns it. Collective over the
        plan's communicator; the interior is only read."""
        s = stream_handle(stream)
        t, keep = self._comm._t(padded, "padded", True, s)
        _check(c.diffcoll_halo_exchange(self._handle, t, s), "diffcoll_halo_exchange")
        del keep
        return padded

    def exchange_into(
        self, input: TensorLike, padded_output: TensorLike, *, stream: StreamLike = None
    ) -> TensorLike:
        """Copies ``input`` (this rank's unpadded slab) into the interior of
        ``padded_output``, then exchanges as :meth:`exchange`; returns
        ``padded_output``."""
        s = stream_handle(stream)
        i, ki = self._comm._t(input, "input", False, s)
        o, ko = self._comm._t(padded_output, "padded_output", True, s)
        _check(
            c.diffcoll_halo_exchange_into(self._handle, i, o, s), "diffcoll_halo_exchange_into"
        )
        del ki, ko
        return padded_output


def split_extent(extent: int, parts: int, index: int) -> Tuple[int, int]:
    """(start, length) of slab ``index`` of ``parts`` nearly equal slabs of
    ``extent`` rows: torch.tensor_split's rule (the first ``extent % parts``
    slabs have one row more). ``slice(start, start + length)`` selects it."""
    start, length = _check(
        c.diffcoll_split_extent(int(extent), int(parts), int(index)), "diffcoll_split_extent"
    )
    return int(start), int(length)


__all__ = ["HaloPlan", "HaloBoundary", "HaloBoundaryLike", "split_extent"]
