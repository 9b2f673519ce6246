#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""CFG-parallel from Python: each rank of a CFG group runs its guidance
branches, and diffcoll combines the predictions on every rank.

Two cases, each checked against numpy:

* standard CFG, ``uncond + 7.5 * (cond - uncond)``, on 2 ranks (one branch
  each) in PARALLEL order: bit for bit equal to the serial combine on one
  process, and to numpy's evaluation of the same rounding steps;
* multi-term guidance (cond, uncond, perturbed, modality) on 4 ranks with
  guidance rescale: equal to the serial combine within rounding.

Ranks are threads of this process (local:// rendezvous). Needs the diffcoll
package and its SWIG module on PYTHONPATH (a build tree:
PYTHONPATH=<src>/bindings/python:<build>/bindings/python).
"""
from __future__ import annotations

import threading
from typing import Callable, List

import numpy as np

import diffcoll

SHAPE = (2, 4, 8, 8)  # a small latent: batch 2


def denoiser(branch: str) -> np.ndarray:
    """Stands in for a forward pass of the model on one guidance branch."""
    seed = sum(ord(ch) for ch in branch)
    return np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)


def parallel_order_reference(weights: List[float], preds: List[np.ndarray]) -> np.ndarray:
    """PARALLEL order in float32: acc = w0 p0; acc = acc + wi pi, rounded after each step."""
    w = [np.float32(x) for x in weights]
    acc = w[0] * preds[0]
    for wi, p in zip(w[1:], preds[1:]):
        acc = acc + wi * p
    return acc


def standard_cfg(comm: diffcoll.Comm) -> None:
    with diffcoll.CfgPolicy.standard(7.5, order="parallel") as policy:
        names = [name for name, _ in policy.branches]
        mine = policy.dispatch(comm.size, comm.rank)  # rank 0: cond, rank 1: uncond
        local = [denoiser(names[i]) for i in mine]  # only this rank's forward passes
        out = np.empty(SHAPE, np.float32)
        comm.cfg_combine(policy, local, out)

        all_preds = [denoiser(n) for n in names]
        serial = np.empty(SHAPE, np.float32)
        policy.combine_serial(all_preds, serial)
        assert np.array_equal(out.view(np.uint32), serial.view(np.uint32)), "parallel != serial"
        reference = parallel_order_reference(policy.weights(), all_preds)
        assert np.array_equal(out.view(np.uint32), reference.view(np.uint32)), "parallel != numpy"
        if comm.rank == 0:
            print(f"standard CFG on {comm.size} ranks: rank {comm.rank} ran {[names[i] for i in mine]}; "
                  "bitwise equal to the serial combine and to numpy")


def multi_term(comm: diffcoll.Comm) -> None:
    branches = [("cond", "cond"), ("uncond", "uncond"), ("stg", "perturbed"), ("image_only", "modality")]
    terms = [(4.0, "cond", "uncond"), (1.0, "cond", "stg"), (0.5, "cond", "image_only")]
    with diffcoll.CfgPolicy(branches, base="cond", terms=terms, rescale_phi=0.7) as policy:
        mine = policy.dispatch(comm.size, comm.rank)
        out = np.empty(SHAPE, np.float32)
        comm.cfg_combine(policy, [denoiser(branches[i][0]) for i in mine], out, step=10)

        all_preds = [denoiser(name) for name, _ in branches]
        serial = np.empty(SHAPE, np.float32)
        policy.combine_serial(all_preds, serial, step=10)
        assert np.allclose(out, serial, rtol=1e-5, atol=1e-5), "parallel and serial differ"
        # The same formula in float64 numpy, guidance rescale included.
        p = {name: x.astype(np.float64) for (name, _), x in zip(branches, all_preds)}
        raw = p["cond"] + sum(s * (p[a] - p[b]) for s, a, b in terms)
        axes = tuple(range(1, len(SHAPE)))
        ratio = p["cond"].std(axis=axes, ddof=1, keepdims=True) / raw.std(axis=axes, ddof=1, keepdims=True)
        expected = 0.7 * raw * ratio + 0.3 * raw
        assert np.allclose(out, expected, rtol=1e-4, atol=1e-4), "combine differs from numpy"
        if comm.rank == 0:
            print(f"multi-term guidance with rescale on {comm.size} ranks: weights {policy.weights()}, "
                  f"max |parallel - serial| = {np.abs(out - serial).max():.2e}")


def run_ranks(size: int, name: str, fn: Callable[[diffcoll.Comm], None]) -> None:
    errors: list = []

    def thread_main(rank: int) -> None:
        try:
            with diffcoll.Comm.create(f"local://{name}", rank, size) as comm:
                fn(comm)
                comm.barrier()  # nobody closes while a peer may still be communicating
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=thread_main, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def main() -> None:
    run_ranks(2, "cfg-example-standard", standard_cfg)
    run_ranks(4, "cfg-example-multi", multi_term)
    print("cfg_parallel: OK")


if __name__ == "__main__":
    main()
