#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause

# Builds tests/gpu/pack_cuda_test.cu outside the repository and runs it.
# Without a CUDA device every test skips. Extra arguments go to the test
# binary (e.g. --gtest_filter=PackCudaTest.PrintsBandwidth).
#   NVCC (default /usr/local/cuda/bin/nvcc), ARCH (default sm_90),
#   BUILD_DIR (default a fresh directory under ${TMPDIR:-/tmp}).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
nvcc="${NVCC:-/usr/local/cuda/bin/nvcc}"
arch="${ARCH:-sm_90}"
build="${BUILD_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/pack_cuda_test.XXXXXX")}"
mkdir -p "$build"
"$nvcc" -std=c++17 -O2 -arch="$arch" -I"$root" -I"$root/core" \
  "$root/tests/gpu/pack_cuda_test.cu" "$root/core/cuda/pack_cuda.cu" \
  "$root/core/pack.cc" "$root/core/tensor.cc" "$root/core/dtype.cc" \
  -lgtest -lgtest_main -lpthread -o "$build/pack_cuda_test"
exec "$build/pack_cuda_test" "$@"
