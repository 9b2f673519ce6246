# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""Issue 18's benchmark: the whole parallel video pipeline (examples/pipeline),
every exchange through diffcoll against the same pipeline on torch.distributed,
in one job.

  torchrun --nproc-per-node=N tests/bench/pipeline_bench.py \
      --lib build-gpu/libdiffcoll.so.0 [--json out.json] [--layouts cfg2,ulysses2]
      [--preset gpu] [--repeat 3]

One process per GPU (or, with more ranks than GPUs, several ranks per GPU:
then every result is still checked but the times mean nothing, and the table
says so). For each layout, each implementation runs the pipeline once to warm
up, its video is compared with the 1-rank video (rank 0 generates that first,
without any communication), then it runs ``--repeat`` more times. Per rank:
milliseconds per denoising step, end to end (loop + decode + gather) and of the
decode, and the peak of PyTorch's allocator (diffcoll's staging arena, at most
one call's inputs and outputs, is allocated by the library and not in it);
then the ratios diffcoll / torch of the slowest rank's times and the largest
peak. Prints a table on rank 0 and writes JSON.

  diffcoll  examples/pipeline/exchange_diffcoll.py: Ulysses all-to-all of q, k, v
            in one call into transposed views, diffcoll.Ring, gather_slabs,
            cfg_combine, halo exchange, group_norm;
  torch     examples/pipeline/exchange_torch.py: .contiguous() + all_to_all_single
            per tensor, batch_isend_irecv ring, all_gather + cat, all_gather for
            CFG, isend/irecv + cat halos, all_reduce of GroupNorm sums.

Default layouts need even splits (the torch baseline cannot run others):
2 ranks cfg2, ulysses2, ring2; 4: cfg2xulysses2, ulysses4, cfg2xring2;
8: cfg2xulysses4, cfg2xulysses2xring2; otherwise ulysses{N}.
"""
import argparse
import dataclasses
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

DEFAULT_LAYOUTS = {1: ["single"], 2: ["cfg2", "ulysses2", "ring2"],
                   4: ["cfg2xulysses2", "ulysses4", "cfg2xring2"],
                   8: ["cfg2xulysses4", "cfg2xulysses2xring2"]}
IMPLS = ("diffcoll", "torch")


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build-gpu/libdiffcoll.so.0",
                    help="the library whose build tree holds bindings/python (the SWIG module)")
    ap.add_argument("--json", default="pipeline_bench.json")
    ap.add_argument("--layouts", help="comma-separated (see examples/pipeline/run.py)")
    ap.add_argument("--preset", help="default: gpu on GPUs, tiny on the host")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--branches", type=int, default=2, choices=(2, 3))
    ap.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    return ap.parse_args()


def import_paths(lib):
    """The diffcoll package, its SWIG module in the build tree of ``lib``, and the pipeline."""
    build = os.path.dirname(os.path.abspath(lib))
    for path in (os.path.join(ROOT, "examples", "pipeline"), os.path.join(build, "bindings", "python"),
                 os.path.join(ROOT, "bindings", "python")):
        sys.path.insert(0, path)


def summarise(runs):
    """Medians over the timed runs of one rank."""
    return dict(step_ms=1e3 * statistics.median(sum(t.steps) / len(t.steps) for t in runs),
                total_ms=1e3 * statistics.median(t.total for t in runs),
                decode_ms=1e3 * statistics.median(t.decode for t in runs),
                peak_mib=None if runs[0].peak_bytes is None
                else max(t.peak_bytes for t in runs) / 2**20)


def main():
    args = parse()
    import_paths(args.lib)
    import torch
    import torch.distributed as dist
    from exchange import Unsupported
    from generate import Job, difference, generate, reference
    from mesh import PRESETS, parse_degrees
    from ranks import Rank

    device = "cuda" if torch.cuda.is_available() else "cpu"
    me = Rank.from_args(None, None, None, device)
    me.torch_world()
    preset = args.preset or ("gpu" if device == "cuda" else "tiny")
    sizes = dataclasses.replace(PRESETS[preset], branches=args.branches)
    job = Job(sizes, getattr(torch, args.dtype), me.device)
    layouts = (args.layouts.split(",") if args.layouts
               else DEFAULT_LAYOUTS.get(me.world, [f"ulysses{me.world}"]))
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    name = torch.cuda.get_device_name(me.device) if device == "cuda" else "host (Gloo)"

    ref = reference(job) if me.rank == 0 else None  # the others wait in the barrier
    dist.barrier()

    rows = []
    for spec in layouts:
        degrees = parse_degrees(spec, me.world, sizes.frames)
        for impl in IMPLS:
            try:
                ex = me.exchange(impl, sizes, degrees, job.dtype)
            except Unsupported as e:
                rows.append(dict(layout=degrees.name, impl=impl, skipped=str(e)))
                continue
            try:
                video, _ = generate(job, ex)  # warm-up, and the result to check
                timed = [generate(job, ex)[1] for _ in range(args.repeat)]
            finally:
                ex.close()
            if device == "cuda":
                torch.cuda.empty_cache()
            per_rank = [None] * me.world
            dist.all_gather_object(per_rank, summarise(timed))
            row = dict(layout=degrees.name, impl=impl, ranks=per_rank)
            if me.rank == 0:
                row["max_abs_diff"], row["psnr_db"] = difference(video, ref.video)
                row["ok"] = row["psnr_db"] >= ref.min_psnr
            rows.append(row)
    me.close()
    if me.rank != 0:
        return 0

    shared = device == "cuda" and me.world > gpus
    print(f"# pipeline: preset {preset} ({sizes.tokens} tokens, {sizes.heads} heads x {sizes.head_dim}, "
          f"{sizes.layers} layers, {sizes.steps} steps, {sizes.branches} branches, {sizes.frames} "
          f"latent frames), {args.dtype}, {me.world} ranks on {name}; medians of {args.repeat} runs "
          f"after a warm-up")
    if shared:
        print(f"# NOTE: {me.world} ranks share {gpus} GPU(s) (NCCL over sockets, one GPU's compute "
              "split between ranks): the results are checked, the TIMES ARE NOT MEANINGFUL")
    print(f"{'layout':<26}{'impl':>9}{'rank':>5}{'ms/step':>10}{'total ms':>10}{'decode ms':>10}"
          f"{'peak MiB':>10}{'PSNR dB':>9}  result")
    failed = 0
    by_impl = {}
    for row in rows:
        if "skipped" in row:
            print(f"{row['layout']:<26}{row['impl']:>9}  skipped: {row['skipped']}")
            continue
        failed += not row["ok"]
        by_impl[(row["layout"], row["impl"])] = row
        for r, stats in enumerate(row["ranks"]):
            peak = "-" if stats["peak_mib"] is None else f"{stats['peak_mib']:.0f}"
            check = f"{row['psnr_db']:>9.1f}  {'OK' if row['ok'] else 'FAIL'}" if r == 0 else ""
            print(f"{row['layout'] if r == 0 else '':<26}{row['impl'] if r == 0 else '':>9}{r:>5}"
                  f"{stats['step_ms']:>10.1f}{stats['total_ms']:>10.1f}{stats['decode_ms']:>10.1f}"
                  f"{peak:>10}{check}")
    print(f"\n{'layout':<26}{'diffcoll / torch':>18}{'ms/step':>10}{'total':>10}{'decode':>10}{'peak':>10}")
    ratios = []
    for layout in dict.fromkeys(row["layout"] for row in rows):
        ours, theirs = by_impl.get((layout, "diffcoll")), by_impl.get((layout, "torch"))
        if not ours or not theirs:
            continue
        ratio = {}
        for key in ("step_ms", "total_ms", "decode_ms", "peak_mib"):
            a = [s[key] for s in ours["ranks"]]
            b = [s[key] for s in theirs["ranks"]]
            ratio[key] = None if None in a or None in b else max(a) / max(b)
        ratios.append(dict(layout=layout, **ratio))
        cells = ["-" if ratio[k] is None else f"{ratio[k]:.3f}"
                 for k in ("step_ms", "total_ms", "decode_ms", "peak_mib")]
        print(f"{layout:<26}{'(slowest rank)':>18}" + "".join(f"{c:>10}" for c in cells))
    print(f"\n{'every run matches' if not failed else f'{failed} runs differ from'} the 1-rank video "
          f"(PSNR >= {ref.min_psnr:.1f} dB)")
    with open(args.json, "w") as f:
        json.dump(dict(device=name, world_size=me.world, gpus=gpus, timings_meaningful=not shared,
                       preset=preset, sizes=dataclasses.asdict(sizes), dtype=args.dtype,
                       repeat=args.repeat, min_psnr_db=ref.min_psnr, rows=rows, ratios=ratios), f, indent=1)
    print(f"wrote {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
