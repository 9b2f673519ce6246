# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""PyTorch baseline of the GroupNorm benchmark of issue 11.

What engines do today with a spatially split activation: all_gather the
slabs (padded to the largest, as NCCL's all_gather needs equal blocks), run
GroupNorm on the whole tensor, keep this rank's slab. bf16 [1,512,90,160],
32 groups, split along H, contiguous and channels-last. Prints a table and
writes JSON like group_norm_bench (compare on the same machine):

    torchrun --nproc-per-node P tests/bench/group_norm_torch.py [--iters N] [--json FILE]
"""
import argparse
import json
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F

N, C, H, W, GROUPS = 1, 512, 90, 160, 32


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    # diffcoll_split_extent's rule: the first H % P slabs get one more row.
    sizes = [H // world + (1 if r < H % world else 0) for r in range(world)]
    rows, start, most = sizes[rank], sum(sizes[:rank]), max(sizes)
    weight = torch.ones(C, device="cuda", dtype=torch.bfloat16)
    bias = torch.zeros(C, device="cuda", dtype=torch.bfloat16)
    results = []
    for layout in ("contiguous", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        x = torch.randn(N, C, rows, W, device="cuda", dtype=torch.bfloat16)
        x = x.contiguous(memory_format=fmt)
        send = torch.zeros(N, C, most, W, device="cuda", dtype=torch.bfloat16)
        parts = [torch.empty_like(send) for _ in range(world)]

        def step():
            send[:, :, :rows].copy_(x)
            dist.all_gather(parts, send)
            whole = torch.cat([p[:, :, :s] for p, s in zip(parts, sizes)], dim=2)
            whole = whole.contiguous(memory_format=fmt)
            y = F.group_norm(whole, GROUPS, weight, bias, eps=1e-6)
            x.copy_(y[:, :, start:start + rows])

        for _ in range(20):
            step()
        torch.cuda.synchronize()
        dist.barrier()
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0.record()
        for _ in range(args.iters):
            step()
        t1.record()
        t1.synchronize()
        results.append({"op": "group_norm", "impl": "torch_all_gather", "ranks": world,
                        "whole": [N, C, H, W], "groups": GROUPS, "dtype": "bf16",
                        "split": "H", "layout": layout,
                        "eager_us": round(1000.0 * t0.elapsed_time(t1) / args.iters, 2)})
    if rank == 0:
        print(f"PyTorch all_gather + GroupNorm, bf16 [{N},{C},{H},{W}] over {world} GPUs")
        print(f"{'layout':14s} {'eager us':>10s}")
        for r in results:
            print(f"{r['layout']:14s} {r['eager_us']:10.2f}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
