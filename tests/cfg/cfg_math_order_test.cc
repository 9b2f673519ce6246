// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// White-box: the host CfgMath reduces per-sample statistics in the
// reduction order documented in core/ops/cfg_math.h, which the CUDA kernels
// follow too (their bitwise agreement with the host is checked on a GPU by
// cfg_gpu_test). The expected values here are computed from the
// documentation alone, with data of wide dynamic range so that another order
// gives other doubles.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/ops/cfg_math.h"

namespace diffcoll {
namespace ops {
namespace {

// A run of values about a reference: count, reference, sum of (x - ref),
// sum of (x - ref)^2; and the two plain sums of CFG-zero*.
struct Sums {
  double n = 0, ref = 0, s1 = 0, s2 = 0, dot = 0, uu = 0;
};

// The run about `ref` instead, as cfg_math.h describes the move.
Sums recentered(const Sums& m, double ref) {
  Sums r = m;
  r.ref = ref;
  if (m.n == 0) {
    r.s1 = r.s2 = 0;
    return r;
  }
  const double d = m.ref - ref;
  r.s1 = m.s1 + m.n * d;
  r.s2 = m.s2 + d * (2.0 * m.s1 + m.n * d);
  return r;
}

// Step 4's merge: b moved to a's reference, then added.
Sums merge(const Sums& a, const Sums& b) {
  Sums r;
  r.dot = a.dot + b.dot;
  r.uu = a.uu + b.uu;
  if (b.n == 0 || a.n == 0) {
    const Sums& m = b.n == 0 ? a : b;
    r.n = m.n, r.ref = m.ref, r.s1 = m.s1, r.s2 = m.s2;
    return r;
  }
  const Sums c = recentered(b, a.ref);
  r.n = a.n + c.n;
  r.ref = a.ref;
  r.s1 = a.s1 + c.s1;
  r.s2 = a.s2 + c.s2;
  return r;
}

// Step 3's sum of two lane records about the same reference.
Sums add(const Sums& a, const Sums& b) {
  Sums r = a;
  r.s1 = a.s1 + b.s1;
  r.s2 = a.s2 + b.s2;
  r.dot = a.dot + b.dot;
  r.uu = a.uu + b.uu;
  return r;
}

template <typename Step>
Sums fold(std::vector<Sums> v, Step step) {
  for (size_t s = v.size() / 2; s >= 1; s /= 2)
    for (size_t l = 0; l < s; ++l) v[l] = step(v[l], v[l + s]);
  return v[0];
}

// A lane's moments about its first value k, in Acc: sums of (x - k) and
// (x - k)^2 over its other values in element order.
template <typename Acc>
Sums lane_moments(const std::vector<double>& x, const std::vector<size_t>& index) {
  Sums r;
  if (index.empty()) return r;
  const Acc k = static_cast<Acc>(x[index[0]]);
  Acc t1 = 0, t2 = 0;
  for (size_t i = 1; i < index.size(); ++i) {
    const Acc d = static_cast<Acc>(x[index[i]]) - k;
    t1 = t1 + d;
    t2 = t2 + d * d;
  }
  r.n = static_cast<double>(index.size());
  r.ref = k;
  r.s1 = t1;
  r.s2 = t2;
  return r;
}

// Chunks of 4096 elements; lane l of a chunk holds its 16-byte vectors l,
// l + 256, ... (`vector` elements each): its moments about its first value
// (float sums for 16-bit data, double for float32), moved to the chunk's
// first value; the products' sums in double in element order; lanes summed
// pairwise with strides 128..1; chunk partials merged into 256 lanes in
// turn, then pairwise.
Sums documented(const std::vector<double>& x, const std::vector<double>& y, int vector) {
  const size_t n = x.size(), chunks = std::max<size_t>(1, (n + 4095) / 4096);
  std::vector<Sums> outer(256);
  for (size_t c = 0; c < chunks; ++c) {
    std::vector<Sums> lanes(256);
    for (size_t l = 0; l < 256; ++l) {
      std::vector<size_t> index;
      for (size_t v = l; v * vector < 4096; v += 256)
        for (int t = 0; t < vector; ++t)
          if (c * 4096 + v * vector + t < n) index.push_back(c * 4096 + v * vector + t);
      lanes[l] = vector == 4 ? lane_moments<double>(x, index) : lane_moments<float>(x, index);
      for (size_t j : index) {
        lanes[l].dot += x[j] * y[j];
        lanes[l].uu += y[j] * y[j];
      }
    }
    const double reference = lanes[0].ref;
    for (Sums& lane : lanes) lane = recentered(lane, reference);
    Sums chunk = fold(lanes, add);
    chunk.n = static_cast<double>(std::min<size_t>(4096, n - c * 4096));
    outer[c % 256] = merge(outer[c % 256], chunk);
  }
  return fold(outer, merge);
}

double std_of(const Sums& r) {
  const double m2 = r.s2 - r.s1 * (r.s1 / r.n);
  return std::sqrt((m2 < 0 ? 0 : m2) / (r.n - 1));
}

std::vector<float> wide_range(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.5f, 1.0f);
  std::uniform_real_distribution<float> exponent(-4.0f, 4.0f);
  std::vector<float> v(count);
  for (float& x : v) x = normal(rng) * std::pow(10.0f, exponent(rng));
  return v;
}

uint16_t to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}
double from_bf16(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

TEST(CfgMathOrder, StatisticsAndZeroStarScaleFollowTheDocumentedOrder) {
  const CfgMath& math = host_cfg_math();
  // One chunk, exactly one, one more element, many, more than 256 chunks;
  // float32 (4-element vectors) and bfloat16 (8-element vectors).
  for (DType dtype : {DType::kFloat32, DType::kBFloat16})
    for (int64_t n : {int64_t{2}, int64_t{300}, int64_t{4096}, int64_t{4097}, int64_t{70001},
                      int64_t{1100000}}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " per_sample " + std::to_string(n));
      const CfgExtent extent{2, n};
      const std::vector<float> xf = wide_range(extent.numel(), static_cast<uint32_t>(n));
      const std::vector<float> yf = wide_range(extent.numel(), static_cast<uint32_t>(n + 1));
      std::vector<double> x(xf.begin(), xf.end()), y(yf.begin(), yf.end());
      std::vector<uint16_t> xb, yb;
      const void *xp = xf.data(), *yp = yf.data();
      if (dtype == DType::kBFloat16) {
        for (size_t j = 0; j < x.size(); ++j) {
          xb.push_back(to_bf16(xf[j]));
          yb.push_back(to_bf16(yf[j]));
          x[j] = from_bf16(xb.back());
          y[j] = from_bf16(yb.back());
        }
        xp = xb.data();
        yp = yb.data();
      }
      std::vector<char> memory(CfgScalars::bytes(extent));
      const CfgScalars scalars(memory.data(), extent);
      math.begin(scalars, nullptr);
      math.input_stats(dtype, xp, yp, true, CfgOrder::kSerial, extent, scalars, nullptr);
      for (int64_t b = 0; b < 2; ++b) {
        const std::vector<double> xs(x.begin() + b * n, x.begin() + (b + 1) * n);
        const std::vector<double> ys(y.begin() + b * n, y.begin() + (b + 1) * n);
        const Sums r = documented(xs, ys, dtype == DType::kFloat32 ? 4 : 8);
        EXPECT_EQ(scalars.cond_stats[b * kCfgStatColumns + kCfgStatStd], std_of(r));
        EXPECT_EQ(scalars.cond_stats[b * kCfgStatColumns + kCfgStatSumSq],
                  recentered(r, 0.0).s2);
        EXPECT_EQ(scalars.zero_star[b], r.dot / (r.uu + kCfgZeroStarEps));
        // And the order matters: a plain left-to-right sum differs somewhere.
        if (b == 0 && n == 1100000) {
          double plain = 0;
          for (double v : xs) plain += v * v;
          EXPECT_NE(plain, recentered(r, 0.0).s2);
        }
      }
    }
}

// The standard deviation and sum of squares of each of the two samples of
// `values` (float32 or bfloat16 data), as the host CfgMath computes them.
std::vector<double> host_statistics(DType dtype, const std::vector<double>& values) {
  const CfgExtent extent{2, static_cast<int64_t>(values.size() / 2)};
  std::vector<float> f(values.begin(), values.end());
  std::vector<uint16_t> h;
  for (float v : f) h.push_back(to_bf16(v));
  std::vector<char> memory(CfgScalars::bytes(extent));
  const CfgScalars scalars(memory.data(), extent);
  const CfgMath& math = host_cfg_math();
  math.begin(scalars, nullptr);
  math.input_stats(dtype, dtype == DType::kFloat32 ? static_cast<const void*>(f.data()) : h.data(),
                   nullptr, true, CfgOrder::kSerial, extent, scalars, nullptr);
  return std::vector<double>(scalars.cond_stats, scalars.cond_stats + 2 * kCfgStatColumns);
}

// A constant sample deviates by exactly nothing, in every dtype, over
// several chunks: its standard deviation is exactly 0 (guidance rescale then
// leaves it alone), its sum of squares is N c^2.
TEST(CfgMathOrder, ConstantSampleHasZeroDeviation) {
  for (DType dtype : {DType::kFloat32, DType::kBFloat16})
    for (double c : {0.0, 1.0, -3.140625, 1234.5678}) {
      const double value = dtype == DType::kFloat32 ? static_cast<float>(c) : from_bf16(to_bf16(static_cast<float>(c)));
      const int64_t n = 70001;
      const std::vector<double> stats = host_statistics(dtype, std::vector<double>(2 * n, value));
      for (int b = 0; b < 2; ++b) {
        SCOPED_TRACE(std::string(dtype_name(dtype)) + " value " + std::to_string(value));
        EXPECT_EQ(stats[b * kCfgStatColumns + kCfgStatStd], 0.0);
        EXPECT_DOUBLE_EQ(stats[b * kCfgStatColumns + kCfgStatSumSq], n * value * value);
      }
    }
}

// Samples far from zero (mean 100 standard deviations away): the references
// are values of the data, so nothing cancels; the lanes' float sums of
// 16-bit data and the double sums of float32 data keep the statistics to
// their precision.
TEST(CfgMathOrder, OffsetSampleKeepsItsDeviation) {
  std::mt19937 rng(5);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    const int64_t n = 70001;
    std::vector<double> x(2 * n);
    for (double& v : x) {
      const float f = static_cast<float>(400.0 + 4.0 * normal(rng));
      v = dtype == DType::kFloat32 ? f : from_bf16(to_bf16(f));
    }
    const std::vector<double> stats = host_statistics(dtype, x);
    for (int b = 0; b < 2; ++b) {
      long double mean = 0, m2 = 0, sq = 0;
      for (int64_t j = b * n; j < (b + 1) * n; ++j) mean += x[j];
      mean /= n;
      for (int64_t j = b * n; j < (b + 1) * n; ++j) {
        m2 += (x[j] - mean) * (x[j] - mean);
        sq += static_cast<long double>(x[j]) * x[j];
      }
      const double want_std = static_cast<double>(std::sqrt(m2 / (n - 1)));
      const double tolerance = dtype == DType::kFloat32 ? 1e-13 : 1e-7;  // relative
      SCOPED_TRACE(dtype_name(dtype));
      EXPECT_NEAR(stats[b * kCfgStatColumns + kCfgStatStd], want_std, tolerance * want_std);
      EXPECT_NEAR(stats[b * kCfgStatColumns + kCfgStatSumSq], static_cast<double>(sq),
                  tolerance * static_cast<double>(sq));
    }
  }
}

}  // namespace
}  // namespace ops
}  // namespace diffcoll
