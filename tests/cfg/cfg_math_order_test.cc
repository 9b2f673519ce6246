// White-box: the host CfgMath sums per-sample statistics in the reduction
// order documented in core/ops/cfg_math.h, which the CUDA twin follows too
// (its bitwise agreement with the host is checked on a GPU by cfg_gpu_test).
// The expected values here are computed from the documentation alone, with
// data of wide dynamic range so that another order gives other doubles.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/ops/cfg_math.h"

namespace diffcoll {
namespace ops {
namespace {

// Chunks of 4096 elements; in each, lane l adds elements l, l + 256, ... to
// 0.0; lanes folded pairwise with strides 128..1; then the chunk partials,
// the same way.
double documented_sum(const std::vector<double>& t) {
  auto fold = [](std::vector<double> v) {
    for (size_t s = v.size() / 2; s >= 1; s /= 2)
      for (size_t l = 0; l < s; ++l) v[l] = v[l] + v[l + s];
    return v[0];
  };
  auto lanes_then_fold = [&](const std::vector<double>& x, size_t begin, size_t end) {
    std::vector<double> lane(256, 0.0);
    for (size_t l = 0; l < 256; ++l)
      for (size_t j = begin + l; j < end; j += 256) lane[l] = lane[l] + x[j];
    return fold(lane);
  };
  const size_t chunks = std::max<size_t>(1, (t.size() + 4095) / 4096);
  std::vector<double> partials;
  for (size_t c = 0; c < chunks; ++c)
    partials.push_back(lanes_then_fold(t, c * 4096, std::min(t.size(), c * 4096 + 4096)));
  return lanes_then_fold(partials, 0, partials.size());
}

std::vector<float> wide_range(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.5f, 1.0f);
  std::uniform_real_distribution<float> exponent(-4.0f, 4.0f);
  std::vector<float> v(count);
  for (float& x : v) x = normal(rng) * std::pow(10.0f, exponent(rng));
  return v;
}

TEST(CfgMathOrder, StatisticsAndZeroStarScaleFollowTheDocumentedOrder) {
  const CfgMath& math = host_cfg_math();
  // One chunk, exactly one, one more element, many, more than 256 chunks.
  for (int64_t n : {int64_t{2}, int64_t{300}, int64_t{4096}, int64_t{4097}, int64_t{70001},
                    int64_t{1100000}}) {
    SCOPED_TRACE("per_sample " + std::to_string(n));
    const CfgExtent extent{2, n};
    const std::vector<float> x = wide_range(extent.numel(), static_cast<uint32_t>(n));
    const std::vector<float> y = wide_range(extent.numel(), static_cast<uint32_t>(n + 1));
    std::vector<double> stats(2 * kCfgStatColumns), scale(2);
    std::vector<double> partials(cfg_partials_doubles(extent));
    math.branch_stats(DType::kFloat32, x.data(), extent, stats.data(), partials.data(), nullptr);
    math.zero_star_scale(DType::kFloat32, x.data(), y.data(), extent, scale.data(),
                         partials.data(), nullptr);
    for (int64_t b = 0; b < 2; ++b) {
      std::vector<double> v(x.begin() + b * n, x.begin() + (b + 1) * n);
      std::vector<double> u(y.begin() + b * n, y.begin() + (b + 1) * n);
      const double mean = documented_sum(v) / static_cast<double>(n);
      std::vector<double> dev(n), sq(n), dot(n), uu(n);
      for (int64_t j = 0; j < n; ++j) {
        dev[j] = (v[j] - mean) * (v[j] - mean);
        sq[j] = v[j] * v[j];
        dot[j] = v[j] * u[j];
        uu[j] = u[j] * u[j];
      }
      EXPECT_EQ(stats[b * kCfgStatColumns + kCfgStatStd],
                std::sqrt(documented_sum(dev) / static_cast<double>(n - 1)));
      EXPECT_EQ(stats[b * kCfgStatColumns + kCfgStatSumSq], documented_sum(sq));
      EXPECT_EQ(scale[b], documented_sum(dot) / (documented_sum(uu) + kCfgZeroStarEps));
    }
  }
}

}  // namespace
}  // namespace ops
}  // namespace diffcoll
