// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// How the CUDA GroupNorm kernels walk a tensor, as plain host/device
// functions (no CUDA headers), so that the host tests can check on a machine
// without a GPU that the loads of every (sample, group) cover exactly its
// elements and that the dense apply finds every element's channel.
//
// The elements of one (sample, group) are read as "runs": the whole group
// when it is one contiguous block (contiguous NCHW), one run of cpg channels
// per spatial position when channels have stride 1 (channels-last), single
// elements otherwise; runs are read as vectors of `vec` elements (16 bytes)
// when every run start is 16-byte aligned and runs hold whole vectors.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../ops/group_norm_math.h"

namespace diffcoll {
namespace ops {

// Threads of a moments block; a block reduces loads [begin, end) of its
// split of one pair, thread t taking loads begin + t, begin + t + threads, ...
constexpr int kGroupNormThreads = 256;
constexpr int64_t kGroupNormElementsPerSplit = 8192;  // before splitting a pair further stops
constexpr int64_t kGroupNormMaxSplits = 128;

// Blocks per (sample, group) of the moments kernel.
inline int64_t group_splits(const GroupNormGeometry& g) {
  const int64_t per_pair = g.channels_per_group() * g.spatial;
  return std::max<int64_t>(
      1, std::min<int64_t>(kGroupNormMaxSplits, per_pair / kGroupNormElementsPerSplit));
}

// Loads [begin, end) of split `split` of `splits` over `loads` loads.
DIFFCOLL_HOST_DEVICE inline void split_range(int64_t loads, int64_t split, int64_t splits,
                                             int64_t* begin, int64_t* end) {
  *begin = loads * split / splits;
  *end = loads * (split + 1) / splits;
}

struct GroupRuns {
  enum Kind : int32_t { kOneBlock, kPerPosition, kSingle } kind;
  int64_t run_len;
  int64_t nruns;
  int vec;  // elements per load
  DIFFCOLL_HOST_DEVICE int64_t loads_per_run() const { return run_len / vec; }
  DIFFCOLL_HOST_DEVICE int64_t loads() const { return nruns * loads_per_run(); }
};

// Offset of element [n, g * cpg, 0...] of the input: where pair n * G + g starts.
DIFFCOLL_HOST_DEVICE inline int64_t pair_base(const GroupNormGeometry& g, int64_t pair) {
  return (pair / g.groups) * g.in_n + (pair % g.groups) * g.channels_per_group() * g.in_c;
}

// Offset, from the pair's base, of the first element of load j.
DIFFCOLL_HOST_DEVICE inline int64_t load_offset(const GroupNormGeometry& g, const GroupRuns& runs,
                                                int64_t j) {
  const int64_t per_run = runs.loads_per_run();
  const int64_t r = runs.nruns == 1 ? 0 : j / per_run;
  const int64_t within = (j - r * per_run) * runs.vec;
  switch (runs.kind) {
    case GroupRuns::kOneBlock:
      return within;
    case GroupRuns::kPerPosition:
      return spatial_offset(g, r, g.in_sp_stride) + within;
    default: {
      const int64_t cl = r / g.spatial;
      return cl * g.in_c + spatial_offset(g, r - cl * g.spatial, g.in_sp_stride);
    }
  }
}

// The runs of `g` for elements of `elem` bytes at `input`.
inline GroupRuns group_runs(const GroupNormGeometry& g, const void* input, int64_t elem) {
  const int64_t cpg = g.channels_per_group();
  const int vec = static_cast<int>(16 / elem);
  GroupRuns r;
  const bool spatial_dense = g.nsp == 0 || (g.nsp == 1 && g.in_sp_stride[0] == 1);
  if (spatial_dense && (cpg == 1 || g.in_c == g.spatial))
    r = {GroupRuns::kOneBlock, cpg * g.spatial, 1, 1};
  else if (g.in_c == 1 || cpg == 1)
    r = {GroupRuns::kPerPosition, cpg, g.spatial, 1};
  else
    r = {GroupRuns::kSingle, 1, cpg * g.spatial, 1};
  bool ok = r.kind != GroupRuns::kSingle && r.run_len % vec == 0 &&
            reinterpret_cast<uintptr_t>(input) % 16 == 0 &&
            (g.batch == 1 || (g.in_n * elem) % 16 == 0) &&
            (g.groups == 1 || (cpg * g.in_c * elem) % 16 == 0);
  if (r.kind == GroupRuns::kPerPosition)
    for (int d = 0; d < g.nsp; ++d) ok = ok && (g.in_sp_stride[d] * elem) % 16 == 0;
  if (ok) r.vec = vec;
  return r;
}

// True if input and output are dense with the same positive strides: then
// element p of memory (from the data pointer) has sample (p / n_div) % N and
// channel (p / c_div) % C with the divisors of dense_divisors.
inline bool dense_same_layout(const GroupNormGeometry& g) {
  if (g.in_n != g.out_n || g.in_c != g.out_c) return false;
  for (int d = 0; d < g.nsp; ++d)
    if (g.in_sp_stride[d] != g.out_sp_stride[d] || g.in_sp_stride[d] <= 0) return false;
  if ((g.batch > 1 && g.in_n <= 0) || (g.channels > 1 && g.in_c <= 0)) return false;
  // Dense: the strides, sorted, are the running products of the extents.
  struct Dim {
    int64_t stride, extent;
  } dims[kMaxViewDims + 2];
  int k = 0;
  dims[k++] = {g.in_n, g.batch};
  dims[k++] = {g.in_c, g.channels};
  for (int d = 0; d < g.nsp; ++d) dims[k++] = {g.in_sp_stride[d], g.sp_shape[d]};
  std::sort(dims, dims + k, [](const Dim& a, const Dim& b) { return a.stride < b.stride; });
  int64_t expect = 1;
  for (int i = 0; i < k; ++i) {
    if (dims[i].extent == 1) continue;
    if (dims[i].stride != expect) return false;
    expect *= dims[i].extent;
  }
  return true;
}

// The divisors of the dense apply: any value for an extent of 1 (the
// coordinate is then 0), else the dimension's stride.
inline void dense_divisors(const GroupNormGeometry& g, int64_t* n_div, int64_t* c_div) {
  *n_div = g.batch > 1 ? g.in_n : 1;
  *c_div = g.channels > 1 ? g.in_c : 1;
}

}  // namespace ops
}  // namespace diffcoll
