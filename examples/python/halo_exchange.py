#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Halo exchange from Python: a spatially parallel 3x3 convolution.

A latent [N, C, H, W] is split along H over 3 ranks (uneven slabs, the rule
of torch.tensor_split: diffcoll.split_extent). Each rank exchanges one halo
row with its neighbours into a padded buffer (replicate padding at the top
and bottom of the image), runs a 3x3 convolution on its padded slab, and the
slabs of the result are reassembled with Comm.gather_slabs. The result is
checked against the convolution of the whole, replicate-padded latent.

Ranks are threads of this process (local:// rendezvous). Needs the diffcoll
package and its SWIG module on PYTHONPATH (a build tree:
PYTHONPATH=<src>/bindings/python:<build>/bindings/python).
"""
from __future__ import annotations

import threading

import numpy as np

import diffcoll

N, C, H, W = 1, 4, 11, 16
RANKS = 3
KERNEL = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 16  # a blur, per channel


def conv3x3_rows(padded: np.ndarray) -> np.ndarray:
    """Valid convolution along H (the rows are padded already), zero padding along W."""
    x = np.pad(padded, ((0, 0), (0, 0), (0, 0), (1, 1)))
    rows = x.shape[2] - 2
    out = np.zeros((x.shape[0], x.shape[1], rows, W), np.float32)
    for dy in range(3):
        for dx in range(3):
            out += KERNEL[dy, dx] * x[:, :, dy : dy + rows, dx : dx + W]
    return out


def rank_main(comm: diffcoll.Comm, latent: np.ndarray, results: list) -> None:
    start, rows = diffcoll.split_extent(H, comm.size, comm.rank)
    slab = latent[:, :, start : start + rows]  # what this rank computed so far

    # One halo row on each side of the slab (a 3x3 kernel), replicate padding at the ends.
    with diffcoll.HaloPlan(comm, row_axis=2, row_before=1, row_after=1, row_boundary="replicate") as plan:
        padded = np.empty((N, C, rows + 2, W), np.float32)
        plan.exchange_into(slab, padded)  # copy the slab in, then fill the halo

        # Padding a second tensor of the same geometry reuses the plan.
        padded2 = np.empty_like(padded)
        padded2[:, :, 1:-1] = 2 * slab
        plan.exchange(padded2)
        assert np.array_equal(padded2, 2 * padded)

    local_out = conv3x3_rows(padded)  # the rows [start, start + rows) of the whole output
    whole_out = np.empty((N, C, H, W), np.float32) if comm.rank == 0 else None
    comm.gather_slabs(local_out, whole_out, axis=2, root=0)
    results[comm.rank] = whole_out


def main() -> None:
    latent = np.random.default_rng(0).standard_normal((N, C, H, W)).astype(np.float32)
    results: list = [None] * RANKS
    errors: list = []

    def thread_main(rank: int) -> None:
        try:
            with diffcoll.Comm.create("local://halo-example", rank, RANKS) as comm:
                rank_main(comm, latent, results)
                comm.barrier()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=thread_main, args=(r,)) for r in range(RANKS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]

    reference = conv3x3_rows(np.pad(latent, ((0, 0), (0, 0), (1, 1), (0, 0)), mode="edge"))
    assert results[0] is not None and np.array_equal(results[0], reference), "halo convolution differs"
    slabs = [diffcoll.split_extent(H, RANKS, r)[1] for r in range(RANKS)]
    print(f"halo_exchange: {RANKS} ranks with {slabs} rows each; the parallel 3x3 convolution "
          "equals the whole one bit for bit: OK")


if __name__ == "__main__":
    main()
