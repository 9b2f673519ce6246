# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Issue 3's benchmark: raw NCCL, diffcoll and PyTorch in one process, one run.

  torchrun --nproc-per-node=N tests/bench/collectives_bench.py \
      --lib build-gpu/libdiffcoll.so.0 [--json out.json] [--iters 30]

One process per GPU. Every measurement runs the three on the same buffers and
the same stream:
  raw      NCCL called directly on dense buffers (nccl-tests' way);
  diffcoll the library's call on the tensor as given, in place;
  torch    torch.distributed as engines use it: a dense view goes straight in,
           any other view goes through .contiguous() and copy_ back.
Sections: bandwidth of all-reduce, all-gather and all-to-all (1 KiB..256 MiB,
bf16), all-reduce of a latent in three layouts, small all-reduce latency
eager and inside a replayed CUDA graph, and host time per call for a 1 KiB
all-reduce issued back to back. Prints tables on rank 0 and writes JSON.
"""
import argparse

import torch
import torch.distributed as dist

from bench_common import Harness
from bench_ctypes import DC_SUM, NCCL_BFLOAT16, NCCL_SUM, check_dc, describe

SIZES = [1 << k for k in range(10, 29, 2)]  # 1 KiB .. 256 MiB
LATENT = (2, 16, 21, 90, 160)


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build-gpu/libdiffcoll.so.0")
    ap.add_argument("--json", default="collectives_bench.json")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--max-bytes", type=int, default=SIZES[-1])
    return ap.parse_args()


class Bench(Harness):
    def __init__(self, args):
        super().__init__(args)
        self.raw = self.raw_nccl()

    # ------------------------------------------------------------- the three callers

    def raw_all_reduce(self, buf):
        ptr, n, lib, comm = buf.data_ptr(), buf.numel(), self.raw.lib, self.raw.comm
        return lambda: lib.ncclAllReduce(ptr, ptr, n, NCCL_BFLOAT16, NCCL_SUM, comm, self.stream())

    def dc_all_reduce(self, t):
        desc, lib, comm = describe(t), self.lib, self.dc.handle
        return lambda: lib.diffcoll_all_reduce(comm, desc, DC_SUM, 1.0, self.stream())

    @staticmethod
    def torch_all_reduce(t):
        if t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last_3d):
            return lambda: dist.all_reduce(t)

        def via_copy():
            dense = t.contiguous()
            dist.all_reduce(dense)
            t.copy_(dense)
        return via_copy

    # ------------------------------------------------------------- sections

    def verify_all_reduce(self, t):
        """diffcoll and torch agree on random data before anything is timed."""
        torch.manual_seed(1234 + self.rank)
        src = torch.randint(-8, 8, t.shape, device=self.dev).to(torch.bfloat16)
        t.copy_(src)
        check_dc(self.lib, self.dc_all_reduce(t)(), "diffcoll_all_reduce")
        ours = t.clone()
        t.copy_(src)
        self.torch_all_reduce(t)()
        if not torch.equal(ours, t):
            raise SystemExit(f"rank {self.rank}: diffcoll all-reduce differs from torch")

    def bandwidth(self, max_bytes):
        ws = self.size
        for nbytes in [s for s in SIZES if s <= max_bytes]:
            n = nbytes // 2
            x = torch.zeros(n, dtype=torch.bfloat16, device=self.dev)
            gathered = torch.empty(n * ws, dtype=torch.bfloat16, device=self.dev)
            a2a_out = torch.empty(n, dtype=torch.bfloat16, device=self.dev) if n % ws == 0 else None
            lib, comm = self.raw.lib, self.raw.comm
            xd, gd = describe(x), describe(gathered)
            cases = {
                "all_reduce": (self.raw_all_reduce(x), self.dc_all_reduce(x),
                               lambda: dist.all_reduce(x), nbytes, 2 * (ws - 1) / ws),
                "all_gather": (
                    lambda: lib.ncclAllGather(x.data_ptr(), gathered.data_ptr(), n, NCCL_BFLOAT16,
                                              comm, self.stream()),
                    lambda: self.lib.diffcoll_all_gather(self.dc.handle, xd, gd, 0, self.stream()),
                    lambda: dist.all_gather_into_tensor(gathered, x), nbytes * ws, (ws - 1) / ws),
            }
            if a2a_out is not None:
                od = describe(a2a_out)
                cases["all_to_all"] = (
                    lambda: lib.ncclAlltoAll(x.data_ptr(), a2a_out.data_ptr(), n // ws,
                                             NCCL_BFLOAT16, comm, self.stream()),
                    lambda: self.lib.diffcoll_all_to_all(self.dc.handle, xd, od, 0, 0, self.stream()),
                    lambda: dist.all_to_all_single(a2a_out, x), nbytes, (ws - 1) / ws)
            for op, (raw, ours, theirs, algbytes, factor) in cases.items():
                check_dc(self.lib, ours(), "diffcoll " + op)
                t_raw, t_dc, t_torch = self.gpu_us(raw), self.gpu_us(ours), self.gpu_us(theirs)
                bus = lambda us: algbytes / us / 1e3 * factor  # GB/s
                self.record(section="bandwidth", op=op, bytes=nbytes, raw_us=t_raw, diffcoll_us=t_dc,
                            torch_us=t_torch, raw_busbw=bus(t_raw), diffcoll_busbw=bus(t_dc),
                            torch_busbw=bus(t_torch), diffcoll_over_raw=t_dc / t_raw)

    def layouts(self):
        b, c, t, h, w = LATENT
        dense = torch.zeros(LATENT, dtype=torch.bfloat16, device=self.dev)
        views = {
            "contiguous": dense,
            # channels-last-3d: a dense view whose memory order is b, t, h, w, c
            "transposed": torch.zeros(b, t, h, w, c, dtype=torch.bfloat16,
                                      device=self.dev).permute(0, 4, 1, 2, 3),
            # a slice of a wider buffer: the rows have gaps
            "sliced": torch.zeros(b, c, t, h, w + 32, dtype=torch.bfloat16,
                                  device=self.dev)[..., :w],
        }
        for v in views.values():
            self.verify_all_reduce(v)
        check_dc(self.lib, self.lib.diffcoll_comm_reserve(self.dc.handle, dense.numel() * 2),
                 "diffcoll_comm_reserve")
        for name, v in views.items():
            raw_us = self.gpu_us(self.raw_all_reduce(dense))  # next to each row: same conditions
            t_dc = self.gpu_us(self.dc_all_reduce(v))
            t_torch = self.gpu_us(self.torch_all_reduce(v))
            self.record(section="layouts", layout=name, shape=list(LATENT), raw_contiguous_us=raw_us,
                        diffcoll_us=t_dc, torch_us=t_torch, diffcoll_over_raw=t_dc / raw_us,
                        torch_over_raw=t_torch / raw_us)

    def latency(self):
        for nbytes in [1 << 10, 1 << 14, 1 << 17, 1 << 20]:
            x = torch.zeros(nbytes // 2, dtype=torch.bfloat16, device=self.dev)
            fns = {"raw": self.raw_all_reduce(x), "diffcoll": self.dc_all_reduce(x),
                   "torch": lambda: dist.all_reduce(x)}
            row = {"section": "latency", "op": "all_reduce", "bytes": nbytes}
            for who, fn in fns.items():
                row[who + "_us"] = self.gpu_us(fn)
                row[who + "_graph_us"] = self.graph_us(fn)
            if nbytes == 1 << 10:
                for who, fn in fns.items():
                    row[who + "_host_us"] = self.host_us(fn)
            row["diffcoll_over_torch"] = row["diffcoll_us"] / row["torch_us"]
            row["diffcoll_over_raw_graph"] = row["diffcoll_graph_us"] / row["raw_graph_us"]
            self.record(**row)

    # ------------------------------------------------------------- output

    def report(self, path):
        if self.rank != 0:
            return
        gpu = torch.cuda.get_device_name(self.dev)
        print(f"# {self.size} x {gpu}, bf16, microseconds per call (median)")
        print(f"{'op':<11}{'bytes':>11}{'raw':>10}{'diffcoll':>10}{'torch':>10}"
              f"{'raw GB/s':>10}{'dc GB/s':>10}{'dc/raw':>8}")
        for r in self.rows:
            if r["section"] == "bandwidth":
                print(f"{r['op']:<11}{r['bytes']:>11}{r['raw_us']:>10.1f}{r['diffcoll_us']:>10.1f}"
                      f"{r['torch_us']:>10.1f}{r['raw_busbw']:>10.1f}{r['diffcoll_busbw']:>10.1f}"
                      f"{r['diffcoll_over_raw']:>8.2f}")
        print(f"\n{'latent layout':<14}{'raw contig':>11}{'diffcoll':>10}{'torch':>10}"
              f"{'dc/raw':>8}{'torch/raw':>10}")
        for r in self.rows:
            if r["section"] == "layouts":
                print(f"{r['layout']:<14}{r['raw_contiguous_us']:>11.1f}{r['diffcoll_us']:>10.1f}"
                      f"{r['torch_us']:>10.1f}{r['diffcoll_over_raw']:>8.2f}"
                      f"{r['torch_over_raw']:>10.2f}")
        print(f"\n{'all-reduce':<11}{'raw':>8}{'dc':>8}{'torch':>8}{'raw graph':>10}"
              f"{'dc graph':>10}{'torch graph':>12}{'host raw/dc/torch':>20}")
        for r in self.rows:
            if r["section"] == "latency":
                host = (f"{r['raw_host_us']:.1f}/{r['diffcoll_host_us']:.1f}/{r['torch_host_us']:.1f}"
                        if "raw_host_us" in r else "")
                print(f"{r['bytes']:<11}{r['raw_us']:>8.1f}{r['diffcoll_us']:>8.1f}"
                      f"{r['torch_us']:>8.1f}{r['raw_graph_us']:>10.1f}{r['diffcoll_graph_us']:>10.1f}"
                      f"{r['torch_graph_us']:>12.1f}{host:>20}")
        self.write_json(path)


def main():
    args = parse()
    bench = Bench(args)
    bench.bandwidth(args.max_bytes)
    bench.layouts()
    bench.latency()
    bench.report(args.json)
    bench.close()


if __name__ == "__main__":
    main()
