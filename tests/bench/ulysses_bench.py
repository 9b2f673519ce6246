"""Issue 5's benchmark: the Ulysses all-to-all, diffcoll against PyTorch and
raw NCCL, in one run.

  torchrun --nproc-per-node=N tests/bench/ulysses_bench.py \
      --lib build-gpu/libdiffcoll.so.0 [--json out.json] [--iters 50]

One process per GPU; Wan-like attention activations, 40 heads x 128, bf16,
sequence 1k, 8k and 37.8k, handed over in the engine's natural layout
[1, S/P, 40, 128] and turned head-sharded [1, S, 40/P, 128]; q alone and q, k,
v together.
  diffcoll    diffcoll_ulysses_all_to_all of all the tensors in one call,
              eager and replayed from a CUDA graph;
  torch       what engines do (yunchang's all-to-all): reshape, transpose,
              contiguous, all_to_all_single, reshape, transpose, contiguous,
              once per tensor, through torch.distributed (direct) and through
              torch.distributed._functional_collectives (functional);
  nccl        ncclAlltoAll on dense buffers of the same bytes (no layout
              change at all: the bandwidth bound).
diffcoll's result is compared with torch's on random data before timing.
Prints a table on rank 0 and writes JSON. Needs S and 40 divisible by N (the
torch path cannot split unevenly).
"""
import argparse
import ctypes

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol

from bench_common import Harness
from bench_ctypes import DcTensor, check_dc, describe

HEADS, HEAD_DIM = 40, 128
SEQS = (1024, 8192, 37800)
SEQ_TO_HEAD = 0  # DIFFCOLL_ULYSSES_SEQ_TO_HEAD
NCCL_UINT8 = 1


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build-gpu/libdiffcoll.so.0")
    ap.add_argument("--json", default="ulysses_bench.json")
    ap.add_argument("--iters", type=int, default=50)
    return ap.parse_args()


class UlyssesBench(Harness):
    def __init__(self, args):
        super().__init__(args)
        p = ctypes.c_void_p
        self.lib.diffcoll_ulysses_all_to_all.argtypes = [
            p, ctypes.POINTER(DcTensor), ctypes.POINTER(DcTensor), ctypes.c_int32,
            ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, p]
        self.raw = self.raw_nccl()

    def torch_seq_to_head(self, x, functional):
        p = self.size
        b, s, h, d = x.shape
        x_t = x.reshape(b, s, p, h // p, d).transpose(0, 2).contiguous()  # [P, s, b, h/P, d]
        if functional:
            out = funcol.wait_tensor(funcol.all_to_all_single(x_t, None, None, dist.group.WORLD))
        else:
            out = torch.empty_like(x_t)
            dist.all_to_all_single(out, x_t)
        return out.reshape(s * p, b, h // p, d).transpose(0, 1).contiguous()

    def run(self):
        p = self.size
        for seq in SEQS:
            if seq % p or HEADS % p:
                continue
            for count in (1, 3):
                torch.manual_seed(5 + self.rank)
                xs = [torch.randn(1, seq // p, HEADS, HEAD_DIM, device=self.dev)
                      .to(torch.bfloat16) for _ in range(count)]
                outs = [torch.empty(1, seq, HEADS // p, HEAD_DIM, dtype=torch.bfloat16,
                                    device=self.dev) for _ in range(count)]
                ins_d = (DcTensor * count)(*[describe(x) for x in xs])
                outs_d = (DcTensor * count)(*[describe(o) for o in outs])
                nbytes = sum(x.numel() * 2 for x in xs)
                check_dc(self.lib, self.lib.diffcoll_comm_reserve(self.dc.handle,
                                                                  4 * nbytes + (1 << 20)),
                         "diffcoll_comm_reserve")
                ours = lambda: self.lib.diffcoll_ulysses_all_to_all(
                    self.dc.handle, ins_d, outs_d, count, 1, 2, SEQ_TO_HEAD, self.stream())
                check_dc(self.lib, ours(), "diffcoll_ulysses_all_to_all")
                for x, o in zip(xs, outs):
                    if not torch.equal(o, self.torch_seq_to_head(x, False)):
                        raise SystemExit(f"rank {self.rank}: diffcoll differs from torch")

                send = torch.empty(nbytes, dtype=torch.uint8, device=self.dev)
                recv = torch.empty_like(send)
                raw = lambda: self.raw.lib.ncclAlltoAll(send.data_ptr(), recv.data_ptr(),
                                                        nbytes // p, NCCL_UINT8, self.raw.comm,
                                                        self.stream())
                t_dc = self.gpu_us(ours)
                t_graph = self.graph_us(ours)
                t_direct = self.gpu_us(lambda: [self.torch_seq_to_head(x, False) for x in xs])
                t_func = self.gpu_us(lambda: [self.torch_seq_to_head(x, True) for x in xs])
                t_nccl = self.gpu_us(raw)
                self.record(op="ulysses_seq_to_head", seq=seq, heads=HEADS, head_dim=HEAD_DIM,
                            dtype="bf16", tensors=count, mib_per_rank=nbytes / 2**20,
                            diffcoll_us=t_dc, diffcoll_graph_us=t_graph, torch_direct_us=t_direct,
                            torch_functional_us=t_func, nccl_alltoall_us=t_nccl,
                            diffcoll_over_torch_direct=t_dc / t_direct,
                            diffcoll_over_nccl=t_dc / t_nccl)

    def report(self, path):
        if self.rank != 0:
            return
        print(f"# Ulysses SEQ_TO_HEAD, {self.size} ranks, bf16 [1, S/P, {HEADS}, {HEAD_DIM}], "
              f"microseconds per call (median)")
        print(f"{'S':>6}{'tensors':>8}{'MiB':>8}{'diffcoll':>10}{'dc graph':>10}"
              f"{'direct':>10}{'funct.':>10}{'nccl':>10}{'dc/direct':>10}{'dc/nccl':>9}")
        for r in self.rows:
            print(f"{r['seq']:>6}{r['tensors']:>8}{r['mib_per_rank']:>8.1f}"
                  f"{r['diffcoll_us']:>10.1f}{r['diffcoll_graph_us']:>10.1f}"
                  f"{r['torch_direct_us']:>10.1f}{r['torch_functional_us']:>10.1f}"
                  f"{r['nccl_alltoall_us']:>10.1f}{r['diffcoll_over_torch_direct']:>10.2f}"
                  f"{r['diffcoll_over_nccl']:>9.2f}")
        self.write_json(path)


def main():
    args = parse()
    bench = UlyssesBench(args)
    bench.run()
    bench.report(args.json)
    bench.close()


if __name__ == "__main__":
    main()
