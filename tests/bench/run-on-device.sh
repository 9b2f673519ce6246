#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# On a lent GPU machine, after tests/gpu/run-on-device.sh has built build-gpu:
# every benchmark, one process (or rank) per visible GPU, or RANKS of them
# (RANKS=4 on one GPU: the ranks share it, results are checked and the
# timings are not meaningful):
#   tests/bench/*_bench.py      diffcoll, raw NCCL and PyTorch in one torchrun job
#   build-gpu/tests/bench/*     the compiled ones (diffcoll against raw NCCL)
#   tests/bench/*_torch.py      PyTorch baselines of the compiled ones
# Names given as arguments (e.g. collectives cfg) select those whose file
# names start with them. Tables go to the output, JSON and logs to $OUT.
set -uo pipefail
out=${OUT:-/tmp/diffcoll-out}
mkdir -p "$out"
gpus=$(nvidia-smi -L | wc -l)
ranks=${RANKS:-$gpus}
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
wanted() {
  [ $# -gt 1 ] || return 0
  local name=$1; shift
  for w in "$@"; do [[ $name == "$w"* ]] && return 0; done
  return 1
}
torchrun=(python3 -m torch.distributed.run --nproc-per-node="$ranks")
rc=0
for script in tests/bench/*_bench.py tests/bench/*_torch.py; do
  name=$(basename "$script" .py)
  wanted "$name" "$@" || continue
  args=(--json "$out/$name.json")
  [[ $name == *_bench ]] && args+=(--lib build-gpu/libdiffcoll.so.0)
  "${torchrun[@]}" "$script" "${args[@]}" 2>&1 | tee "$out/$name.log" || rc=1
done
for program in build-gpu/tests/bench/*_bench; do
  [ -x "$program" ] || continue
  name=$(basename "$program")
  wanted "$name" "$@" || continue
  "$program" --ranks "$ranks" --json "$out/$name-cc.json" 2>&1 | tee "$out/$name-cc.log" || rc=1
done
exit $rc
