# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""HaloPlan, split_extent and Comm.gather_slabs: ranks as threads, every
rank's padded slab checked against numpy padding of the whole array."""
from __future__ import annotations

import numpy as np
import pytest

import diffcoll
from diffcoll import HaloBoundary, HaloPlan, split_extent

NP_MODE = {"zeros": "constant", "replicate": "edge", "reflect": "reflect", "circular": "wrap"}
WHOLE = np.arange(2 * 3 * 10 * 4, dtype=np.float32).reshape(2, 3, 10, 4) * 0.5 + 1.0  # NCHW, H = 10


def test_split_extent_is_tensor_split():
    for extent, parts in [(10, 3), (7, 7), (2, 4), (0, 3), (12, 4)]:
        pieces = np.array_split(np.arange(extent), parts)  # torch.tensor_split's rule
        start = 0
        for i, piece in enumerate(pieces):
            assert split_extent(extent, parts, i) == (start, len(piece))
            start += len(piece)
    with pytest.raises(diffcoll.InvalidArgumentError):
        split_extent(10, 0, 0)
    with pytest.raises(diffcoll.InvalidArgumentError):
        split_extent(10, 3, 3)


def chain_body(boundary, before, after, into=False):
    def body(comm):
        start, rows = split_extent(WHOLE.shape[2], comm.size, comm.rank)
        slab = WHOLE[:, :, start : start + rows]
        with HaloPlan(comm, row_before=before, row_after=after, row_boundary=boundary) as plan:
            shape = (2, 3, before + rows + after, 4)
            if into:
                # Channels-last padded buffer, filled from a contiguous slab.
                buf = np.full((2, shape[2], 4, 3), np.nan, np.float32)
                padded = buf.transpose(0, 3, 1, 2)
                assert plan.exchange_into(np.ascontiguousarray(slab), padded) is padded
            else:
                padded = np.full(shape, np.nan, np.float32)
                padded[:, :, before : before + rows] = slab
                assert plan.exchange(padded) is padded
        return start, rows, np.array(padded)

    return body


@pytest.mark.parametrize("boundary", ["zeros", "replicate", "reflect", "circular"])
@pytest.mark.parametrize("before,after", [(1, 1), (2, 1), (2, 0)])
def test_chain_of_three_matches_numpy_pad(ranks, boundary, before, after):
    expected_whole = np.pad(WHOLE, ((0, 0), (0, 0), (before, after), (0, 0)), mode=NP_MODE[boundary])
    for start, rows, padded in ranks(3, chain_body(boundary, before, after)):
        np.testing.assert_array_equal(padded, expected_whole[:, :, start : start + before + rows + after])


@pytest.mark.parametrize("boundary", [HaloBoundary.ZEROS, HaloBoundary.REPLICATE])
def test_exchange_into_channels_last(ranks, boundary):
    expected_whole = np.pad(WHOLE, ((0, 0), (0, 0), (1, 1), (0, 0)), mode=NP_MODE[boundary.name.lower()])
    for start, rows, padded in ranks(3, chain_body(boundary, 1, 1, into=True)):
        np.testing.assert_array_equal(padded, expected_whole[:, :, start : start + rows + 2])


def test_grid_2x2_with_corners(ranks):
    whole = np.arange(1 * 2 * 6 * 8, dtype=np.float32).reshape(1, 2, 6, 8)
    expected_whole = np.pad(whole, ((0, 0), (0, 0), (1, 1), (2, 1)), mode="edge")

    def body(comm):
        r, c = divmod(comm.rank, 2)
        h0, hn = split_extent(6, 2, r)
        w0, wn = split_extent(8, 2, c)
        padded = np.full((1, 2, hn + 2, wn + 3), np.nan, np.float32)
        padded[:, :, 1 : 1 + hn, 2 : 2 + wn] = whole[:, :, h0 : h0 + hn, w0 : w0 + wn]
        with comm.halo_plan(grid_rows=2, grid_cols=2, col_before=2, col_after=1,
                            row_boundary="edge", col_boundary="replicate") as plan:
            plan.exchange(padded)
        return h0, hn, w0, wn, padded

    for h0, hn, w0, wn, padded in ranks(4, body):
        np.testing.assert_array_equal(padded, expected_whole[:, :, h0 : h0 + hn + 2, w0 : w0 + wn + 3])


@pytest.mark.parametrize("root", [-1, 0, 2])
def test_gather_slabs(ranks, root):
    def body(comm):
        start, rows = split_extent(WHOLE.shape[2], comm.size, comm.rank)
        # A transposed slab (any strides travel).
        slab = np.ascontiguousarray(WHOLE[:, :, start : start + rows].transpose(3, 2, 1, 0)).transpose(3, 2, 1, 0)
        whole = np.zeros_like(WHOLE) if root in (-1, comm.rank) else None
        assert comm.gather_slabs(slab, whole, axis=2, root=root) is whole
        return whole

    for rank, whole in enumerate(ranks(3, body)):
        if root in (-1, rank):
            np.testing.assert_array_equal(whole, WHOLE)
        else:
            assert whole is None


def test_halo_errors(ranks):
    def body(comm):
        with pytest.raises(diffcoll.InvalidArgumentError) as e:
            HaloPlan(comm, grid_rows=2, grid_cols=2)  # 4 ranks on a communicator of 2
        assert e.value.function == "diffcoll_halo_plan_create"
        with pytest.raises(diffcoll.InvalidArgumentError):
            HaloPlan(comm, row_boundary_before="circular")  # circular at one end only
        with pytest.raises(diffcoll.InvalidArgumentError):
            HaloPlan(comm, row_before=-1)
        with pytest.raises(diffcoll.InvalidArgumentError, match="boundary mode"):
            HaloPlan(comm, row_boundary="mirror")
        return True

    assert ranks(2, body) == [True, True]

    def one(comm):
        plan = HaloPlan(comm, row_before=2, row_after=2, row_boundary="reflect")
        with pytest.raises(diffcoll.InvalidArgumentError):
            plan.exchange(np.zeros((3, 4), np.float32))  # padded extent 3 < widths 4
        with pytest.raises(diffcoll.InvalidArgumentError):
            plan.exchange(np.zeros((6, 4), np.float32))  # interior 2 too small for reflect 2
        with pytest.raises(diffcoll.InvalidArgumentError):
            plan.exchange_into(np.zeros((3, 4), np.float32), np.zeros((8, 4), np.float32))  # interior 4
        ok = np.arange(28, dtype=np.float32).reshape(7, 4)
        plan.exchange(ok)
        assert plan.comm is comm
        plan.close()
        plan.close()  # idempotent
        with pytest.raises(diffcoll.InvalidHandleError):
            plan.exchange(ok)
        return ok

    (ok,) = ranks(1, one)
    interior = np.arange(28, dtype=np.float32).reshape(7, 4)[2:5]
    np.testing.assert_array_equal(ok, np.pad(interior, ((2, 2), (0, 0)), mode="reflect"))
