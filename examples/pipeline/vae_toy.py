# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""A VAE-decoder-shaped network (Wan's decoder, scaled down) with fixed
random weights: causal 3x3x3 convolutions (two frames of the past, none of
the future), GroupNorm, SiLU, residual blocks and nearest 2x upsampling of
H and W, from the latent to RGB frames.

    h = conv_in(z)
    repeat stages times: h = resblock(h); h = upsample(h)
    h = resblock(h); out = conv_out(silu(norm_out(h)))
    resblock(h) = h + conv2(silu(norm2(conv1(silu(norm1(h))))))

The frames can be split over ranks: a convolution reads its input padded by
``exchange.pad_frames`` (the causal halo from the previous rank's slab, zeros
around H and W) and every GroupNorm takes its statistics from the whole
activation through ``exchange.group_norm``. Nothing else crosses ranks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mesh import Sizes
from wan_toy import Weights

#: GroupNorm epsilon of VAEs.
EPS = 1e-6


class Conv:
    def __init__(self, w: Weights, cin: int, cout: int) -> None:
        self.weight = w.normal(cout, cin, 3, 3, 3, std=1.4 / math.sqrt(cin * 27))
        self.bias = w.normal(cout, std=0.05)

    def __call__(self, x: torch.Tensor, exchange) -> torch.Tensor:
        return F.conv3d(exchange.pad_frames(x), self.weight, self.bias)


class Norm:
    def __init__(self, w: Weights, channels: int, groups: int) -> None:
        self.weight = w.normal(channels, std=0.1, mean=1.0)
        self.bias = w.normal(channels, std=0.05)
        self.groups = groups

    def __call__(self, x: torch.Tensor, exchange) -> torch.Tensor:
        return exchange.group_norm(x, self.weight, self.bias, self.groups, EPS)


class ResBlock:
    def __init__(self, w: Weights, channels: int, groups: int) -> None:
        self.norm1, self.conv1 = Norm(w, channels, groups), Conv(w, channels, channels)
        self.norm2, self.conv2 = Norm(w, channels, groups), Conv(w, channels, channels)

    def __call__(self, h: torch.Tensor, ex) -> torch.Tensor:
        r = self.conv1(F.silu(self.norm1(h, ex)), ex)
        return h + self.conv2(F.silu(self.norm2(r, ex)), ex)


class TinyVae:
    def __init__(self, sizes: Sizes, dtype: torch.dtype, device: torch.device) -> None:
        w = Weights(sizes.seed + 1, dtype, device)
        c, g = sizes.vae_channels, sizes.vae_groups
        self.stages = sizes.vae_stages
        self.conv_in = Conv(w, sizes.latent_channels, c)
        self.blocks = [ResBlock(w, c, g) for _ in range(sizes.vae_stages + 1)]
        self.norm_out = Norm(w, c, g)
        self.conv_out = Conv(w, c, 3)

    def decode(self, z: torch.Tensor, exchange) -> torch.Tensor:
        """Frames [B, 3, T, H * 2^stages, W * 2^stages] of latent frames
        z [B, C, T, H, W] (this rank's slab of them)."""
        h = self.conv_in(z, exchange)
        for i, block in enumerate(self.blocks):
            h = block(h, exchange)
            if i < self.stages:
                h = F.interpolate(h, scale_factor=(1, 2, 2), mode="nearest")
        return self.conv_out(F.silu(self.norm_out(h, exchange)), exchange)
