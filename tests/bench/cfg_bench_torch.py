# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""PyTorch side of the CFG-parallel combine benchmark (issue 4; tests/bench/cfg_bench.cc).

The procedures of /work/shared/baselines/torch_anchor.py (section F, seed 003)
on the same bf16 video latent [1, 16, 21, 90, 160] with g = 5, each also with
guidance rescale (phi = 0.7, torch.std per sample as engines compute it):
  gather:  all_gather_into_tensor of the branches, combine, (rescale);
  reduce:  each rank scales its branch, all_reduce, (rescale: the cond rank's
           std shared by a second all_reduce of two floats).
Times are the median of CUDA events around one call, like the anchor.

Run: torchrun --nproc-per-node=2 tests/bench/cfg_bench_torch.py [--iters N] [--json PATH]
Prints a table and writes JSON (rank 0). More ranks than GPUs share them
(bench_common.place_rank): the timings then mean nothing, and the table says so.
"""
import argparse
import json
import os
import statistics

import torch
import torch.distributed as dist

from bench_common import place_rank

G_SCALE = 5.0
PHI = 0.7
SHAPE = (1, 16, 21, 90, 160)


def timeit(fn, iters, warm=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    dist.barrier()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        ts.append(s.elapsed_time(e) * 1e3)
    return statistics.median(ts)


def rescale(out, cond_std, phi=PHI):
    # Lin et al. 2023, 3.4, per batch sample over all other dims (torch.std: N - 1).
    dims = tuple(range(1, out.dim()))
    out_std = out.std(dim=dims, keepdim=True)
    rescaled = out * (cond_std / out_std)
    return phi * rescaled + (1 - phi) * out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--json", default="cfg_bench_torch.json")
    args = parser.parse_args()
    rank = int(os.environ["RANK"])
    ws = int(os.environ["WORLD_SIZE"])
    dev, shared = place_rank()
    dist.init_process_group("nccl", device_id=dev)
    dims = tuple(range(1, len(SHAPE)))
    lat = torch.randn(*SHAPE, dtype=torch.bfloat16, device=dev)  # this rank's branch

    def via_gather(with_rescale):
        o = torch.empty((ws,) + tuple(lat.shape), dtype=lat.dtype, device=dev)
        dist.all_gather_into_tensor(o, lat)
        cond, uncond = o[0], o[1 % ws]
        out = uncond + G_SCALE * (cond - uncond)
        if with_rescale:
            out = rescale(out, cond.std(dim=dims, keepdim=True))
        return out

    def via_reduce(with_rescale):
        w = G_SCALE if rank == 0 else (1 - G_SCALE) if rank == 1 else 0.0
        p = lat * w
        dist.all_reduce(p)
        if with_rescale:
            # The cond rank's std, shared as a few floats.
            s = lat.float().std(dim=dims) if rank == 0 else torch.zeros(SHAPE[0], device=dev)
            dist.all_reduce(s)
            p = rescale(p, s.view(-1, *([1] * len(dims))).to(p.dtype))
        return p

    rows = {
        "gather_combine": timeit(lambda: via_gather(False), args.iters),
        "gather_combine_rescale": timeit(lambda: via_gather(True), args.iters),
        "weighted_allreduce": timeit(lambda: via_reduce(False), args.iters),
        "weighted_allreduce_rescale": timeit(lambda: via_reduce(True), args.iters),
    }
    if rank == 0:
        print(f"PyTorch CFG-parallel combine, bf16 {list(SHAPE)}, g={G_SCALE}, "
              f"phi={PHI}, {ws} rank(s), {args.iters} iterations")
        if shared:
            print(f"{ws} ranks share {torch.cuda.device_count()} GPU(s) over NCCL's socket "
                  "transport: timings are NOT meaningful")
        print(f"{'procedure':<32} {'median us':>10}")
        for name, us in rows.items():
            print(f"{name:<32} {us:>10.1f}")
        with open(args.json, "w") as f:
            json.dump({"op": "cfg_combine_parallel_torch", "ranks": ws, "shared_gpus": shared,
                       "shape": list(SHAPE),
                       "dtype": "bf16", "guidance": G_SCALE, "rescale_phi": PHI,
                       "iters": args.iters, "median_us": rows}, f)
            f.write("\n")
        print(f"wrote {args.json}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
