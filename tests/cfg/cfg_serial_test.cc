// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The serial combine through the C API: every formula, every arithmetic
// order (checked against the documented rounding, bit for bit, and against
// a double-precision reference), every post-process, strided and in-place
// tensors, and bad input.
#include <algorithm>
#include <string>

#include "cfg_test_support.h"

namespace {

using namespace cfgt;

// Predictions of `spec` as tensors of `layouts[i]` (cycled), values from make_preds.
struct Inputs {
  std::vector<Tensor> tensors;
  std::vector<std::vector<double>> values;  // as stored
  std::vector<diffcoll_tensor_t> descs() const {
    std::vector<diffcoll_tensor_t> d;
    for (const Tensor& t : tensors) d.push_back(t.desc());
    return d;
  }
};

Inputs make_inputs(int n, int dtype, const Shape& shape, uint32_t seed,
                   const std::vector<Layout>& layouts = {Layout::kContiguous}) {
  Inputs in;
  auto raw = make_preds(n, numel(shape), seed);
  for (int i = 0; i < n; ++i) {
    in.tensors.emplace_back(dtype, shape, layouts[i % layouts.size()]);
    in.values.push_back(in.tensors.back().fill(raw[i]));
  }
  return in;
}

std::string ctx(const PolicySpec& s, int dtype, const Shape& shape, const char* what = "") {
  std::ostringstream os;
  os << what << " n=" << s.n() << " " << dtype_str(dtype) << " B=" << shape[0]
     << " order=" << s.options.order << " phi=" << s.options.rescale_phi
     << " k=" << s.options.norm_k << (s.options.norm_per_sample ? "/sample" : "")
     << " zero*=" << s.options.zero_star << " zinit=" << s.options.zero_init_steps;
  return os.str();
}

// Runs the serial combine and checks it against the reference.
Tensor check_serial(const PolicySpec& s, int dtype, const Shape& shape, uint32_t seed, int step = 0,
                    Layout out_layout = Layout::kContiguous) {
  Policy policy(s);
  Inputs in = make_inputs(s.n(), dtype, shape, seed);
  Tensor out(dtype, shape, out_layout);
  auto descs = in.descs();
  diffcoll_tensor_t od = out.desc();
  EXPECT_EQ(diffcoll_cfg_combine_serial(policy.p, descs.data(), s.n(), &od, step, nullptr),
            DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  Reference ref = reference(s, in.values, shape[0], step);
  EXPECT_MATCHES_REFERENCE(dtype, out.values(), ref, s.n(), ctx(s, dtype, shape));
  EXPECT_TRUE(out.gaps_intact());
  return out;
}

const Shape kShape = {3, 4, 6, 5};
const int kOrders[] = {DIFFCOLL_CFG_ORDER_SERIAL, DIFFCOLL_CFG_ORDER_PARALLEL, DIFFCOLL_CFG_ORDER_TORCH};

TEST(CfgSerial, EveryFormulaEveryOrderEveryDtype) {
  for (int n = 1; n <= 5; ++n)
    for (int order : kOrders)
      for (int dtype : float_dtypes())
        for (int64_t batch : {1, 3}) {
          PolicySpec s = policy_of(n);
          s.options.order = order;
          check_serial(s, dtype, {batch, 4, 6, 5}, 100 + n);
        }
}

// The orders are the documented arithmetic, to the last bit.
TEST(CfgSerial, OrdersRoundExactlyAsDocumented) {
  for (int n = 1; n <= 5; ++n)
    for (int dtype : float_dtypes()) {
      PolicySpec s = policy_of(n);
      const std::vector<double> w = s.weights();
      auto rnd = [&](float x) {
        unsigned char b[4];
        store(dtype, b, x);
        return static_cast<float>(load(dtype, b));
      };
      Inputs in = make_inputs(n, dtype, kShape, 7 + n);
      for (int order : kOrders) {
        s.options.order = order;
        Policy policy(s);
        Tensor out(dtype, kShape);
        auto descs = in.descs();
        diffcoll_tensor_t od = out.desc();
        ASSERT_EQ(diffcoll_cfg_combine_serial(policy.p, descs.data(), n, &od, 0, nullptr),
                  DIFFCOLL_SUCCESS) << diffcoll_last_error();
        for (int64_t j = 0; j < numel(kShape); ++j) {
          auto p = [&](int i) { return static_cast<float>(in.values[i][j]); };
          float acc;
          if (order == DIFFCOLL_CFG_ORDER_SERIAL) {
            acc = p(s.base);
            for (const auto& t : s.terms) {
              const float diff = p(t.plus) - p(t.minus);
              const float term = static_cast<float>(t.scale) * diff;
              acc = acc + term;
            }
            acc = rnd(acc);
          } else if (order == DIFFCOLL_CFG_ORDER_TORCH) {  // rounded after every operation
            acc = p(s.base);
            for (const auto& t : s.terms) {
              const float diff = rnd(p(t.plus) - p(t.minus));
              const float term = rnd(static_cast<float>(t.scale) * diff);
              acc = rnd(acc + term);
            }
          } else {
            acc = rnd(static_cast<float>(w[0]) * p(0));
            for (int i = 1; i < n; ++i) {
              const float term = rnd(static_cast<float>(w[i]) * p(i));
              acc = rnd(acc + term);
            }
          }
          unsigned char b[4] = {};
          store(dtype, b, acc);
          uint64_t want = 0;
          std::memcpy(&want, b, dtype_bytes(dtype));
          ASSERT_EQ(out.bits(j), want) << ctx(s, dtype, kShape) << " element " << j;
        }
      }
    }
}

TEST(CfgSerial, GuidanceRescale) {
  for (int n : {2, 4, 5})
    for (double phi : {0.7, 1.0})
      for (int order : kOrders)
        for (int dtype : float_dtypes()) {
          PolicySpec s = policy_of(n);
          s.options.rescale_phi = phi;
          s.options.order = order;
          Tensor out = check_serial(s, dtype, kShape, 11 * n);
          // phi = 1: std(out) == std(cond) per sample.
          if (phi == 1.0 && dtype == DIFFCOLL_FLOAT32) {
            Inputs in = make_inputs(n, dtype, kShape, 11 * n);
            const int c = s.index_of_role(DIFFCOLL_CFG_COND);
            const int64_t per = numel(kShape) / kShape[0];
            for (int64_t b = 0; b < kShape[0]; ++b) {
              auto stdev = [&](const std::vector<double>& x) {
                double m = 0, m2 = 0;
                for (int64_t j = b * per; j < (b + 1) * per; ++j) m += x[j];
                m /= per;
                for (int64_t j = b * per; j < (b + 1) * per; ++j) m2 += (x[j] - m) * (x[j] - m);
                return std::sqrt(m2 / (per - 1));
              };
              EXPECT_NEAR(stdev(out.values()), stdev(in.values[c]), 1e-5) << "sample " << b;
            }
          }
        }
}

// Normalization with k chosen to trigger (or not) with a clear margin.
TEST(CfgSerial, CfgNormalization) {
  for (int n : {2, 3, 5})
    for (int dtype : float_dtypes()) {
      PolicySpec s = policy_of(n);
      Inputs in = make_inputs(n, dtype, kShape, 21 * n);
      const Reference plain = reference(s, in.values, kShape[0], 0);
      for (double rel : {0.6, 1.5}) {  // triggers / does not
        s.options.norm_k = rel * plain.norm_ratio;
        s.options.norm_per_sample = 0;
        check_serial(s, dtype, kShape, 21 * n);
      }
    }
}

TEST(CfgSerial, CfgNormalizationPerSample) {
  for (int dtype : float_dtypes()) {
    // Make the samples' ratios ||out_b|| / ||cond_b|| distinct: scale cond per sample.
    PolicySpec s = policy_of(2);
    Inputs in = make_inputs(2, dtype, kShape, 33);
    const int64_t per = numel(kShape) / kShape[0];
    for (int64_t b = 0; b < kShape[0]; ++b)
      for (int64_t j = b * per; j < (b + 1) * per; ++j) in.tensors[0].set(j, in.values[0][j] * (1 + 0.7 * b));
    in.values[0] = in.tensors[0].values();
    const Reference plain = reference(s, in.values, kShape[0], 0);
    std::vector<double> r = plain.sample_norm_ratio;
    std::sort(r.begin(), r.end());
    ASSERT_GT(r[1] / r[0], 1.1);
    s.options.norm_k = std::sqrt(r[0] * r[1]);  // some samples above k, some below
    s.options.norm_per_sample = 1;
    for (int order : kOrders) {
      s.options.order = order;
      Policy p2(s);
      Tensor out(dtype, kShape);
      auto descs = in.descs();
      diffcoll_tensor_t od = out.desc();
      ASSERT_EQ(diffcoll_cfg_combine_serial(p2.p, descs.data(), 2, &od, 0, nullptr), DIFFCOLL_SUCCESS)
          << diffcoll_last_error();
      Reference ref = reference(s, in.values, kShape[0], 0);
      int scaled = 0;
      for (double f : ref.factor) scaled += f != 1.0;
      EXPECT_GT(scaled, 0);
      EXPECT_LT(scaled, kShape[0]);
      EXPECT_MATCHES_REFERENCE(dtype, out.values(), ref, 2, ctx(s, dtype, kShape));
    }
  }
}

TEST(CfgSerial, CfgZeroStar) {
  for (int n : {2, 3, 5})
    for (int order : kOrders)
      for (int dtype : float_dtypes()) {
        PolicySpec s = policy_of(n);
        s.options.zero_star = 1;
        s.options.order = order;
        check_serial(s, dtype, kShape, 41 * n);
      }
  // The scale matters: the result differs from plain CFG.
  PolicySpec s = policy_of(2);
  Tensor plain = check_serial(s, DIFFCOLL_FLOAT32, kShape, 5);
  s.options.zero_star = 1;
  Tensor star = check_serial(s, DIFFCOLL_FLOAT32, kShape, 5);
  EXPECT_GT(std::fabs(plain.get(0) - star.get(0)), 1e-3);
}

TEST(CfgSerial, ZeroInitSteps) {
  for (int dtype : float_dtypes()) {
    PolicySpec s = policy_of(2);
    s.options.zero_star = 1;
    s.options.zero_init_steps = 2;
    for (int step : {0, 1}) {
      Tensor out = check_serial(s, dtype, kShape, 51, step, Layout::kGapped);
      for (int64_t j = 0; j < out.size(); ++j) ASSERT_EQ(out.bits(j), 0u) << "step " << step;
    }
    Tensor out = check_serial(s, dtype, kShape, 51, 2);
    EXPECT_NE(out.bits(0), 0u);
    // Zero init does not need CFG-zero*.
    s.options.zero_star = 0;
    Tensor z = check_serial(s, dtype, kShape, 51, 1);
    EXPECT_EQ(z.bits(5), 0u);
  }
}

TEST(CfgSerial, AllPostProcessesTogether) {
  for (int n : {2, 4, 5})
    for (int order : kOrders)
      for (int dtype : float_dtypes()) {
        PolicySpec s = policy_of(n);
        s.options.order = order;
        s.options.zero_star = 1;
        s.options.rescale_phi = 0.7;
        s.options.zero_init_steps = 1;
        Inputs in = make_inputs(n, dtype, kShape, 61 * n);
        const Reference pre = reference(s, in.values, kShape[0], 3);
        s.options.norm_k = 0.7 * pre.norm_ratio;
        check_serial(s, dtype, kShape, 61 * n, 3);
      }
}

// Any layout of inputs and output gives the same bits as contiguous tensors,
// the output's gaps are untouched, and the output may be one of the inputs.
TEST(CfgSerial, StridedAndInPlace) {
  const std::vector<Layout> layouts = {Layout::kContiguous, Layout::kTransposed, Layout::kGapped,
                                       Layout::kFlipped, Layout::kChannelsLast};
  for (int dtype : {DIFFCOLL_BFLOAT16, DIFFCOLL_FLOAT32}) {
    PolicySpec s = policy_of(4);
    s.options.order = DIFFCOLL_CFG_ORDER_PARALLEL;
    s.options.rescale_phi = 0.5;
    s.options.norm_k = 3.0;
    Policy policy(s);
    Inputs base = make_inputs(4, dtype, kShape, 71);
    Tensor expected(dtype, kShape);
    {
      auto d = base.descs();
      diffcoll_tensor_t od = expected.desc();
      ASSERT_EQ(diffcoll_cfg_combine_serial(policy.p, d.data(), 4, &od, 0, nullptr), DIFFCOLL_SUCCESS);
    }
    for (Layout in_layout : layouts)
      for (Layout out_layout : layouts) {
        // Inputs of mixed layouts: branch i gets layouts[(in + i) % 5].
        std::vector<Layout> mixed;
        const int start = static_cast<int>(std::find(layouts.begin(), layouts.end(), in_layout) - layouts.begin());
        for (int i = 0; i < 4; ++i) mixed.push_back(layouts[(start + i) % layouts.size()]);
        Inputs in = make_inputs(4, dtype, kShape, 71, mixed);
        Tensor out(dtype, kShape, out_layout);
        auto d = in.descs();
        diffcoll_tensor_t od = out.desc();
        ASSERT_EQ(diffcoll_cfg_combine_serial(policy.p, d.data(), 4, &od, 0, nullptr), DIFFCOLL_SUCCESS)
            << diffcoll_last_error();
        for (int64_t j = 0; j < out.size(); ++j)
          ASSERT_EQ(out.bits(j), expected.bits(j))
              << layout_str(in_layout) << " -> " << layout_str(out_layout) << " element " << j;
        EXPECT_TRUE(out.gaps_intact()) << layout_str(out_layout);
        for (const Tensor& t : in.tensors) EXPECT_TRUE(t.gaps_intact());
      }
    // In place: out is cond (index 0), then uncond (index 1), in several layouts.
    for (int target : {0, 1})
      for (Layout l : layouts) {
        Inputs in = make_inputs(4, dtype, kShape, 71, {l});
        auto d = in.descs();
        diffcoll_tensor_t od = d[target];
        ASSERT_EQ(diffcoll_cfg_combine_serial(policy.p, d.data(), 4, &od, 0, nullptr), DIFFCOLL_SUCCESS)
            << diffcoll_last_error();
        for (int64_t j = 0; j < expected.size(); ++j)
          ASSERT_EQ(in.tensors[target].bits(j), expected.bits(j))
              << "in place into branch " << target << " " << layout_str(l) << " element " << j;
        EXPECT_TRUE(in.tensors[target].gaps_intact());
      }
  }
}

TEST(CfgSerial, ScalarsAndEmptyTensors) {
  PolicySpec s = policy_of(2);
  Policy policy(s);
  // A 0-d tensor is one sample of one element.
  Tensor c(DIFFCOLL_FLOAT32, {}), u(DIFFCOLL_FLOAT32, {}), out(DIFFCOLL_FLOAT32, {});
  c.set(0, 2.0);
  u.set(0, 1.0);
  diffcoll_tensor_t d[2] = {c.desc(), u.desc()};
  diffcoll_tensor_t od = out.desc();
  CFG_OK(diffcoll_cfg_combine_serial(policy.p, d, 2, &od, 0, nullptr));
  EXPECT_EQ(out.get(0), 1.0 + 5.0 * (2.0 - 1.0));
  // Batch 0: nothing to do, no error.
  Tensor e0(DIFFCOLL_BFLOAT16, {0, 3}), e1(DIFFCOLL_BFLOAT16, {0, 3}), eo(DIFFCOLL_BFLOAT16, {0, 3});
  diffcoll_tensor_t de[2] = {e0.desc(), e1.desc()};
  od = eo.desc();
  CFG_OK(diffcoll_cfg_combine_serial(policy.p, de, 2, &od, 0, nullptr));
}

TEST(CfgSerial, BadInput) {
  PolicySpec s = policy_of(3);
  Policy policy(s);
  Inputs in = make_inputs(3, DIFFCOLL_BFLOAT16, kShape, 81);
  Tensor out(DIFFCOLL_BFLOAT16, kShape);
  auto d = in.descs();
  diffcoll_tensor_t od = out.desc();
  auto expect = [&](diffcoll_status_t want, const char* fragment, std::vector<diffcoll_tensor_t> preds,
                    int32_t count, diffcoll_tensor_t o, int step = 0,
                    const diffcoll_cfg_policy_t* p = nullptr) {
    EXPECT_EQ(diffcoll_cfg_combine_serial(p ? p : policy.p, preds.data(), count, &o, step, nullptr), want)
        << fragment;
    const std::string msg = diffcoll_last_error();
    EXPECT_NE(msg.find(fragment), std::string::npos) << "message: " << msg;
  };
  expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "has 3 branches but 2 predictions", d, 2, od);
  {
    auto e = d;
    e.push_back(d[0]);
    expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "has 3 branches but 4 predictions", e, 4, od);
  }
  {  // shape mismatch between branches
    Tensor other(DIFFCOLL_BFLOAT16, {3, 4, 6, 4});
    auto e = d;
    e[2] = other.desc();
    expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "'perturbed'", e, 3, od);
    expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "same shape", e, 3, od);
  }
  {  // dtype mismatch
    Tensor other(DIFFCOLL_FLOAT16, kShape);
    auto e = d;
    e[1] = other.desc();
    expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "float16 but out is bfloat16", e, 3, od);
  }
  {  // unsupported dtypes
    std::vector<double> buf(numel(kShape) * 4);
    auto e = d;
    for (auto& t : e) {
      t.dtype = DIFFCOLL_FLOAT64;
      t.data = buf.data();
    }
    diffcoll_tensor_t o = e[0];
    expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "float16, bfloat16 or float32", e, 3, o);
    for (auto& t : e) t.dtype = DIFFCOLL_INT32;
    o = e[0];
    expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "float16, bfloat16 or float32", e, 3, o);
  }
  {  // host memory labelled CUDA: refused before any kernel could touch it
    auto e = d;
    for (auto& t : e) t.device_type = DIFFCOLL_DEVICE_CUDA;
    diffcoll_tensor_t o = od;
    o.device_type = DIFFCOLL_DEVICE_CUDA;
    // UNSUPPORTED without CUDA (build or device), INVALID_ARGUMENT with a GPU.
    const diffcoll_status_t s = diffcoll_cfg_combine_serial(policy.p, e.data(), 3, &o, 0, nullptr);
    EXPECT_TRUE(s == DIFFCOLL_ERR_UNSUPPORTED || s == DIFFCOLL_ERR_INVALID_ARGUMENT) << s;
    EXPECT_NE(std::string(diffcoll_last_error()).find("CUDA"), std::string::npos)
        << diffcoll_last_error();
    expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "different devices", e, 3, od);
  }
  expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "step -1", d, 3, od, -1);
  {  // an output with a zero stride cannot be written
    diffcoll_tensor_t o = od;
    o.strides[1] = 0;
    expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "overlapping", d, 3, o);
  }
  expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "preds is NULL", {}, 3, od);
  {  // rescale needs 2 elements per sample
    PolicySpec r = s;
    r.options.rescale_phi = 0.5;
    Policy rp(r);
    Inputs small = make_inputs(3, DIFFCOLL_FLOAT32, {4, 1}, 3);
    Tensor so(DIFFCOLL_FLOAT32, {4, 1});
    expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "at least 2 elements per sample", small.descs(), 3,
           so.desc(), 0, rp.p);
  }
  {  // destroyed policy
    diffcoll_cfg_policy_t* gone = nullptr;
    ASSERT_EQ(s.create(&gone), DIFFCOLL_SUCCESS);
    diffcoll_cfg_policy_destroy(gone);
    EXPECT_EQ(diffcoll_cfg_combine_serial(gone, d.data(), 3, &od, 0, nullptr),
              DIFFCOLL_ERR_INVALID_HANDLE);
    EXPECT_EQ(diffcoll_cfg_combine_serial(nullptr, d.data(), 3, &od, 0, nullptr),
              DIFFCOLL_ERR_INVALID_HANDLE);
  }
  EXPECT_EQ(diffcoll_cfg_combine_serial(policy.p, d.data(), 3, nullptr, 0, nullptr),
            DIFFCOLL_ERR_INVALID_ARGUMENT);
  // After all that the policy still works.
  CFG_OK(diffcoll_cfg_combine_serial(policy.p, d.data(), 3, &od, 0, nullptr));
}

}  // namespace
