# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""Issue 17's benchmark: diffcoll.torch (the PyTorch operators) against
torch.distributed, in one run.

  torchrun --nproc-per-node=N tests/bench/torch_ops_bench.py \\
      --lib build-gpu/libdiffcoll.so.0 [--json out.json] [--iters 20] [--tp T]
  torchrun --nproc-per-node=N tests/bench/torch_ops_bench.py --device cpu \\
      --lib build-host/libdiffcoll.so      (host time only: host ranks, gloo)

One process per GPU. Sections:
  host   host time per call of every operator on small tensors (1 KiB for
         the collectives), issued back to back (GPUs: the median of
         Harness.host_us; host runs: the minimum over repetitions, steadier on
         a shared CPU): the diffcoll.torch function
         (eager: the kernel called directly), the operator through PyTorch's
         dispatcher (torch.ops.diffcoll.*, what a compiled graph calls), the
         Comm method on the same tensors, and torch.distributed doing the
         same job the way engines do it.
  block  GPU time per call of a DiT block (examples/python/compiled_block.py:
         bf16, 4096 tokens, 24 heads x 128, Ulysses over the ranks, --tp
         tensor parallelism), eager, torch.compile(fullgraph=True), and
         compiled replayed from a CUDA graph, with its communication through
         diffcoll.torch and through torch.distributed's functional
         collectives (yunchang's all-to-all: reshape, transpose, contiguous,
         all_to_all_single, and back; all_reduce, residual add, RMSNorm).
         The two blocks' outputs are compared before timing.
Prints tables on rank 0 and writes JSON.
"""
import argparse
import json
import os
import sys
import tempfile
import timeit

import torch
import torch.distributed as dist

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEQ, HEADS, HEAD_DIM, EPS = 4096, 24, 128, 1e-6


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build-gpu/libdiffcoll.so.0")
    ap.add_argument("--json", default="torch_ops_bench.json")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--tp", type=int, default=1, help="tensor-parallel degree of the block")
    return ap.parse_args()


def import_diffcoll(lib):
    """The package from this source tree, its SWIG module from the build of --lib."""
    build = os.path.dirname(os.path.abspath(lib))
    sys.path[:0] = [os.path.join(ROOT, "bindings", "python"), os.path.join(build, "bindings", "python"),
                    os.path.join(ROOT, "examples", "python")]


def min_host_us(fn, calls=1000, repeats=20):
    """Host time per call of a host run: the minimum over repetitions of
    ``calls`` calls, which on a shared CPU says what a call costs better than
    the median Harness.host_us takes on the GPU machines."""
    fn()
    dist.barrier()
    return min(timeit.repeat(fn, number=calls, repeat=repeats)) / calls * 1e6


# ---------------------------------------------------------------- torch.distributed, as engines write it


def subgroup(size, tp, axis):
    """This rank's torch.distributed group along ``axis`` ("tp" or "ulysses")
    of ParallelState's layout (tensor parallelism innermost); every rank
    creates every group."""
    blocks = [list(range(m * tp, (m + 1) * tp)) for m in range(size // tp)]
    if axis == "ulysses":
        blocks = [list(range(t, size, tp)) for t in range(tp)]
    group, _ = dist.new_subgroups_by_enumeration(blocks)
    return group, blocks


class TorchExchange:
    """The block's communication through torch.distributed's functional
    collectives (the interface of compiled_block.DiffcollExchange)."""

    def __init__(self, ulysses_group, ulysses_size, tp_group, tp_size):
        import torch.distributed._functional_collectives as funcol

        self.funcol = funcol
        self.ulysses, self.p = ulysses_group, ulysses_size
        self.tp, self.tp_size = tp_group, tp_size

    def _all_to_all(self, x, scatter_dim, gather_dim):
        """yunchang's SeqAllToAll4D for [B, S, H, D] tensors: blocks of the
        scatter dimension to the front, contiguous, one all_to_all_single."""
        if self.p == 1:
            return x.contiguous()
        b, s, h, d = x.shape
        p = self.p
        if scatter_dim == 2:  # [B, s, H, D] -> [B, S, H/P, D]
            x_t = x.reshape(b, s, p, h // p, d).transpose(0, 2).contiguous()  # [P, s, B, H/P, D]
            out = self.funcol.all_to_all_single(x_t, None, None, self.ulysses)
            return out.reshape(p * s, b, h // p, d).transpose(0, 1).contiguous()
        x_t = x.reshape(b, p, s // p, h, d).transpose(0, 1).contiguous()  # [P, B, S/P, H/P, D]
        out = self.funcol.all_to_all_single(x_t, None, None, self.ulysses)  # [P, B, S/P, H/P, D]
        return out.permute(1, 2, 0, 3, 4).reshape(b, s // p, p * h, d)

    def seq_to_head(self, qkv):
        return [self._all_to_all(t, 2, 1) for t in qkv]

    def head_to_seq(self, o, heads):
        return self._all_to_all(o, 1, 2)

    def add_rmsnorm(self, y, residual, weight):
        if self.tp_size > 1:
            y = self.funcol.all_reduce(y, "sum", self.tp)
        res = y + residual
        r = res.float()
        return (r * torch.rsqrt(r.pow(2).mean(-1, keepdim=True) + EPS)).to(res.dtype) * weight, res


def torch_group_norm(x, groups, eps, group):
    """GroupNorm of a split activation the way engines write it (xDiT's
    patch-parallel VAE): local sums, one all_reduce, normalise."""
    n, c = x.shape[:2]
    g = x.float().reshape(n, groups, -1)
    stats = torch.stack([g.sum(-1), g.pow(2).sum(-1), torch.full_like(g[..., 0], g.shape[-1])])
    dist.all_reduce(stats, group=group)
    mean = stats[0] / stats[2]
    var = stats[1] / stats[2] - mean.pow(2)
    return ((g - mean[..., None]) * torch.rsqrt(var[..., None] + eps)).reshape(x.shape).to(x.dtype)


# ---------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args):
        self.args = args
        self.cuda = args.device == "cuda"
        self.rows = []
        if self.cuda:
            from bench_common import Harness

            self.h = Harness(args)  # one GPU per rank, NCCL process group, timing helpers
            self.rank, self.size, self.dev = self.h.rank, self.h.size, self.h.dev
            self.host_us = self.h.host_us
        else:
            self.rank, self.size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
            os.environ.setdefault("MASTER_PORT", "29519")
            dist.init_process_group("gloo", rank=self.rank, world_size=self.size)
            self.dev = torch.device("cpu")
            self.host_us = min_host_us
        import_diffcoll(args.lib)
        import diffcoll
        import diffcoll.torch as dct

        self.diffcoll, self.dct = diffcoll, dct
        store = "file://" + self.share(tempfile.mkdtemp(prefix="diffcoll-bench-") if self.rank == 0 else None)
        if self.cuda:
            self.world = diffcoll.Comm.from_torch(rendezvous=store)
        else:
            self.world = diffcoll.Comm.create(store, self.rank, self.size)

    def share(self, obj):
        """Rank 0's ``obj``, on every rank (Harness.share, in both modes)."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def maybe(self, what, fn):
        """fn(), or None where it fails (a baseline this PyTorch or backend
        lacks), said on rank 0. Failures are the same on every rank."""
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - reported, the table shows "-"
            if self.rank == 0:
                print(f"{what}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            return None

    def stream(self):
        return torch.cuda.current_stream().cuda_stream if self.cuda else None

    # ------------------------------------------------------------- host time per call

    def host_cases(self):
        """(operator, diffcoll.torch, torch.ops.diffcoll, Comm method, torch.distributed) per row."""
        d, dct, w, p, r = self.diffcoll, self.dct, self.world, self.size, self.rank
        s = self.stream()  # the Comm methods get the stream as engines cache it
        z = lambda *shape: torch.zeros(*shape, device=self.dev)  # noqa: E731
        x, big, out = z(256), z(256 * p), z(256 * p)  # 1 KiB per rank
        h = d.handle(w)
        ops = torch.ops.diffcoll if dct.COMPILABLE else None
        keep = []

        def op(name, *args):
            return (lambda: getattr(ops, name)(*args)) if ops is not None else None

        rows = [
            ("all_reduce_", lambda: dct.all_reduce_(x, h), op("all_reduce_", x, h, 0, 1.0),
             lambda: w.all_reduce(x, stream=s), lambda: dist.all_reduce(x)),
            ("broadcast_", lambda: dct.broadcast_(x, h), op("broadcast_", x, h, 0),
             lambda: w.broadcast(x, stream=s), lambda: dist.broadcast(x, 0)),
            ("reduce_", lambda: dct.reduce_(x, h), op("reduce_", x, h, 0, 0, 1.0),
             lambda: w.reduce(x, stream=s), lambda: dist.reduce(x, 0)),
            ("all_gather", lambda: dct.all_gather(x, h), op("all_gather", x, h, 0),
             lambda: w.all_gather(x, out, stream=s), lambda: dist.all_gather_into_tensor(out, x)),
            ("reduce_scatter", lambda: dct.reduce_scatter(big, h), op("reduce_scatter", big, h, 0, 0, 1.0),
             lambda: w.reduce_scatter(big, x, stream=s), lambda: dist.reduce_scatter_tensor(x, big)),
            ("all_to_all", lambda: dct.all_to_all(big, h), op("all_to_all", big, h, 0, 0),
             lambda: w.all_to_all(big, out, stream=s), lambda: dist.all_to_all_single(out, big)),
        ]
        if p > 1:  # a pair exchange around the ring, in parity order
            nxt, prv = (r + 1) % p, (r - 1) % p
            got = z(256)
            first_send = r % 2 == 0

            def dc_pair():
                if first_send:
                    dct.send(x, h, nxt)
                    dct.recv_(got, h, prv)
                else:
                    dct.recv_(got, h, prv)
                    dct.send(x, h, nxt)

            def comm_pair():
                with w.p2p_group():
                    w.send(x, nxt, stream=s)
                    w.recv(got, prv, stream=s)

            def torch_pair():
                pair = [dist.P2POp(dist.isend, x, nxt), dist.P2POp(dist.irecv, got, prv)]
                for work in dist.batch_isend_irecv(pair):
                    work.wait()

            rows.append(("send + recv_", dc_pair, None, comm_pair, torch_pair))
        # CFG: standard guidance over the world as the CFG group; engines
        # all-gather the branch predictions and apply the formula.
        policy = d.CfgPolicy.standard(5.0, order="parallel")
        keep.append(policy)
        hp = d.handle(policy)
        mine = [z(256) for _ in policy.dispatch(p, r)]
        cfg_out, preds_all = z(256), z(2 * 256 * p)
        local = z(2 * 256)

        def torch_cfg():
            dist.all_gather_into_tensor(preds_all, local)
            cond, uncond = preds_all.view(-1, 2, 256)[:, 0].sum(0), preds_all.view(-1, 2, 256)[:, 1].sum(0)
            return uncond + 5.0 * (cond - uncond)

        rows.append(("cfg_combine", lambda: dct.cfg_combine(mine, h, hp, out=cfg_out),
                     op("cfg_combine_", mine, cfg_out, h, hp, 0), lambda: w.cfg_combine(policy, mine, cfg_out,
                                                                                       stream=s), torch_cfg))
        # Halo of one row on each side of a [1, 4, 16 + 2, 16] slab.
        plan = d.HaloPlan(w, row_axis=2)
        keep.append(plan)
        hplan, padded, above, below = d.handle(plan), z(1, 4, 18, 16), z(1, 4, 16), z(1, 4, 16)

        def torch_halo():  # edge rows out, neighbours' rows into dense buffers, copied into the halo
            ops_ = []
            if r > 0:
                ops_ += [dist.P2POp(dist.isend, padded[:, :, 1].contiguous(), r - 1),
                         dist.P2POp(dist.irecv, above, r - 1)]
            if r < p - 1:
                ops_ += [dist.P2POp(dist.isend, padded[:, :, 16].contiguous(), r + 1),
                         dist.P2POp(dist.irecv, below, r + 1)]
            for work in dist.batch_isend_irecv(ops_) if ops_ else []:
                work.wait()
            padded[:, :, 0].copy_(above) if r > 0 else padded[:, :, 0].zero_()
            padded[:, :, 17].copy_(below) if r < p - 1 else padded[:, :, 17].zero_()

        rows.append(("halo_exchange_", lambda: dct.halo_exchange_(padded, hplan),
                     op("halo_exchange_", padded, hplan), lambda: plan.exchange(padded, stream=s), torch_halo))
        slab, whole, gathered = z(1, 4, 16, 16), z(1, 4, 16 * p, 16), z(p, 4, 16, 16)

        def torch_slabs():  # all-gather the slabs, then put them side by side along H
            dist.all_gather_into_tensor(gathered, slab)
            return gathered.permute(1, 0, 2, 3).reshape(1, 4, 16 * p, 16)

        rows.append(("gather_slabs", lambda: dct.gather_slabs(slab, h, 2, 16 * p),
                     op("gather_slabs", slab, h, 2, 16 * p, -1),
                     lambda: w.gather_slabs(slab, whole, 2, stream=s), torch_slabs))
        act = torch.randn(1, 32, 8, 8, device=self.dev)
        rows.append(("group_norm", lambda: dct.group_norm(act, h, 8),
                     op("group_norm", act, None, None, h, 8, 1e-6),
                     lambda: w.group_norm(act, torch.empty_like(act), num_groups=8, stream=s),
                     lambda: torch_group_norm(act, 8, 1e-6, None)))
        qkv = [z(1, 8 * p, 4, 8) for _ in range(3)]  # 1 KiB each per rank (float32: gloo has no bf16 all-to-all)
        outs = [z(1, 8 * p * p, 4 // p if 4 % p == 0 else 4, 8) for _ in range(3)]

        def torch_ulysses():
            for t in qkv:
                b, sq, hd, dd = t.shape
                t_t = t.reshape(b, sq, p, hd // p, dd).transpose(0, 2).contiguous()
                o = torch.empty_like(t_t)
                dist.all_to_all_single(o, t_t)
                o.reshape(sq * p, b, hd // p, dd).transpose(0, 1).contiguous()

        if 4 % p == 0:
            rows.append(("ulysses_all_to_all", lambda: dct.ulysses_all_to_all(qkv, h, 1, 2),
                         op("ulysses_all_to_all", qkv, h, 1, 2, 0, []),
                         lambda: w.ulysses_all_to_all(qkv, outs, seq_axis=1, head_axis=2, stream=s),
                         torch_ulysses))
        ws = d.FusedNormWorkspace(w, 16, 256, "float32")
        keep.append(ws)
        hws, xs, res, wt, y, res_out = d.handle(ws), z(4, 64), z(4, 64), z(64), z(4, 64), z(4, 64)

        def torch_fused():
            dist.all_reduce(xs)
            rr = xs + res
            return rr * torch.rsqrt(rr.pow(2).mean(-1, keepdim=True) + EPS) * wt, rr

        rows.append(("fused_add_rmsnorm", lambda: dct.fused_add_rmsnorm(xs, res, wt, hws),
                     op("fused_add_rmsnorm", xs, res, wt, hws, 1e-6, 0),
                     lambda: ws.apply(xs, res, wt, eps=1e-6, y=y, residual_out=res_out, stream=s), torch_fused))
        halves = [[z(256)], [z(256)]]
        ring = d.Ring(w, halves[0], halves[1])
        keep.append(ring)
        hr, bufs = d.handle(ring), ring.buffers

        def dc_ring_step():
            cur = ring.current
            dct.ring_start(hr, bufs, cur)
            dct.ring_wait(hr, bufs, cur)

        def torch_ring_step():
            cur = halves[0][0]
            if p == 1:
                halves[1][0].copy_(cur)
                return
            ops_ = [dist.P2POp(dist.isend, cur, (r + 1) % p), dist.P2POp(dist.irecv, halves[1][0], (r - 1) % p)]
            for work in dist.batch_isend_irecv(ops_):
                work.wait()

        def comm_ring_step():
            ring.start(stream=s)
            ring.wait(stream=s)

        rows.append(("ring_start + ring_wait", dc_ring_step, None, comm_ring_step, torch_ring_step))
        return rows, keep

    def host_section(self):
        rows, keep = self.host_cases()
        for name, *fns in rows:
            row = {"section": "host", "op": name}
            for who, fn in zip(("diffcoll_torch", "dispatcher", "comm", "torch"), fns):
                row[who + "_us"] = self.maybe(f"{name} ({who})", lambda: self.host_us(fn)) if fn else None
            self.record(**row)
        if self.cuda:
            torch.cuda.synchronize()
        for obj in reversed(keep):
            obj.close()

    # ------------------------------------------------------------- the DiT block

    def block_section(self):
        import compiled_block as cb

        d, tp, p = self.diffcoll, self.args.tp, self.size
        ps = d.ParallelState(self.world, tp=tp, ulysses=p // tp)
        ulysses_group, u_blocks = subgroup(p, tp, "ulysses")
        tp_group, tp_blocks = subgroup(p, tp, "tp")
        # The torch groups hold the same ranks as diffcoll's.
        assert [ps.groups.ulysses.global_rank(i) for i in range(ps.degrees.ulysses)] in u_blocks
        assert [ps.groups.tp.global_rank(i) for i in range(ps.degrees.tp)] in tp_blocks
        dtype, hidden = torch.bfloat16, HEADS * HEAD_DIM
        weights = cb.full_weights(hidden, 0, self.dev, dtype)
        start, length = ps.split_extent(SEQ)
        g = torch.Generator().manual_seed(1)
        x, residual = (torch.randn(1, SEQ, hidden, generator=g)[:, start:start + length].to(self.dev, dtype)
                       .contiguous() for _ in range(2))
        ws = d.FusedNormWorkspace(ps.groups.tp, length, hidden, dtype)
        blocks = {
            "diffcoll": cb.DiTBlock(weights, HEADS, tp, ps.coords.tp, cb.DiffcollExchange(ps, ws, SEQ, EPS)),
            "torch": cb.DiTBlock(weights, HEADS, tp, ps.coords.tp,
                                 TorchExchange(ulysses_group, ps.degrees.ulysses, tp_group, tp)),
        }
        ps.groups.ulysses.reserve(12 * x.numel() + (1 << 20))  # staging of the strided q, k, v: 6 x 2 bytes
        ours, theirs = (b(x, residual)[0] for b in blocks.values())
        torch.testing.assert_close(ours.float(), theirs.float(), rtol=2e-2, atol=2e-2)
        for who, block in blocks.items():
            compiled = torch.compile(block, fullgraph=True)
            breaks = torch._dynamo.explain(block)(x, residual).graph_break_count
            row = {"section": "block", "comm": who, "tokens": SEQ, "heads": HEADS, "head_dim": HEAD_DIM,
                   "tp": tp, "ulysses": ps.degrees.ulysses, "graph_breaks": breaks,
                   "eager_us": self.h.gpu_us(lambda: block(x, residual)),
                   "compiled_us": self.h.gpu_us(lambda: compiled(x, residual)),
                   "graph_us": self.maybe(f"{who} block in a CUDA graph",
                                          lambda: self.h.graph_us(lambda: compiled(x, residual), calls=4,
                                                                  replays=10))}
            self.record(**row)
            torch._dynamo.reset()
        torch.cuda.synchronize()
        ws.close()
        ps.close()

    # ------------------------------------------------------------- output

    def record(self, **row):
        row["world_size"] = self.size
        self.rows.append(row)

    def report(self, path):
        if self.rank != 0:
            return
        where = torch.cuda.get_device_name(self.dev) if self.cuda else "CPU (host ranks, gloo)"
        fmt = lambda v: f"{v:>11.1f}" if v is not None else f"{'-':>11}"  # noqa: E731
        how = "median" if self.cuda else "minimum"
        print(f"# {self.size} x {where}: host time per call, microseconds ({how})")
        print(f"{'operator':<24}{'dc.torch':>11}{'dispatcher':>11}{'Comm':>11}{'torch':>11}{'dc/torch':>10}")
        for r in self.rows:
            if r["section"] == "host":
                ratio = (f"{r['diffcoll_torch_us'] / r['torch_us']:>10.2f}"
                         if r["diffcoll_torch_us"] and r["torch_us"] else f"{'-':>10}")
                print(f"{r['op']:<24}{fmt(r['diffcoll_torch_us'])}{fmt(r['dispatcher_us'])}"
                      f"{fmt(r['comm_us'])}{fmt(r['torch_us'])}{ratio}")
        blocks = [r for r in self.rows if r["section"] == "block"]
        if blocks:
            b = blocks[0]
            print(f"\n# DiT block, bf16 [1, {SEQ}/P, {HEADS} x {HEAD_DIM}], tp={b['tp']} "
                  f"ulysses={b['ulysses']}: GPU microseconds per call (median)")
            print(f"{'communication':<14}{'breaks':>7}{'eager':>10}{'compiled':>10}{'+ graph':>10}")
            for r in blocks:
                graph = f"{r['graph_us']:>10.1f}" if r["graph_us"] is not None else f"{'-':>10}"
                print(f"{r['comm']:<14}{r['graph_breaks']:>7}{r['eager_us']:>10.1f}"
                      f"{r['compiled_us']:>10.1f}{graph}")
        with open(path, "w") as f:
            json.dump({"device": where, "world_size": self.size, "torch": torch.__version__,
                       "rows": self.rows}, f, indent=1)
        print(f"\nwrote {path}")

    def close(self):
        self.world.close()
        if self.cuda:
            self.h.close()
        else:
            dist.destroy_process_group()


def main():
    args = parse()
    bench = Bench(args)
    bench.host_section()
    if bench.cuda and bench.dct.COMPILABLE:
        bench.block_section()
    bench.report(args.json)
    bench.close()


if __name__ == "__main__":
    main()
