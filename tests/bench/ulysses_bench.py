# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

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

Issue 21's benchmark, in the same run: grouped-query attention and FP8 on the
wire, q, k, v of one layer SEQ_TO_HEAD, sequence 8k and 37.8k, head size 128,
bf16, for 40/40 (Wan, no GQA), 32/8 and 28/7 query/k-v heads:
  torch copy-up   what engines do today: k, v repeat_interleave'd to the query
                  head count, then the torch all-to-all above per tensor (where
                  N divides the heads);
  dc copy-up      the same copy, then one diffcoll call of q, k, v;
  dc gqa          diffcoll_ulysses_all_to_all_ex with query_heads: each k/v
                  head sent once to each rank whose query heads attend it;
  dc gqa fp8      the same with FP8 e4m3 on the wire (32 tokens per scale);
  nccl            ncclAlltoAll of dc gqa's bytes in equal blocks (the bound).
"wire MiB" is what this rank sends to the others, from the message sizes
(bf16: 2 bytes per element; FP8: 1 per element + 4 per group, each part to 16
bytes). Before timing, dc gqa's k/v must equal dc copy-up's at the heads the
query heads attend (bit for bit) and dc gqa fp8 must stay within the
documented bound of dc gqa (its own tokens exact).
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
# Issue 21: (name, query heads, k/v heads), sequences, FP8 format and block.
GQA_CASES = (("40/40", 40, 40), ("32/8", 32, 8), ("28/7", 28, 7))
GQA_SEQS = (8192, 37800)
WIRE_NATIVE, WIRE_FP8_E4M3 = 0, 1  # diffcoll_wire_format_t
SCALE_BLOCK = 32


class UlyssesOptions(ctypes.Structure):
    """diffcoll_ulysses_options_t."""

    _fields_ = [("struct_size", ctypes.c_size_t), ("query_heads", ctypes.c_int64),
                ("wire_format", ctypes.c_int32), ("scale_block", ctypes.c_int32)]


def split_extent(extent, parts, index):
    base, extra = divmod(extent, parts)
    return index * base + min(index, extra), base + (index < extra)


def kv_heads(q, k, parts, index):
    """diffcoll_ulysses_kv_heads: the k/v heads rank `index`'s query heads attend."""
    g = q // k
    qs, qn = split_extent(q, parts, index)
    return qs // g, (-(-(qs + qn) // g) - qs // g) if qn else 0


def message_bytes(tokens, heads, fp8):
    """Bytes of one message [1, tokens, heads, HEAD_DIM] of bf16 on the wire."""
    n = tokens * heads * HEAD_DIM
    if not fp8:
        return 2 * n
    up16 = lambda b: (b + 15) // 16 * 16
    return up16(up16(4 * heads * -(-tokens // SCALE_BLOCK)) + n)


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
        self.lib.diffcoll_ulysses_all_to_all_ex.argtypes = [
            p, ctypes.POINTER(DcTensor), ctypes.POINTER(DcTensor), ctypes.c_int32,
            ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(UlyssesOptions), p]
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

    # ------------------------------------------------------- issue 21: GQA, FP8

    def dc_call(self, ins, outs, query_heads, wire):
        n = len(ins)
        ins_d = (DcTensor * n)(*[describe(x) for x in ins])
        outs_d = (DcTensor * n)(*[describe(o) for o in outs])
        opts = UlyssesOptions(ctypes.sizeof(UlyssesOptions), query_heads, wire, SCALE_BLOCK)
        return lambda: check_dc(self.lib, self.lib.diffcoll_ulysses_all_to_all_ex(
            self.dc.handle, ins_d, outs_d, n, 1, 2, SEQ_TO_HEAD, ctypes.byref(opts),
            self.stream()), "diffcoll_ulysses_all_to_all_ex")

    def check_fp8(self, got, exact, seq):
        """got within the documented e4m3 bound of exact ([1, S, h, D], this
        rank's heads); the rank's own tokens exact."""
        p = self.size
        if exact.numel() == 0:
            return
        amax = torch.empty_like(exact, dtype=torch.float32)
        for src in range(p):
            ts, tn = split_extent(seq, p, src)
            x = exact[:, ts:ts + tn].float().abs()
            pad = -tn % SCALE_BLOCK
            x = torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad))
            blocks = x.view(1, -1, SCALE_BLOCK, x.shape[2], HEAD_DIM).amax(dim=(2, 4), keepdim=True)
            amax[:, ts:ts + tn] = blocks.expand(-1, -1, SCALE_BLOCK, -1, HEAD_DIM).reshape(
                1, -1, x.shape[2], HEAD_DIM)[:, :tn]
        e, g = exact.float(), got.float()
        bound = e.abs() / 16 + amax / 448 / 1024 + g.abs() / 256 + 1e-6 * e.abs()
        ts, tn = split_extent(seq, p, self.rank)
        own_exact = torch.equal(got[:, ts:ts + tn], exact[:, ts:ts + tn])
        if not (own_exact and bool(((g - e).abs() <= bound).all())):
            raise SystemExit(f"rank {self.rank}: FP8 result outside the documented bound")

    def run_gqa(self):
        p, r = self.size, self.rank
        for name, q_heads, k_heads in GQA_CASES:
            group = q_heads // k_heads
            for seq in GQA_SEQS:
                torch.manual_seed(21 + r)
                ts, tn = split_extent(seq, p, r)
                qs, qn = split_extent(q_heads, p, r)
                ks, kn = kv_heads(q_heads, k_heads, p, r)
                new = lambda h: torch.randn(1, tn, h, HEAD_DIM, device=self.dev).to(torch.bfloat16)
                empty = lambda h: torch.empty(1, seq, h, HEAD_DIM, dtype=torch.bfloat16,
                                              device=self.dev)
                q, k, v = new(q_heads), new(k_heads), new(k_heads)
                up = lambda x: x.repeat_interleave(group, dim=2)
                k_up, v_up = new(q_heads), new(q_heads)

                def copy_up():  # what repeat_interleave computes, into k_up and v_up
                    for x, x_up in ((k, k_up), (v, v_up)):
                        x_up.view(1, tn, k_heads, group, HEAD_DIM).copy_(
                            x.unsqueeze(3).expand(-1, -1, -1, group, -1))

                q_h, k_h, v_h = empty(qn), empty(kn), empty(kn)
                k_up_h, v_up_h = empty(qn), empty(qn)
                q8, k8, v8 = empty(qn), empty(kn), empty(kn)
                copy_up_call = self.dc_call([q, k_up, v_up], [q_h, k_up_h, v_up_h], 0, WIRE_NATIVE)
                gqa = self.dc_call([q, k, v], [q_h, k_h, v_h], q_heads, WIRE_NATIVE)
                gqa8 = self.dc_call([q, k, v], [q8, k8, v8], q_heads, WIRE_FP8_E4M3)
                copy_up()
                copy_up_call()
                gqa()
                gqa8()
                attended = torch.tensor([(qs + i) // group - ks for i in range(qn)],
                                        dtype=torch.long, device=self.dev)
                if not (torch.equal(k_h.index_select(2, attended), k_up_h)
                        and torch.equal(v_h.index_select(2, attended), v_up_h)):
                    raise SystemExit(f"rank {r}: GQA k/v differ from the copy-up path")
                for got, exact in ((q8, q_h), (k8, k_h), (v8, v_h)):
                    self.check_fp8(got, exact, seq)

                wire = lambda heads_of, fp8: sum(
                    message_bytes(tn, heads_of(j), fp8) for j in range(p) if j != r)
                q_part = lambda j: split_extent(q_heads, p, j)[1]
                kv_part = lambda j: kv_heads(q_heads, k_heads, p, j)[1]
                variants = {
                    "dc copy-up": (lambda: (copy_up(), copy_up_call()), 3 * wire(q_part, False)),
                    "dc gqa": (gqa, wire(q_part, False) + 2 * wire(kv_part, False)),
                    "dc gqa fp8": (gqa8, wire(q_part, True) + 2 * wire(kv_part, True)),
                }
                if q_heads % p == 0 and seq % p == 0:
                    variants["torch copy-up"] = (
                        lambda: [self.torch_seq_to_head(x, False) for x in (q, up(k), up(v))],
                        3 * wire(q_part, False))
                gqa_bytes = variants["dc gqa"][1]
                send = torch.empty(max(p * -(-gqa_bytes // max(p - 1, 1)), 1), dtype=torch.uint8,
                                   device=self.dev)
                recv = torch.empty_like(send)
                variants["nccl"] = (
                    lambda: self.raw.lib.ncclAlltoAll(send.data_ptr(), recv.data_ptr(),
                                                      send.numel() // p, NCCL_UINT8,
                                                      self.raw.comm, self.stream()),
                    gqa_bytes)
                times = {v: self.gpu_us(fn) for v, (fn, _) in variants.items()}
                for v, (_, sent) in variants.items():
                    self.record(op="ulysses_gqa_fp8", case=name, q_heads=q_heads,
                                kv_heads=k_heads, seq=seq, head_dim=HEAD_DIM, dtype="bf16",
                                variant=v, wire_mib_per_rank=sent / 2**20, us=times[v],
                                over_dc_copy_up=times[v] / times["dc copy-up"])

    def report(self, path):
        if self.rank != 0:
            return
        rows, self.rows = self.rows, [r for r in self.rows if r["op"] == "ulysses_seq_to_head"]
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
        self.rows = rows
        print(f"\n# Ulysses q, k, v SEQ_TO_HEAD with grouped-query k/v and FP8 on the wire, "
              f"{self.size} ranks, bf16, head size {HEAD_DIM}, microseconds per call (median); "
              f"wire: MiB this rank sends")
        print(f"{'heads':>6}{'S':>7}  {'variant':<14}{'wire MiB':>10}{'us':>10}{'vs dc copy-up':>15}")
        for r in rows:
            if r["op"] == "ulysses_gqa_fp8":
                print(f"{r['case']:>6}{r['seq']:>7}  {r['variant']:<14}{r['wire_mib_per_rank']:>10.2f}"
                      f"{r['us']:>10.1f}{r['over_dc_copy_up']:>15.2f}")
        self.write_json(path)


def main():
    args = parse()
    bench = UlyssesBench(args)
    bench.run()
    bench.run_gqa()
    bench.report(args.json)
    bench.close()


if __name__ == "__main__":
    main()
