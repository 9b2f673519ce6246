// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// FP8 wire kernels: one warp per group (fp8_wire.h's layout). The pack reads
// its group twice, once for the largest magnitude (a warp reduction) and
// once to quantise (the second read is served by the cache: a group is a
// few KiB), and writes the group's scale and its codes, which are one
// contiguous run of the wire buffer. The unpack reads the scale and the
// codes and writes the view. Where the inner dimension is contiguous and
// aligned, a lane moves 16 bytes of elements per access. Several pieces
// share a launch, each owning a range of its blocks, as in pack_cuda.cu.
#include "fp8_wire_cuda.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "../error.h"

namespace diffcoll {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpSize = 32;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kMaxPieces = 8;

enum ElementKind : int32_t { kBFloat16, kFloat16, kFloat32 };

// A piece planned on the host. Strides are in bytes, any sign.
struct Fp8Desc {
  char* view;  // element (0, ..., 0) of the wire view
  float* scales;
  uint8_t* codes;
  int32_t kind;  // ElementKind
  int32_t vec;   // elements per access: 1, or 16 bytes' worth
  int32_t outerDims;
  int32_t block;  // tokens per group
  int64_t blocks;  // groups per outer index
  int64_t groups;
  int64_t tokens, inner;
  int64_t tokenStride, innerStride;
  int64_t outerShape[kMaxViewDims];
  int64_t outerStride[kMaxViewDims];
};

// The kernel parameter, by value (graph capture records it with the node).
struct Fp8Args {
  Fp8Desc piece[kMaxPieces];
  int32_t blockEnd[kMaxPieces];  // piece p owns blocks [blockEnd[p-1], blockEnd[p])
  __nv_fp8_interpretation_t format;
  float maxFinite;
};

// ---------------------------------------------------------------- device side

template <typename T>
struct Element;
template <>
struct Element<__nv_bfloat16> {
  __device__ static float load(__nv_bfloat16 x) { return __bfloat162float(x); }
  __device__ static __nv_bfloat16 store(float x) { return __float2bfloat16_rn(x); }
};
template <>
struct Element<__half> {
  __device__ static float load(__half x) { return __half2float(x); }
  __device__ static __half store(float x) { return __float2half_rn(x); }
};
template <>
struct Element<float> {
  __device__ static float load(float x) { return x; }
  __device__ static float store(float x) { return x; }
};

template <typename T, int V>
struct alignas(sizeof(T) * V) Values {
  T v[V];
};
template <int V>
struct alignas(V) Codes {
  uint8_t c[V];
};

// Walks the vectors of one group, lane `lane` taking vectors lane, lane + 32,
// ...: fn(address of the vector's first element, index of the vector).
template <int V, typename Fn>
__device__ void forGroupVectors(const Fp8Desc& d, int64_t group, int lane, Fn fn) {
  const int64_t outer = group / d.blocks, firstToken = (group % d.blocks) * d.block;
  const int64_t tokens = min(static_cast<int64_t>(d.block), d.tokens - firstToken);
  int64_t rest = outer, base = firstToken * d.tokenStride;
  for (int k = d.outerDims - 1; k >= 0; --k) {
    base += (rest % d.outerShape[k]) * d.outerStride[k];
    rest /= d.outerShape[k];
  }
  const int64_t rowVectors = d.inner / V, count = tokens * rowVectors;
  // (t, i): token and vector in the row of vector u; advanced by 32 vectors
  // per step without dividing.
  const int64_t stepRows = kWarpSize / rowVectors, stepVectors = kWarpSize % rowVectors;
  int64_t t = lane / rowVectors, i = lane % rowVectors;
  for (int64_t u = lane; u < count; u += kWarpSize) {
    fn(d.view + base + t * d.tokenStride + i * V * d.innerStride, u);
    t += stepRows;
    i += stepVectors;
    if (i >= rowVectors) {
      i -= rowVectors;
      ++t;
    }
  }
}

template <typename T, int V>
__device__ void loadValues(const char* p, float (&x)[V]) {
  if constexpr (V > 1) {
    const Values<T, V> v = *reinterpret_cast<const Values<T, V>*>(p);
#pragma unroll
    for (int k = 0; k < V; ++k) x[k] = Element<T>::load(v.v[k]);
  } else {
    x[0] = Element<T>::load(*reinterpret_cast<const T*>(p));
  }
}

template <typename T, int V>
__device__ void packGroup(const Fp8Desc& d, const Fp8Args& args, int64_t group, int lane) {
  float amax = 0.0f;
  forGroupVectors<V>(d, group, lane, [&](const char* p, int64_t) {
    float x[V];
    loadValues<T, V>(p, x);
#pragma unroll
    for (int k = 0; k < V; ++k) amax = fmaxf(amax, fabsf(x[k]));
  });
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  const float inverse = amax > 0.0f ? __fdiv_rn(args.maxFinite, amax) : 0.0f;
  if (lane == 0) d.scales[group] = __fdiv_rn(amax, args.maxFinite);
  const int64_t firstToken = (group % d.blocks) * d.block;
  uint8_t* codes = d.codes + ((group / d.blocks) * d.tokens + firstToken) * d.inner;
  forGroupVectors<V>(d, group, lane, [&](const char* p, int64_t u) {
    float x[V];
    loadValues<T, V>(p, x);
    Codes<V> c;
#pragma unroll
    for (int k = 0; k < V; ++k)
      c.c[k] = __nv_cvt_float_to_fp8(__fmul_rn(x[k], inverse), __NV_SATFINITE, args.format);
    *reinterpret_cast<Codes<V>*>(codes + u * V) = c;
  });
}

template <typename T, int V>
__device__ void unpackGroup(const Fp8Desc& d, const Fp8Args& args, int64_t group, int lane) {
  const float scale = d.scales[group];
  const int64_t firstToken = (group % d.blocks) * d.block;
  const uint8_t* codes = d.codes + ((group / d.blocks) * d.tokens + firstToken) * d.inner;
  forGroupVectors<V>(d, group, lane, [&](const char* p, int64_t u) {
    const Codes<V> c = *reinterpret_cast<const Codes<V>*>(codes + u * V);
    Values<T, V> v;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const float x = __half2float(__half(__nv_cvt_fp8_to_halfraw(c.c[k], args.format)));
      v.v[k] = Element<T>::store(__fmul_rn(x, scale));
    }
    if constexpr (V > 1) {
      *reinterpret_cast<Values<T, V>*>(const_cast<char*>(p)) = v;
    } else {
      *reinterpret_cast<T*>(const_cast<char*>(p)) = v.v[0];
    }
  });
}

template <bool kPack, typename T, int V>
__device__ void runGroups(const Fp8Desc& d, const Fp8Args& args, int64_t warp, int64_t warps,
                          int lane) {
  for (int64_t g = warp; g < d.groups; g += warps) {
    if (kPack)
      packGroup<T, V>(d, args, g, lane);
    else
      unpackGroup<T, V>(d, args, g, lane);
  }
}

template <bool kPack>
__global__ void __launch_bounds__(kThreads) fp8Kernel(const __grid_constant__ Fp8Args args) {
  int p = 0;
  while (blockIdx.x >= static_cast<uint32_t>(args.blockEnd[p])) ++p;
  const int64_t first = p ? args.blockEnd[p - 1] : 0;
  const Fp8Desc& d = args.piece[p];
  const int64_t warp = (blockIdx.x - first) * kWarps + threadIdx.x / kWarpSize;
  const int64_t warps = (args.blockEnd[p] - first) * kWarps;
  const int lane = threadIdx.x % kWarpSize;
  const bool vector = d.vec > 1;
  switch (d.kind) {
    case kBFloat16:
      vector ? runGroups<kPack, __nv_bfloat16, 8>(d, args, warp, warps, lane)
             : runGroups<kPack, __nv_bfloat16, 1>(d, args, warp, warps, lane);
      break;
    case kFloat16:
      vector ? runGroups<kPack, __half, 8>(d, args, warp, warps, lane)
             : runGroups<kPack, __half, 1>(d, args, warp, warps, lane);
      break;
    default:
      vector ? runGroups<kPack, float, 4>(d, args, warp, warps, lane)
             : runGroups<kPack, float, 1>(d, args, warp, warps, lane);
      break;
  }
}

// ------------------------------------------------------------------ host side

void checkCuda(cudaError_t err, const char* op, const char* what) {
  if (err != cudaSuccess)
    fail(Status::kCuda, op, ": ", what, " failed: ", cudaGetErrorName(err), " (",
         cudaGetErrorString(err), ")");
}

bool aligned16(int64_t x) { return x % 16 == 0; }

// Plans a non-empty piece.
Fp8Desc describe(const Fp8Piece& piece, const Fp8Wire& wire, const char* op) {
  const TensorView& v = piece.view;
  DIFFCOLL_REQUIRE(v.ndim >= 2 && v.ndim <= kMaxViewDims, Status::kInternal, op,
                   ": not a wire view: ", v.describe());
  DIFFCOLL_REQUIRE(fp8_wire_supports(v.dtype), Status::kInvalidArgument, op, ": ",
                   dtype_name(v.dtype), " cannot travel as FP8 (float16, bfloat16, float32 can)");
  DIFFCOLL_REQUIRE(v.data != nullptr && piece.wire != nullptr &&
                       reinterpret_cast<uintptr_t>(piece.wire) % 16 == 0,
                   Status::kInternal, op, ": null view or unaligned wire buffer");
  const Fp8Layout layout = fp8_layout(v, wire.block);
  const int64_t es = static_cast<int64_t>(v.element_size());
  Fp8Desc d{};
  d.view = static_cast<char*>(v.data);
  d.scales = static_cast<float*>(piece.wire);
  d.codes = static_cast<uint8_t*>(piece.wire) + layout.codes_offset;
  d.kind = v.dtype == DType::kBFloat16 ? kBFloat16 : v.dtype == DType::kFloat16 ? kFloat16 : kFloat32;
  d.outerDims = v.ndim - 2;
  d.block = static_cast<int32_t>(std::min<int64_t>(wire.block, INT32_MAX));
  d.blocks = layout.blocks;
  d.groups = layout.groups;
  d.tokens = layout.tokens;
  d.inner = layout.inner;
  d.tokenStride = v.strides[v.ndim - 2] * es;
  d.innerStride = v.strides[v.ndim - 1] * es;
  bool vector = d.innerStride == es && d.inner % (16 / es) == 0 &&
                aligned16(reinterpret_cast<uintptr_t>(v.data)) &&
                (d.tokens == 1 || aligned16(d.tokenStride));
  for (int k = 0; k < d.outerDims; ++k) {
    d.outerShape[k] = v.shape[k];
    d.outerStride[k] = v.strides[k] * es;
    vector = vector && (v.shape[k] == 1 || aligned16(d.outerStride[k]));
  }
  d.vec = vector ? static_cast<int32_t>(16 / es) : 1;
  return d;
}

template <bool kPack>
void transfer(const Fp8Piece* pieces, int count, const Fp8Wire& wire, void* stream,
              const char* op) {
  DIFFCOLL_REQUIRE(count >= 0 && (count == 0 || pieces != nullptr), Status::kInvalidArgument, op,
                   ": ", count, " pieces at ", static_cast<const void*>(pieces));
  DIFFCOLL_REQUIRE(wire.block >= 1, Status::kInvalidArgument, op, ": block ", wire.block,
                   " must be >= 1");
  Fp8Args args{};
  args.format = wire.format == Fp8Format::kE4M3 ? __NV_E4M3 : __NV_E5M2;
  args.maxFinite = fp8_traits(wire.format).max_finite;
  // Every piece is planned before the first launch, so that a bad one
  // leaves no partial result.
  std::vector<Fp8Desc> planned;
  for (int i = 0; i < count; ++i)
    if (pieces[i].view.numel() > 0) planned.push_back(describe(pieces[i], wire, op));
  for (size_t start = 0; start < planned.size(); start += kMaxPieces) {
    const int n = static_cast<int>(std::min<size_t>(kMaxPieces, planned.size() - start));
    int64_t end = 0;
    for (int p = 0; p < kMaxPieces; ++p) {
      if (p < n) {
        args.piece[p] = planned[start + p];
        end += std::max<int64_t>(1, (args.piece[p].groups + kWarps - 1) / kWarps);
      }
      DIFFCOLL_REQUIRE(end <= INT32_MAX, Status::kInvalidArgument, op,
                       ": too many FP8 groups for one launch");
      args.blockEnd[p] = static_cast<int32_t>(end);
    }
    void* params[] = {&args};
    checkCuda(cudaLaunchKernel(reinterpret_cast<const void*>(fp8Kernel<kPack>),
                               dim3(static_cast<unsigned>(end)), dim3(kThreads), params, 0,
                               static_cast<cudaStream_t>(stream)),
              op, "kernel launch");
  }
}

}  // namespace

void fp8_pack_cuda(const Fp8Piece* pieces, int count, const Fp8Wire& wire, void* stream) {
  transfer<true>(pieces, count, wire, stream, "fp8_pack_cuda");
}

void fp8_unpack_cuda(const Fp8Piece* pieces, int count, const Fp8Wire& wire, void* stream) {
  transfer<false>(pieces, count, wire, stream, "fp8_unpack_cuda");
}

}  // namespace diffcoll
