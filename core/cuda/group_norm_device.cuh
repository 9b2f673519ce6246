// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// What the CUDA GroupNorm kernels (group_norm_cuda.cu, group_norm_held.cu)
// share: a block's reduction of its threads' sums, the affine parameters of
// a channel, and on the host the dispatch on the element type (the
// per-device answers their launches keep are per_device.cuh's).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "../ops/group_norm_math.h"
#include "group_norm_layout.h"
#include "per_device.cuh"

namespace diffcoll {
namespace ops {

__device__ inline float load_param(const void* p, DType dtype, int64_t index) {
  switch (dtype) {
    case DType::kBFloat16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[index]);
    case DType::kFloat16: return __half2float(static_cast<const __half*>(p)[index]);
    default: return static_cast<const float*>(p)[index];
  }
}

// A thread's (s, ss) of ShiftedSums as a float2 (x: s, y: ss), added.
__device__ inline float2 add_sums(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }

__device__ inline float2 shuffle_down(float2 v, int delta) {
  return make_float2(__shfl_down_sync(0xffffffffu, v.x, delta),
                     __shfl_down_sync(0xffffffffu, v.y, delta));
}

// The block's sums, per group where each warp holds whole rows of `groups`
// groups side by side, `per_group` lanes each (thread t's group: t %
// (groups * per_group) / per_group; by default one group): warps' shuffle
// trees down by 16, 8, 4, 2, 1 but across groups, then the warps in order.
// Group g's sums are valid in thread g * per_group.
__device__ inline float2 block_sums(float2 v, int per_group = 1, int groups = 1) {
  constexpr int kWarps = kGroupNormThreads / 32;
  __shared__ float2 per_warp[kWarps][kHeldMaxUnitGroups];
  const int row = per_group * groups;
  for (int delta = 16; delta > 0; delta /= 2)
    if (delta < per_group || delta >= row) v = add_sums(v, shuffle_down(v, delta));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, group = lane / per_group;
  const bool lead = lane < row && lane % per_group == 0;
  if (lead) per_warp[warp][group] = v;
  __syncthreads();
  if (warp == 0 && lead)
    for (int w = 1; w < kWarps; ++w) v = add_sums(v, per_warp[w][group]);
  return v;
}

__device__ inline float channel_weight(const GroupNormAffine& a, int64_t c) {
  return a.weight ? load_param(a.weight, a.weight_dtype, c * a.weight_stride) : 1.f;
}
__device__ inline float channel_scale(const GroupNormAffine& a, GroupStats s, int64_t c) {
  return s.rstd * channel_weight(a, c);
}
__device__ inline float channel_bias(const GroupNormAffine& a, int64_t c) {
  return a.bias ? load_param(a.bias, a.bias_dtype, c * a.bias_stride) : 0.f;
}

// ---------------------------------------------------------------- host side

// Calls fn.template operator()<T>() with T the CUDA type of `dtype`.
template <typename Fn>
void by_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kBFloat16: return fn(__nv_bfloat16{});
    case DType::kFloat16: return fn(__half{});
    default: return fn(float{});
  }
}

}  // namespace ops
}  // namespace diffcoll
