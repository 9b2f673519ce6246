// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The arithmetic of the distributed GroupNorm, on one kind of memory.
//
// core/ops/group_norm.cc validates, allocates staging and communicates; the
// per-element work goes through one GroupNormMath, chosen by the memory the
// tensors live in: group_norm_host.cc for host memory, core/cuda/
// group_norm_cuda.cu for CUDA memory (stream-ordered kernels that never
// synchronise the host). Both follow the same steps:
//
//   local_moments  this rank's (count, mean, M2) of every (sample, group)
//   normalise      the P ranks' moments combined in rank order (Chan et al.)
//                  into (mean, 1 / sqrt(var + eps)) per (sample, group), then
//                  y = (x - mean) * (rstd * weight[c]) + bias[c]
//
// Every rank combines the same records in the same order with the same
// arithmetic, so every rank normalises with bit-identical statistics.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "../dtype.h"
#include "../tensor.h"

#if defined(__CUDACC__)
#define DIFFCOLL_HOST_DEVICE __host__ __device__
#else
#define DIFFCOLL_HOST_DEVICE
#endif

namespace diffcoll {
namespace ops {

// The moments of one (sample, group) over some elements: what travels.
// Records with count 0 (an empty slab) are the identity of the combine.
struct GroupMoments {
  int64_t count;
  float mean;
  float m2;  // sum of squared deviations from mean
};
static_assert(sizeof(GroupMoments) == 16, "GroupMoments travels as 16 bytes");

// Chan, Golub and LeVeque's pairwise update, in f32. Not symmetric in its
// arguments bit for bit: callers fix the order.
DIFFCOLL_HOST_DEVICE inline GroupMoments combine_moments(GroupMoments a, GroupMoments b) {
  if (b.count == 0) return a;
  if (a.count == 0) return b;
  const int64_t n = a.count + b.count;
  const float fb = static_cast<float>(b.count) / static_cast<float>(n);
  const float delta = b.mean - a.mean;
  GroupMoments r;
  r.count = n;
  r.mean = a.mean + delta * fb;
  r.m2 = a.m2 + b.m2 + delta * delta * (static_cast<float>(a.count) * fb);
  return r;
}

// Sums of x - shift and (x - shift)^2 over some elements of one (sample,
// group), the shift one of its elements, so that an activation with a large
// offset loses no digits: what a CUDA moments thread accumulates. Every
// thread of a block that reads the group takes the same shift, so the block
// adds its threads' sums as they are (no division per merge) and turns them
// into moments once (moments_of_sums).
struct ShiftedSums {
  float shift = 0, s = 0, ss = 0;
  DIFFCOLL_HOST_DEVICE void add(float x) {
    const float d = x - shift;
    s += d;
    ss += d * d;
  }
};

// Sums s and ss of n elements about `shift` moved to `ref`: with
// d = shift - ref, s + n d and ss + d (2 s + n d). Where both are elements of
// the group (a CUDA thread's own first element and its block's), d is of
// the order of the group's spread, so the move loses nothing an offset
// would.
DIFFCOLL_HOST_DEVICE inline void move_sums(int64_t n, float shift, float ref, float* s,
                                           float* ss) {
  const float d = n > 0 ? shift - ref : 0.f, nd = static_cast<float>(n) * d;
  *ss += d * (2.f * *s + nd);
  *s += nd;
}

// The moments of `n` elements whose sums about `shift` are s and ss; in
// double, as it is done once per block and group.
DIFFCOLL_HOST_DEVICE inline GroupMoments moments_of_sums(int64_t n, float shift, float s,
                                                         float ss) {
  if (n == 0) return GroupMoments{0, 0.f, 0.f};
  const double q = static_cast<double>(s) / static_cast<double>(n);
  const double m2 = static_cast<double>(ss) - static_cast<double>(s) * q;
  return GroupMoments{n, static_cast<float>(shift + q), static_cast<float>(m2 > 0 ? m2 : 0)};
}

// Moments moved to a common reference `ref`, in double: n, sum of
// count * (mean - ref) and of m2 + count * (mean - ref)^2. Such sums add
// without a division, so a merge of many records (a pair's block partials)
// adds them in a fixed order and divides once (moments).
struct CentredSums {
  int64_t n = 0;
  double s = 0, ss = 0;
  DIFFCOLL_HOST_DEVICE void add(GroupMoments m, float ref) {  // count 0: adds nothing
    const double d = static_cast<double>(m.mean) - static_cast<double>(ref);
    const double cd = static_cast<double>(m.count) * d;
    n += m.count;
    s += cd;
    ss += static_cast<double>(m.m2) + cd * d;
  }
  DIFFCOLL_HOST_DEVICE GroupMoments moments(float ref) const {
    if (n == 0) return GroupMoments{0, 0.f, 0.f};
    const double q = s / static_cast<double>(n), m2 = ss - s * q;
    return GroupMoments{n, static_cast<float>(ref + q), static_cast<float>(m2 > 0 ? m2 : 0)};
  }
};

// Mean and reciprocal standard deviation (biased variance, as torch's
// GroupNorm) of one (sample, group).
struct GroupStats {
  float mean;
  float rstd;
};

DIFFCOLL_HOST_DEVICE inline GroupStats stats_of(GroupMoments m, float eps) {
  GroupStats s;
  s.mean = m.mean;
  const float var = m.count > 0 ? fmaxf(m.m2 / static_cast<float>(m.count), 0.f) : 0.f;
  s.rstd = 1.f / sqrtf(var + eps);
  return s;
}

// An activation [N, C, spatial...] as the kernels see it: batch and channel
// strides, and the spatial dimensions with the input's and the output's
// strides (adjacent spatial dimensions that are contiguous in both merged).
struct GroupNormGeometry {
  int64_t batch = 0;
  int64_t channels = 0;
  int64_t groups = 1;
  int64_t spatial = 1;  // product of the spatial extents (may be 0)
  int nsp = 0;          // spatial dimensions kept after merging
  int64_t sp_shape[kMaxViewDims] = {};
  int64_t in_sp_stride[kMaxViewDims] = {};
  int64_t out_sp_stride[kMaxViewDims] = {};
  int64_t in_n = 0, in_c = 0, out_n = 0, out_c = 0;
  int device = 0;  // CUDA ordinal of the tensors (unused on the host)
  DIFFCOLL_HOST_DEVICE int64_t channels_per_group() const { return channels / groups; }
  DIFFCOLL_HOST_DEVICE int64_t pairs() const { return batch * groups; }  // (sample, group) pairs
};

// Offset of spatial position s (row-major over sp_shape) by `strides`.
DIFFCOLL_HOST_DEVICE inline int64_t spatial_offset(const GroupNormGeometry& g, int64_t s,
                                                   const int64_t* strides) {
  if (g.nsp == 1) return s * strides[0];  // s < sp_shape[0]: no division
  int64_t off = 0;
  for (int d = g.nsp - 1; d >= 0; --d) {
    const int64_t e = g.sp_shape[d];
    off += (s % e) * strides[d];
    s /= e;
  }
  return off;
}

// The affine parameters: null for none; dtype is the input's or float32.
struct GroupNormAffine {
  const void* weight = nullptr;
  DType weight_dtype = DType::kFloat32;
  int64_t weight_stride = 1;  // in elements
  const void* bias = nullptr;
  DType bias_dtype = DType::kFloat32;
  int64_t bias_stride = 1;
};

class GroupNormMath {
 public:
  virtual ~GroupNormMath() = default;

  // Scratch memory local_moments and normalise need (0 on the host), in the
  // data's memory.
  virtual size_t workspace_bytes(const GroupNormGeometry& g) const = 0;

  // out[pair] = moments of this rank's elements of (sample, group) `pair`
  // (pair = n * groups + g). `input` points at element [0, 0, 0...].
  virtual void local_moments(const GroupNormGeometry& g, DType dtype, const void* input,
                             GroupMoments* out, void* workspace, void* stream) const = 0;

  // output = (input - mean) * (rstd * weight[c]) + bias[c], rounded once to
  // dtype, with (mean, rstd) = stats_of(combine of records[r * pairs + pair]
  // for r = 0..ranks-1 in that order, eps), pairs = g.pairs(). output may be
  // input itself (same strides).
  virtual void normalise(const GroupNormGeometry& g, DType dtype, const void* input, void* output,
                         const GroupNormAffine& affine, const GroupMoments* records, int ranks,
                         float eps, void* workspace, void* stream) const = 0;

  // One rank's whole GroupNorm, nothing exchanged: local_moments into
  // `moments` (pairs records), then normalise with those records alone. The
  // CUDA math does it in fewer launches, with the same result.
  virtual void normalise_alone(const GroupNormGeometry& g, DType dtype, const void* input,
                               void* output, const GroupNormAffine& affine, float eps,
                               GroupMoments* moments, void* workspace, void* stream) const {
    local_moments(g, dtype, input, moments, workspace, stream);
    normalise(g, dtype, input, output, affine, moments, 1, eps, workspace, stream);
  }
};

const GroupNormMath& host_group_norm_math();
// The CUDA implementation; a build without CUDA says it has none.
const GroupNormMath& cuda_group_norm_math();

}  // namespace ops
}  // namespace diffcoll
