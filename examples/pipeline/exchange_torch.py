# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""The pipeline's exchanges written with torch.distributed the way engines
write them today (xDiT, yunchang, ring-flash-attn, patch-parallel VAEs):
the baseline diffcoll is measured against.

* self-attention: per tensor, reshape + transpose + ``.contiguous()`` +
  ``all_to_all_single`` + reshape + transpose + ``.contiguous()`` (yunchang's
  all-to-all), both ways; the ring: ``batch_isend_irecv`` of contiguous k and
  v blocks, overlapping attention on the block at hand;
* tokens: ``all_gather`` of the shards and ``torch.cat``;
* guidance: ``all_gather`` of every branch's prediction, then the formula on
  every rank;
* decode: ``isend``/``irecv`` of the last two frames and ``torch.cat`` +
  ``F.pad`` for the causal halo, an ``all_reduce`` of per-group sums and sums
  of squares for GroupNorm, ``all_gather`` + ``torch.cat`` of the frames.

Like those engines it needs even splits: tokens divisible by the
sequence-parallel degree, heads by the Ulysses degree, branches by the CFG
degree, frames by the VAE split (:class:`exchange.Unsupported` otherwise).

Gloo in PyTorch 1.13 moves no bfloat16: on Gloo the tensors that only move
(all-to-all, all-gather, send/recv) travel viewed as float16 (the same bits, never added up), which costs
nothing; NCCL takes them as they are.
"""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F

from exchange import CAUSAL_PAD, Exchange, Unsupported
from mesh import Degrees, Sizes, branch_block
from wan_toy import OnlineSoftmax, attention, guide


def _check_even(sizes: Sizes, d: Degrees) -> None:
    uneven = [what for what, n, p in (("tokens", sizes.tokens, d.ulysses * d.ring),
                                      ("heads", sizes.heads, d.ulysses),
                                      ("guidance branches", sizes.branches, d.cfg),
                                      ("latent frames", sizes.frames, d.vae)) if n % p]
    if uneven:
        raise Unsupported("the torch.distributed baseline needs even splits, as engines do; "
                          "uneven here: " + ", ".join(uneven))


class Group:
    """A torch.distributed group and this rank's place in it (global ranks, in order)."""

    def __init__(self, ranks: List[int], group) -> None:
        self.ranks, self.group = ranks, group
        self.rank = ranks.index(dist.get_rank())
        self.size = len(ranks)


def _groups_containing_me(all_groups: List[List[int]]) -> Group:
    """new_group for every group (every rank must create each, in one order);
    returns this rank's."""
    me = dist.get_rank()
    mine = None
    for ranks in all_groups:
        group = dist.new_group(ranks)
        if me in ranks:
            mine = Group(ranks, group)
    assert mine is not None
    return mine


class TorchExchange(Exchange):
    def __init__(self, sizes: Sizes, degrees: Degrees, dtype: torch.dtype,
                 device: torch.device) -> None:
        super().__init__(sizes, degrees, dist.get_rank(), dtype, device)
        _check_even(sizes, degrees)
        U, R, C = degrees.ulysses, degrees.ring, degrees.cfg

        def rank_of(u, r, c):
            return u + U * (r + R * c)

        self.ulysses = _groups_containing_me(
            [[rank_of(u, r, c) for u in range(U)] for c in range(C) for r in range(R)])
        self.ring = _groups_containing_me(
            [[rank_of(u, r, c) for r in range(R)] for c in range(C) for u in range(U)])
        self.sp = _groups_containing_me(
            [[rank_of(u, r, c) for r in range(R) for u in range(U)] for c in range(C)])
        self.cfg = _groups_containing_me(
            [[rank_of(u, r, c) for c in range(C)] for r in range(R) for u in range(U)])
        world = dist.get_world_size()
        vae = [list(range(degrees.vae))] + [[r] for r in range(degrees.vae, world)]
        self.vae = _groups_containing_me(vae)
        self.as_half = dtype == torch.bfloat16 and dist.get_backend() == "gloo"

    def wire(self, x: torch.Tensor) -> torch.Tensor:
        """x as the backend moves it (a view)."""
        return x.view(torch.float16) if self.as_half else x

    # ------------------------------------------------------------ denoiser
    def branches(self):
        return branch_block(self.sizes.branches, self.degrees.cfg, self.coords.cfg)

    def seq_to_head(self, x: torch.Tensor) -> torch.Tensor:
        """[B, s, H, d] -> [B, P s, H / P, d] (yunchang's all_to_all_4D)."""
        p = self.ulysses.size
        b, s, h, d = x.shape
        send = x.reshape(b, s, p, h // p, d).transpose(0, 2).contiguous()  # [P, s, B, H/P, d]
        recv = torch.empty_like(send)
        dist.all_to_all_single(self.wire(recv), self.wire(send), group=self.ulysses.group)
        return recv.reshape(p * s, b, h // p, d).transpose(0, 1).contiguous()

    def head_to_seq(self, x: torch.Tensor) -> torch.Tensor:
        """[B, S, h, d] -> [B, S / P, P h, d]."""
        p = self.ulysses.size
        b, seq, h, d = x.shape
        s = seq // p
        send = (x.reshape(b, p, s, h, d).transpose(0, 3).transpose(0, 1).contiguous()
                .reshape(p, h, s, b, d))
        recv = torch.empty_like(send)
        dist.all_to_all_single(self.wire(recv), self.wire(send), group=self.ulysses.group)
        return recv.reshape(p * h, s, b, d).transpose(0, 2).contiguous().reshape(b, s, p * h, d)

    def ring_attention(self, q, k, v) -> torch.Tensor:
        """ring-flash-attn's loop: send the current k, v on, receive the next."""
        ring = self.ring
        after = ring.ranks[(ring.rank + 1) % ring.size]
        before = ring.ranks[(ring.rank - 1) % ring.size]
        blocks = OnlineSoftmax(q)
        for step in range(ring.size):
            if step < ring.size - 1:
                k_next, v_next = torch.empty_like(k), torch.empty_like(v)
                requests = dist.batch_isend_irecv([
                    dist.P2POp(dist.isend, self.wire(k), after, ring.group, tag=0),
                    dist.P2POp(dist.isend, self.wire(v), after, ring.group, tag=1),
                    dist.P2POp(dist.irecv, self.wire(k_next), before, ring.group, tag=0),
                    dist.P2POp(dist.irecv, self.wire(v_next), before, ring.group, tag=1)])
            blocks.add(k, v)
            if step < ring.size - 1:
                for request in requests:
                    request.wait()
                k, v = k_next, v_next
        return blocks.result()

    def self_attention(self, q, k, v):
        if self.ulysses.size > 1:
            q, k, v = (self.seq_to_head(t) for t in (q, k, v))
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, H_u, S, d]
        if self.ring.size > 1:
            o = self.ring_attention(q, k.contiguous(), v.contiguous())
        else:
            o = attention(q, k, v)
        o = o.transpose(1, 2)
        return self.head_to_seq(o) if self.ulysses.size > 1 else o

    def gather_tokens(self, x):
        return self.all_gather(x, self.sp, dim=1)

    def all_gather(self, x: torch.Tensor, group: Group, dim: int) -> torch.Tensor:
        if group.size == 1:
            return x
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(group.size)]
        dist.all_gather([self.wire(p) for p in parts], self.wire(x), group=group.group)
        return torch.cat(parts, dim=dim)

    def combine(self, preds, step):
        every = self.all_gather(torch.stack(preds), self.cfg, dim=0)
        return guide(list(every), self.sizes)

    # ------------------------------------------------------------ decoder
    def pad_frames(self, x):
        group = self.vae
        if group.size == 1:
            return F.pad(x, CAUSAL_PAD)
        requests = []
        if group.rank + 1 < group.size:
            requests.append(dist.isend(self.wire(x[:, :, -2:].contiguous()),
                                       group.ranks[group.rank + 1], group=group.group))
        if group.rank > 0:
            past = torch.empty_like(x[:, :, :2])
            requests.append(dist.irecv(self.wire(past), group.ranks[group.rank - 1],
                                       group=group.group))
        for request in requests:
            request.wait()
        if group.rank == 0:
            return F.pad(x, CAUSAL_PAD)
        return F.pad(torch.cat([past, x], dim=2), CAUSAL_PAD[:4])

    def group_norm(self, x, weight, bias, groups, eps):
        b, c = x.shape[:2]
        xg = x.float().reshape(b, groups, -1)
        stats = torch.stack([xg.sum(-1), xg.pow(2).sum(-1)])
        count = torch.tensor(float(xg.shape[-1]), device=x.device)
        if self.vae.size > 1:
            dist.all_reduce(stats, group=self.vae.group)
            count = count * self.vae.size  # even slabs
        mean = stats[0] / count
        var = stats[1] / count - mean * mean
        y = (xg - mean[..., None]) * torch.rsqrt(var[..., None] + eps)
        shape = (1, c) + (1,) * (x.dim() - 2)
        return (y.reshape(x.shape) * weight.float().reshape(shape)
                + bias.float().reshape(shape)).to(x.dtype)

    def gather_frames(self, x) -> Optional[torch.Tensor]:
        whole = self.all_gather(x, self.vae, dim=2)
        return whole if self.rank == 0 else None
