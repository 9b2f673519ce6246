// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// DIFFCOLL_CFG_ORDER_TORCH against what PyTorch eager computes, written out
// here operation by operation from the engines' code (PyTorch CUDA
// semantics: each elementwise op in float32, Python float scalars as
// float32, the result rounded to the dtype; reductions accumulate wide and
// round their float32 result): SGLang's CFG-policy unit-test case, and the
// post-processing of SGLang's CFGPolicy (normalization, then diffusers'
// rescale_noise_cfg) and diffusers' CFG-zero* guider on random latents, bit
// for bit, serially and across ranks. bindings/python/tests/test_cfg_torch.py
// compares with PyTorch itself.
#include <cmath>
#include <string>

#include "cfg_test_support.h"

namespace {

using namespace cfgt;

float rnd(int dtype, double x) {
  unsigned char b[4];
  store(dtype, b, static_cast<float>(x));
  return static_cast<float>(load(dtype, b));
}

// bf16 pos = 1.0, neg = 0.1, `neg + 7 * (pos - neg)`: PyTorch eager gives
// 6.375, one rounding at the end (SERIAL) and the weighted sum (PARALLEL,
// SGLang's CFG-parallel arithmetic) 6.40625.
TEST(CfgTorchOrder, SglangUnitTestCase) {
  const std::pair<int, double> expected[] = {{DIFFCOLL_CFG_ORDER_TORCH, 6.375},
                                             {DIFFCOLL_CFG_ORDER_SERIAL, 6.40625},
                                             {DIFFCOLL_CFG_ORDER_PARALLEL, 6.40625}};
  for (const auto& [order, want] : expected) {
    PolicySpec s = standard_cfg(7.0);
    s.options.order = order;
    Policy policy(s);
    Tensor pos(DIFFCOLL_BFLOAT16, {1}), neg(DIFFCOLL_BFLOAT16, {1}), out(DIFFCOLL_BFLOAT16, {1});
    pos.set(0, 1.0);
    neg.set(0, 0.1);
    diffcoll_tensor_t preds[2] = {pos.desc(), neg.desc()};
    diffcoll_tensor_t od = out.desc();
    CFG_OK(diffcoll_cfg_combine_serial(policy.p, preds, 2, &od, 0, nullptr));
    EXPECT_EQ(out.get(0), want) << "order " << order;
    // The same on two ranks, one branch each.
    run_ranks(2, [&](int rank, diffcoll_comm_t* comm) {
      Tensor mine(DIFFCOLL_BFLOAT16, {1}), result(DIFFCOLL_BFLOAT16, {1});
      mine.set(0, rank == 0 ? 1.0 : 0.1);
      diffcoll_tensor_t md = mine.desc(), rd = result.desc();
      EXPECT_EQ(diffcoll_cfg_combine_parallel(comm, policy.p, &md, 1, &rd, 0, nullptr),
                DIFFCOLL_SUCCESS) << diffcoll_last_error();
      EXPECT_EQ(result.get(0), want) << "order " << order << ", rank " << rank;
    });
  }
}

// Per-sample sums in double, straightforwardly (the library sums in its own
// fixed order; both round to float32 before anything else uses them).
struct SampleSums {
  double mean = 0, m2 = 0, sq = 0;
};
SampleSums sums(const std::vector<double>& x, int64_t lo, int64_t hi) {
  SampleSums s;
  for (int64_t j = lo; j < hi; ++j) s.mean += x[j];
  s.mean /= static_cast<double>(hi - lo);
  for (int64_t j = lo; j < hi; ++j) {
    s.m2 += (x[j] - s.mean) * (x[j] - s.mean);
    s.sq += x[j] * x[j];
  }
  return s;
}

// PyTorch eager on tensors of `dtype`, CUDA semantics, for standard CFG
// (cond, uncond; scale g) with the options of `o`:
//   alpha = (sum(c*u) / (sum(u**2) + 1e-8)).to(dtype)     on .float() copies
//   u = u * alpha
//   out = u + g * (c - u)
//   if k: n_c = ||c.float()||, n_o = ||out.float()||, m = n_c * k
//         if n_o > m: out = out * (m / n_o)                 (ratio cast to dtype)
//   if phi: r = c.std(dims) / out.std(dims)                 (both of dtype)
//           out = phi * (out * r) + (1 - phi) * out
std::vector<float> torch_eager(int dtype, const std::vector<double>& c,
                               const std::vector<double>& u_in, int64_t batch, double g,
                               const diffcoll_cfg_options_t& o) {
  const int64_t count = static_cast<int64_t>(c.size()), per = count / batch;
  auto R = [&](double x) { return rnd(dtype, x); };
  auto f32 = [](double x) { return static_cast<float>(x); };
  std::vector<double> u = u_in, out(count);
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t lo = b * per, hi = lo + per;
    if (o.zero_star) {
      double dot = 0, uu = 0;
      for (int64_t j = lo; j < hi; ++j) {
        dot += c[j] * u[j];
        uu += u[j] * u[j];
      }
      const float alpha = R(f32(dot) / (f32(uu) + f32(1e-8)));
      for (int64_t j = lo; j < hi; ++j) u[j] = R(f32(u[j]) * alpha);
    }
    for (int64_t j = lo; j < hi; ++j) {
      const float diff = R(f32(c[j]) - f32(u[j]));
      out[j] = R(f32(u[j]) + R(f32(g) * diff));
    }
  }
  if (o.norm_k > 0) {
    std::vector<double> cn(batch), on(batch);
    double call = 0, oall = 0;
    for (int64_t b = 0; b < batch; ++b) {
      cn[b] = sums(c, b * per, (b + 1) * per).sq;
      on[b] = sums(out, b * per, (b + 1) * per).sq;
      call += cn[b];
      oall += on[b];
    }
    for (int64_t b = 0; b < batch; ++b) {
      const float n_o = f32(std::sqrt(o.norm_per_sample ? on[b] : oall));
      const float m = f32(std::sqrt(o.norm_per_sample ? cn[b] : call)) * f32(o.norm_k);
      if (n_o > m) {
        const float ratio = R(m / n_o);
        for (int64_t j = b * per; j < (b + 1) * per; ++j) out[j] = R(f32(out[j]) * ratio);
      }
    }
  }
  if (o.rescale_phi > 0) {
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t lo = b * per, hi = lo + per;
      const SampleSums sc = sums(c, lo, hi), so = sums(out, lo, hi);
      const float std_c = R(f32(std::sqrt(sc.m2 / static_cast<double>(per - 1))));
      const float std_o = R(f32(std::sqrt(so.m2 / static_cast<double>(per - 1))));
      const float ratio = R(std_c / std_o);
      for (int64_t j = lo; j < hi; ++j) {
        const float rescaled = R(f32(out[j]) * ratio);
        out[j] = R(R(f32(o.rescale_phi) * rescaled) + R(f32(1 - o.rescale_phi) * f32(out[j])));
      }
    }
  }
  return std::vector<float>(out.begin(), out.end());
}

// Random latents (several chunks of the reduction order per sample), every
// combination of the post-processes, every dtype: bit for bit.
TEST(CfgTorchOrder, PostProcessingFollowsTheEngineCode) {
  const Shape shape = {2, 4, 33, 65};
  uint32_t seed = 300;
  for (int dtype : float_dtypes())
    for (int zero_star : {0, 1})
      for (double phi : {0.0, 0.7})
        for (int norm : {0, 1, 2}) {  // off, whole tensor, per sample
          PolicySpec s = standard_cfg(7.5);
          s.options.order = DIFFCOLL_CFG_ORDER_TORCH;
          s.options.zero_star = zero_star;
          s.options.rescale_phi = phi;
          s.options.norm_per_sample = norm == 2;
          auto raw = make_preds(2, numel(shape), seed++);
          Tensor cond(dtype, shape), uncond(dtype, shape, Layout::kTransposed);
          const std::vector<double> c = cond.fill(raw[0]), u = uncond.fill(raw[1]);
          if (norm) {  // a bound the combined prediction exceeds
            const Reference pre = reference(s, {c, u}, shape[0], 0);
            s.options.norm_k = 0.7 * pre.norm_ratio;
          }
          const std::vector<float> want = torch_eager(dtype, c, u, shape[0], 7.5, s.options);
          Policy policy(s);
          Tensor out(dtype, shape, Layout::kGapped);
          diffcoll_tensor_t preds[2] = {cond.desc(), uncond.desc()};
          diffcoll_tensor_t od = out.desc();
          CFG_OK(diffcoll_cfg_combine_serial(policy.p, preds, 2, &od, 0, nullptr));
          const std::string where = std::string(dtype_str(dtype)) + " zero*=" +
                                    std::to_string(zero_star) + " phi=" + std::to_string(phi) +
                                    " norm=" + std::to_string(norm);
          for (int64_t j = 0; j < out.size(); ++j)
            ASSERT_EQ(out.get(j), static_cast<double>(want[j])) << where << ", element " << j;
          EXPECT_TRUE(out.gaps_intact()) << where;
        }
}

}  // namespace
