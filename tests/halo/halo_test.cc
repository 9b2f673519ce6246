// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Halo exchange through the public API, ranks as threads (local:// rendezvous).
//
// The reference is the whole tensor padded once by the boundary modes, written
// plainly here: every element of every rank's padded slab after the exchange
// must equal the matching element of the padded whole tensor, and a 2-D (for
// 4-D tensors) or 3-D (5-D tensors) convolution with kernel 3 or 5 of each
// padded slab must equal, row for row, the convolution of the padded whole.
// Cases: every boundary mode and some mixes, 1-D chains of 1..8 ranks, 2-D
// grids 1x2, 2x2 and 2x3, uneven slabs, halo widths 0..3 (symmetric, causal,
// asymmetric), contiguous / channels-last / channels-last-3d / gapped
// layouts, split along H, W or T, bf16 and f32.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "halo_cases.h"

namespace {

using namespace halo_test;

// ---- 1-D chains -----------------------------------------------------------------

class Chain : public ::testing::TestWithParam<int> {};

TEST_P(Chain, MatchesWholeTensorPaddingAndConvolution) {
  const int p = GetParam();
  const std::vector<Case> cases = chain_cases(p);
  run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 0;
    for (const Case& c : cases) run_case(c, r, comm, ++salt);
  });
}

INSTANTIATE_TEST_SUITE_P(Ranks, Chain, ::testing::Range(1, 9),
                         [](const ::testing::TestParamInfo<int>& i) {
                           return "p" + std::to_string(i.param);
                         });

// ---- 2-D grids ------------------------------------------------------------------

class Grid : public ::testing::TestWithParam<std::array<int, 2>> {};

TEST_P(Grid, MatchesWholeTensorPaddingAndConvolution) {
  const auto g = GetParam();
  const std::vector<Case> cases = grid_cases(g[0], g[1]);
  run_ranks(g[0] * g[1], [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 100;
    for (const Case& c : cases) run_case(c, r, comm, ++salt);
  });
}

INSTANTIATE_TEST_SUITE_P(Grids, Grid,
                         ::testing::Values(std::array<int, 2>{2, 2}, std::array<int, 2>{2, 3},
                                           std::array<int, 2>{1, 2}, std::array<int, 2>{3, 1}),
                         [](const ::testing::TestParamInfo<std::array<int, 2>>& i) {
                           return std::to_string(i.param[0]) + "x" + std::to_string(i.param[1]);
                         });

// ---- DIFFCOLL_CHECK ------------------------------------------------------------

// The cross-rank checks accept every valid case (uneven slabs, every layout).
TEST(HaloChecked, ValidCasesPassUnderDiffcollCheck) {
  const std::vector<Case> chain = chain_cases(3);
  run_ranks(
      3,
      [&](int r, diffcoll_comm_t* comm) {
        uint64_t salt = 700;
        for (size_t i = 0; i < chain.size(); i += 3) run_case(chain[i], r, comm, ++salt);
      },
      20000, /*check=*/1);
  const std::vector<Case> grid = grid_cases(2, 3);
  run_ranks(
      6,
      [&](int r, diffcoll_comm_t* comm) {
        uint64_t salt = 800;
        for (size_t i = 0; i < grid.size(); i += 5) run_case(grid[i], r, comm, ++salt);
      },
      20000, /*check=*/1);
}

// ---- what moves, by the pack counters --------------------------------------------

// Channels-last rows of a batch-1 activation split along H are contiguous in
// memory: every transfer goes from and into the caller's memory, and the
// boundary fills are raw copies and memsets, so nothing is packed at all.
TEST(HaloStats, DenseSlabsMoveWithoutPacking) {
  for (int p : {1, 3}) {
    run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
      uint64_t salt = 1000;
      for (int mode : {Z, REP, REF, CIRC, U})
        for (std::array<int, 2> w : {std::array<int, 2>{1, 1}, {2, 1}, {3, 0}}) {
          Case c;
          c.grid[0] = p;
          c.whole = {1, 4, 4 * p + 2, 6};
          c.layout = Layout::kChannelsLast;
          c.dtype = DIFFCOLL_BFLOAT16;
          c.dim[0] = 2;
          c.before[0] = w[0];
          c.after[0] = w[1];
          c.mode_before[0] = c.mode_after[0] = mode;
          const diffcoll_stats_t s = run_case(c, r, comm, ++salt);
          EXPECT_EQ(s.bytes_packed, 0u) << "rank " << r << " " << c.name();
          EXPECT_EQ(s.bytes_unpacked, 0u) << "rank " << r << " " << c.name();
          EXPECT_EQ(s.ops, 1u);
        }
    });
  }
}

// With gaps between the rows (NCHW, C > 1) every block is packed, and exactly
// the rows some neighbour needs: the interior is never copied and a rank at an
// end of the chain packs nothing toward the missing side.
TEST(HaloStats, BoundaryRanksPackNothingTowardTheMissingSide) {
  const int p = 4;
  run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 2000;
    for (int mode : {Z, U, REP})
      for (std::array<int, 2> w : {std::array<int, 2>{1, 1}, {2, 1}, {2, 0}}) {
        Case c;
        c.grid[0] = p;
        c.whole = {1, 3, 4 * p + 1, 5};
        c.layout = Layout::kContiguous;
        c.dim[0] = 2;
        c.before[0] = w[0];
        c.after[0] = w[1];
        c.mode_before[0] = c.mode_after[0] = mode;
        const diffcoll_stats_t s = run_case(c, r, comm, ++salt);
        const uint64_t row = 1 * 3 * 5 * 4;  // bytes of one f32 row of [1,3,.,5]
        // Toward the rank before: its `after` rows; toward the rank after: its `before` rows.
        const uint64_t sent = (r > 0 ? w[1] : 0) * row + (r < p - 1 ? w[0] : 0) * row;
        // REPLICATE fills pack one edge row per halo row on the ranks at the ends.
        const uint64_t fill =
            mode == REP ? ((r == 0 ? w[0] : 0) + (r == p - 1 ? w[1] : 0)) * row : 0;
        EXPECT_EQ(s.bytes_packed, sent + fill) << "rank " << r << " " << c.name();
        if (mode == U) {  // received rows only
          const uint64_t got = (r > 0 ? w[0] : 0) * row + (r < p - 1 ? w[1] : 0) * row;
          EXPECT_EQ(s.bytes_unpacked, got) << "rank " << r << " " << c.name();
        }
      }
  });
}

// A 2-D grid packs its edges and corners: exactly the blocks the neighbours
// and the diagonal neighbours need.
TEST(HaloStats, GridPacksExactlyTheBlocksItsNeighboursNeed) {
  run_ranks(4, [&](int r, diffcoll_comm_t* comm) {
    Case c;
    c.grid[0] = c.grid[1] = 2;
    c.whole = {1, 2, 9, 11};
    c.dim[0] = 2;
    c.dim[1] = 3;
    c.before[0] = 2;
    c.after[0] = 1;
    c.before[1] = 1;
    c.after[1] = 3;
    c.mode_before[0] = c.mode_after[0] = c.mode_before[1] = c.mode_after[1] = U;
    const diffcoll_stats_t s = run_case(c, r, comm, 3000);
    const int rr = r / 2, rc = r % 2;
    const int64_t rows = rr == 0 ? 5 : 4, cols = rc == 0 ? 6 : 5;  // interior
    // The neighbour below wants `before` rows (2), the one above `after` rows (1).
    const int64_t row_w = rr == 0 ? 2 : 1, col_w = rc == 0 ? 1 : 3;
    const uint64_t elems = row_w * cols + rows * col_w + row_w * col_w;
    EXPECT_EQ(s.bytes_packed, elems * 2 * 4) << "rank " << r;
    // And it receives its own halo: after rows (1) or before rows (2), and so on.
    const int64_t in_row_w = rr == 0 ? 1 : 2, in_col_w = rc == 0 ? 3 : 1;
    const uint64_t in_elems = in_row_w * cols + rows * in_col_w + in_row_w * in_col_w;
    EXPECT_EQ(s.bytes_unpacked, in_elems * 2 * 4) << "rank " << r;
  });
}

// ---- exchange_into --------------------------------------------------------------

TEST(HaloInto, CopiesTheSlabIntoTheInteriorThenExchanges) {
  run_ranks(3, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 500;
    for (Layout layout : {Layout::kContiguous, Layout::kChannelsLast, Layout::kGapped})
      for (int mode : {Z, REP, REF, CIRC, U}) {
        Case c;
        c.grid[0] = 3;
        c.whole = {1, 2, 14, 5};
        c.layout = layout;
        c.dim[0] = 2;
        c.before[0] = 2;
        c.after[0] = 1;
        c.mode_before[0] = c.mode_after[0] = mode;
        run_case(c, r, comm, ++salt, /*into=*/true);
      }
    // A 2-D one.
    (void)r;
  });
  run_ranks(4, [&](int r, diffcoll_comm_t* comm) {
    Case c;
    c.grid[0] = c.grid[1] = 2;
    c.whole = {1, 2, 3, 9, 10};
    c.layout = Layout::kChannelsLast;
    c.axis_arg[0] = -2;
    c.axis_arg[1] = -1;
    c.dim[0] = 3;
    c.dim[1] = 4;
    c.before[0] = c.after[0] = c.before[1] = c.after[1] = 1;
    c.mode_before[0] = c.mode_after[0] = REF;
    c.mode_before[1] = c.mode_after[1] = CIRC;
    run_case(c, r, comm, 900, /*into=*/true);
  });
}

// A slab into a padded buffer of another layout: one strided pass (here a
// gather straight into the interior, which is one contiguous run in
// channels-last), and the halo rows (contiguous too) move with no pack.
TEST(HaloInto, SlabOfAnotherLayoutIsCopiedInOnePass) {
  run_ranks(2, [&](int r, diffcoll_comm_t* comm) {
    Case c;
    c.grid[0] = 2;
    c.whole = {1, 3, 10, 4};
    c.layout = Layout::kChannelsLast;
    c.dim[0] = 2;
    c.before[0] = c.after[0] = 1;
    c.mode_before[0] = c.mode_after[0] = REP;
    const diffcoll_stats_t s = run_case(c, r, comm, 950, /*into=*/true);
    EXPECT_EQ(s.bytes_packed + s.bytes_unpacked, 1u * 3 * 5 * 4 * 4);  // the slab, once
    // NCHW (C > 1): the contiguous slab is unpacked into the interior once;
    // the row the neighbour needs and the edge row REPLICATE repeats are packed.
    c.layout = Layout::kContiguous;
    const diffcoll_stats_t t = run_case(c, r, comm, 951, /*into=*/true);
    const uint64_t row = 1u * 3 * 1 * 4 * 4;
    EXPECT_EQ(t.bytes_packed, 2 * row);
    EXPECT_EQ(t.bytes_unpacked, 5 * row + 2 * row);  // the slab; the received and filled rows
  });
}

TEST(HaloInto, InputThatIsTheInteriorIsNotCopied) {
  run_ranks(2, [&](int r, diffcoll_comm_t* comm) {
    diffcoll_halo_config_t cfg = DIFFCOLL_HALO_CONFIG_INIT;
    diffcoll_halo_plan_t* plan = nullptr;
    HALO_ASSERT_OK(diffcoll_halo_plan_create(comm, &cfg, &plan));
    Tensor padded(DIFFCOLL_FLOAT32, {1, 3, 6, 4}, Layout::kChannelsLast);
    padded.fill([&](const Index& i) { return i[2] == 0 || i[2] == 5 ? kSentinel : r * 10 + i[2]; });
    diffcoll_tensor_t d = padded.desc();
    diffcoll_tensor_t interior = d;
    interior.shape[2] = 4;
    interior.data = static_cast<char*>(d.data) + d.strides[2] * 4;
    HALO_EXPECT_OK(diffcoll_comm_reset_stats(comm));
    HALO_EXPECT_OK(diffcoll_halo_exchange_into(plan, &interior, &d, nullptr));
    diffcoll_stats_t s = stats_of(comm);
    EXPECT_EQ(s.bytes_packed, 0u);
    EXPECT_EQ(s.bytes_unpacked, 0u);
    // Rank 0's after halo is rank 1's first row, rank 1's before halo rank 0's last.
    EXPECT_EQ(padded.get({0, 1, r == 0 ? 5 : 0, 2}), r == 0 ? 11 : 4);
    EXPECT_EQ(padded.get({0, 1, r == 0 ? 0 : 5, 2}), 0);  // ZEROS at the ends

    // An input that overlaps the output elsewhere is refused.
    diffcoll_tensor_t shifted = interior;
    shifted.data = d.data;
    EXPECT_EQ(diffcoll_halo_exchange_into(plan, &shifted, &d, nullptr),
              DIFFCOLL_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(diffcoll_last_error()).find("overlaps"), std::string::npos)
        << diffcoll_last_error();
    // So is one whose shape is not the interior's.
    Tensor wrong(DIFFCOLL_FLOAT32, {1, 3, 5, 4}, Layout::kContiguous);
    diffcoll_tensor_t wd = wrong.desc();
    EXPECT_EQ(diffcoll_halo_exchange_into(plan, &wd, &d, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
    HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
  });
}

}  // namespace
