#!/usr/bin/env bash
# On a lent GPU machine (see ../shared/device/README.md): build diffcoll with
# CUDA and NCCL, run the GPU tests and the host suite, and leave logs in $OUT.
#   eval "$(bash .devdeps/unpack-debs.sh)"; bash tests/gpu/run-on-device.sh
set -uo pipefail
out=${OUT:-/tmp/diffcoll-out}
mkdir -p "$out"
nvidia-smi -L | tee "$out/gpus.txt"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DDIFFCOLL_CUDA=ON \
  -DDIFFCOLL_BUILD_BINDINGS=OFF -DCMAKE_DISABLE_FIND_PACKAGE_Gloo=ON \
  -DGLOO_ROOT="$DEVDEPS/usr" -DGTEST_ROOT="$DEVDEPS/usr" >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-gpu -j16 >"$out/build.log" 2>&1 || { grep -m20 -E "error|Error" "$out/build.log"; exit 1; }
ctest --test-dir build-gpu -L gpu --output-on-failure >"$out/gpu-tests.log" 2>&1
gpu_rc=$?
tail -15 "$out/gpu-tests.log"
exit $gpu_rc
