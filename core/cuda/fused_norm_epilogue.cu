// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "fused_norm_epilogue.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "cuda_error.h"
#include "fused_norm_row.cuh"

namespace diffcoll {
namespace {

using fused_norm_cuda::kThreads;
constexpr int64_t kMaxEpilogueCtas = 65535;  // one CTA per row up to here, then rows loop

template <typename T, int V>
__global__ void __launch_bounds__(kThreads, fused_norm_cuda::kMinCtasPerSm)
    epilogue_kernel(const T* residual, const T* weight, T* y, T* residual_out, int64_t tokens,
                    int64_t hidden, float eps) {
  for (int64_t row = blockIdx.x; row < tokens; row += gridDim.x) {
    T* y_row = y + row * hidden;
    auto sum_of = [&](int64_t e) { return elementwise::load_pack<T, V>(y_row + e); };
    fused_norm_cuda::norm_row<T, V>(sum_of, residual ? residual + row * hidden : nullptr, weight,
                                    residual_out ? residual_out + row * hidden : nullptr, y_row,
                                    hidden, eps);
  }
}

template <typename T, int V>
void launch(const ops::FusedNormCall& c, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(c.tokens, kMaxEpilogueCtas));
  epilogue_kernel<T, V><<<grid, kThreads, 0, stream>>>(
      static_cast<const T*>(c.residual), static_cast<const T*>(c.weight), static_cast<T*>(c.y),
      static_cast<T*>(c.residual_out), c.tokens, c.hidden, c.eps);
}

template <typename T>
void launch_typed(const ops::FusedNormCall& c, cudaStream_t stream) {
  if (fused_norm_vector_width(c) > 1)
    launch<T, 16 / sizeof(T)>(c, stream);
  else
    launch<T, 1>(c, stream);
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

int fused_norm_vector_width(const ops::FusedNormCall& c) {
  const size_t size = dtype_size(c.dtype);
  const bool ok = (c.hidden * size) % 16 == 0 && aligned16(c.x) && aligned16(c.y) &&
                  aligned16(c.residual) && aligned16(c.weight) && aligned16(c.residual_out);
  return ok ? static_cast<int>(16 / size) : 1;
}

void launch_fused_norm_epilogue(const ops::FusedNormCall& c, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  switch (c.dtype) {
    case DType::kFloat32: launch_typed<float>(c, s); break;
    case DType::kBFloat16: launch_typed<__nv_bfloat16>(c, s); break;
    case DType::kFloat16: launch_typed<__half>(c, s); break;
    default: fail(Status::kInternal, "fused_norm epilogue for ", dtype_name(c.dtype));
  }
  DIFFCOLL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace diffcoll
