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

// A run of values: count, mean, sum of squared deviations, sum of squares;
// and the two plain sums of CFG-zero*.
struct Sums {
  double n = 0, mean = 0, m2 = 0, sq = 0, dot = 0, uu = 0;
};

// Chan et al.'s pairwise update, as cfg_math.h names it.
Sums merge(const Sums& a, const Sums& b) {
  Sums r;
  r.dot = a.dot + b.dot;
  r.uu = a.uu + b.uu;
  if (b.n == 0) {
    r.n = a.n, r.mean = a.mean, r.m2 = a.m2, r.sq = a.sq;
    return r;
  }
  if (a.n == 0) {
    r.n = b.n, r.mean = b.mean, r.m2 = b.m2, r.sq = b.sq;
    return r;
  }
  r.n = a.n + b.n;
  const double d = b.mean - a.mean;
  r.mean = a.mean + d * (b.n / r.n);
  r.m2 = (a.m2 + b.m2) + (d * d) * ((a.n * b.n) / r.n);
  r.sq = a.sq + b.sq;
  return r;
}

Sums fold(std::vector<Sums> v) {
  for (size_t s = v.size() / 2; s >= 1; s /= 2)
    for (size_t l = 0; l < s; ++l) v[l] = merge(v[l], v[l + s]);
  return v[0];
}

// Chunks of 4096 elements; lane l of a chunk holds its 16-byte vectors l,
// l + 256, ... (`vector` elements each) and sums its values in element order,
// the mean first and then the squared deviations from it; lanes merged
// pairwise with strides 128..1; chunk partials merged into 256 lanes in turn,
// then the same pairwise merge.
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
      Sums& r = lanes[l];
      if (index.empty()) continue;
      double sum = 0;
      for (size_t j : index) sum += x[j];
      r.n = static_cast<double>(index.size());
      r.mean = sum / r.n;
      for (size_t j : index) {
        r.m2 += (x[j] - r.mean) * (x[j] - r.mean);
        r.sq += x[j] * x[j];
        r.dot += x[j] * y[j];
        r.uu += y[j] * y[j];
      }
    }
    outer[c % 256] = merge(outer[c % 256], fold(lanes));
  }
  return fold(outer);
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
        EXPECT_EQ(scalars.cond_stats[b * kCfgStatColumns + kCfgStatStd],
                  std::sqrt(r.m2 / (r.n - 1)));
        EXPECT_EQ(scalars.cond_stats[b * kCfgStatColumns + kCfgStatSumSq], r.sq);
        EXPECT_EQ(scalars.zero_star[b], r.dot / (r.uu + kCfgZeroStarEps));
        // And the order matters: a plain left-to-right sum differs somewhere.
        if (b == 0 && n == 1100000) {
          double plain = 0;
          for (double v : xs) plain += v * v;
          EXPECT_NE(plain, r.sq);
        }
      }
    }
}

}  // namespace
}  // namespace ops
}  // namespace diffcoll
