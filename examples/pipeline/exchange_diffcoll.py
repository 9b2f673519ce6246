# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""The pipeline's exchanges through diffcoll.

* groups: one ``diffcoll.UspMesh`` (Ulysses, ring, sequence-parallel and CFG
  groups in xDiT's order) and a split of the world for the VAE ranks;
* self-attention: one ``ulysses_all_to_all`` of q, k and v together,
  written straight into the attention layout [B, heads, S, d] (a transposed
  view: no ``.contiguous()``), the ring exchange of k and v with
  ``diffcoll.Ring`` overlapping attention on the block at hand when the ring
  degree is > 1, and one ``ulysses_all_to_all`` back;
* tokens: ``gather_slabs`` over the sequence-parallel group (uneven shards);
* guidance: ``cfg_combine`` with a ``CfgPolicy`` holding the formula and
  guidance rescale, each rank contributing its branches;
* decode: ``HaloPlan.exchange_into`` for the causal halo of every
  convolution, ``group_norm`` for whole-video statistics, ``gather_slabs`` of
  the frames to rank 0.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch

import diffcoll
from exchange import Exchange
from mesh import Degrees, Sizes, ring_block_lengths, split_extent
from wan_toy import BRANCHES, OnlineSoftmax, attention, guidance_terms


def guidance_policy(sizes: Sizes) -> diffcoll.CfgPolicy:
    """The guidance formula of wan_toy.guidance_terms as a diffcoll policy."""
    roles = ("cond", "uncond", "perturbed")
    base, terms = guidance_terms(sizes)
    return diffcoll.CfgPolicy([(BRANCHES[i], roles[i]) for i in range(sizes.branches)],
                              base=base, terms=terms, rescale_phi=sizes.rescale)


class DiffcollExchange(Exchange):
    def __init__(self, world: diffcoll.Comm, sizes: Sizes, degrees: Degrees, dtype: torch.dtype,
                 device: torch.device) -> None:
        super().__init__(sizes, degrees, world.rank, dtype, device)
        self.stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
        self.mesh = diffcoll.UspMesh(world, ulysses=degrees.ulysses, ring=degrees.ring,
                                     cfg=degrees.cfg)
        self.policy = guidance_policy(sizes)
        self.vae = world.split(0 if self.decodes else diffcoll.SPLIT_NOCOLOR, world.rank)
        self.halo = (self.vae.halo_plan(row_axis=2, row_before=2, row_after=0)
                     if self.decodes else None)
        u, r = self.coords.ulysses, self.coords.ring
        self.heads = split_extent(sizes.heads, degrees.ulysses, u)[1]
        self.blocks = ring_block_lengths(sizes.tokens, degrees)
        self.block = self.blocks[r]
        self.buffers: Dict[Tuple, torch.Tensor] = {}
        self.ring = None

    # ------------------------------------------------------------ denoiser
    def branches(self):
        return self.policy.dispatch(self.degrees.cfg, self.coords.cfg)

    def buffer(self, name: str, *shape: int) -> torch.Tensor:
        """A tensor reused by every layer (the layers run one after the other)."""
        key = (name, shape)
        if key not in self.buffers:
            self.buffers[key] = torch.zeros(shape, dtype=self.dtype, device=self.device)
        return self.buffers[key]

    def ring_half(self, batch: int, head_dim: int):
        """The ring's current (k, v): where this rank's block goes. The ring
        holds two halves with the room of the longest block (block 0); a
        shorter block uses a prefix."""
        if self.ring is None:
            halves = [[self.buffer(f"{name}{half}", batch, self.heads, self.blocks[0], head_dim)
                       for name in ("k", "v")] for half in (0, 1)]
            self.ring = diffcoll.Ring(self.mesh.ring, halves[0], halves[1])
        return [t[:, :, :self.block] for t in self.ring.current_half]

    def ring_attention(self, qh: torch.Tensor) -> torch.Tensor:
        """Attention over every ring rank's block, the next block in flight
        while attention runs on the one at hand."""
        blocks = OnlineSoftmax(qh)
        r, size = self.coords.ring, self.degrees.ring
        for step, (kb, vb) in enumerate(self.ring.steps(stream=self.stream)):
            held = self.blocks[(r - step) % size]  # ring rank (r - step)'s block
            blocks.add(kb[:, :, :held], vb[:, :, :held])
        return blocks.result()

    def self_attention(self, q, k, v):
        ulysses, ring = self.degrees.ulysses > 1, self.degrees.ring > 1
        if not ulysses and not ring:  # CFG parallel only: the whole sequence is here
            return attention(*(t.transpose(1, 2) for t in (q, k, v))).transpose(1, 2)
        b, n, heads, d = q.shape
        if ring:
            kh, vh = self.ring_half(b, d)
        else:
            kh, vh = (self.buffer(name, b, self.heads, self.block, d) for name in ("k", "v"))
        if ulysses:  # q, k, v in one exchange, into [B, H_u, S, d] through transposed views
            qh = self.buffer("q", b, self.heads, self.block, d)
            self.mesh.ulysses.ulysses_all_to_all([q, k, v], [t.transpose(1, 2) for t in (qh, kh, vh)],
                                                 seq_axis=1, head_axis=2, stream=self.stream)
        else:  # the ring alone: k and v into the ring's buffers
            qh = q.transpose(1, 2)
            kh.copy_(k.transpose(1, 2))
            vh.copy_(v.transpose(1, 2))
        oh = self.ring_attention(qh) if ring else attention(qh, kh, vh)
        if not ulysses:
            return oh.transpose(1, 2)
        out = torch.empty(b, n, heads, d, dtype=q.dtype, device=q.device)
        self.mesh.ulysses.ulysses_all_to_all([oh.transpose(1, 2)], [out], seq_axis=1, head_axis=2,
                                             direction="head_to_seq", stream=self.stream)
        return out

    def gather_tokens(self, x):
        if self.mesh.sp.size == 1:
            return x
        whole = torch.empty(x.shape[0], self.sizes.tokens, x.shape[2], dtype=x.dtype, device=x.device)
        return self.mesh.sp.gather_slabs(x, whole, axis=1, stream=self.stream)

    def combine(self, preds, step):
        s = self.sizes
        # A CFG rank may hold no branch (more CFG ranks than branches): it
        # still joins the combine, with nothing of its own.
        out = torch.empty(1, s.latent_channels, s.frames, s.height, s.width, dtype=self.dtype,
                          device=self.device)
        return self.mesh.cfg.cfg_combine(self.policy, preds, out, step, stream=self.stream)

    # ------------------------------------------------------------ decoder
    def pad_frames(self, x):
        b, c, t, h, w = x.shape
        padded = torch.empty(b, c, t + 2, h + 2, w + 2, dtype=x.dtype, device=x.device)
        for border in (padded[..., 0, :], padded[..., -1, :], padded[..., 0], padded[..., -1]):
            border.zero_()
        # The frames and the two frames before them; H and W borders stay zero.
        self.halo.exchange_into(x, padded[..., 1:-1, 1:-1], stream=self.stream)
        return padded

    def group_norm(self, x, weight, bias, groups, eps):
        out = torch.empty_like(x)
        return self.vae.group_norm(x, out, weight=weight, bias=bias, num_groups=groups, eps=eps,
                                   stream=self.stream)

    def gather_frames(self, x):
        whole = None
        if self.rank == 0:
            shape = list(x.shape)
            shape[2] = self.sizes.frames
            whole = torch.empty(shape, dtype=x.dtype, device=x.device)
        self.vae.gather_slabs(x, whole, axis=2, root=0, stream=self.stream)
        return whole

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        for handle in (self.ring, self.halo, self.vae, self.policy):
            if handle is not None:
                handle.close()
        self.mesh.close()
