// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The residual add + RMSNorm of one row, for one CTA, shared by the NCCL
// path's epilogue kernel and the one-kernel (LSA) paths: float32 arithmetic,
// V elements per memory access (16 bytes when the rows are aligned).
#pragma once

#include <cstdint>

#include "float_vectors.cuh"

namespace diffcoll {
namespace fused_norm_cuda {

using elementwise::Pack;

constexpr int kThreads = 256;  // threads of every fused-norm CTA
// Resident CTAs per SM asked of the register allocator: 85 registers hold a
// thread's cached sums, residuals and weights (all loaded before the first
// store) without spills.
constexpr int kMinCtasPerSm = 3;

template <typename T, int V>
__device__ __forceinline__ void copy_row(const T* src, T* dst, int64_t hidden) {
  // Four accesses in flight per thread before the first store.
  constexpr int kInFlight = 4;
  constexpr int64_t kStride = static_cast<int64_t>(kThreads) * V;
  for (int64_t e0 = static_cast<int64_t>(threadIdx.x) * V; e0 < hidden; e0 += kStride * kInFlight) {
    Pack<T, V> v[kInFlight];
#pragma unroll
    for (int i = 0; i < kInFlight; ++i)
      if (e0 + i * kStride < hidden) v[i] = elementwise::load_pack<T, V>(src + e0 + i * kStride);
#pragma unroll
    for (int i = 0; i < kInFlight; ++i)
      if (e0 + i * kStride < hidden) elementwise::store_pack<T, V>(dst + e0 + i * kStride, v[i]);
  }
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

template <typename T, int V>
__device__ __forceinline__ Pack<T, V> ones() {
  Pack<T, V> p;
#pragma unroll
  for (int k = 0; k < V; ++k) p.set(k, elementwise::from_float<T>(1.0f));
  return p;
}

// round(sum + residual) (without a residual: sum), the residual stream as
// stored; adds its squares to `squares`.
template <typename T, int V>
__device__ __forceinline__ Pack<T, V> residual_stream(const Pack<T, V>& sum, bool has_residual,
                                                      const Pack<T, V>& residual, float& squares) {
  Pack<T, V> out;
#pragma unroll
  for (int k = 0; k < V; ++k) {
    float v = elementwise::to_float<T>(sum.get(k));
    if (has_residual) v += elementwise::to_float<T>(residual.get(k));
    out.set(k, elementwise::from_float<T>(v));
    const float r = elementwise::to_float<T>(out.get(k));
    squares += r * r;
  }
  return out;
}

// y = v * scale * w, rounded.
template <typename T, int V>
__device__ __forceinline__ Pack<T, V> scaled(const Pack<T, V>& v, const Pack<T, V>& w,
                                             float scale) {
  Pack<T, V> out;
#pragma unroll
  for (int k = 0; k < V; ++k)
    out.set(k, elementwise::from_float<T>(elementwise::to_float<T>(v.get(k)) * scale * elementwise::to_float<T>(w.get(k))));
  return out;
}

// One row: sum_of(e) returns allreduce(x) at elements e..e+V-1 of the row,
// already rounded to T. residual_out = round(sum + residual) is stored (if
// wanted) and the norm taken of those rounded values; y gets the result.
// Every element is read and written by one thread in both passes, and a
// thread issues all its loads of the cached part (sums, residual, weight)
// before its first store, so y and residual_out may be the buffer sum_of
// reads, and residual_out may be `residual`. Elements beyond the register
// cache wait in residual_out, or in y when there is no residual_out, between
// the passes. Arithmetic and rounding are those of the host reference.
template <typename T, int V, typename SumOf>
__device__ __forceinline__ void norm_row(SumOf sum_of, const T* residual, const T* weight,
                                         T* residual_out, T* y, int64_t hidden, float eps) {
  const int64_t first = static_cast<int64_t>(threadIdx.x) * V;
  constexpr int64_t kStride = static_cast<int64_t>(kThreads) * V;
  T* stash = residual_out ? residual_out : y;
  Pack<T, V> cache[kCachedVectors], res[kCachedVectors];
#pragma unroll
  for (int i = 0; i < kCachedVectors; ++i) {
    const int64_t e = first + i * kStride;
    if (e >= hidden) break;
    cache[i] = sum_of(e);
    if (residual) res[i] = elementwise::load_pack<T, V>(residual + e);
  }
  float squares = 0;
#pragma unroll
  for (int i = 0; i < kCachedVectors; ++i) {
    const int64_t e = first + i * kStride;
    if (e >= hidden) break;
    cache[i] = residual_stream<T, V>(cache[i], residual != nullptr, res[i], squares);
    if (residual_out) elementwise::store_pack<T, V>(residual_out + e, cache[i]);
  }
  for (int64_t e = first + kCachedVectors * kStride; e < hidden; e += kStride) {
    Pack<T, V> r;
    if (residual) r = elementwise::load_pack<T, V>(residual + e);
    elementwise::store_pack<T, V>(stash + e, residual_stream<T, V>(sum_of(e), residual != nullptr, r,
                                                            squares));
  }
  // The weight (one row, shared by all, cache-resident) loads while the CTA meets.
  Pack<T, V> w[kCachedVectors];
#pragma unroll
  for (int i = 0; i < kCachedVectors; ++i) {
    const int64_t e = first + i * kStride;
    if (e >= hidden) break;
    w[i] = weight ? elementwise::load_pack<T, V>(weight + e) : ones<T, V>();
  }
  const float scale = rsqrtf(cta_sum(squares) / static_cast<float>(hidden) + eps);
#pragma unroll
  for (int i = 0; i < kCachedVectors; ++i) {
    const int64_t e = first + i * kStride;
    if (e >= hidden) break;
    elementwise::store_pack<T, V>(y + e, scaled<T, V>(cache[i], w[i], scale));
  }
  for (int64_t e = first + kCachedVectors * kStride; e < hidden; e += kStride) {
    const Pack<T, V> wv = weight ? elementwise::load_pack<T, V>(weight + e) : ones<T, V>();
    elementwise::store_pack<T, V>(y + e, scaled<T, V>(elementwise::load_pack<T, V>(stash + e), wv, scale));
  }
}

}  // namespace fused_norm_cuda
}  // namespace diffcoll
