// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// What the CUDA GroupNorm kernels (group_norm_cuda.cu, group_norm_held.cu)
// share: a block's reduction of its threads' sums, the affine parameters of
// a channel, and on the host the per-device answers their launches cache
// and the dispatch on the element type.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>

#include "../ops/group_norm_math.h"
#include "cuda_error.h"
#include "dependent_launch.cuh"
#include "group_norm_layout.h"

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

// The block's sums (valid in thread 0): warps' shuffle trees (down by 16,
// 8, 4, 2, 1), then the warps in order.
__device__ inline float2 block_sums(float2 v) {
  constexpr int kWarps = kGroupNormThreads / 32;
  __shared__ float2 per_warp[kWarps];
  for (int delta = 16; delta > 0; delta /= 2) v = add_sums(v, shuffle_down(v, delta));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) per_warp[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0)
    for (int w = 1; w < kWarps; ++w) v = add_sums(v, per_warp[w]);
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

constexpr int kMaxCachedDevices = 64;

// query(device) for the current device, asked once per device: `cache`
// holds each device's answer, which must be positive (0: not asked yet).
template <typename Query>
int once_per_device(std::atomic<int> (&cache)[kMaxCachedDevices], Query query) {
  int device = 0;
  DIFFCOLL_CUDA_CHECK(cudaGetDevice(&device));
  if (device >= kMaxCachedDevices) return query(device);
  int answer = cache[device].load(std::memory_order_relaxed);
  if (answer == 0) {
    answer = query(device);
    cache[device].store(answer, std::memory_order_relaxed);
  }
  return answer;
}

// The current device's SMs.
inline int sm_count() {
  static std::atomic<int> cache[kMaxCachedDevices];
  return once_per_device(cache, [](int device) {
    int sms = 0;
    DIFFCOLL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    return std::max(1, sms);
  });
}

// Answers cached by once_per_device, which must be positive.
constexpr int kNo = 1, kYes = 2;

// Whether Kernel, on the current device, waits for the kernel before it
// and so may be launched early (dependent_launch.cuh).
template <auto Kernel>
bool waits_for_previous() {
  static std::atomic<int> cache[kMaxCachedDevices];
  return once_per_device(cache, [](int device) {
    bool waits = false;
    DIFFCOLL_CUDA_CHECK(
        kernel_waits_for_previous(reinterpret_cast<const void*>(Kernel), device, &waits));
    return waits ? kYes : kNo;
  }) == kYes;
}

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
