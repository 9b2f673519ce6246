#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# On a lent GPU machine (see ../shared/device/README.md): build diffcoll with
# CUDA, NCCL and the Python bindings, then run
#   - every ctest of label gpu: single-GPU tests, and the multi-rank tests at
#     2, 3 and 4 ranks (Ulysses up to 8) as processes, one per GPU or, with
#     fewer GPUs, sharing them (each rank its own NCCL host over loopback);
#   - the Python suites on PyTorch CUDA tensors;
#   - examples/python/torch_gpu.py under torchrun at 1, 2 and
#     4 ranks (sharing GPUs where there are fewer), and the end-to-end
#     pipeline (examples/pipeline) at 2, 3 and 4 ranks against its 1-rank video;
# and print passed / failed / skipped counts. Logs and JUnit reports go to $OUT.
#   eval "$(bash .devdeps/unpack-debs.sh)"; bash tests/gpu/run-on-device.sh [--no-examples] [CTEST_REGEX]
set -uo pipefail
out=${OUT:-/tmp/diffcoll-out}
mkdir -p "$out"
nvidia-smi -L | tee "$out/gpus.txt"
gpus=$(nvidia-smi -L | wc -l)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DDIFFCOLL_CUDA=ON \
  -DPython3_EXECUTABLE="$(command -v python3)" -DCMAKE_DISABLE_FIND_PACKAGE_Gloo=ON \
  -DGLOO_ROOT="$DEVDEPS/usr" -DGTEST_ROOT="$DEVDEPS/usr" >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-gpu -j16 >"$out/build.log" 2>&1 || { grep -m20 -E "error|Error" "$out/build.log"; exit 1; }
rc=0
examples=1
if [ "${1:-}" = --no-examples ]; then examples=0; shift; fi
filter=()
[ $# -gt 0 ] && filter=(-R "$1")
# Tests run six at a time: the GPU has room, and multi-rank tests spend most
# of their time in the socket transport.
ctest --test-dir build-gpu -L gpu "${filter[@]}" -j6 --output-on-failure \
  --output-junit "$out/ctest-gpu.xml" >"$out/gpu-tests.log" 2>&1 || rc=1
grep -E "tests passed|tests failed|\*\*\*Failed|Timeout|Not Run" "$out/gpu-tests.log" | tail -30
export PYTHONPATH="$PWD/bindings/python:$PWD/build-gpu/bindings/python" PYTHONUNBUFFERED=1
python3 -m pytest -q -rs bindings/python/tests/test_torch_cuda.py \
  bindings/python/tests/test_cfg_torch.py bindings/python/tests/test_torch_ops.py --junitxml="$out/python-torch.xml" \
  >"$out/python-torch.log" 2>&1 || rc=1
tail -3 "$out/python-torch.log"
examples_passed=0 examples_failed=0
# run_example NAME COMMAND...: runs an example, its output in $out/NAME.log.
run_example() {
  local name=$1; shift
  if "$@" >"$out/$name.log" 2>&1; then
    examples_passed=$((examples_passed + 1))
  else
    examples_failed=$((examples_failed + 1)); rc=1
    echo "$name FAILED:"; tail -15 "$out/$name.log"
  fi
}
[ $examples = 1 ] && for n in 1 2 4; do
  run_example "torch-example-$n" python3 -m torch.distributed.run --nproc-per-node="$n" examples/python/torch_gpu.py
done
# The end-to-end pipeline (examples/pipeline) against its 1-rank video, on
# diffcoll and on torch.distributed, at 2, 3 and 4 ranks.
declare -A pipeline_layouts=([2]=cfg2,ulysses2,ring2 [3]=ulysses3,cfg3xvae3,ring3
  [4]=cfg2xulysses2,ulysses4,cfg2xring2,ulysses2xring2)
[ $examples = 1 ] && for n in 2 3 4; do
  run_example "pipeline-gpu-$n" python3 examples/pipeline/run.py --device cuda --ranks "$n" --preset gpu \
    --branches 2 --impl diffcoll,torch --layouts "${pipeline_layouts[$n]}" --json "$out/pipeline-gpu-$n.json"
done
echo "examples (torch_gpu.py at 1, 2, 4 ranks; pipeline at 2, 3, 4): $examples_passed passed, $examples_failed failed"
python3 tests/gpu/summarize.py "$out"/ctest-gpu.xml "$out"/python-torch.xml || rc=1
exit $rc
