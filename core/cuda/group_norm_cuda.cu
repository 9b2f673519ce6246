// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The CUDA GroupNormMath: stream-ordered kernels on the caller's stream, no
// host synchronisation, no allocation (the partials live in the staging the
// caller hands in), so the whole GroupNorm is CUDA-graph capturable.
//
//  local_moments  grid (pairs, splits): each block reduces a contiguous share
//                 of one (sample, group). A thread accumulates shifted sums
//                 (x - x0, (x - x0)^2, x0 its first element: no cancellation
//                 for activations with an offset), turns them into
//                 (count, mean, M2), and the block merges its threads' moments
//                 pairwise in a fixed tree (warp shuffles, then the warps in
//                 order): deterministic. A second tiny kernel merges the
//                 splits of each pair in order.
//  finish         one thread per pair merges the ranks' records in rank order.
//  apply          dense tensors with equal input and output strides (in
//                 place, contiguous, channels-last, any permutation) are
//                 walked in memory order with 16-byte vectors where aligned;
//                 others element by element through the strides.
//
// How a group's elements are read (runs, vectors) and when the apply may walk
// memory in order: group_norm_layout.h, checked on the host by
// tests/group_norm/group_norm_layout_test.cc.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "../ops/group_norm_math.h"
#include "cuda_error.h"
#include "group_norm_layout.h"

namespace diffcoll {
namespace ops {
namespace {

constexpr int kThreads = kGroupNormThreads;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxApplyBlocks = 8192;  // grid-stride beyond this

template <typename T>
__device__ inline float to_float(T v);
template <>
__device__ inline float to_float<float>(float v) { return v; }
template <>
__device__ inline float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <>
__device__ inline float to_float<__half>(__half v) { return __half2float(v); }

template <typename T>
__device__ inline T from_float(float v);
template <>
__device__ inline float from_float<float>(float v) { return v; }
template <>
__device__ inline __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ inline __half from_float<__half>(float v) { return __float2half_rn(v); }

__device__ inline float load_param(const void* p, DType dtype, int64_t index) {
  switch (dtype) {
    case DType::kBFloat16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[index]);
    case DType::kFloat16: return __half2float(static_cast<const __half*>(p)[index]);
    default: return static_cast<const float*>(p)[index];
  }
}

__device__ inline GroupMoments shuffle_down(GroupMoments m, int delta) {
  GroupMoments o;
  o.count = __shfl_down_sync(0xffffffffu, static_cast<long long>(m.count), delta);
  o.mean = __shfl_down_sync(0xffffffffu, m.mean, delta);
  o.m2 = __shfl_down_sync(0xffffffffu, m.m2, delta);
  return o;
}

// The block's moments (valid in thread 0), merged in a fixed order.
__device__ GroupMoments block_moments(GroupMoments m) {
  __shared__ GroupMoments warp_moments[kWarps];
  for (int delta = 16; delta > 0; delta /= 2) m = combine_moments(m, shuffle_down(m, delta));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_moments[warp] = m;
  __syncthreads();
  if (threadIdx.x == 0)
    for (int w = 1; w < kWarps; ++w) m = combine_moments(m, warp_moments[w]);
  return m;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    moments_kernel(GroupNormGeometry g, GroupRuns runs, const T* input, GroupMoments* partials) {
  const int64_t pair = blockIdx.x, splits = gridDim.y;
  const T* base = input + pair_base(g, pair);
  int64_t begin, end;
  split_range(runs.loads(), blockIdx.y, splits, &begin, &end);
  ShiftedSums acc;
  for (int64_t j = begin + threadIdx.x; j < end; j += kThreads) {
    const T* p = base + load_offset(g, runs, j);
    if (runs.vec == 1) {
      acc.add(to_float(*p));
    } else {
      const uint4 v = *reinterpret_cast<const uint4*>(p);
      const T* e = reinterpret_cast<const T*>(&v);
      for (int k = 0; k < static_cast<int>(sizeof(uint4) / sizeof(T)); ++k) acc.add(to_float(e[k]));
    }
  }
  const GroupMoments m = block_moments(acc.moments());
  if (threadIdx.x == 0) partials[pair * splits + blockIdx.y] = m;
}

// out[pair] = the pair's `splits` partials merged in order.
__global__ void merge_kernel(const GroupMoments* partials, int64_t splits, int64_t pairs,
                             GroupMoments* out) {
  const int64_t pair = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (pair >= pairs) return;
  GroupMoments m = partials[pair * splits];
  for (int64_t k = 1; k < splits; ++k) m = combine_moments(m, partials[pair * splits + k]);
  out[pair] = m;
}

__global__ void stats_kernel(const GroupMoments* records, int ranks, int64_t pairs, float eps,
                             GroupStats* stats) {
  const int64_t pair = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (pair >= pairs) return;
  GroupMoments m = records[pair];
  for (int r = 1; r < ranks; ++r) m = combine_moments(m, records[r * pairs + pair]);
  stats[pair] = stats_of(m, eps);
}

// Index math in I: 32-bit where the tensor allows (far cheaper divisions).
template <typename I>
__device__ inline float normalise(float x, I n, I c, const GroupNormGeometry& g,
                                  const GroupNormAffine& a, const GroupStats* stats) {
  const GroupStats s =
      stats[n * static_cast<I>(g.groups) + c / static_cast<I>(g.channels_per_group())];
  const float w = a.weight ? load_param(a.weight, a.weight_dtype, c * a.weight_stride) : 1.f;
  const float b = a.bias ? load_param(a.bias, a.bias_dtype, c * a.bias_stride) : 0.f;
  return (x - s.mean) * (s.rstd * w) + b;
}

// Dense input and output with equal, positive strides: element p of memory
// has channel (p / c_div) % C and sample (p / n_div) % N.
template <typename T, typename I>
__global__ void __launch_bounds__(kThreads)
    apply_dense_kernel(GroupNormGeometry g, I numel, I c_div, I n_div, int vec, const T* in,
                       T* out, GroupNormAffine a, const GroupStats* stats) {
  const I C = static_cast<I>(g.channels), N = static_cast<I>(g.batch);
  const I step = static_cast<I>(gridDim.x) * kThreads * vec;
  for (I p = (static_cast<I>(blockIdx.x) * kThreads + threadIdx.x) * vec; p < numel; p += step) {
    if (vec == 1) {
      out[p] = from_float<T>(normalise(to_float(in[p]), (p / n_div) % N, (p / c_div) % C, g, a,
                                       stats));
    } else {
      uint4 v = *reinterpret_cast<const uint4*>(in + p);
      T* e = reinterpret_cast<T*>(&v);
      for (int k = 0; k < static_cast<int>(sizeof(uint4) / sizeof(T)); ++k) {
        const I q = p + k;
        e[k] = from_float<T>(normalise(to_float(e[k]), (q / n_div) % N, (q / c_div) % C, g, a,
                                       stats));
      }
      *reinterpret_cast<uint4*>(out + p) = v;
    }
  }
}

// Any strides: element i of the logical [N, C, S] order.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    apply_strided_kernel(GroupNormGeometry g, int64_t numel, const T* in, T* out,
                         GroupNormAffine a, const GroupStats* stats) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x; i < numel;
       i += step) {
    const int64_t s = i % g.spatial, nc = i / g.spatial;
    const int64_t c = nc % g.channels, n = nc / g.channels;
    const T x = in[n * g.in_n + c * g.in_c + spatial_offset(g, s, g.in_sp_stride)];
    out[n * g.out_n + c * g.out_c + spatial_offset(g, s, g.out_sp_stride)] =
        from_float<T>(normalise(to_float(x), n, c, g, a, stats));
  }
}

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

unsigned blocks_for(int64_t work) {
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>((work + kThreads - 1) / kThreads, kMaxApplyBlocks)));
}

void check_launch() { DIFFCOLL_CUDA_CHECK(cudaGetLastError()); }

template <typename T>
void launch_moments(const GroupNormGeometry& g, const void* input, GroupMoments* out,
                    GroupMoments* partials, cudaStream_t stream) {
  const GroupRuns runs = group_runs(g, input, sizeof(T));
  const int64_t splits = group_splits(g);
  DIFFCOLL_REQUIRE(g.pairs() < (int64_t{1} << 31), Status::kUnsupported, "group_norm: ",
                   g.pairs(), " (sample, group) pairs exceed a CUDA grid");
  moments_kernel<T><<<dim3(static_cast<unsigned>(g.pairs()), static_cast<unsigned>(splits)),
                      kThreads, 0, stream>>>(g, runs, static_cast<const T*>(input), partials);
  check_launch();
  merge_kernel<<<blocks_for(g.pairs()), kThreads, 0, stream>>>(partials, splits, g.pairs(), out);
  check_launch();
}

template <typename T>
void launch_apply(const GroupNormGeometry& g, const void* input, void* output,
                  const GroupNormAffine& a, const GroupStats* stats, cudaStream_t stream) {
  const int64_t numel = g.batch * g.channels * g.spatial;
  const T* in = static_cast<const T*>(input);
  T* out = static_cast<T*>(output);
  if (dense_same_layout(g)) {
    const int vec = numel % (16 / sizeof(T)) == 0 && aligned(in) && aligned(out)
                        ? static_cast<int>(16 / sizeof(T))
                        : 1;
    int64_t n_div, c_div;
    dense_divisors(g, &n_div, &c_div);
    const unsigned blocks = blocks_for(numel / vec);
    if (numel < (int64_t{1} << 31))
      apply_dense_kernel<T, uint32_t><<<blocks, kThreads, 0, stream>>>(
          g, static_cast<uint32_t>(numel), static_cast<uint32_t>(c_div),
          static_cast<uint32_t>(n_div), vec, in, out, a, stats);
    else
      apply_dense_kernel<T, int64_t><<<blocks, kThreads, 0, stream>>>(g, numel, c_div, n_div, vec,
                                                                       in, out, a, stats);
  } else {
    apply_strided_kernel<T><<<blocks_for(numel), kThreads, 0, stream>>>(g, numel, in, out, a,
                                                                        stats);
  }
  check_launch();
}

class CudaGroupNormMath : public GroupNormMath {
 public:
  size_t workspace_bytes(const GroupNormGeometry& g) const override {
    return static_cast<size_t>(g.pairs() * group_splits(g)) * sizeof(GroupMoments);
  }

  void local_moments(const GroupNormGeometry& g, DType dtype, const void* input,
                     GroupMoments* out, void* workspace, void* stream) const override {
    DeviceGuard guard(g.device);
    auto s = static_cast<cudaStream_t>(stream);
    auto* partials = static_cast<GroupMoments*>(workspace);
    switch (dtype) {
      case DType::kBFloat16: return launch_moments<__nv_bfloat16>(g, input, out, partials, s);
      case DType::kFloat16: return launch_moments<__half>(g, input, out, partials, s);
      default: return launch_moments<float>(g, input, out, partials, s);
    }
  }

  void finish(const GroupNormGeometry& g, const GroupMoments* records, int ranks, float eps,
              GroupStats* stats, void* stream) const override {
    DeviceGuard guard(g.device);
    stats_kernel<<<blocks_for(g.pairs()), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        records, ranks, g.pairs(), eps, stats);
    check_launch();
  }

  void apply(const GroupNormGeometry& g, DType dtype, const void* input, void* output,
             const GroupNormAffine& a, const GroupStats* stats, void* stream) const override {
    DeviceGuard guard(g.device);
    auto s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
      case DType::kBFloat16: return launch_apply<__nv_bfloat16>(g, input, output, a, stats, s);
      case DType::kFloat16: return launch_apply<__half>(g, input, output, a, stats, s);
      default: return launch_apply<float>(g, input, output, a, stats, s);
    }
  }
};

}  // namespace

const GroupNormMath& cuda_group_norm_math() {
  static const CudaGroupNormMath math;
  return math;
}

}  // namespace ops
}  // namespace diffcoll
