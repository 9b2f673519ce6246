"""PyTorch baselines of the Ulysses benchmark of issue 5, for comparison with
ulysses_bench (same machine, same shapes): sequence-sharded [1, S/P, 40, 128]
bf16 -> head-sharded [1, S, 40/P, 128] the way engines do it (yunchang's
all-to-all: reshape, transpose, contiguous, all_to_all_single, reshape,
transpose, contiguous), through torch.distributed (direct) and through
torch.distributed._functional_collectives (functional), for q alone and for
q, k, v (three calls). Prints one JSON object per case on rank 0.

    torchrun --nproc-per-node P tests/bench/ulysses_torch_bench.py [--iters N]

Not run in the session that wrote it (no GPU, no torch there).
"""
import argparse
import json
import os

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol

HEADS, HEAD_DIM = 40, 128


def seq_to_head(x, group, functional):
    p = dist.get_world_size(group)
    b, s, h, d = x.shape
    x_t = x.reshape(b, s, p, h // p, d).transpose(0, 2).contiguous()  # [P, s, b, h/P, d]
    if functional:
        out = funcol.all_to_all_single(x_t, None, None, group)
        out = funcol.wait_tensor(out)
    else:
        out = torch.empty_like(x_t)
        dist.all_to_all_single(out, x_t, group=group)
    return out.reshape(s * p, b, h // p, d).transpose(0, 1).contiguous()


def time_us(fn, iters):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    dist.barrier()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    stop.record()
    stop.synchronize()
    return 1000.0 * start.elapsed_time(stop) / iters


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    p, rank = dist.get_world_size(), dist.get_rank()
    group = dist.group.WORLD
    for seq in (1024, 8192, 37800):
        if seq % p or HEADS % p:
            continue  # this baseline needs even splits
        for tensors in (1, 3):
            xs = [torch.randn(1, seq // p, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16)
                  for _ in range(tensors)]
            row = {"op": "ulysses_seq_to_head_torch", "ranks": p, "seq": seq, "heads": HEADS,
                   "head_dim": HEAD_DIM, "dtype": "bf16", "tensors": tensors,
                   "bytes_per_rank": sum(x.numel() * 2 for x in xs)}
            for name, functional in (("direct_us", False), ("functional_us", True)):
                row[name] = round(time_us(
                    lambda: [seq_to_head(x, group, functional) for x in xs], args.iters), 2)
            if rank == 0:
                print(json.dumps(row), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
