#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""One rank of the diffcoll.torch GPU check (started by test_torch_ops_cuda.py):
every operator on CUDA tensors, compiled with torch.compile(fullgraph=True)
(inductor), against the same function run eagerly, and the collectives
against references computed here from every rank's inputs (which each rank
can regenerate from their seeds).

  DIFFCOLL_STORE=file://$(mktemp -d) python3 -m torch.distributed.run --standalone \\
      --nproc-per-node=N bindings/python/tests/torch_ops_worker.py

More ranks than GPUs share them (one NCCL_HOSTID per rank). Prints one line
per case ("ok NAME" or "FAIL NAME: why") and exits 1 if any case failed.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Callable, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "examples", "python"))

import torch  # noqa: E402

import diffcoll  # noqa: E402
import diffcoll.torch as dct  # noqa: E402
from compiled_block import share_gpus  # noqa: E402


ROWS = 4  # rows per rank: every rank's input has ROWS * world size rows


def rand(shape, seed: int, device) -> torch.Tensor:
    """Small integers as floats: sums are exact in any order."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-8, 8, shape, generator=g).float().to(device)


def rows_of(x: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    """Rank ``rank``'s slab of ``x`` along dimension 0."""
    start, rows = diffcoll.split_extent(x.shape[0], size, rank)
    return x[start:start + rows]


def cases(world: diffcoll.Comm) -> Tuple[List[Tuple[str, Callable, Optional[Callable]]], List]:
    """(name, function of this rank's tensor, reference computed from every
    rank's tensors or None) per case, and the objects to close afterwards."""
    h, size, rank = diffcoll.handle(world), world.size, world.rank
    policy = diffcoll.CfgPolicy.standard(4.0, order="parallel")
    plan = diffcoll.HaloPlan(world, row_axis=0, row_boundary="reflect")
    ws = diffcoll.FusedNormWorkspace(world, 64, 64, "float32")
    # Compiled code names objects by their handles (ints the compiler keeps as constants).
    h_policy, h_plan, h_ws = diffcoll.handle(policy), diffcoll.handle(plan), diffcoll.handle(ws)
    world.reserve(1 << 22)  # staging for the strided views
    peer_next, peer_prev = (rank + 1) % size, (rank - 1) % size
    # Library queries (SWIG calls) happen here, not in the compiled functions.
    mine = policy.dispatch(size, rank)
    start, rows = diffcoll.split_extent(ROWS * size, size, rank)

    def p2p(t):
        got = torch.empty_like(t.T).T  # a transposed receive buffer
        if rank % 2 == 0:  # in parity order: no rank waits on a peer that waits on it
            dct.send(t, h, peer_next)
            dct.recv_(got, h, peer_prev)
        else:
            dct.recv_(got, h, peer_prev)
            dct.send(t, h, peer_next)
        return got * 1

    def cfg(t):
        preds = [t * (i + 1) for i in mine]
        return dct.cfg_combine(preds, h, h_policy, out=torch.empty_like(t))

    def halo(t):
        padded = torch.zeros(rows + 2, t.shape[1], device=t.device)
        padded[1:-1] = t[start:start + rows]
        return dct.halo_exchange_(padded, h_plan)

    def qkv_of(t):
        return t[:2 * size].reshape(1, 2 * size, 3, -1, 2)  # [B, S_r, 3, H, D]

    def ulysses(t):  # 2 heads: uneven (some ranks hold none) from 3 ranks on
        heads = dct.ulysses_all_to_all(list(qkv_of(t).unbind(2)), h, seq_axis=1, head_axis=2)
        return torch.stack(dct.ulysses_all_to_all(heads, h, 1, 2, "head_to_seq", gathered=[2] * 3))

    def fused(t):
        y, r = dct.fused_add_rmsnorm(t, t.flip(0), t[0], h_ws, eps=1e-6)
        y2, r2 = dct.fused_add_rmsnorm_(t.clone(), t.flip(0), t[0], h_ws, 1e-6)
        return torch.stack([y, r, y2, r2])

    work = [
        ("all_reduce_", lambda t: dct.all_reduce_(t[:, ::2], h) * 1, lambda xs: sum(xs)[:, ::2]),
        ("all_reduce premul_sum", lambda t: dct.all_reduce(t.T, h, "premul_sum", rank + 1.0),
         lambda xs: sum((r + 1.0) * x for r, x in enumerate(xs)).T),
        ("broadcast_", lambda t: dct.broadcast_(t.T, h, root=size - 1) + 0, lambda xs: xs[-1].T),
        ("reduce_", lambda t: dct.reduce_(t, h, "max", root=0) * 1,
         lambda xs: torch.stack(xs).amax(0) if rank == 0 else xs[rank]),
        ("all_gather", lambda t: dct.all_gather(t.T, h, 1), lambda xs: torch.cat([x.T for x in xs], 1)),
        ("reduce_scatter", lambda t: dct.reduce_scatter(t, h, 0), lambda xs: sum(xs).chunk(size)[rank]),
        ("all_to_all", lambda t: dct.all_to_all(t[:, 1:], h, 0, 1),
         lambda xs: torch.cat([x[:, 1:].chunk(size)[rank] for x in xs], 1)),
        ("cfg_combine", cfg, None),
        ("halo_exchange_", halo, None),
        ("gather_slabs", lambda t: dct.gather_slabs(t[start:start + rows, ::2], h, 0, ROWS * size),
         lambda xs: torch.cat([rows_of(x, r, size)[:, ::2] for r, x in enumerate(xs)])),
        ("group_norm", lambda t: dct.group_norm(t.view(2, 4, -1), h, 2, eps=1e-5), None),
        ("ulysses_all_to_all", ulysses, lambda xs: torch.stack(qkv_of(xs[rank]).unbind(2))),
        ("fused_add_rmsnorm", fused, None),
    ]
    if size > 1:  # a blocking send to oneself waits forever
        work.append(("send/recv_", p2p, lambda xs: xs[peer_prev]))
    return work, [ws, plan, policy]


def ring_case(world: diffcoll.Comm, device: torch.device) -> Tuple[Callable, Callable, List]:
    """A whole ring pass (start, 'attention' on the current block, wait) as
    one function over a fresh ring, and its reference. It starts from the
    ring's current half, which the compiler reads (and guards on) when it
    traces."""
    size, rank = world.size, world.rank  # library queries stay out of the compiled function
    halves = [[torch.zeros(4, 8, device=device), torch.zeros(4, 8, device=device)] for _ in range(2)]
    ring = diffcoll.Ring(world, halves[0], halves[1])
    rh, buffers = diffcoll.handle(ring), halves[0] + halves[1]

    def block(q, rank):
        return q[:4, :8] * (rank + 1), q[:4, :8] - rank

    def attend(k, v):
        return (k * v).sum(-1, keepdim=True) * v  # small integers: exact in any order

    def ring_pass(q):
        cur = ring.current
        for half, own in zip(halves[cur], block(q, rank)):
            half.copy_(own)
        acc = torch.zeros(4, 8, device=q.device)
        for step in range(size):
            if step < size - 1:
                dct.ring_start(rh, buffers, cur)
            acc = acc + attend(*halves[cur])
            if step < size - 1:
                cur = dct.ring_wait(rh, buffers, cur)
        return acc

    def reference(xs):  # every rank's block, visited once each
        return sum(attend(*block(x, r)) for r, x in enumerate(xs))

    return ring_pass, reference, [ring]


def check(name: str, fn: Callable, reference, x: torch.Tensor, xs: List[torch.Tensor]) -> None:
    eager = fn(x.clone())
    if reference is not None:
        torch.testing.assert_close(eager, reference(xs), rtol=0, atol=0, msg=f"{name}: eager vs reference")
    explanation = torch._dynamo.explain(fn)(x.clone())
    assert explanation.graph_break_count == 0, f"{name}: graph breaks {explanation.break_reasons}"
    torch._dynamo.reset()
    compiled = torch.compile(fn, fullgraph=True)(x.clone())
    torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-6, msg=f"{name}: compiled vs eager")
    torch._dynamo.reset()


def main() -> int:
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    device = share_gpus(int(os.environ["LOCAL_RANK"]), int(os.environ.get("LOCAL_WORLD_SIZE", size)))
    failed = 0
    with diffcoll.Comm.from_env(device_id=device.index, timeout_ms=120000) as world:
        xs = [rand((ROWS * size, 12), 100 + r, device) for r in range(size)]
        work, keep = cases(world)
        ring_pass, ring_reference, ring_keep = ring_case(world, device)
        work.append(("ring_start/ring_wait", ring_pass, ring_reference))
        for name, fn, reference in work:
            try:
                check(name, fn, reference, xs[rank], xs)
                line = f"ok {name}"
            except Exception as e:  # noqa: BLE001 - reported, the other cases still run
                failed += 1
                line = f"FAIL {name}: {type(e).__name__}: {e}"
                traceback.print_exc()
            world.barrier()  # a failing case must not desynchronise the next one
            if rank == 0 or line.startswith("FAIL"):
                print(f"rank {rank}: {line}", flush=True)
        torch.cuda.synchronize()
        for obj in keep + ring_keep:
            obj.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
