# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""What every Python benchmark shares: one process per GPU under torchrun (or a
single process without it), a diffcoll communicator and, on request, a raw NCCL
one on the same ranks, and the three ways of timing a call."""
import json
import os
import statistics
import tempfile
import time

import torch
import torch.distributed as dist

from bench_ctypes import DiffcollComm, RawNccl, find_nccl, load_diffcoll


def place_rank():
    """This rank's CUDA device (LOCAL_RANK modulo the GPUs) and whether ranks
    share GPUs. With more local ranks than GPUs each rank becomes its own NCCL
    host, joined to the others over loopback sockets (NCCL refuses two ranks of
    one communicator on one GPU of one host): results stay checkable, timings
    mean nothing. Call before NCCL starts."""
    rank = int(os.environ.get("RANK", 0))
    local = int(os.environ.get("LOCAL_RANK", 0))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", 1)))
    gpus = torch.cuda.device_count()
    shared = local_size > gpus
    if shared:
        os.environ["NCCL_HOSTID"] = f"diffcoll-bench-rank-{rank}"
        os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
        os.environ.setdefault("NCCL_IB_DISABLE", "1")
    device = local % gpus
    torch.cuda.set_device(device)
    return torch.device("cuda", device), shared


class Harness:
    def __init__(self, args):
        self.rank = int(os.environ.get("RANK", 0))
        self.size = int(os.environ.get("WORLD_SIZE", 1))
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29511")
        self.dev, self.shared = place_rank()
        local = self.dev.index
        if self.shared and self.rank == 0:
            print(f"{self.size} ranks share {torch.cuda.device_count()} GPU(s) over NCCL's socket "
                  "transport: results are checked, timings are NOT meaningful")
        dist.init_process_group("nccl", rank=self.rank, world_size=self.size, device_id=self.dev)
        self.iters = args.iters
        self.rows = []
        self.lib = load_diffcoll(args.lib)
        store_dir = self.share(tempfile.mkdtemp(prefix="diffcoll-bench-") if self.rank == 0 else None)
        self.dc = DiffcollComm(self.lib, "file://" + store_dir, self.rank, self.size, local)
        self.raw = None

    def share(self, obj):
        """Rank 0's `obj`, on every rank."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def raw_nccl(self):
        return RawNccl(find_nccl(), self.rank, self.size, self.share)

    @staticmethod
    def stream():
        return torch.cuda.current_stream().cuda_stream

    # ------------------------------------------------------------- timing

    def gpu_us(self, fn):
        """Median over 5 repetitions of the mean time of `iters` back-to-back calls."""
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
        dist.barrier()
        reps = []
        for _ in range(5):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(self.iters):
                fn()
            end.record()
            end.synchronize()
            reps.append(start.elapsed_time(end) * 1e3 / self.iters)
        return statistics.median(reps)

    def host_us(self, fn, calls=200):
        """Host time to issue one call, calls issued back to back without waiting."""
        for _ in range(10):
            fn()
        torch.cuda.synchronize()
        dist.barrier()
        reps = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            reps.append((time.perf_counter() - t0) * 1e6 / calls)
            torch.cuda.synchronize()
        return statistics.median(reps)

    def graph_us(self, fn, calls=20, replays=20):
        """Time per call replayed from a CUDA graph of `calls` captured calls."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()  # warm-up outside the capture (lazy set-up, staging growth)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(calls):
                fn()
        graph.replay()
        torch.cuda.synchronize()
        dist.barrier()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(replays):
            graph.replay()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e3 / (replays * calls)

    # ------------------------------------------------------------- output

    def record(self, **row):
        row["world_size"] = self.size
        self.rows.append(row)

    def write_json(self, path):
        gpu = torch.cuda.get_device_name(self.dev)
        with open(path, "w") as f:
            json.dump({"gpu": gpu, "world_size": self.size, "shared_gpus": self.shared,
                       "rows": self.rows}, f, indent=1)
        print(f"\nwrote {path}")

    def close(self):
        self.dc.close()
        if self.raw is not None:
            self.raw.close()
        dist.destroy_process_group()
