#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""A parallel text-to-video pipeline on diffcoll, checked against one rank.

  run.py --ranks N [--layouts cfg2xulysses2,ring2xulysses2xvae2,...]
         [--device cpu|cuda] [--dtype bfloat16|float32] [--preset tiny|small|gpu]
         [--impl diffcoll,torch] [--min-psnr DB] [--json PATH]

starts N rank processes on this machine (or, under torchrun, is one of them:
``torchrun --nproc-per-node=N run.py ...``). For each layout (a factorisation
of the ranks into CFG x Ulysses x ring degrees, in diffcoll.UspMesh's order,
and the number of ranks the VAE decode is split over) and each
implementation (diffcoll: every exchange through diffcoll; torch: the same
pipeline on torch.distributed, as engines write it) the ranks generate a video
together; rank 0 then generates it alone (the reference, no communication at
all) and prints, per run, the largest difference and the PSNR of the decoded
video against the reference and rank 0's times. Exits 1 if a run is below
``--min-psnr``. Default: 100 dB for float32; for bfloat16, 6 dB below the
PSNR of the 1-rank bfloat16 video against the 1-rank float32 one (computed in
the same run): a parallel run may differ from one rank by twice the error
that bfloat16 itself makes, no more.

Layouts: ``cfg2``, ``ulysses3``, ``cfg2xulysses2``, ``ring2xulysses2xvae2``,
... (missing degrees are 1; ``vae`` defaults to the most ranks that split
the latent frames evenly, two or more each). Default: every factorisation of N. Uneven splits (tokens, heads,
frames, guidance branches over CFG ranks) are allowed for diffcoll; the torch
baseline skips them, as engines cannot run them.

Host ranks use Gloo and CPU tensors; ``--device cuda`` puts rank r on GPU
r % GPUs (several ranks per GPU when there are more ranks than GPUs).
Needs the diffcoll package and its SWIG module on PYTHONPATH
(PYTHONPATH=bindings/python:build/bindings/python from a build tree).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from importlib.util import find_spec
from typing import TYPE_CHECKING, List, Optional

if TYPE_CHECKING:
    import torch
    from generate import Job, Timings
    from ranks import Rank

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from mesh import PRESETS  # noqa: E402  (no torch: the launcher stays light)

DTYPES = ("bfloat16", "float32")


def parse(argv: Optional[List[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", type=int, default=2, help="ranks to start (ignored under torchrun)")
    ap.add_argument("--layouts", default=None, help="comma-separated layouts (default: all)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--dtype", choices=DTYPES, default="bfloat16")
    ap.add_argument("--impl", default="diffcoll", help="diffcoll, torch or diffcoll,torch")
    ap.add_argument("--steps", type=int, help="denoising steps (default: the preset's)")
    ap.add_argument("--branches", type=int, choices=(2, 3), help="guidance branches")
    ap.add_argument("--min-psnr", type=float, help="fail below this PSNR (dB)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds the ranks may take")
    ap.add_argument("--json", help="write the results here (rank 0)")
    ap.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--world", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--store", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def sizes_of(args):
    sizes = PRESETS[args.preset]
    overrides = {k: getattr(args, k) for k in ("steps", "branches") if getattr(args, k)}
    return dataclasses.replace(sizes, **overrides)


def factorisations(world: int) -> List[str]:
    """Every cfg x ulysses x ring = world, as layout names."""
    out = []
    for c in range(1, world + 1):
        for u in range(1, world // c + 1):
            if world % (c * u) == 0:
                r = world // (c * u)
                parts = [f"{n}{d}" for n, d in (("cfg", c), ("ulysses", u), ("ring", r)) if d > 1]
                out.append("x".join(parts) or "single")
    return out


@dataclasses.dataclass
class Run:
    layout: str
    impl: str
    video: Optional["torch.Tensor"] = None
    timings: Optional["Timings"] = None
    skipped: str = ""


def run_layouts(me: "Rank", job: "Job", layouts: List[str], impls: List[str]) -> List[Run]:
    from exchange import Unsupported
    from generate import generate
    from mesh import parse_degrees

    runs = []
    for spec in layouts:
        degrees = parse_degrees(spec, me.world, job.sizes.frames)
        for impl in impls:
            try:
                ex = me.exchange(impl, job.sizes, degrees, job.dtype)
            except Unsupported as e:
                runs.append(Run(degrees.name, impl, skipped=str(e)))
                continue
            try:
                video, timings = generate(job, ex)
            finally:
                ex.close()
            runs.append(Run(degrees.name, impl, video, timings))
    return runs


def report(args, me: "Rank", job: "Job", runs: List[Run]) -> int:
    from generate import difference, reference

    ref = reference(job)
    s = job.sizes
    print(f"# pipeline, preset {args.preset}: {s.tokens} tokens, {s.heads} heads x {s.head_dim}, "
          f"{s.layers} layers, {s.steps} steps, {s.branches} guidance branches, video "
          f"{tuple(ref.video.shape)} in [{float(ref.video.min()):.2f}, {float(ref.video.max()):.2f}]; "
          f"{args.dtype} on {me.device.type}, {me.world} ranks"
          f"{' sharing GPUs' if me.shares_gpu else ''}; times of rank 0")
    min_psnr = ref.min_psnr if args.min_psnr is None else args.min_psnr
    if ref.bf16_psnr is not None:
        print(f"# bfloat16 tolerance: the 1-rank video is {ref.bf16_psnr:.1f} dB from the float32 "
              f"one; a run passes at >= {min_psnr:.1f} dB")
    print(f"{'layout':<30}{'impl':>9}{'max|diff|':>11}{'PSNR dB':>9}{'ms/step':>9}"
          f"{'decode ms':>10}{'total ms':>10}  result")

    def line(name, impl, t: "Timings", diff, psnr, verdict):
        ms_step = 1e3 * sum(t.steps) / len(t.steps)
        print(f"{name:<30}{impl:>9}{diff:>11.2e}{psnr:>9.1f}{ms_step:>9.1f}"
              f"{1e3 * t.decode:>10.1f}{1e3 * t.total:>10.1f}  {verdict}")

    line("reference (1 rank)", "local", ref.timings, 0.0, float("inf"), "")
    rows, failed = [], 0
    for run in runs:
        if run.skipped:
            print(f"{run.layout:<30}{run.impl:>9}  skipped: {run.skipped}")
            rows.append(dict(layout=run.layout, impl=run.impl, skipped=run.skipped))
            continue
        diff, psnr = difference(run.video, ref.video)
        ok = psnr >= min_psnr
        failed += not ok
        line(run.layout, run.impl, run.timings, diff, psnr,
             "OK" if ok else "FAIL")
        rows.append(dict(layout=run.layout, impl=run.impl, max_abs_diff=diff, psnr_db=psnr,
                         ok=ok, step_s=run.timings.steps, decode_s=run.timings.decode,
                         total_s=run.timings.total, peak_bytes=run.timings.peak_bytes))
    checked = sum(1 for r in rows if "ok" in r)
    print(f"{checked - failed} of {checked} runs match the 1-rank video (PSNR >= {min_psnr:.1f} dB)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(preset=args.preset, dtype=args.dtype, device=me.device.type, min_psnr_db=min_psnr,
                           world=me.world, shares_gpu=me.shares_gpu, sizes=dataclasses.asdict(s),
                           rows=rows), f, indent=1)
    return 1 if failed else 0


def main(argv: Optional[List[str]] = None) -> int:
    args = parse(argv)
    if find_spec("torch") is None:  # the CPU CI without python3-torch
        print("pipeline: SKIPPED: PyTorch is not installed (apt-get install python3-torch)")
        return 77
    under_torchrun = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if args.rank is None and not under_torchrun:
        return launch_ranks(args)
    return rank_main(args)


def launch_ranks(args) -> int:
    import torch  # noqa: F401  (once, here: the rank processes are forked from this one)
    from ranks import launch

    def rank(r: int, world: int, store: str) -> int:
        args.rank, args.world, args.store = r, world, store
        return rank_main(args)

    return launch(rank, args.ranks, args.timeout)


def rank_main(args) -> int:
    import torch
    from generate import Job
    from ranks import Rank

    torch.set_num_threads(1)
    me = Rank.from_args(args.rank, args.world, args.store, args.device)
    job = Job(sizes_of(args), getattr(torch, args.dtype), me.device)
    layouts = args.layouts.split(",") if args.layouts else factorisations(me.world)
    impls = [i.strip() for i in args.impl.split(",") if i.strip()]
    try:
        runs = run_layouts(me, job, layouts, impls)
    except ValueError as e:  # a layout that does not fit: every rank finds it
        if me.rank == 0:
            print(f"pipeline: {e}", file=sys.stderr)
        return 2
    me.close()
    return report(args, me, job, runs) if me.rank == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
