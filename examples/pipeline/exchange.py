# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""Every exchange the pipeline makes between ranks, behind one interface.

The model (wan_toy.py, vae_toy.py) and the loop (generate.py) call these and
nothing else that communicates. Three implementations:

* :class:`LocalExchange` (here): one rank holds everything; nothing is
  exchanged. The reference.
* ``DiffcollExchange`` (exchange_diffcoll.py): every exchange through diffcoll.
* ``TorchExchange`` (exchange_torch.py): the same exchanges written with
  torch.distributed the way engines write them today: the baseline.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from mesh import Coordinates, Degrees, Sizes, check_frames, coordinates, split_extent, token_range
from wan_toy import attention, guide

#: Zero padding of a causal 3x3x3 convolution's input, as F.pad takes it:
#: W and H one on each side, T two before (the past) and none after.
CAUSAL_PAD = (1, 1, 1, 1, 2, 0)


class Unsupported(ValueError):
    """A layout an implementation does not handle (e.g. uneven splits in the
    torch.distributed baseline)."""


class Exchange:
    """The communication of one rank in a layout (see mesh.py for the split rules)."""

    def __init__(self, sizes: Sizes, degrees: Degrees, rank: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        check_frames(sizes.frames, degrees.vae)
        self.sizes, self.degrees, self.rank = sizes, degrees, rank
        self.dtype, self.device = dtype, device  # of the model's tensors
        self.coords: Coordinates = coordinates(rank, degrees)
        self.tokens: Tuple[int, int] = token_range(sizes.tokens, degrees, self.coords.sp)
        self.decodes = rank < degrees.vae
        self.frames: Tuple[int, int] = (
            split_extent(sizes.frames, degrees.vae, rank) if self.decodes else (0, 0))

    # ------------------------------------------------------------ denoiser
    def branches(self) -> List[int]:
        """The guidance branches this rank runs."""
        raise NotImplementedError

    def self_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention of this rank's tokens over the whole sequence: q, k, v and
        the result [B, n, H, d], n this rank's tokens."""
        raise NotImplementedError

    def gather_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, n, F] of this rank's tokens -> [B, S, F] of all, on every rank."""
        raise NotImplementedError

    def combine(self, preds: Sequence[torch.Tensor], step: int) -> torch.Tensor:
        """The guided prediction from this rank's branches' predictions, on every rank."""
        raise NotImplementedError

    # ------------------------------------------------------------ decoder
    def pad_frames(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's frames [B, C, t, H, W] with a causal convolution's halo
        around them: [B, C, t + 2, H + 2, W + 2]."""
        raise NotImplementedError

    def group_norm(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                   groups: int, eps: float) -> torch.Tensor:
        """GroupNorm of this rank's frames with the whole video's statistics."""
        raise NotImplementedError

    def gather_frames(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """The whole video on rank 0 from every decoding rank's frames; None elsewhere."""
        raise NotImplementedError

    # ------------------------------------------------------------ lifetime
    def close(self) -> None:
        pass


class LocalExchange(Exchange):
    """One rank, the whole job: the single-GPU pipeline."""

    def __init__(self, sizes: Sizes, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(sizes, Degrees(1, 1, 1, 1), 0, dtype, device)

    def branches(self) -> List[int]:
        return list(range(self.sizes.branches))

    def self_attention(self, q, k, v):
        return attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)

    def gather_tokens(self, x):
        return x

    def combine(self, preds, step):
        return guide(preds, self.sizes)

    def pad_frames(self, x):
        return F.pad(x, CAUSAL_PAD)

    def group_norm(self, x, weight, bias, groups, eps):
        return F.group_norm(x.float(), groups, weight.float(), bias.float(), eps).to(x.dtype)

    def gather_frames(self, x):
        return x
