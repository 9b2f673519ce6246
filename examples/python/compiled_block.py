#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""A DiT-like transformer block whose communication is diffcoll.torch
operators, compiled whole by torch.compile and replayed from a CUDA graph.

  python3 -m torch.distributed.run --standalone --nproc-per-node=N \\
      examples/python/compiled_block.py [--ulysses U] [--tp T]

The block: QKV projection (column-parallel over the tensor-parallel group),
Ulysses all-to-all of q, k, v in one exchange (sequence-sharded to
head-sharded), attention, the all-to-all back, output projection
(row-parallel), then all-reduce + residual add + RMSNorm fused in one
operator. The ranks form a diffcoll.ParallelState over PyTorch's NCCL world
(ParallelState.from_torch; default: every rank in the Ulysses group). Checked
on every rank:

* eager equals the same block computed on one process without any
  communication, on this rank's tokens;
* torch._dynamo.explain finds one graph and no graph break;
* torch.compile(fullgraph=True) equals eager;
* the compiled block captured in a CUDA graph replays to eager's result on
  new inputs.

More ranks than GPUs share them (each rank gets its own NCCL_HOSTID, so NCCL
joins the ranks through its socket transport). Needs PyTorch >= 2.4 with
CUDA, and the diffcoll package and its SWIG module on PYTHONPATH
(PYTHONPATH=<src>/bindings/python:<build>/bindings/python) of a diffcoll
built with CUDA.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from typing import List, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

import diffcoll
import diffcoll.torch as dct

BATCH, SEQ, HEADS, HIDDEN = 2, 250, 8, 256  # 250 tokens: uneven over 3 or 4 ranks
EPS = 1e-6


class DiffcollExchange:
    """The block's communication, as diffcoll.torch operators on handles."""

    def __init__(self, ps: diffcoll.ParallelState, workspace: diffcoll.FusedNormWorkspace, seq_len: int,
                 eps: float) -> None:
        self.ulysses = ps.handles.ulysses
        self.workspace = diffcoll.handle(workspace)
        self.seq_len, self.eps = seq_len, eps

    def seq_to_head(self, qkv: List[torch.Tensor]) -> List[torch.Tensor]:
        """[B, s, H, D] views (this rank's tokens) -> [B, S, H_r, D]."""
        return dct.ulysses_all_to_all(qkv, self.ulysses, seq_axis=1, head_axis=2, gathered=[self.seq_len] * 3)

    def head_to_seq(self, o: torch.Tensor, heads: int) -> torch.Tensor:
        """[B, S, H_r, D] (any strides) -> [B, s, H, D]."""
        return dct.ulysses_all_to_all([o], self.ulysses, 1, 2, "head_to_seq", gathered=[heads])[0]

    def add_rmsnorm(self, y: torch.Tensor, residual: torch.Tensor,
                    weight: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(rmsnorm(allreduce(y) + residual) * weight, allreduce(y) + residual)."""
        return dct.fused_add_rmsnorm(y, residual, weight, self.workspace, self.eps)


def full_weights(hidden: int, seed: int, device: torch.device, dtype: torch.dtype) -> dict:
    """The whole block's weights, the same on every rank."""
    g = torch.Generator().manual_seed(seed)

    def w(*shape: int, scale: float) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * scale).to(device, dtype)

    return {"qkv": w(3 * hidden, hidden, scale=hidden ** -0.5), "qkv_bias": w(3 * hidden, scale=0.1),
            "out": w(hidden, hidden, scale=hidden ** -0.5), "out_bias": w(hidden, scale=0.1),
            "norm": 1 + w(hidden, scale=0.1)}


class DiTBlock(nn.Module):
    """This rank's part of the block: its tensor-parallel share of the
    ``heads`` (QKV rows and output-projection columns of heads ``tp_rank *
    heads/tp`` on), with the output bias on tensor-parallel rank 0 only (the
    all-reduce adds it once). ``exchange`` does the communication."""

    def __init__(self, weights: dict, heads: int, tp: int, tp_rank: int, exchange) -> None:
        super().__init__()
        hidden = weights["out"].shape[0]
        self.heads, self.head_dim = heads // tp, hidden // heads
        rows = slice(tp_rank * self.heads * self.head_dim, (tp_rank + 1) * self.heads * self.head_dim)
        qkv = weights["qkv"].view(3, hidden, hidden)[:, rows].reshape(-1, hidden)
        qkv_bias = weights["qkv_bias"].view(3, hidden)[:, rows].reshape(-1)
        self.qkv = nn.Parameter(qkv.contiguous(), requires_grad=False)
        self.qkv_bias = nn.Parameter(qkv_bias.contiguous(), requires_grad=False)
        self.out = nn.Parameter(weights["out"][:, rows].contiguous(), requires_grad=False)
        bias = weights["out_bias"] if tp_rank == 0 else torch.zeros_like(weights["out_bias"])
        self.out_bias = nn.Parameter(bias, requires_grad=False)
        self.norm = nn.Parameter(weights["norm"], requires_grad=False)
        self.exchange = exchange

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        b, s, _ = x.shape  # this rank's tokens
        qkv = F.linear(x, self.qkv, self.qkv_bias).view(b, s, 3, self.heads, self.head_dim)
        q, k, v = self.exchange.seq_to_head(list(qkv.unbind(2)))  # strided views in, [B, S, H_r, D] out
        o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        o = self.exchange.head_to_seq(o.transpose(1, 2), self.heads)  # [B, s, H/T, D]
        y = F.linear(o.reshape(b, s, -1), self.out, self.out_bias)  # partial sums over tp
        return self.exchange.add_rmsnorm(y, residual, self.norm)


def reference_block(weights: dict, heads: int, x: torch.Tensor, residual: torch.Tensor,
                    eps: float) -> Tuple[torch.Tensor, ...]:
    """The whole block on one process: every token, every head, no communication."""
    b, s, hidden = x.shape
    qkv = F.linear(x, weights["qkv"], weights["qkv_bias"]).view(b, s, 3, heads, hidden // heads)
    q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))
    o = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, s, hidden)
    res = F.linear(o, weights["out"], weights["out_bias"]) + residual
    return res * torch.rsqrt(res.pow(2).mean(-1, keepdim=True) + eps) * weights["norm"], res


def inputs(seed: int, device: torch.device, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    """(x, residual) of the whole sequence."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(BATCH, SEQ, HIDDEN, generator=g).to(device, dtype),
            torch.randn(BATCH, SEQ, HIDDEN, generator=g).to(device, dtype))


def share_gpus(local_rank: int, local_size: int) -> torch.device:
    """This rank's GPU; ranks beyond the GPU count share them, each with its
    own NCCL host identity (set before the first NCCL call)."""
    gpus = torch.cuda.device_count()
    if local_size > gpus:
        os.environ.setdefault("NCCL_HOSTID", f"diffcoll-rank-{local_rank}")
        os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
        os.environ.setdefault("NCCL_IB_DISABLE", "1")
    device = torch.device("cuda", local_rank % gpus)
    torch.cuda.set_device(device)
    return device


def run(ps: diffcoll.ParallelState, device: torch.device) -> None:
    dtype = torch.float32
    weights = full_weights(HIDDEN, 0, device, dtype)
    with diffcoll.FusedNormWorkspace(ps.groups.tp, BATCH * SEQ, HIDDEN, dtype) as ws:
        block = DiTBlock(weights, HEADS, ps.degrees.tp, ps.coords.tp, DiffcollExchange(ps, ws, SEQ, EPS))
        start, length = ps.split_extent(SEQ)  # this rank's tokens

        def mine(t: torch.Tensor) -> torch.Tensor:
            return t[:, start:start + length].contiguous()

        x_all, r_all = inputs(1, device, dtype)
        x, residual = mine(x_all), mine(r_all)
        eager = block(x, residual)
        want = [mine(t) for t in reference_block(weights, HEADS, x_all, r_all, EPS)]
        for got, ref in zip(eager, want):
            torch.testing.assert_close(got, ref, rtol=2e-4, atol=2e-4)

        explanation = torch._dynamo.explain(block)(x, residual)
        assert explanation.graph_break_count == 0, explanation.break_reasons
        assert explanation.graph_count == 1, explanation.graph_count
        torch._dynamo.reset()

        compiled = torch.compile(block, fullgraph=True)
        for got, ref in zip(compiled(x, residual), eager):
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)

        # CUDA graph: warm up on a side stream (staging grows outside the
        # capture), capture, then replay on new inputs copied into place.
        static_x, static_r = x.clone(), residual.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                compiled(static_x, static_r)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = compiled(static_x, static_r)
        x2_all, r2_all = inputs(2, device, dtype)
        static_x.copy_(mine(x2_all))
        static_r.copy_(mine(r2_all))
        graph.replay()
        for got, ref in zip(static_out, block(mine(x2_all), mine(r2_all))):
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
        torch.cuda.synchronize()
    if ps.rank == 0:
        d = ps.degrees
        print(f"DiT block on {ps.world_size} rank(s) (tp={d.tp}, ulysses={d.ulysses}): eager equals the "
              "single-process block; 1 graph, 0 graph breaks; compiled equals eager; "
              "CUDA graph replay equals eager")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (divides 8 heads)")
    ap.add_argument("--ulysses", type=int, default=None, help="Ulysses degree (default: the rest)")
    args = ap.parse_args()
    rank, size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    device = share_gpus(local, int(os.environ.get("LOCAL_WORLD_SIZE", size)))
    dist.init_process_group("nccl", rank=rank, world_size=size, device_id=device)
    dist.barrier()  # the NCCL communicator exists now
    box = [os.environ.get("DIFFCOLL_STORE") or "file://" + tempfile.mkdtemp(prefix="diffcoll-")]
    dist.broadcast_object_list(box, src=0)  # the host sides meet in rank 0's directory
    ulysses = args.ulysses or size // args.tp
    with diffcoll.ParallelState.from_torch(rendezvous=box[0], tp=args.tp, ulysses=ulysses) as ps:
        run(ps, device)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
