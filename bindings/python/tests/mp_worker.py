# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""One rank of a multi-process run (started by test_processes.py).

usage: mp_worker.py RENDEZVOUS RANK SIZE SCENARIO
Exits 0 when every check passed; prints what failed otherwise.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import numpy as np  # noqa: E402

import diffcoll  # noqa: E402


def base(rank: int) -> np.ndarray:
    return np.arange(36, dtype=np.float32).reshape(6, 6) * (rank + 1)


def collectives(comm: diffcoll.Comm) -> None:
    rank, size = comm.rank, comm.size
    ref = sum(base(r) for r in range(size))
    # all_reduce on a transposed view (dense, no packing) and a sliced one.
    comm.reset_stats()
    a = base(rank)
    comm.all_reduce(a.T)
    np.testing.assert_array_equal(a, ref)
    assert comm.stats().bytes_packed == 0
    b = base(rank)
    comm.all_reduce(b[:, ::2], op="avg")
    np.testing.assert_allclose(b[:, ::2], ref[:, ::2] / size)
    np.testing.assert_array_equal(b[:, 1::2], base(rank)[:, 1::2])
    assert comm.stats().bytes_packed > 0
    # premul_sum
    c = base(rank)
    comm.all_reduce(c, op="premul_sum", scalar=rank + 1.0)
    np.testing.assert_allclose(c, sum((r + 1.0) * base(r) for r in range(size)))
    # all_gather along axis 1 into a transposed output
    out = np.zeros((6 * size, 6), np.float32).T
    comm.all_gather(base(rank), out, axis=1)
    np.testing.assert_array_equal(out, np.concatenate([base(r) for r in range(size)], axis=1))
    # all_to_all
    x = base(rank)
    y = np.zeros((6 // size, 6 * size), np.float32)
    comm.all_to_all(x, y, scatter_axis=0, gather_axis=1)
    expected = np.concatenate([np.split(base(s), size)[rank] for s in range(size)], axis=1)
    np.testing.assert_array_equal(y, expected)
    # broadcast and a send/recv ring of strided views
    z = base(rank)
    comm.broadcast(z[::2], root=size - 1)
    np.testing.assert_array_equal(z[::2], base(size - 1)[::2])
    recv = np.zeros((6, 12), np.float32)[:, ::2]
    with comm.p2p_group():
        comm.send(base(rank).T, peer=(rank + 1) % size)
        comm.recv(recv, peer=(rank - 1) % size)
    np.testing.assert_array_equal(recv, base((rank - 1) % size).T)
    comm.barrier()


def errors(comm: diffcoll.Comm) -> None:
    try:
        comm.reduce(np.zeros(4), root=comm.size)
    except diffcoll.InvalidArgumentError as e:
        assert e.status == diffcoll.Status.INVALID_ARGUMENT and "root" in e.message, e
    else:
        raise AssertionError("a bad root was accepted")
    comm.barrier()


def main() -> int:
    rendezvous, rank, size, scenario = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with diffcoll.Comm.create(rendezvous, rank, size, timeout_ms=20000) as comm:
        assert (comm.rank, comm.size) == (rank, size)
        {"collectives": collectives, "errors": errors}[scenario](comm)
    print(f"rank {rank}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
