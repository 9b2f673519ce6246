// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The parallel combine through the C API, ranks as threads: degrees 1..8
// with 1..5 branches (d > n, d == n, d < n), every dtype, both orders, every
// post-process, per-rank strides; serial == parallel bitwise where the
// header promises it and within tolerance elsewhere; bad input.
#include <algorithm>
#include <mutex>
#include <string>

#include "cfg_test_support.h"

namespace {

using namespace cfgt;

Layout rank_layout(int rank, int salt) {
  static const Layout l[] = {Layout::kContiguous, Layout::kTransposed, Layout::kGapped,
                             Layout::kFlipped, Layout::kContiguous};
  return l[(rank + salt) % 5];
}

// Every rank: run the serial combine on all predictions and the parallel
// combine on its share, compare both with the reference and with each other.
void sweep_rank(int d, int rank, diffcoll_comm_t* comm, const Shape& shape) {
  int iteration = 0;
  for (int n = 1; n <= 5; ++n)
    for (const Config& cfg : configs())
      for (int dtype : float_dtypes()) {
        if (cfg.zero_star && n < 2) continue;
        ++iteration;
        PolicySpec s = policy_of(n);
        configure(s, cfg);
        // All ranks build the same predictions.
        const uint32_t seed = 1000u * n + 17u * iteration;
        auto raw = make_preds(n, numel(shape), seed);
        std::vector<Tensor> all;
        std::vector<std::vector<double>> values;
        for (int i = 0; i < n; ++i) {
          all.emplace_back(dtype, shape);
          values.push_back(all.back().fill(raw[i]));
        }
        set_norm_bound(s, cfg, values, shape[0]);
        Policy policy(s);
        const std::string where = std::string(cfg.name) + " " + dtype_str(dtype) +
                                  " d=" + std::to_string(d) + " n=" + std::to_string(n) +
                                  " rank=" + std::to_string(rank);
        const Reference ref = reference(s, values, shape[0], 0);

        Tensor serial(dtype, shape);
        std::vector<diffcoll_tensor_t> all_d;
        for (const Tensor& t : all) all_d.push_back(t.desc());
        diffcoll_tensor_t sd = serial.desc();
        ASSERT_EQ(diffcoll_cfg_combine_serial(policy.p, all_d.data(), n, &sd, 0, nullptr),
                  DIFFCOLL_SUCCESS) << where << ": " << diffcoll_last_error();
        EXPECT_MATCHES_REFERENCE(dtype, serial.values(), ref, n, "serial " + where);

        std::vector<std::vector<int32_t>> shares;
        for (int r = 0; r < d; ++r) shares.push_back(dispatch(policy.p, d, r));
        const std::vector<int32_t>& mine = shares[rank];
        std::vector<Tensor> local;
        for (size_t k = 0; k < mine.size(); ++k) {
          local.emplace_back(dtype, shape, rank_layout(rank, iteration + static_cast<int>(k)));
          local.back().fill(values[mine[k]]);
        }
        std::vector<diffcoll_tensor_t> local_d;
        for (const Tensor& t : local) local_d.push_back(t.desc());
        Tensor out(dtype, shape, rank_layout(rank + 1, iteration));
        diffcoll_tensor_t od = out.desc();
        ASSERT_EQ(diffcoll_cfg_combine_parallel(comm, policy.p, local_d.empty() ? nullptr : local_d.data(),
                                                static_cast<int32_t>(local_d.size()), &od, 0, nullptr),
                  DIFFCOLL_SUCCESS) << where << ": " << diffcoll_last_error();
        EXPECT_TRUE(out.gaps_intact()) << where;
        EXPECT_MATCHES_REFERENCE(dtype, out.values(), ref, n, "parallel " + where);
        if (promised_bitwise(s, shares)) {
          for (int64_t j = 0; j < out.size(); ++j)
            ASSERT_EQ(out.bits(j), serial.bits(j)) << "bitwise " << where << " element " << j;
        } else {
          // Serial and parallel differ by rounding only: both are within the
          // tolerance of the reference, so within twice of each other.
          Reference around_serial = ref;
          around_serial.out = serial.values();
          for (double& m : around_serial.mag) m *= 2;
          EXPECT_MATCHES_REFERENCE(dtype, out.values(), around_serial, n, "parallel vs serial " + where);
        }
      }
}

// Degrees 1..8, 1..5 branches, DIFFCOLL_CHECK on (every call verified across ranks).
class CfgParallelSweep : public ::testing::TestWithParam<int> {};

TEST_P(CfgParallelSweep, MatchesSerialAndReference) {
  const int d = GetParam();
  run_ranks(d, [&](int rank, diffcoll_comm_t* comm) { sweep_rank(d, rank, comm, {2, 3, 4, 5}); },
            /*check=*/1);
}

INSTANTIATE_TEST_SUITE_P(Degrees, CfgParallelSweep, ::testing::Range(1, 9),
                         [](const ::testing::TestParamInfo<int>& i) {
                           return "d" + std::to_string(i.param);
                         });

// d == n == 2 in PARALLEL order: bitwise on a larger latent with every
// post-process, and in place (each rank's out is its own prediction).
TEST(CfgParallel, BitwiseDegreeTwoLatent) {
  const Shape shape = {2, 16, 6, 20, 8};
  for (bool in_place : {false, true})
    for (int dtype : float_dtypes()) {
      PolicySpec s = standard_cfg(6.0);
      s.options.order = DIFFCOLL_CFG_ORDER_PARALLEL;
      s.options.rescale_phi = 0.7;
      s.options.norm_k = 2.0;
      s.options.norm_per_sample = 1;
      auto raw = make_preds(2, numel(shape), 5);
      run_ranks(2, [&](int rank, diffcoll_comm_t* comm) {
        Policy policy(s);
        std::vector<Tensor> all;
        for (int i = 0; i < 2; ++i) {
          all.emplace_back(dtype, shape);
          all.back().fill(raw[i]);
        }
        Tensor serial(dtype, shape);
        diffcoll_tensor_t ad[2] = {all[0].desc(), all[1].desc()};
        diffcoll_tensor_t sd = serial.desc();
        ASSERT_EQ(diffcoll_cfg_combine_serial(policy.p, ad, 2, &sd, 0, nullptr), DIFFCOLL_SUCCESS);
        Tensor mine(dtype, shape, rank == 0 ? Layout::kChannelsLast : Layout::kGapped);
        mine.fill(raw[rank]);
        Tensor separate(dtype, shape, Layout::kTransposed);
        diffcoll_tensor_t md = mine.desc();
        diffcoll_tensor_t od = in_place ? md : separate.desc();
        ASSERT_EQ(diffcoll_cfg_combine_parallel(comm, policy.p, &md, 1, &od, 0, nullptr),
                  DIFFCOLL_SUCCESS) << diffcoll_last_error();
        const Tensor& out = in_place ? mine : separate;
        for (int64_t j = 0; j < out.size(); ++j)
          ASSERT_EQ(out.bits(j), serial.bits(j)) << dtype_str(dtype) << " in_place=" << in_place
                                                 << " rank " << rank << " element " << j;
        EXPECT_TRUE(out.gaps_intact());
      });
    }
}

// Ranks without a branch add negative zero, the exact identity: a result of
// -0 in the serial combine stays -0 with idle ranks in the group.
TEST(CfgParallel, IdleRanksPreserveSignedZero) {
  const Shape shape = {1, 8};
  PolicySpec s = standard_cfg(5.0);
  s.options.order = DIFFCOLL_CFG_ORDER_PARALLEL;
  for (int d : {3, 4})
    run_ranks(d, [&](int rank, diffcoll_comm_t* comm) {
      Policy policy(s);
      Tensor c(DIFFCOLL_BFLOAT16, shape), u(DIFFCOLL_BFLOAT16, shape);
      for (int64_t j = 0; j < 8; ++j) {
        c.set(j, j < 4 ? -0.0 : 0.5 * j);
        u.set(j, j < 4 ? 0.0 : -0.25 * j);
      }
      Tensor serial(DIFFCOLL_BFLOAT16, shape);
      diffcoll_tensor_t ad[2] = {c.desc(), u.desc()};
      diffcoll_tensor_t sd = serial.desc();
      ASSERT_EQ(diffcoll_cfg_combine_serial(policy.p, ad, 2, &sd, 0, nullptr), DIFFCOLL_SUCCESS);
      EXPECT_EQ(serial.bits(0), 0x8000u) << "5 * -0 + (-4) * 0 is -0";
      std::vector<int32_t> mine = dispatch(policy.p, d, rank);
      std::vector<diffcoll_tensor_t> local;
      for (int32_t b : mine) local.push_back(ad[b]);
      Tensor out(DIFFCOLL_BFLOAT16, shape);
      diffcoll_tensor_t od = out.desc();
      ASSERT_EQ(diffcoll_cfg_combine_parallel(comm, policy.p, local.data(),
                                              static_cast<int32_t>(local.size()), &od, 0, nullptr),
                DIFFCOLL_SUCCESS) << diffcoll_last_error();
      for (int64_t j = 0; j < 8; ++j) EXPECT_EQ(out.bits(j), serial.bits(j)) << "d=" << d << " j=" << j;
    });
}

TEST(CfgParallel, ZeroInitStepsAndLaterSteps) {
  const Shape shape = {2, 5, 6};
  PolicySpec s = policy_of(3);
  s.options.zero_star = 1;
  s.options.zero_init_steps = 2;
  s.options.order = DIFFCOLL_CFG_ORDER_PARALLEL;
  auto raw = make_preds(3, numel(shape), 9);
  for (int d : {2, 3})  // d=2: cond and uncond together; d=3: all-gather
    run_ranks(d, [&](int rank, diffcoll_comm_t* comm) {
      Policy policy(s);
      std::vector<int32_t> mine = dispatch(policy.p, d, rank);
      std::vector<Tensor> local;
      std::vector<std::vector<double>> values(3);
      for (int i = 0; i < 3; ++i) {
        Tensor t(DIFFCOLL_BFLOAT16, shape);
        values[i] = t.fill(raw[i]);
      }
      for (int32_t b : mine) {
        local.emplace_back(DIFFCOLL_BFLOAT16, shape, Layout::kGapped);
        local.back().fill(raw[b]);
      }
      std::vector<diffcoll_tensor_t> ld;
      for (const Tensor& t : local) ld.push_back(t.desc());
      for (int step = 0; step < 4; ++step) {
        Tensor out(DIFFCOLL_BFLOAT16, shape, Layout::kTransposed);
        diffcoll_tensor_t od = out.desc();
        ASSERT_EQ(diffcoll_cfg_combine_parallel(comm, policy.p, ld.data(),
                                                static_cast<int32_t>(ld.size()), &od, step, nullptr),
                  DIFFCOLL_SUCCESS) << diffcoll_last_error();
        const Reference ref = reference(s, values, shape[0], step);
        EXPECT_MATCHES_REFERENCE(DIFFCOLL_BFLOAT16, out.values(), ref, 3,
                                 "step " + std::to_string(step) + " d=" + std::to_string(d));
        if (step < 2) {
          for (int64_t j = 0; j < out.size(); ++j) ASSERT_EQ(out.bits(j), 0u);
        }
      }
    });
}

// Contiguous tensors are combined where they are: nothing is packed.
TEST(CfgParallel, ContiguousTensorsAreNotPacked) {
  const Shape shape = {2, 4, 8};
  PolicySpec s = policy_of(4);
  s.options.rescale_phi = 0.5;
  auto raw = make_preds(4, numel(shape), 3);
  run_ranks(2, [&](int rank, diffcoll_comm_t* comm) {
    Policy policy(s);
    std::vector<int32_t> mine = dispatch(policy.p, 2, rank);
    for (Layout layout : {Layout::kContiguous, Layout::kGapped}) {
      CFG_OK(diffcoll_comm_reset_stats(comm));
      std::vector<Tensor> local;
      for (int32_t b : mine) {
        local.emplace_back(DIFFCOLL_FLOAT32, shape, layout);
        local.back().fill(raw[b]);
      }
      std::vector<diffcoll_tensor_t> ld;
      for (const Tensor& t : local) ld.push_back(t.desc());
      Tensor out(DIFFCOLL_FLOAT32, shape, layout);
      diffcoll_tensor_t od = out.desc();
      CFG_OK(diffcoll_cfg_combine_parallel(comm, policy.p, ld.data(), 2, &od, 0, nullptr));
      diffcoll_stats_t st = DIFFCOLL_STATS_INIT;
      CFG_OK(diffcoll_comm_get_stats(comm, &st));
      EXPECT_EQ(st.ops, 1u);
      const uint64_t t = static_cast<uint64_t>(numel(shape)) * 4;
      if (layout == Layout::kContiguous) {
        EXPECT_EQ(st.bytes_packed, 0u);
        EXPECT_EQ(st.bytes_unpacked, 0u);
      } else {
        EXPECT_EQ(st.bytes_packed, 2 * t);
        EXPECT_EQ(st.bytes_unpacked, t);
      }
    }
  });
}

TEST(CfgParallel, BadInput) {
  const Shape shape = {2, 3, 4};
  PolicySpec s = policy_of(3);
  auto raw = make_preds(3, numel(shape), 1);
  run_ranks(2, [&](int rank, diffcoll_comm_t* comm) {
    Policy policy(s);
    std::vector<int32_t> mine = dispatch(policy.p, 2, rank);  // rank 0: {0}, rank 1: {1, 2}
    std::vector<Tensor> local;
    for (int32_t b : mine) {
      local.emplace_back(DIFFCOLL_BFLOAT16, shape);
      local.back().fill(raw[b]);
    }
    std::vector<diffcoll_tensor_t> ld;
    for (const Tensor& t : local) ld.push_back(t.desc());
    Tensor out(DIFFCOLL_BFLOAT16, shape);
    diffcoll_tensor_t od = out.desc();
    auto expect = [&](diffcoll_status_t want, const char* fragment, diffcoll_status_t got) {
      EXPECT_EQ(got, want) << "rank " << rank << ": " << fragment;
      const std::string msg = diffcoll_last_error();
      EXPECT_NE(msg.find(fragment), std::string::npos) << "rank " << rank << " message: " << msg;
    };
    // local_count does not match the dispatch (every rank errs, before any traffic).
    {
      std::vector<diffcoll_tensor_t> more = ld;
      more.push_back(ld[0]);
      expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "local_count is",
             diffcoll_cfg_combine_parallel(comm, policy.p, more.data(),
                                           static_cast<int32_t>(more.size()), &od, 0, nullptr));
      expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "local_count is 0",
             diffcoll_cfg_combine_parallel(comm, policy.p, nullptr, 0, &od, 0, nullptr));
      expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "local_preds is NULL",
             diffcoll_cfg_combine_parallel(comm, policy.p, nullptr, 1, &od, 0, nullptr));
    }
    // Shape mismatch between a branch and out.
    {
      Tensor wrong(DIFFCOLL_BFLOAT16, {2, 3, 5});
      std::vector<diffcoll_tensor_t> bad = ld;
      bad.back() = wrong.desc();
      expect(DIFFCOLL_ERR_INVALID_ARGUMENT, "same shape",
             diffcoll_cfg_combine_parallel(comm, policy.p, bad.data(),
                                           static_cast<int32_t>(bad.size()), &od, 0, nullptr));
    }
    // CUDA tensors on a communicator without a device side.
    {
      std::vector<diffcoll_tensor_t> dev = ld;
      for (auto& t : dev) t.device_type = DIFFCOLL_DEVICE_CUDA;
      diffcoll_tensor_t dout = od;
      dout.device_type = DIFFCOLL_DEVICE_CUDA;
      expect(DIFFCOLL_ERR_UNSUPPORTED, "CUDA",
             diffcoll_cfg_combine_parallel(comm, policy.p, dev.data(),
                                           static_cast<int32_t>(dev.size()), &dout, 0, nullptr));
    }
    // Handles.
    EXPECT_EQ(diffcoll_cfg_combine_parallel(nullptr, policy.p, ld.data(),
                                            static_cast<int32_t>(ld.size()), &od, 0, nullptr),
              DIFFCOLL_ERR_INVALID_HANDLE);
    {
      diffcoll_cfg_policy_t* gone = nullptr;
      ASSERT_EQ(s.create(&gone), DIFFCOLL_SUCCESS);
      diffcoll_cfg_policy_destroy(gone);
      expect(DIFFCOLL_ERR_INVALID_HANDLE, "already destroyed",
             diffcoll_cfg_combine_parallel(comm, gone, ld.data(), static_cast<int32_t>(ld.size()),
                                           &od, 0, nullptr));
    }
    // After all that the communicator and the policy still work.
    CFG_OK(diffcoll_cfg_combine_parallel(comm, policy.p, ld.data(), static_cast<int32_t>(ld.size()),
                                         &od, 0, nullptr));
  });
}

// With DIFFCOLL_CHECK, ranks that disagree on the step or the policy are
// told so (and nobody hangs); the communicator stays usable.
TEST(CfgParallel, CheckModeFindsDisagreement) {
  const Shape shape = {1, 6};
  auto raw = make_preds(2, numel(shape), 2);
  run_ranks(2, [&](int rank, diffcoll_comm_t* comm) {
    PolicySpec s = standard_cfg(5.0);
    Policy policy(s);
    PolicySpec other = standard_cfg(rank == 0 ? 5.0 : 6.0);
    Policy differs(other);
    Tensor mine(DIFFCOLL_FLOAT32, shape), out(DIFFCOLL_FLOAT32, shape);
    mine.fill(raw[rank]);
    diffcoll_tensor_t md = mine.desc(), od = out.desc();
    EXPECT_EQ(diffcoll_cfg_combine_parallel(comm, policy.p, &md, 1, &od, rank, nullptr),
              DIFFCOLL_ERR_MISMATCH) << diffcoll_last_error();
    EXPECT_NE(std::string(diffcoll_last_error()).find("cfg_combine_parallel"), std::string::npos);
    EXPECT_EQ(diffcoll_cfg_combine_parallel(comm, differs.p, &md, 1, &od, 0, nullptr),
              DIFFCOLL_ERR_MISMATCH) << diffcoll_last_error();
    CFG_OK(diffcoll_cfg_combine_parallel(comm, policy.p, &md, 1, &od, 0, nullptr));
    EXPECT_NEAR(out.get(0), raw[1][0] + 5.0 * (raw[0][0] - raw[1][0]), 1e-4);
  }, /*check=*/1);
}

}  // namespace
