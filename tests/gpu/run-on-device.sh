#!/usr/bin/env bash
# On a lent GPU machine (see ../shared/device/README.md): build diffcoll with
# CUDA, NCCL and the Python bindings, run the GPU tests, then the Python suite
# on PyTorch CUDA tensors and the PyTorch example; logs go to $OUT.
#   eval "$(bash .devdeps/unpack-debs.sh)"; bash tests/gpu/run-on-device.sh
set -uo pipefail
out=${OUT:-/tmp/diffcoll-out}
mkdir -p "$out"
nvidia-smi -L | tee "$out/gpus.txt"
gpus=$(nvidia-smi -L | wc -l)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DDIFFCOLL_CUDA=ON \
  -DPython3_EXECUTABLE="$(command -v python3)" -DCMAKE_DISABLE_FIND_PACKAGE_Gloo=ON \
  -DGLOO_ROOT="$DEVDEPS/usr" -DGTEST_ROOT="$DEVDEPS/usr" >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-gpu -j16 >"$out/build.log" 2>&1 || { grep -m20 -E "error|Error" "$out/build.log"; exit 1; }
ctest --test-dir build-gpu -L gpu --output-on-failure >"$out/gpu-tests.log" 2>&1
rc=$?
tail -25 "$out/gpu-tests.log"
export PYTHONPATH="$PWD/bindings/python:$PWD/build-gpu/bindings/python" PYTHONUNBUFFERED=1
python3 -m pytest -q bindings/python/tests/test_torch_cuda.py >"$out/python-torch.log" 2>&1 || rc=1
tail -3 "$out/python-torch.log"
python3 -m torch.distributed.run --nproc-per-node="$gpus" examples/python/torch_gpu.py \
  >"$out/torch-example.log" 2>&1 || rc=1
tail -5 "$out/torch-example.log"
exit $rc
