# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""Text to video on one rank's share of the work: the flow-matching loop
with classifier-free guidance, then the decode.

Every step, each rank runs the branches its CFG rank holds on its tokens
(sequence parallel inside the model), gathers the tokens of the prediction,
combines the branches (CFG parallel) and takes the scheduler step on the
whole latent, which every rank thus holds identically. At the end the first
V ranks decode their frames of the latent and rank 0 gathers the video.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, List, NamedTuple, Optional

import torch

from exchange import Exchange, LocalExchange
from mesh import Sizes
from vae_toy import TinyVae
from wan_toy import TinyWan, flow_sigmas, patchify, rotary_tables, unpatchify


class Job:
    """Model, decoder, prompts and noise: the same on every rank (seeded)."""

    def __init__(self, sizes: Sizes, dtype: torch.dtype, device: torch.device) -> None:
        sizes.check()
        self.sizes, self.dtype, self.device = sizes, dtype, device
        self.model = TinyWan(sizes, dtype, device)
        self.vae = TinyVae(sizes, dtype, device)
        gen = torch.Generator().manual_seed(sizes.seed + 2)
        shape = (1, sizes.latent_channels, sizes.frames, sizes.height, sizes.width)
        self.noise = torch.randn(*shape, generator=gen).to(device)
        prompt, negative = (torch.randn(1, sizes.text_tokens, sizes.text_dim, generator=gen)
                            .to(device=device, dtype=dtype) for _ in range(2))
        text = [prompt, negative, prompt][:sizes.branches]  # perturbed: the prompt, STG on
        self.contexts = [self.model.embed_text(t) for t in text]
        self.rope = rotary_tables(sizes, device)
        self.sigmas = flow_sigmas(sizes.steps, sizes.shift)

    def skip_layer(self, branch: int) -> Optional[int]:
        return self.sizes.stg_layer if branch == 2 else None


@dataclasses.dataclass
class Timings:
    """Seconds (wall clock, the device synchronised at each boundary)."""

    steps: List[float]
    decode: float
    total: float
    peak_bytes: Optional[int]  # torch's allocator on CUDA; None on the host


def synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def generate(job: Job, ex: Exchange):
    """Runs the job with exchange ``ex``; returns (video on rank 0 / None, Timings)."""
    sizes, sync = job.sizes, synchronizer(job.device)
    cuda = job.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(job.device)
    start, count = ex.tokens
    rope = tuple(table[start:start + count] for table in job.rope)
    branches = ex.branches()
    latent = job.noise.clone()
    step_times = []
    sync()
    t0 = time.perf_counter()
    with torch.no_grad():
        for i, (sigma, sigma_next) in enumerate(zip(job.sigmas[:-1], job.sigmas[1:])):
            ts = time.perf_counter()
            tokens = patchify(latent.to(job.dtype))[:, start:start + count]
            preds = []
            for b in branches:
                out = job.model(tokens, sigma * 1000.0, job.contexts[b], rope, ex, job.skip_layer(b))
                preds.append(unpatchify(ex.gather_tokens(out), sizes))
            velocity = ex.combine(preds, i)
            latent = latent + (sigma_next - sigma) * velocity.float()
            sync()
            step_times.append(time.perf_counter() - ts)
        td = time.perf_counter()
        video = None
        if ex.decodes:
            first, frames = ex.frames
            z = latent[:, :, first:first + frames].to(job.dtype)
            video = ex.gather_frames(job.vae.decode(z, ex))
        sync()
        t1 = time.perf_counter()
    peak = torch.cuda.max_memory_allocated(job.device) if cuda else None
    return video, Timings(step_times, t1 - td, t1 - t0, peak)


def difference(video: torch.Tensor, reference: torch.Tensor):
    """(largest absolute difference, PSNR in dB over the reference's range)."""
    diff = video.float() - reference.float()
    mse = float(diff.pow(2).mean())
    peak = float(reference.max() - reference.min())
    psnr = float("inf") if mse == 0 else 10 * math.log10(peak * peak / mse)
    return float(diff.abs().max()), psnr


#: float32 runs must match one rank to this PSNR (rounding differences only).
MIN_PSNR_F32 = 100.0
#: bfloat16 runs may differ from one rank by twice the error (6 dB) that
#: bfloat16 itself makes.
BF16_MARGIN_DB = 6.0


class Reference(NamedTuple):
    video: torch.Tensor
    timings: Timings
    min_psnr: float  # what a parallel run must reach against video
    bf16_psnr: Optional[float]  # bfloat16 video against the float32 one (bfloat16 jobs)


def reference(job: Job) -> Reference:
    """The 1-rank video (no communication at all) and the tolerance of
    parallel runs: MIN_PSNR_F32 in float32; in bfloat16, BF16_MARGIN_DB below
    the PSNR of the 1-rank bfloat16 video against the 1-rank float32 one."""
    video, timings = generate(job, LocalExchange(job.sizes, job.dtype, job.device))
    if job.dtype == torch.float32:
        return Reference(video, timings, MIN_PSNR_F32, None)
    f32 = Job(job.sizes, torch.float32, job.device)
    video32, _ = generate(f32, LocalExchange(job.sizes, torch.float32, job.device))
    floor = difference(video, video32)[1]
    return Reference(video, timings, floor - BF16_MARGIN_DB, floor)
