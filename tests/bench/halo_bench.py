# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

"""Issue 6's benchmark: halo exchange, diffcoll against PyTorch, in one run.

  torchrun --nproc-per-node=N tests/bench/halo_bench.py \
      --lib build-gpu/libdiffcoll.so.0 [--json out.json] [--iters 50]

One process per GPU, a 1-D chain split along H, one halo row per side, zero
boundaries, bf16 channels-last-3d slabs of the issue's three shapes (each
shape is one rank's slab).
  diffcoll  diffcoll_halo_exchange on the padded activation, in place, eager
            and replayed from a CUDA graph;
  torch     what engines do: copy the edge rows into fresh contiguous
            buffers, batch_isend_irecv with the neighbours, torch.cat the
            halos onto the slab.
Both results are compared on random data before timing. Prints a table on
rank 0 and writes JSON.
"""
import argparse
import ctypes

import torch
import torch.distributed as dist

from bench_common import Harness
from bench_ctypes import check_dc, describe, halo_config

SLABS = [(1, 384, 4, 45, 160), (1, 192, 4, 180, 640), (1, 96, 4, 360, 1280)]


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build-gpu/libdiffcoll.so.0")
    ap.add_argument("--json", default="halo_bench.json")
    ap.add_argument("--iters", type=int, default=50)
    return ap.parse_args()


def channels_last_3d(n, c, t, h, w, device):
    return torch.zeros(n, t, h, w, c, dtype=torch.bfloat16, device=device).permute(0, 4, 1, 2, 3)


class HaloBench(Harness):
    def __init__(self, args):
        super().__init__(args)
        self.plan = ctypes.c_void_p()
        cfg = halo_config()  # H (dim -2), one row each side, zeros
        check_dc(self.lib, self.lib.diffcoll_halo_plan_create(self.dc.handle, ctypes.byref(cfg),
                                                              ctypes.byref(self.plan)),
                 "diffcoll_halo_plan_create")

    def torch_halo(self, slab):
        prev, nxt = self.rank - 1, self.rank + 1
        top = slab[:, :, :, :1].contiguous()
        bottom = slab[:, :, :, -1:].contiguous()
        from_prev = torch.empty_like(top)
        from_next = torch.empty_like(bottom)
        ops = []
        if prev >= 0:
            ops += [dist.P2POp(dist.isend, top, prev), dist.P2POp(dist.irecv, from_prev, prev)]
        if nxt < self.size:
            ops += [dist.P2POp(dist.isend, bottom, nxt), dist.P2POp(dist.irecv, from_next, nxt)]
        if ops:
            for request in dist.batch_isend_irecv(ops):
                request.wait()
        if prev < 0:
            from_prev.zero_()
        if nxt >= self.size:
            from_next.zero_()
        return torch.cat([from_prev, slab, from_next], dim=3)

    def run(self):
        for n, c, t, h, w in SLABS:
            padded = channels_last_3d(n, c, t, h + 2, w, self.dev)
            slab = padded[:, :, :, 1:h + 1]
            desc = describe(padded)
            check_dc(self.lib, self.lib.diffcoll_comm_reserve(self.dc.handle, 64 << 20),
                     "diffcoll_comm_reserve")
            ours = lambda: self.lib.diffcoll_halo_exchange(self.plan, desc, self.stream())

            torch.manual_seed(99 + self.rank)
            slab.copy_(torch.randn(slab.shape, device=self.dev).to(torch.bfloat16))
            padded[:, :, :, 0].fill_(7)
            padded[:, :, :, -1].fill_(7)
            check_dc(self.lib, ours(), "diffcoll_halo_exchange")
            if not torch.equal(padded, self.torch_halo(slab)):
                raise SystemExit(f"rank {self.rank}: diffcoll halo differs from torch")

            t_dc = self.gpu_us(ours)
            t_graph = self.graph_us(ours)
            t_torch = self.gpu_us(lambda: self.torch_halo(slab))
            self.record(op="halo_exchange", slab=[n, c, t, h, w], layout="channels_last_3d",
                        split="H", halo=1, diffcoll_us=t_dc, diffcoll_graph_us=t_graph,
                        torch_us=t_torch, torch_over_diffcoll=t_torch / t_dc)

    def report(self, path):
        if self.rank != 0:
            return
        print(f"# halo exchange, {self.size} ranks, bf16 channels-last-3d, split H, halo 1, "
              f"microseconds per exchange (median)")
        print(f"{'slab':<24}{'diffcoll':>10}{'dc graph':>10}{'torch':>10}{'torch/dc':>10}")
        for r in self.rows:
            print(f"{str(r['slab']):<24}{r['diffcoll_us']:>10.1f}{r['diffcoll_graph_us']:>10.1f}"
                  f"{r['torch_us']:>10.1f}{r['torch_over_diffcoll']:>10.2f}")
        self.write_json(path)

    def close(self):
        self.lib.diffcoll_halo_plan_destroy(self.plan)
        super().close()


def main():
    args = parse()
    bench = HaloBench(args)
    bench.run()
    bench.report(args.json)
    bench.close()


if __name__ == "__main__":
    main()
