# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""A small Wan-shaped text-to-video diffusion transformer with fixed random
weights, its flow-matching schedule and its guidance formula.

Shape of Wan 2.x, scaled down: 1x2x2 patch embedding of the video latent;
blocks of self-attention over the whole sequence (RMSNorm on q and k, 3-D
rotary embedding of frame, row and column), cross-attention to the text
tokens, a GELU MLP, each modulated by the timestep (adaptive LayerNorm with
shift, scale and gate); a modulated head back to patches. The weights come
from a seeded generator, so every process builds the same model.

The model never communicates itself: self-attention goes through an
``Exchange`` (exchange.py), which is where sequence parallelism lives. Runs
on PyTorch 1.13 (attention written out) and 2.x
(``scaled_dot_product_attention`` where it exists).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from mesh import Sizes

_SDPA = getattr(F, "scaled_dot_product_attention", None)  # PyTorch >= 2.0


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v for [B, H, S, d] tensors (any strides)."""
    if _SDPA is not None:
        return _SDPA(q, k, v)
    blocks = OnlineSoftmax(q)
    blocks.add(k, v)
    return blocks.result()


class OnlineSoftmax:
    """Attention of q over keys that arrive in blocks (ring attention): a
    running maximum, normaliser and weighted sum per query, in float32."""

    def __init__(self, q: torch.Tensor) -> None:
        self.q = q.float() * (1.0 / math.sqrt(q.shape[-1]))
        self.dtype = q.dtype
        self.top: Optional[torch.Tensor] = None
        self.norm: Optional[torch.Tensor] = None
        self.acc: Optional[torch.Tensor] = None

    def add(self, k: torch.Tensor, v: torch.Tensor) -> None:
        scores = torch.matmul(self.q, k.float().transpose(-1, -2))
        block_top = scores.amax(dim=-1, keepdim=True)
        if self.top is None:
            top = block_top
        else:
            top = torch.maximum(self.top, block_top)
        weights = torch.exp(scores - top)
        part = torch.matmul(weights, v.float())
        if self.top is None:
            self.norm, self.acc = weights.sum(dim=-1, keepdim=True), part
        else:
            decay = torch.exp(self.top - top)
            self.norm = self.norm * decay + weights.sum(dim=-1, keepdim=True)
            self.acc = self.acc * decay + part
        self.top = top

    def result(self) -> torch.Tensor:
        assert self.acc is not None, "no key block was added"
        return (self.acc / self.norm).to(self.dtype)


class Weights:
    """Draws every parameter from one seeded generator, on the CPU (the same
    numbers on every process), then moves it to the device and dtype."""

    def __init__(self, seed: int, dtype: torch.dtype, device: torch.device) -> None:
        self.gen = torch.Generator().manual_seed(seed)
        self.dtype, self.device = dtype, device

    def normal(self, *shape: int, std: float = 1.0, mean: float = 0.0) -> torch.Tensor:
        t = torch.randn(*shape, generator=self.gen) * std + mean
        return t.to(device=self.device, dtype=self.dtype)

    def linear(self, fan_in: int, fan_out: int, gain: float = 1.0) -> "Linear":
        return Linear(self.normal(fan_out, fan_in, std=gain / math.sqrt(fan_in)),
                      self.normal(fan_out, std=0.02))


class Linear:
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight, self.bias = weight, bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


def layer_norm(x: torch.Tensor, weight: Optional[torch.Tensor] = None,
               bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], weight, bias, eps=1e-6)


def rotary_tables(sizes: Sizes, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [S, head_dim / 2] of every token: a third of the frequencies
    each for the frame, row and column of the token's patch."""
    t, h, w = sizes.grid
    part = sizes.head_dim // 3
    angles = []
    for stride, size in ((h * w, t), (w, h), (1, w)):
        pos = (torch.arange(sizes.tokens, dtype=torch.float64) // stride) % size
        inv = 1.0 / (10000.0 ** (torch.arange(0, part, 2, dtype=torch.float64) / part))
        angles.append(pos[:, None] * inv[None, :])
    a = torch.cat(angles, dim=1)
    return a.cos().float().to(device), a.sin().float().to(device)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of x [B, S, H, d] with tables [S, d / 2]."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2).to(x.dtype)


def timestep_sinusoid(t: float, dim: int, device: torch.device) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    args = t * freqs
    return torch.cat((args.cos(), args.sin())).float().to(device)[None]


def patchify(z: torch.Tensor) -> torch.Tensor:
    """[B, C, T, H, W] -> tokens [B, T * H/2 * W/2, C * 4]."""
    b, c, t, h, w = z.shape
    return (z.reshape(b, c, t, h // 2, 2, w // 2, 2).permute(0, 2, 3, 5, 1, 4, 6)
            .reshape(b, t * (h // 2) * (w // 2), c * 4))


def unpatchify(x: torch.Tensor, sizes: Sizes) -> torch.Tensor:
    """tokens [B, S, C * 4] -> [B, C, T, H, W]."""
    t, h, w = sizes.grid
    c = sizes.latent_channels
    return (x.reshape(x.shape[0], t, h, w, c, 2, 2).permute(0, 4, 1, 2, 5, 3, 6)
            .reshape(x.shape[0], c, t, 2 * h, 2 * w))


class Attention:
    """q, k, v, o projections with RMSNorm on q and k; ``gain`` scales the
    norms' weights (a sharper softmax)."""

    def __init__(self, w: Weights, dim: int, heads: int, gain: float = 1.0) -> None:
        self.heads = heads
        self.q, self.k, self.v, self.o = (w.linear(dim, dim) for _ in range(4))
        self.norm_q = w.normal(dim, std=0.1 * gain, mean=gain)
        self.norm_k = w.normal(dim, std=0.1 * gain, mean=gain)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.heads, -1)


class Block:
    def __init__(self, w: Weights, sizes: Sizes) -> None:
        d = sizes.dim
        self.modulation = w.normal(1, 6, d, std=1.0 / math.sqrt(d))
        # Sharp self-attention: which token attends to which shows in the
        # video, so a token at a wrong place would (random weights attend
        # almost uniformly otherwise).
        self.self_attn = Attention(w, d, sizes.heads, gain=2.0)
        self.cross_attn = Attention(w, d, sizes.heads)
        self.norm3_weight = w.normal(d, std=0.1, mean=1.0)
        self.norm3_bias = w.normal(d, std=0.02)
        self.ffn_in = w.linear(d, sizes.ffn_mult * d)
        self.ffn_out = w.linear(sizes.ffn_mult * d, d)

    def __call__(self, x, e0, context, rope, exchange, skip_self_attention: bool):
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation + e0).chunk(6, dim=1)
        x = x + self.attend_self(layer_norm(x) * (1 + scale1) + shift1, rope, exchange,
                                 skip_self_attention) * gate1
        x = x + self.attend_text(layer_norm(x, self.norm3_weight, self.norm3_bias), context)
        h = layer_norm(x) * (1 + scale2) + shift2
        return x + self.ffn_out(F.gelu(self.ffn_in(h), approximate="tanh")) * gate2

    def attend_self(self, x, rope, exchange, skip: bool) -> torch.Tensor:
        a = self.self_attn
        v = a.split_heads(a.v(x))
        if skip:  # the perturbed branch (spatio-temporal guidance): values pass through
            return a.o(v.flatten(2))
        q = rotate(a.split_heads(rms_norm(a.q(x), a.norm_q)), *rope)
        k = rotate(a.split_heads(rms_norm(a.k(x), a.norm_k)), *rope)
        return a.o(exchange.self_attention(q, k, v).flatten(2))

    def attend_text(self, x, context) -> torch.Tensor:
        a = self.cross_attn
        q = a.split_heads(rms_norm(a.q(x), a.norm_q)).transpose(1, 2)
        k = a.split_heads(rms_norm(a.k(context), a.norm_k)).transpose(1, 2)
        v = a.split_heads(a.v(context)).transpose(1, 2)
        return a.o(attention(q, k, v).transpose(1, 2).flatten(2))


class TinyWan:
    """The denoiser: velocity prediction for tokens of the latent."""

    def __init__(self, sizes: Sizes, dtype: torch.dtype, device: torch.device) -> None:
        w = Weights(sizes.seed, dtype, device)
        d, patch = sizes.dim, sizes.latent_channels * 4
        self.sizes, self.device = sizes, device
        self.patch_embed = w.linear(patch, d)
        self.text_in, self.text_out = w.linear(sizes.text_dim, d), w.linear(d, d)
        self.time_in, self.time_out = w.linear(sizes.freq_dim, d), w.linear(d, d)
        self.time_proj = w.linear(d, 6 * d)
        self.blocks = [Block(w, sizes) for _ in range(sizes.layers)]
        self.head_modulation = w.normal(1, 2, d, std=1.0 / math.sqrt(d))
        self.head = w.linear(d, patch)

    def embed_text(self, text: torch.Tensor) -> torch.Tensor:
        return self.text_out(F.gelu(self.text_in(text), approximate="tanh"))

    def __call__(self, tokens: torch.Tensor, t: float, context: torch.Tensor, rope, exchange,
                 skip_layer: Optional[int] = None) -> torch.Tensor:
        """tokens [B, n, C * 4] (this rank's), rope: the tables of those tokens."""
        x = self.patch_embed(tokens)
        freq = timestep_sinusoid(t, self.sizes.freq_dim, self.device).to(x.dtype)
        e = self.time_out(F.silu(self.time_in(freq)))
        e0 = self.time_proj(F.silu(e)).unflatten(1, (6, -1))
        for i, block in enumerate(self.blocks):
            x = block(x, e0, context, rope, exchange, skip_layer == i)
        shift, scale = (self.head_modulation + e[:, None]).chunk(2, dim=1)
        return self.head(layer_norm(x) * (1 + scale) + shift)


def flow_sigmas(steps: int, shift: float) -> List[float]:
    """Noise levels 1 -> 0 of a flow-matching schedule with Wan's timestep shift."""
    s = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return (shift * s / (1 + (shift - 1) * s)).tolist()


#: Guidance branches, in branch order.
BRANCHES = ("cond", "uncond", "perturbed")


def guidance_terms(sizes: Sizes) -> Tuple[int, List[Tuple[float, int, int]]]:
    """(base, [(scale, plus, minus)]) of the guidance formula
    out = pred[base] + sum scale * (pred[plus] - pred[minus]):
    2 branches: uncond + g (cond - uncond);
    3 (LTX-2 style): cond + (g - 1)(cond - uncond) + s_stg (cond - perturbed)."""
    if sizes.branches == 2:
        return 1, [(sizes.guidance, 0, 1)]
    return 0, [(sizes.guidance - 1.0, 0, 1), (sizes.stg_scale, 0, 2)]


def guide(preds: Sequence[torch.Tensor], sizes: Sizes) -> torch.Tensor:
    """The guidance formula and guidance rescale, written plainly in float32
    (what one GPU computes): the reference, and the torch.distributed
    baseline's combine once it has gathered every branch."""
    p = [x.float() for x in preds]
    base, terms = guidance_terms(sizes)
    out = p[base]
    for scale, plus, minus in terms:
        out = out + scale * (p[plus] - p[minus])
    if sizes.rescale > 0:
        dims = list(range(1, out.dim()))
        ratio = p[0].std(dim=dims, keepdim=True) / out.std(dim=dims, keepdim=True)
        out = sizes.rescale * (out * ratio) + (1 - sizes.rescale) * out
    return out.to(preds[0].dtype)
