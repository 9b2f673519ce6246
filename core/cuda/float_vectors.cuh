// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// What the elementwise kernels (GroupNorm, fused norm) share: float32
// arithmetic on float32, bfloat16 and float16 data, and loads and stores of
// V consecutive elements as one access (16 bytes when V * sizeof(T) is 16
// and the address is aligned to it).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace diffcoll {
namespace elementwise {

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

// Two 16-bit elements in one 32-bit word, so that a pack of them keeps
// two per register (an array of 16-bit elements takes a register each).
template <typename T>
struct Pair {
  using type = T;
  static constexpr int kElements = 1;
};
template <>
struct Pair<__nv_bfloat16> {
  using type = __nv_bfloat162;
  static constexpr int kElements = 2;
};
template <>
struct Pair<__half> {
  using type = __half2;
  static constexpr int kElements = 2;
};

// V elements moved as one access; element k is get(k) / set(k, x), k a
// compile-time constant after unrolling.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  static constexpr int kPer = V % 2 == 0 ? Pair<T>::kElements : 1;
  using Word = typename std::conditional<kPer == 2, typename Pair<T>::type, T>::type;
  Word w[V / kPer];

  __device__ __forceinline__ T get(int k) const {
    if constexpr (kPer == 2) return k % 2 ? w[k / 2].y : w[k / 2].x;
    else return w[k];
  }
  __device__ __forceinline__ void set(int k, T x) {
    if constexpr (kPer == 2) {
      if (k % 2) w[k / 2].y = x;
      else w[k / 2].x = x;
    } else {
      w[k] = x;
    }
  }
};

// The integer type of `kBytes` bytes that one access moves.
template <int kBytes>
struct Raw;
template <>
struct Raw<2> {
  using type = unsigned short;
};
template <>
struct Raw<4> {
  using type = unsigned int;
};
template <>
struct Raw<8> {
  using type = uint2;
};
template <>
struct Raw<16> {
  using type = uint4;
};

// One access of the pack's size (a member-wise copy of a struct of 16-bit
// pairs would be split into 4-byte or 2-byte accesses).
template <typename T, int V>
__device__ __forceinline__ Pack<T, V> load_pack(const T* p) {
  using R = typename Raw<sizeof(Pack<T, V>)>::type;
  const R raw = *reinterpret_cast<const R*>(p);
  Pack<T, V> pack;
  memcpy(&pack, &raw, sizeof raw);
  return pack;
}

template <typename T, int V>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, V>& pack) {
  using R = typename Raw<sizeof(Pack<T, V>)>::type;
  R raw;
  memcpy(&raw, &pack, sizeof raw);
  *reinterpret_cast<R*>(p) = raw;
}

template <typename T, int V>
__device__ __forceinline__ void load(const T* p, float (&out)[V]) {
  const Pack<T, V> pack = load_pack<T, V>(p);
#pragma unroll
  for (int k = 0; k < V; ++k) out[k] = to_float<T>(pack.get(k));
}

template <typename T, int V>
__device__ __forceinline__ void store(T* p, const float (&in)[V]) {
  Pack<T, V> pack;
#pragma unroll
  for (int k = 0; k < V; ++k) pack.set(k, from_float<T>(in[k]));
  store_pack<T, V>(p, pack);
}

}  // namespace elementwise
}  // namespace diffcoll
