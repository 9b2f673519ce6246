#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""diffcoll from Python: all_reduce and all_gather on host (numpy) tensors.

Run as is, it starts 4 ranks as threads of this process (local://
rendezvous). Started once per rank with torchrun-style variables it uses them
instead, e.g. with two shells:

    RANK=0 WORLD_SIZE=2 DIFFCOLL_STORE=file:///tmp/job1 python3 allreduce.py
    RANK=1 WORLD_SIZE=2 DIFFCOLL_STORE=file:///tmp/job1 python3 allreduce.py

Needs the diffcoll package and its SWIG module on PYTHONPATH (a build tree:
PYTHONPATH=<src>/bindings/python:<build>/bindings/python).
"""
from __future__ import annotations

import os
import threading

import numpy as np

import diffcoll


def rank_main(comm: diffcoll.Comm) -> None:
    rank, size = comm.rank, comm.size

    # A latent-like tensor; every rank holds different values.
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) + rank
    expected = sum(np.arange(24, dtype=np.float32).reshape(2, 3, 4) + r for r in range(size))

    # In place, on a transposed view: no copy, no packing (a dense permutation).
    comm.all_reduce(x.transpose(2, 0, 1), op="sum")
    assert np.array_equal(x, expected), "all_reduce gave a wrong result"

    # Average of every other column: a strided view is packed and unpacked.
    y = np.full((4, 6), float(rank), dtype=np.float32)
    comm.all_reduce(y[:, ::2], op="avg")
    assert np.allclose(y[:, ::2], (size - 1) / 2) and np.all(y[:, 1::2] == rank)

    # all_gather: each rank's 2x3 block, concatenated along axis 1.
    block = np.full((2, 3), rank, dtype=np.int32)
    gathered = np.empty((2, 3 * size), dtype=np.int32)
    comm.all_gather(block, gathered, axis=1)
    assert np.array_equal(gathered, np.repeat(np.arange(size, dtype=np.int32), 3)[None].repeat(2, 0))

    stats = comm.stats()
    if rank == 0:
        print(f"diffcoll {diffcoll.__version__}: {size} ranks OK; row 0 of the gather: {gathered[0]}")
        print(f"  traffic counters of rank 0: {stats}")


def main() -> None:
    if "DIFFCOLL_STORE" in os.environ:
        with diffcoll.Comm.from_env() as comm:
            rank_main(comm)
        return
    size = 4
    errors: list = []

    def thread_main(rank: int) -> None:
        try:
            with diffcoll.Comm.create("local://allreduce-example", rank, size) as comm:
                rank_main(comm)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=thread_main, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


if __name__ == "__main__":
    main()
