// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The residual add + RMSNorm of one row, for one CTA, shared by the NCCL
// path's epilogue kernel and the one-kernel (LSA) paths: float32 arithmetic,
// V elements per memory access (16 bytes when the rows are aligned).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace diffcoll {
namespace fused_norm_cuda {

constexpr int kThreads = 256;  // threads of every fused-norm CTA

template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
template <>
__device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }

// `v` as the dtype would store it.
template <typename T>
__device__ __forceinline__ float round_to(float v) {
  return to_float<T>(from_float<T>(v));
}

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <typename T, int V>
__device__ __forceinline__ void load(const T* p, float (&out)[V]) {
  const Pack<T, V> pack = *reinterpret_cast<const Pack<T, V>*>(p);
#pragma unroll
  for (int k = 0; k < V; ++k) out[k] = to_float<T>(pack.v[k]);
}

template <typename T, int V>
__device__ __forceinline__ void store(T* p, const float (&in)[V]) {
  Pack<T, V> pack;
#pragma unroll
  for (int k = 0; k < V; ++k) pack.v[k] = from_float<T>(in[k]);
  *reinterpret_cast<Pack<T, V>*>(p) = pack;
}

template <typename T, int V>
__device__ __forceinline__ void copy_row(const T* src, T* dst, int64_t hidden) {
  for (int64_t e = static_cast<int64_t>(threadIdx.x) * V; e < hidden; e += kThreads * V)
    *reinterpret_cast<Pack<T, V>*>(dst + e) = *reinterpret_cast<const Pack<T, V>*>(src + e);
}

// The sum of `v` over the CTA, on every thread.
__device__ __forceinline__ float cta_sum(float v) {
  __shared__ float partial[kThreads / 32];
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  __syncthreads();  // the previous row's readers are done with `partial`
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) total += partial[w];
  return total;
}

// Vectors per thread that norm_row keeps in registers between its passes:
// rows of up to kThreads * V * kCachedVectors elements (8192 in 16-bit types)
// are read once; longer rows re-read the rest from where pass 1 stored it.
constexpr int kCachedVectors = 4;

// One row: sum_of(e, v) fills v with allreduce(x) at elements e..e+V-1 of the
// row, already rounded to T. residual_out = round(sum + residual) is stored
// (if wanted) and the norm taken of those rounded values; y gets the result.
// Every element is read and written by one thread in both passes, so y and
// residual_out may be the buffer sum_of reads, and residual_out may be
// `residual`. Elements beyond the register cache wait in residual_out, or in
// y when there is no residual_out, between the passes.
template <typename T, int V, typename SumOf>
__device__ __forceinline__ void norm_row(SumOf sum_of, const T* residual, const T* weight,
                                         T* residual_out, T* y, int64_t hidden, float eps) {
  const int64_t first = static_cast<int64_t>(threadIdx.x) * V;
  constexpr int64_t kStride = static_cast<int64_t>(kThreads) * V;
  T* stash = residual_out ? residual_out : y;
  float cache[kCachedVectors][V];
  float squares = 0;
  // Pass 1 on element e: the rounded residual stream, into v.
  auto pass1 = [&](int64_t e, float(&v)[V]) {
    sum_of(e, v);
    if (residual) {
      float r[V];
      load<T, V>(residual + e, r);
#pragma unroll
      for (int k = 0; k < V; ++k) v[k] += r[k];
    }
#pragma unroll
    for (int k = 0; k < V; ++k) {
      v[k] = round_to<T>(v[k]);
      squares += v[k] * v[k];
    }
  };
#pragma unroll
  for (int i = 0; i < kCachedVectors; ++i) {
    const int64_t e = first + i * kStride;
    if (e < hidden) {
      pass1(e, cache[i]);
      if (residual_out) store<T, V>(residual_out + e, cache[i]);
    }
  }
  for (int64_t e = first + kCachedVectors * kStride; e < hidden; e += kStride) {
    float v[V];
    pass1(e, v);
    store<T, V>(stash + e, v);
  }
  const float scale = rsqrtf(cta_sum(squares) / static_cast<float>(hidden) + eps);
  // Pass 2 on element e holding v: y = v * scale * weight.
  auto pass2 = [&](int64_t e, const float(&v)[V]) {
    float w[V];
    if (weight) {
      load<T, V>(weight + e, w);
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) w[k] = 1.0f;
    }
    float out[V];
#pragma unroll
    for (int k = 0; k < V; ++k) out[k] = v[k] * scale * w[k];
    store<T, V>(y + e, out);
  };
#pragma unroll
  for (int i = 0; i < kCachedVectors; ++i) {
    const int64_t e = first + i * kStride;
    if (e < hidden) pass2(e, cache[i]);
  }
  for (int64_t e = first + kCachedVectors * kStride; e < hidden; e += kStride) {
    float v[V];
    load<T, V>(stash + e, v);
    pass2(e, v);
  }
}

}  // namespace fused_norm_cuda
}  // namespace diffcoll
