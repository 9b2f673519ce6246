#!/usr/bin/env bash
# On a lent GPU machine, after tests/gpu/run-on-device.sh has built build-gpu:
# run the Python benchmarks (all, or those named: collectives halo ...), one
# process per visible GPU; tables go to the output, JSON and logs to $OUT.
set -uo pipefail
out=${OUT:-/tmp/diffcoll-out}
mkdir -p "$out"
gpus=$(nvidia-smi -L | wc -l)
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(collectives halo)
rc=0
for bench in "${benches[@]}"; do
  python3 -m torch.distributed.run --nproc-per-node="$gpus" "tests/bench/${bench}_bench.py" \
    --lib build-gpu/libdiffcoll.so.0 --json "$out/${bench}_bench.json" 2>&1 |
    tee "$out/${bench}_bench.log" || rc=1
done
exit $rc
