# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Collectives on numpy arrays (contiguous, transposed, sliced, reversed),
ranks as threads, checked against numpy references."""
from __future__ import annotations

import numpy as np
import pytest

import diffcoll


def base(rank: int, shape=(4, 6), dtype=np.float32) -> np.ndarray:
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.float64).reshape(shape) * (rank + 1) + rank).astype(dtype)


@pytest.mark.parametrize("op", ["sum", "avg", "premul_sum", diffcoll.ReduceOp.MAX, "min", "prod"])
def test_all_reduce_ops(ranks, op):
    size = 3

    def body(comm):
        x = base(comm.rank)
        out = comm.all_reduce(x, op=op, scalar=0.5 * (comm.rank + 1))
        assert out is x  # in place, same object
        return x

    results = ranks(size, body)
    inputs = [base(r).astype(np.float64) for r in range(size)]
    expected = {
        "sum": sum(inputs),
        "avg": sum(inputs) / size,
        "premul_sum": sum(0.5 * (r + 1) * inputs[r] for r in range(size)),
        diffcoll.ReduceOp.MAX: np.maximum.reduce(inputs),
        "min": np.minimum.reduce(inputs),
        "prod": np.prod(inputs, axis=0),
    }[op]
    for x in results:
        np.testing.assert_allclose(x, expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.int64, np.int8, np.uint8])
def test_all_reduce_dtypes(ranks, dtype):
    def body(comm):
        x = np.full((5,), comm.rank + 1, dtype=dtype)
        comm.all_reduce(x)
        return x

    for x in ranks(2, body):
        assert x.dtype == dtype
        np.testing.assert_array_equal(x, np.full((5,), 3, dtype=dtype))


def test_all_reduce_transposed_is_dense_no_packing(ranks):
    def body(comm):
        a = base(comm.rank)
        comm.reset_stats()
        view = a.T  # a permutation of a contiguous block: used in place
        comm.all_reduce(view)
        return a, comm.stats()

    results = ranks(2, body)
    expected = base(0).astype(np.float64) + base(1)
    for a, stats in results:
        np.testing.assert_allclose(a, expected)
        assert stats.bytes_packed == 0 and stats.bytes_unpacked == 0
        assert stats.ops == 1


def test_all_reduce_sliced_view_packs_and_leaves_gaps(ranks):
    def body(comm):
        a = base(comm.rank)
        before = a.copy()
        comm.reset_stats()
        view = a[:, ::2]
        comm.all_reduce(view)
        return a, before, comm.stats()

    results = ranks(2, body)
    expected = base(0).astype(np.float64) + base(1)
    for a, before, stats in results:
        np.testing.assert_allclose(a[:, ::2], expected[:, ::2])
        np.testing.assert_array_equal(a[:, 1::2], before[:, 1::2])  # gaps untouched
        assert stats.bytes_packed > 0 and stats.bytes_unpacked > 0


def test_all_reduce_negative_strides(ranks):
    def body(comm):
        a = base(comm.rank)
        comm.all_reduce(a[::-1, ::-2])
        return a, base(comm.rank)

    results = ranks(2, body)
    expected = base(0).astype(np.float64) + base(1)
    for a, orig in results:
        np.testing.assert_allclose(a[:, 1::2], expected[:, 1::2])
        np.testing.assert_array_equal(a[:, ::2], orig[:, ::2])


@pytest.mark.parametrize("axis", [0, 1])
def test_all_gather(ranks, axis):
    size = 3

    def body(comm):
        x = base(comm.rank, (2, 3))
        shape = list(x.shape)
        shape[axis] *= size
        out = np.zeros(shape, np.float32)
        assert comm.all_gather(x, out, axis=axis) is out
        # Again into a transposed output with a sliced (strided) input.
        big = np.zeros((2, 6), np.float32)
        big[:, ::2] = x
        out_t = np.zeros(shape[::-1], np.float32).T
        comm.all_gather(big[:, ::2], out_t, axis=axis)
        return out, out_t

    expected = np.concatenate([base(r, (2, 3)) for r in range(size)], axis=axis)
    for out, out_t in ranks(size, body):
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(out_t, expected)


def test_all_to_all(ranks):
    size = 2

    def body(comm):
        x = base(comm.rank, (4, 3))
        out = np.zeros((2, 6), np.float32)  # scatter rows, gather columns
        comm.all_to_all(x, out, scatter_axis=0, gather_axis=1)
        same = np.zeros((4, 3), np.float32)
        comm.all_to_all(x.T, same.T, scatter_axis=1, gather_axis=1)
        return comm.rank, out, same

    inputs = [base(r, (4, 3)) for r in range(size)]
    for rank, out, same in ranks(size, body):
        blocks = [np.split(inputs[src], size, axis=0)[rank] for src in range(size)]
        np.testing.assert_array_equal(out, np.concatenate(blocks, axis=1))
        blocks_t = [np.split(inputs[src].T, size, axis=1)[rank] for src in range(size)]
        np.testing.assert_array_equal(same.T, np.concatenate(blocks_t, axis=1))


def test_broadcast_strided(ranks):
    def body(comm):
        a = base(comm.rank)
        before = a.copy()
        comm.broadcast(a[:, 1::2], root=1)
        return a, before

    for a, before in ranks(3, body):
        np.testing.assert_array_equal(a[:, 1::2], base(1)[:, 1::2])
        np.testing.assert_array_equal(a[:, ::2], before[:, ::2])


def test_reduce_gather_scatter_reduce_scatter(ranks):
    size = 2

    def body(comm):
        r = comm.rank
        red = base(r)
        comm.reduce(red, op="sum", root=1)
        gathered = np.zeros((8, 6), np.float32) if r == 0 else None
        comm.gather(base(r), gathered, axis=0, root=0)
        scattered = np.zeros((2, 6), np.float32)
        comm.scatter(base(0) if r == 0 else None, scattered, axis=0, root=0)
        rs = np.zeros((4, 3), np.float32)
        comm.reduce_scatter(base(r), rs, axis=1, op="sum")
        return r, red, gathered, scattered, rs

    total = base(0).astype(np.float64) + base(1)
    for r, red, gathered, scattered, rs in ranks(size, body):
        np.testing.assert_allclose(red, total if r == 1 else base(r))
        if r == 0:
            np.testing.assert_array_equal(gathered, np.concatenate([base(0), base(1)]))
        np.testing.assert_array_equal(scattered, base(0)[2 * r : 2 * r + 2])
        np.testing.assert_allclose(rs, total[:, 3 * r : 3 * r + 3])


def test_send_recv_views(ranks):
    def body(comm):
        r = comm.rank
        if r == 0:
            a = base(0)
            comm.send(a.T, peer=1)  # rows of a.T travel in row-major order
            comm.send(a[:, ::2], peer=1)
            return None
        t = np.zeros((6, 4), np.float32)
        comm.recv(t, peer=0)
        s = np.full((4, 6), -1, np.float32)
        comm.recv(s[:, 1::2], peer=0)
        return t, s

    _, (t, s) = ranks(2, body)
    a = base(0)
    np.testing.assert_array_equal(t, a.T)
    np.testing.assert_array_equal(s[:, 1::2], a[:, ::2])
    assert (s[:, ::2] == -1).all()


def test_p2p_group_ring(ranks):
    size = 3

    def body(comm):
        r = comm.rank
        send = base(r, (3, 4)).T  # transposed: dense
        recv = np.zeros((8, 3), np.float32)[::2]  # strided: packed
        with comm.p2p_group():
            comm.send(send, peer=(r + 1) % size)
            comm.recv(recv, peer=(r - 1) % size)
        return r, recv

    for r, recv in ranks(size, body):
        np.testing.assert_array_equal(recv, base((r - 1) % size, (3, 4)).T)


def test_barrier_split_group_queries(ranks):
    size = 4

    def body(comm):
        comm.barrier()
        comm.reserve(1 << 16)
        sub = comm.split(comm.rank % 2, key=-comm.rank)
        x = np.array([comm.rank], np.int64)
        with sub:
            sub.all_reduce(x)
            sub_info = (sub.size, sub.rank, sub.global_rank(0))
        # (Each new communicator is used once before it is closed: closing one
        # right after creating it can fail a peer still finishing creation
        # with "Connection closed by peer" -- a core issue, reported.)
        nocolor = comm.split(diffcoll.SPLIT_NOCOLOR if comm.rank == 3 else 0)
        if nocolor is not None:
            nocolor.barrier()
            nocolor.close()
        grp = comm.group([2, 0])
        grp_info = None
        if grp is not None:
            with grp:
                grp.barrier()
                grp_info = (grp.size, grp.rank, grp.global_rank())
        comm.barrier()  # nobody closes the world while others still use it
        return comm.rank, comm.size, comm.global_rank(), x[0], sub_info, nocolor is None, grp_info

    for rank, size_, grank, xsum, sub_info, no, grp_info in ranks(size, body):
        assert size_ == size and grank == rank
        assert xsum == (0 + 2 if rank % 2 == 0 else 1 + 3)
        # key = -rank: the higher rank comes first.
        assert sub_info == (2, 0 if rank >= 2 else 1, 2 if rank % 2 == 0 else 3)
        assert no == (rank == 3)
        if rank in (0, 2):
            assert grp_info == (2, 1 if rank == 0 else 0, rank)
        else:
            assert grp_info is None
