# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""What a run is made of: the sizes of the model and the video (presets), and
how the ranks are laid out (CFG x Ulysses x ring degrees plus a VAE split).

Every rank derives its share of the work from these alone, with
``diffcoll.split_extent`` (torch.tensor_split's rule: the first ``E % P``
parts are one longer), so nothing about shapes is ever exchanged.

Tokens: the S tokens of the video are split over the U*R ranks of a
sequence-parallel group, sp rank ``n = u + U*r`` holding
``split_extent(S, U*R, n)``. Ring rank r's block is the union of its U
Ulysses ranks' shards, and because shares differ by at most one and never
grow, those shards follow ``split_extent(block, U, u)`` as the Ulysses
all-to-all wants.

Frames: the VAE decoder's T latent frames are split over the first V ranks
(``split_extent(T, V, v)``); its causal 3x3x3 convolutions need two frames
of the previous slab, so every slab but the last must hold two.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, NamedTuple, Tuple

from diffcoll import split_extent


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The model, its guidance, the schedule and the video."""

    latent_channels: int = 4
    frames: int = 8  # latent frames T
    height: int = 8  # latent H, W (multiples of 2: 1x2x2 patches)
    width: int = 8
    heads: int = 5
    head_dim: int = 12  # a multiple of 6: 3-D rotary embedding of t, h, w
    layers: int = 2
    ffn_mult: int = 3
    text_tokens: int = 7
    text_dim: int = 24
    freq_dim: int = 32  # sinusoidal timestep embedding
    steps: int = 3
    branches: int = 3  # 2: cond, uncond; 3: + perturbed (skips self-attention of stg_layer)
    guidance: float = 5.0
    stg_scale: float = 1.0
    stg_layer: int = 0
    rescale: float = 0.7  # guidance rescale phi
    shift: float = 5.0  # flow-matching timestep shift
    vae_channels: int = 8
    vae_groups: int = 4
    vae_stages: int = 2  # 2x upsamplings of H and W
    seed: int = 0

    @property
    def dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def grid(self) -> Tuple[int, int, int]:
        """Tokens along T, H, W (1x2x2 patches)."""
        return self.frames, self.height // 2, self.width // 2

    @property
    def tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def check(self) -> None:
        problems = []
        if self.height % 2 or self.width % 2:
            problems.append("latent height and width must be even (1x2x2 patches)")
        if self.head_dim % 6:
            problems.append("head_dim must be a multiple of 6 (rotary embedding of t, h, w)")
        if self.branches not in (2, 3):
            problems.append("branches must be 2 (cond, uncond) or 3 (+ perturbed)")
        if not 0 <= self.stg_layer < self.layers:
            problems.append("stg_layer must name a layer")
        if self.vae_channels % self.vae_groups:
            problems.append("vae_groups must divide vae_channels")
        if problems:
            raise ValueError("; ".join(problems))


#: Named sizes. tiny: the CPU test (seconds on one core); small: a quick look;
#: gpu: the configuration run on a GPU machine (one GPU holds the reference).
PRESETS: Dict[str, Sizes] = {
    "tiny": Sizes(),
    "small": Sizes(latent_channels=8, frames=6, height=12, width=16, heads=6, head_dim=24,
                   layers=3, text_tokens=16, text_dim=64, freq_dim=64, steps=4,
                   vae_channels=32, vae_groups=8),
    "gpu": Sizes(latent_channels=16, frames=12, height=40, width=64, heads=12, head_dim=96,
                 layers=8, text_tokens=64, text_dim=512, freq_dim=256, steps=8,
                 vae_channels=64, vae_groups=32, vae_stages=3),
}


class Degrees(NamedTuple):
    """A factorisation of the world: cfg * ulysses * ring == world size; the
    VAE decodes on the first ``vae`` ranks."""

    cfg: int
    ulysses: int
    ring: int
    vae: int

    @property
    def name(self) -> str:
        parts = [f"{k}{v}" for k, v in zip(("cfg", "ulysses", "ring"), self[:3]) if v > 1]
        return "x".join(parts or ["single"]) + f" vae{self.vae}"


_ALIASES = {"cfg": "cfg", "c": "cfg", "ulysses": "ulysses", "u": "ulysses", "ring": "ring",
            "r": "ring", "vae": "vae", "v": "vae"}


def parse_degrees(spec: str, world: int, frames: int) -> Degrees:
    """Degrees from ``"cfg2xulysses2"``, ``"ring2xulysses2xvae3"``, ``"u3"``,
    ``"single"`` (missing degrees are 1; the VAE split defaults to the most
    ranks, at most the world, that split the frames evenly into slabs of two
    or more)."""
    values = {"cfg": 1, "ulysses": 1, "ring": 1}
    vae = None
    parts = spec.lower().replace("*", "x").split("x")
    for part in filter(None, [] if parts == ["single"] else parts):
        name = part.rstrip("0123456789")
        number = part[len(name):]
        if name not in _ALIASES or not number:
            raise ValueError(f"layout {spec!r}: {part!r} is not one of cfgN, ulyssesN, ringN, vaeN")
        if _ALIASES[name] == "vae":
            vae = int(number)
        else:
            values[_ALIASES[name]] = int(number)
    product = values["cfg"] * values["ulysses"] * values["ring"]
    if product != world:
        raise ValueError(f"layout {spec!r}: cfg x ulysses x ring = {product}, but there are {world} ranks")
    if vae is None:
        vae = max(v for v in range(1, max(1, min(world, frames // 2)) + 1) if frames % v == 0)
    if not 1 <= vae <= world:
        raise ValueError(f"layout {spec!r}: the VAE split {vae} must be between 1 and {world}")
    return Degrees(values["cfg"], values["ulysses"], values["ring"], vae)


def check_frames(frames: int, vae: int) -> None:
    """Every slab that supplies a causal halo holds its two frames."""
    short = [i for i in range(vae - 1) if split_extent(frames, vae, i)[1] < 2]
    if short:
        raise ValueError(f"{frames} latent frames over a VAE split of {vae}: slab {short[0]} has fewer "
                         "than the 2 frames its neighbour's causal convolution needs")


class Coordinates(NamedTuple):
    """A world rank's place in the mesh (xDiT's order, as diffcoll.UspMesh)."""

    ulysses: int
    ring: int
    cfg: int
    sp: int  # rank in the sequence-parallel group: ulysses + U * ring


def coordinates(rank: int, d: Degrees) -> Coordinates:
    u, r, c = rank % d.ulysses, rank // d.ulysses % d.ring, rank // (d.ulysses * d.ring)
    return Coordinates(u, r, c, u + d.ulysses * r)


def token_range(tokens: int, d: Degrees, sp_rank: int) -> Tuple[int, int]:
    """(start, count) of the tokens of sp rank ``sp_rank``."""
    return split_extent(tokens, d.ulysses * d.ring, sp_rank)


def ring_block_lengths(tokens: int, d: Degrees) -> List[int]:
    """Tokens of each ring rank's block (the sum of its U shards)."""
    sp = d.ulysses * d.ring
    return [sum(split_extent(tokens, sp, r * d.ulysses + u)[1] for u in range(d.ulysses))
            for r in range(d.ring)]


def branch_block(branches: int, cfg: int, cfg_rank: int) -> List[int]:
    """The guidance branches CFG rank ``cfg_rank`` runs: contiguous blocks
    (the rule of diffcoll_cfg_dispatch without CFG-zero*)."""
    return list(range(cfg_rank * branches // cfg, (cfg_rank + 1) * branches // cfg))
