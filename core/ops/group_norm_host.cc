// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The host GroupNormMath: local moments in double (two passes: the mean, then
// squared deviations from it), stored as the f32 records every side shares;
// the combine and the normalisation in f32, as the CUDA kernels do.
#include <cstring>
#include <vector>

#include "group_norm_math.h"

namespace diffcoll {
namespace ops {
namespace {

float load(DType dtype, const void* base, int64_t offset) {
  switch (dtype) {
    case DType::kBFloat16:
      return bf16_to_float(static_cast<const uint16_t*>(base)[offset]);
    case DType::kFloat16:
      return f16_to_float(static_cast<const uint16_t*>(base)[offset]);
    default:
      return static_cast<const float*>(base)[offset];
  }
}

void store(DType dtype, void* base, int64_t offset, float v) {
  switch (dtype) {
    case DType::kBFloat16:
      static_cast<uint16_t*>(base)[offset] = float_to_bf16(v);
      break;
    case DType::kFloat16:
      static_cast<uint16_t*>(base)[offset] = float_to_f16(v);
      break;
    default:
      static_cast<float*>(base)[offset] = v;
  }
}

// Calls fn(input offset, output offset) for every spatial position, in
// row-major order, stepping an odometer instead of dividing per element.
template <typename Fn>
void for_each_spatial(const GroupNormGeometry& g, int64_t in_base, int64_t out_base, Fn&& fn) {
  if (g.spatial == 0) return;
  int64_t idx[kMaxViewDims] = {};
  int64_t in_off = in_base, out_off = out_base;
  for (int64_t s = 0; s < g.spatial; ++s) {
    fn(in_off, out_off);
    for (int d = g.nsp - 1; d >= 0; --d) {
      in_off += g.in_sp_stride[d];
      out_off += g.out_sp_stride[d];
      if (++idx[d] < g.sp_shape[d]) break;
      in_off -= g.in_sp_stride[d] * g.sp_shape[d];
      out_off -= g.out_sp_stride[d] * g.sp_shape[d];
      idx[d] = 0;
    }
  }
}

class HostGroupNormMath : public GroupNormMath {
 public:
  size_t workspace_bytes(const GroupNormGeometry&) const override { return 0; }

  void local_moments(const GroupNormGeometry& g, DType dtype, const void* input,
                     GroupMoments* out, void*, void*) const override {
    const int64_t cpg = g.channels_per_group();
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t gi = 0; gi < g.groups; ++gi) {
        double sum = 0;
        auto each = [&](auto&& fn) {
          for (int64_t c = gi * cpg; c < (gi + 1) * cpg; ++c)
            for_each_spatial(g, n * g.in_n + c * g.in_c, 0,
                             [&](int64_t off, int64_t) { fn(load(dtype, input, off)); });
        };
        each([&](float x) { sum += x; });
        const int64_t count = cpg * g.spatial;
        const double mean = count ? sum / static_cast<double>(count) : 0.0;
        double m2 = 0;
        each([&](float x) { m2 += (x - mean) * (x - mean); });
        out[n * g.groups + gi] = {count, static_cast<float>(mean), static_cast<float>(m2)};
      }
  }

  void normalise(const GroupNormGeometry& g, DType dtype, const void* input, void* output,
                 const GroupNormAffine& a, const GroupMoments* records, int ranks, float eps,
                 void*, void*) const override {
    const int64_t pairs = g.pairs(), cpg = g.channels_per_group();
    std::vector<GroupStats> stats(static_cast<size_t>(pairs));
    for (int64_t p = 0; p < pairs; ++p) {
      GroupMoments m = records[p];
      for (int r = 1; r < ranks; ++r) m = combine_moments(m, records[r * pairs + p]);
      stats[p] = stats_of(m, eps);
    }
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t c = 0; c < g.channels; ++c) {
        const GroupStats s = stats[n * g.groups + c / cpg];
        const float w = a.weight ? load(a.weight_dtype, a.weight, c * a.weight_stride) : 1.f;
        const float b = a.bias ? load(a.bias_dtype, a.bias, c * a.bias_stride) : 0.f;
        const float scale = s.rstd * w;
        for_each_spatial(g, n * g.in_n + c * g.in_c, n * g.out_n + c * g.out_c,
                         [&](int64_t in_off, int64_t out_off) {
                           store(dtype, output, out_off,
                                 (load(dtype, input, in_off) - s.mean) * scale + b);
                         });
      }
  }
};

}  // namespace

const GroupNormMath& host_group_norm_math() {
  static const HostGroupNormMath math;
  return math;
}

}  // namespace ops
}  // namespace diffcoll
