// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Fused all-reduce + residual + RMSNorm on host tensors (the reference path),
// through the public API, ranks as threads; every result is checked against
// a single-process reference computed from all ranks' data.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fused_norm_support.h"

namespace {

using fn_test::Forms;
using fn_test::Rows;

constexpr float kEps = 1e-6f;

// One call on this rank of a group whose ranks are `group` (global ranks),
// checked against the reference.
void run_and_check(diffcoll_fused_norm_workspace_t* ws, int global_rank,
                   const std::vector<int>& group, int64_t tokens, int64_t hidden, int dtype,
                   const Forms& f = Forms()) {
  const std::string what = fn_test::case_name(tokens, hidden, dtype);
  Rows x(dtype, tokens, hidden), residual(dtype, tokens, hidden), weight(dtype, 1, hidden);
  Rows y(dtype, tokens, hidden), residual_out(dtype, tokens, hidden);
  x.fill([&](int64_t i) { return fn_test::x_value(global_rank, i); });
  residual.fill(fn_test::residual_value);
  weight.fill(fn_test::weight_value);
  y.fill([](int64_t) { return 99.0; });
  residual_out.fill([](int64_t) { return 99.0; });

  diffcoll_tensor_t xd = x.desc(), rd = residual.desc(), wd = weight.desc_1d();
  diffcoll_tensor_t yd = f.in_place_y ? x.desc() : y.desc();
  diffcoll_tensor_t rod = f.in_place_residual ? residual.desc() : residual_out.desc();
  DC_ASSERT_OK(diffcoll_fused_norm(ws, &xd, f.residual ? &rd : nullptr,
                                   f.weight ? &wd : nullptr, kEps, &yd,
                                   f.residual_out ? &rod : nullptr, nullptr, nullptr));

  fn_test::Expected e = fn_test::reference(group, tokens, hidden, f.residual, f.weight, kEps);
  const Rows& got_y = f.in_place_y ? x : y;
  EXPECT_EQ(fn_test::compare(got_y, e.y, fn_test::tolerance(dtype)), "") << what << " y";
  if (f.residual_out) {
    const Rows& got_r = f.in_place_residual ? residual : residual_out;
    EXPECT_EQ(fn_test::compare(got_r, e.residual_out, 0), "") << what << " residual_out";
  } else {
    EXPECT_EQ(residual_out.get(0), 99.0) << what << ": residual_out was written";
  }
  if (!f.in_place_y) {  // x is read only
    for (int64_t i = 0; i < x.size(); i += 97)
      ASSERT_EQ(x.get(i), fn_test::x_value(global_rank, i)) << what << " x changed at " << i;
  }
}

std::vector<int> iota(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

class FusedNormHost : public ::testing::TestWithParam<int> {};

// Every token count and hidden size of the issue on a group of 2.
TEST_P(FusedNormHost, WorldOfTwoAllShapes) {
  const int dtype = GetParam();
  dct::run_ranks(2, [&](int rank, diffcoll_comm_t* comm) {
    diffcoll_fused_norm_workspace_t* ws = nullptr;
    DC_ASSERT_OK(diffcoll_fused_norm_workspace_create(comm, 1000, 5120, dtype, &ws));
    for (int64_t tokens : {1, 7, 128, 1000})
      for (int64_t hidden : {2048, 3072, 5120})
        run_and_check(ws, rank, iota(2), tokens, hidden, dtype);
    DC_EXPECT_OK(diffcoll_fused_norm_workspace_destroy(ws));
  });
}

TEST_P(FusedNormHost, WorldOfFour) {
  const int dtype = GetParam();
  dct::run_ranks(4, [&](int rank, diffcoll_comm_t* comm) {
    diffcoll_fused_norm_workspace_t* ws = nullptr;
    DC_ASSERT_OK(diffcoll_fused_norm_workspace_create(comm, 8192, 5120, dtype, &ws));
    for (int64_t tokens : {1, 7, 128, 1000}) run_and_check(ws, rank, iota(4), tokens, 3072, dtype);
    run_and_check(ws, rank, iota(4), 8192, 64, dtype);  // many tokens, small rows: fast
    DC_EXPECT_OK(diffcoll_fused_norm_workspace_destroy(ws));
  });
}

// A split of a world of 4 into {0, 2} and {1, 3}: each pair reduces its own.
TEST_P(FusedNormHost, SplitSubgroup) {
  const int dtype = GetParam();
  dct::run_ranks(4, [&](int rank, diffcoll_comm_t* world) {
    diffcoll_comm_t* pair = nullptr;
    DC_ASSERT_OK(diffcoll_comm_split(world, rank % 2, rank, &pair));
    diffcoll_fused_norm_workspace_t* ws = nullptr;
    DC_ASSERT_OK(diffcoll_fused_norm_workspace_create(pair, 128, 5120, dtype, &ws));
    const std::vector<int> group = {rank % 2, rank % 2 + 2};
    run_and_check(ws, rank, group, 7, 5120, dtype);
    run_and_check(ws, rank, group, 128, 2048, dtype);
    DC_EXPECT_OK(diffcoll_fused_norm_workspace_destroy(ws));
    DC_EXPECT_OK(diffcoll_comm_destroy(pair));
  });
}

// A listed subset {3, 1, 2} of a world of 4; rank 0 is not in it.
TEST_P(FusedNormHost, ListedSubset) {
  const int dtype = GetParam();
  dct::run_ranks(4, [&](int rank, diffcoll_comm_t* world) {
    const int32_t members[] = {3, 1, 2};
    diffcoll_comm_t* group = nullptr;
    DC_ASSERT_OK(diffcoll_comm_create_group(world, members, 3, &group));
    if (rank == 0) {
      EXPECT_EQ(group, nullptr);
      return;
    }
    diffcoll_fused_norm_workspace_t* ws = nullptr;
    DC_ASSERT_OK(diffcoll_fused_norm_workspace_create(group, 128, 3072, dtype, &ws));
    run_and_check(ws, rank, {3, 1, 2}, 1, 3072, dtype);
    run_and_check(ws, rank, {3, 1, 2}, 128, 3072, dtype);
    DC_EXPECT_OK(diffcoll_fused_norm_workspace_destroy(ws));
    DC_EXPECT_OK(diffcoll_comm_destroy(group));
  });
}

// In place, and the no-residual / no-weight / no-residual_out forms.
TEST_P(FusedNormHost, Forms) {
  const int dtype = GetParam();
  dct::run_ranks(2, [&](int rank, diffcoll_comm_t* comm) {
    diffcoll_fused_norm_workspace_t* ws = nullptr;
    DC_ASSERT_OK(diffcoll_fused_norm_workspace_create(comm, 64, 2048, dtype, &ws));
    for (const Forms& f : fn_test::optional_forms())
      run_and_check(ws, rank, iota(2), 7, 2048, dtype, f);
    // A narrower dtype than the workspace's also fits.
    if (dtype == DIFFCOLL_FLOAT32) run_and_check(ws, rank, iota(2), 64, 2048, DIFFCOLL_BFLOAT16);
    DC_EXPECT_OK(diffcoll_fused_norm_workspace_destroy(ws));
  });
}

INSTANTIATE_TEST_SUITE_P(Dtypes, FusedNormHost,
                         ::testing::Values(DIFFCOLL_BFLOAT16, DIFFCOLL_FLOAT16, DIFFCOLL_FLOAT32),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(dct::dtype_str(info.param));
                         });

// Rounding is to the dtype: residual_out as stored feeds the norm, so a
// residual that rounds away in bf16 is not seen by y either.
TEST(FusedNormHostNumerics, NormOfStoredResidual) {
  dct::run_ranks(2, [&](int rank, diffcoll_comm_t* comm) {
    diffcoll_fused_norm_workspace_t* ws = nullptr;
    DC_ASSERT_OK(diffcoll_fused_norm_workspace_create(comm, 1, 4, DIFFCOLL_BFLOAT16, &ws));
    Rows x(DIFFCOLL_BFLOAT16, 1, 4), res(DIFFCOLL_BFLOAT16, 1, 4), y(DIFFCOLL_BFLOAT16, 1, 4);
    x.fill([&](int64_t) { return rank == 0 ? 128.0 : 0.0; });
    res.fill([](int64_t i) { return i == 0 ? 0.5 : 0.0; });  // 128.5 rounds to 128 in bf16
    diffcoll_tensor_t xd = x.desc(), rd = res.desc(), yd = y.desc();
    DC_ASSERT_OK(diffcoll_fused_norm(ws, &xd, &rd, nullptr, 0.0f, &yd, &rd, nullptr, nullptr));
    for (int64_t i = 0; i < 4; ++i) {
      EXPECT_EQ(res.get(i), 128.0) << i;
      EXPECT_EQ(y.get(i), 1.0) << i;  // 128 / sqrt(mean(128^2))
    }
    DC_EXPECT_OK(diffcoll_fused_norm_workspace_destroy(ws));
  });
}

}  // namespace
