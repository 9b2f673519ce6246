// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Distributed GroupNorm through the public API, ranks as threads (local://
// rendezvous): every rank's normalised slab must equal GroupNorm of the whole
// activation (group_norm_cases.h, in double) at the same places. Cases: 1-D
// chains of 1..5 ranks and 2-D grids, groups 1, 8, 32, bf16 and f32,
// contiguous / channels-last / gapped inputs and outputs, in place and not,
// affine in the input's dtype and in f32, batch 2, uneven and empty slabs,
// f16 and negative strides, an offset activation (mean >> std), bad input
// and DIFFCOLL_CHECK.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "group_norm_cases.h"

namespace {

using namespace gn_test;
using halo_test::run_ranks;

void run_all(int rows, int cols, const std::vector<Case>& cases, int check = 0) {
  std::vector<Reference> refs;
  for (size_t i = 0; i < cases.size(); ++i) refs.emplace_back(cases[i], 11 + i);
  run_ranks(
      rows * cols,
      [&](int r, diffcoll_comm_t* comm) {
        for (size_t i = 0; i < cases.size(); ++i) run_case(cases[i], refs[i], r, comm);
      },
      20000, check);
}

// ---- 1-D chains and 2-D grids ------------------------------------------------------

class Chain : public ::testing::TestWithParam<int> {};

TEST_P(Chain, MatchesWholeTensorGroupNorm) {
  run_all(GetParam(), 1, cases_for_grid(GetParam(), 1));
}

INSTANTIATE_TEST_SUITE_P(Ranks, Chain, ::testing::Range(1, 6),
                         [](const ::testing::TestParamInfo<int>& i) {
                           return "p" + std::to_string(i.param);
                         });

class Grid : public ::testing::TestWithParam<std::array<int, 2>> {};

TEST_P(Grid, MatchesWholeTensorGroupNorm) {
  const auto g = GetParam();
  run_all(g[0], g[1], cases_for_grid(g[0], g[1]));
}

INSTANTIATE_TEST_SUITE_P(Grids, Grid,
                         ::testing::Values(std::array<int, 2>{2, 2}, std::array<int, 2>{1, 3},
                                           std::array<int, 2>{2, 3}),
                         [](const ::testing::TestParamInfo<std::array<int, 2>>& i) {
                           return std::to_string(i.param[0]) + "x" + std::to_string(i.param[1]);
                         });

// ---- edge cases ----------------------------------------------------------------------

// More ranks than rows: ranks with an empty slab contribute nothing and still
// take part in the collective.
TEST(GroupNormEdges, EmptySlabsOnSomeRanks) {
  Case c;
  c.whole = {2, 16, 3, 4};
  c.groups = 8;
  c.affine = true;
  run_all(5, 1, {c});
  c.dtype = DIFFCOLL_BFLOAT16;
  c.in_layout = Layout::kChannelsLast;
  c.grid[0] = 2;
  c.grid[1] = 3;  // W = 4 over 3 columns, H = 3 over 2 rows
  run_all(2, 3, {c});
}

// An activation whose mean is far larger than its spread: var = E[x^2] -
// E[x]^2 in f32 would lose most digits here; the pairwise combine must not.
TEST(GroupNormEdges, OffsetActivationKeepsItsVariance) {
  Case c;
  c.whole = {1, 8, 40, 16};
  c.groups = 2;
  c.offset = 1000;
  c.tol = 3e-4;
  run_all(4, 1, {c});
}

// Ranks may hold their slabs in different layouts.
TEST(GroupNormEdges, RanksMayUseDifferentLayouts) {
  Case c;
  c.whole = {2, 16, 9, 5};
  c.groups = 4;
  c.affine = true;
  const Reference ref(c, 5);
  run_ranks(3, [&](int r, diffcoll_comm_t* comm) {
    Case mine = c;
    mine.grid[0] = 3;
    mine.in_layout = r == 0 ? Layout::kChannelsLast : r == 1 ? Layout::kGapped : Layout::kContiguous;
    run_case(mine, ref, r, comm);
  });
}

// float16 (the third dtype; the shared cases build bf16 and f32 tensors) and
// negative strides (W flipped), on a chain of 2 ranks.
TEST(GroupNormEdges, Float16AndFlippedViews) {
  for (int dtype : {DIFFCOLL_FLOAT16, DIFFCOLL_FLOAT32})
    run_ranks(2, [&](int r, diffcoll_comm_t* comm) { run_flipped_case(dtype, r, 2, comm); });
}

// ---- bad input ----------------------------------------------------------------------

diffcoll_tensor_t host_desc(void* data, int dtype, std::vector<int64_t> shape) {
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = dtype;
  t.device_type = DIFFCOLL_DEVICE_CPU;
  t.ndim = static_cast<int32_t>(shape.size());
  int64_t s = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    t.shape[d] = shape[d];
    t.strides[d] = s;
    s *= shape[d];
  }
  return t;
}

void expect_error(diffcoll_status_t got, diffcoll_status_t want, const char* words) {
  EXPECT_EQ(got, want) << diffcoll_last_error();
  EXPECT_NE(std::string(diffcoll_last_error()).find(words), std::string::npos)
      << "message: " << diffcoll_last_error();
}

TEST(GroupNormErrors, BadInputGetsAStatusAndAMessage) {
  run_ranks(1, [](int, diffcoll_comm_t* comm) {
    std::vector<float> x(2 * 12 * 5 * 5, 1.f), y(x.size(), 7.f), w(12), w13(13);
    std::vector<uint16_t> wb(12);
    diffcoll_tensor_t in = host_desc(x.data(), DIFFCOLL_FLOAT32, {2, 12, 5, 5});
    diffcoll_tensor_t out = host_desc(y.data(), DIFFCOLL_FLOAT32, {2, 12, 5, 5});
    diffcoll_tensor_t weight = host_desc(w.data(), DIFFCOLL_FLOAT32, {12});
    const diffcoll_status_t inval = DIFFCOLL_ERR_INVALID_ARGUMENT;

    expect_error(diffcoll_group_norm(comm, &in, nullptr, nullptr, nullptr, 5, 1e-5, nullptr),
                 inval, "not divisible by num_groups 5");
    expect_error(diffcoll_group_norm(comm, &in, nullptr, nullptr, nullptr, 0, 1e-5, nullptr),
                 inval, "num_groups 0");
    expect_error(diffcoll_group_norm(comm, &in, nullptr, nullptr, nullptr, 3, -1, nullptr), inval,
                 "eps");
    diffcoll_tensor_t w_bad = host_desc(w13.data(), DIFFCOLL_FLOAT32, {13});
    expect_error(diffcoll_group_norm(comm, &in, nullptr, &w_bad, nullptr, 3, 1e-5, nullptr),
                 inval, "must have shape [12]");
    diffcoll_tensor_t w_2d = host_desc(w.data(), DIFFCOLL_FLOAT32, {3, 4});
    expect_error(diffcoll_group_norm(comm, &in, nullptr, nullptr, &w_2d, 3, 1e-5, nullptr), inval,
                 "bias");
    diffcoll_tensor_t w_bf16 = host_desc(wb.data(), DIFFCOLL_BFLOAT16, {12});
    expect_error(diffcoll_group_norm(comm, &in, nullptr, &w_bf16, nullptr, 3, 1e-5, nullptr),
                 inval, "must be float32 or the input's dtype");
    diffcoll_tensor_t out_bf16 = host_desc(y.data(), DIFFCOLL_BFLOAT16, {2, 12, 5, 5});
    expect_error(diffcoll_group_norm(comm, &in, &out_bf16, nullptr, nullptr, 3, 1e-5, nullptr),
                 inval, "output is bfloat16 but input is float32");
    diffcoll_tensor_t out_shape = host_desc(y.data(), DIFFCOLL_FLOAT32, {2, 12, 5, 4});
    expect_error(diffcoll_group_norm(comm, &in, &out_shape, nullptr, nullptr, 3, 1e-5, nullptr),
                 inval, "does not have the shape");
    diffcoll_tensor_t shifted = host_desc(x.data() + 1, DIFFCOLL_FLOAT32, {2, 12, 5, 5});
    expect_error(diffcoll_group_norm(comm, &in, &shifted, nullptr, nullptr, 3, 1e-5, nullptr),
                 inval, "overlaps input");
    diffcoll_tensor_t ints = host_desc(x.data(), DIFFCOLL_INT32, {2, 12, 5, 5});
    expect_error(diffcoll_group_norm(comm, &ints, nullptr, nullptr, nullptr, 3, 1e-5, nullptr),
                 inval, "float16, bfloat16 or float32");
    diffcoll_tensor_t flat1 = host_desc(x.data(), DIFFCOLL_FLOAT32, {12});
    expect_error(diffcoll_group_norm(comm, &flat1, nullptr, nullptr, nullptr, 3, 1e-5, nullptr),
                 inval, "at least 2 dimensions");
    diffcoll_tensor_t on_gpu = in;
    on_gpu.device_type = DIFFCOLL_DEVICE_CUDA;
    diffcoll_tensor_t out_gpu = out;
    out_gpu.device_type = DIFFCOLL_DEVICE_CUDA;
    EXPECT_EQ(diffcoll_group_norm(comm, &on_gpu, &out_gpu, nullptr, nullptr, 3, 1e-5, nullptr),
              DIFFCOLL_ERR_UNSUPPORTED)
        << diffcoll_last_error();
    expect_error(diffcoll_group_norm(comm, &in, &out_gpu, nullptr, nullptr, 3, 1e-5, nullptr),
                 inval, "different devices");
    expect_error(diffcoll_group_norm(nullptr, &in, nullptr, nullptr, nullptr, 3, 1e-5, nullptr),
                 DIFFCOLL_ERR_INVALID_HANDLE, "comm");
    expect_error(diffcoll_group_norm(comm, nullptr, nullptr, nullptr, nullptr, 3, 1e-5, nullptr),
                 inval, "input");
    // Nothing was written by the failed calls; a good call still works.
    for (float v : y) ASSERT_EQ(v, 7.f);
    EXPECT_EQ(diffcoll_group_norm(comm, &in, &out, &weight, nullptr, 3, 1e-5, nullptr),
              DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    for (float v : y) ASSERT_EQ(v, 0.f);  // constant input, weight 0, no bias: exactly 0
  });
}

// With DIFFCOLL_CHECK, ranks that disagree on the groups all fail at once.
TEST(GroupNormErrors, MismatchedGroupsAreReportedUnderCheck) {
  run_ranks(
      2,
      [](int r, diffcoll_comm_t* comm) {
        std::vector<float> x(1 * 8 * 3 * 4, 1.f);
        diffcoll_tensor_t in = host_desc(x.data(), DIFFCOLL_FLOAT32, {1, 8, 3, 4});
        EXPECT_EQ(diffcoll_group_norm(comm, &in, nullptr, nullptr, nullptr, r == 0 ? 4 : 2, 1e-5,
                                      nullptr),
                  DIFFCOLL_ERR_MISMATCH)
            << diffcoll_last_error();
      },
      20000, /*check=*/1);
}

}  // namespace
