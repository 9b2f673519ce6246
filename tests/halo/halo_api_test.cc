// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The halo API's edges: config validation, bad tensors, halos wider than a
// neighbour's slab, destroyed handles, DIFFCOLL_CHECK; and the slab helpers
// diffcoll_split_extent and diffcoll_gather_slabs.
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "halo_support.h"

namespace {

using namespace halo_test;

bool has(const char* message, const char* part) {
  return std::string(message).find(part) != std::string::npos;
}

// ---- diffcoll_split_extent -------------------------------------------------------

TEST(SplitExtent, FirstSlabsTakeTheRemainder) {
  int64_t start = -1, length = -1;
  const int64_t expected[3][2] = {{0, 4}, {4, 3}, {7, 3}};
  for (int i = 0; i < 3; ++i) {
    HALO_ASSERT_OK(diffcoll_split_extent(10, 3, i, &start, &length));
    EXPECT_EQ(start, expected[i][0]);
    EXPECT_EQ(length, expected[i][1]);
  }
  // Fewer rows than parts: the last slabs are empty.
  const int64_t few[4][2] = {{0, 1}, {1, 1}, {2, 0}, {2, 0}};
  for (int i = 0; i < 4; ++i) {
    HALO_ASSERT_OK(diffcoll_split_extent(2, 4, i, &start, &length));
    EXPECT_EQ(start, few[i][0]);
    EXPECT_EQ(length, few[i][1]);
  }
  // Slabs tile the extent, lengths differ by at most one, longer ones first.
  for (int64_t extent = 0; extent < 40; ++extent)
    for (int parts = 1; parts <= 9; ++parts) {
      int64_t next = 0, previous = INT64_MAX;
      for (int i = 0; i < parts; ++i) {
        HALO_ASSERT_OK(diffcoll_split_extent(extent, parts, i, &start, &length));
        EXPECT_EQ(start, next);
        EXPECT_LE(length, previous);
        EXPECT_LE(length, (extent + parts - 1) / parts);
        EXPECT_GE(length, extent / parts);
        next = start + length;
        previous = length;
      }
      EXPECT_EQ(next, extent);
    }
}

TEST(SplitExtent, RejectsBadArguments) {
  int64_t start, length;
  EXPECT_EQ(diffcoll_split_extent(10, 0, 0, &start, &length), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_split_extent(10, 3, 3, &start, &length), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_split_extent(10, 3, -1, &start, &length), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_split_extent(-1, 3, 0, &start, &length), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_split_extent(10, 3, 0, nullptr, &length), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(diffcoll_split_extent(10, 3, 0, &start, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
}

// ---- plan creation ----------------------------------------------------------------

TEST(HaloPlan, CreateValidatesTheConfig) {
  run_ranks(2, [&](int, diffcoll_comm_t* comm) {
    auto expect_bad = [&](diffcoll_halo_config_t cfg, diffcoll_status_t status, const char* part) {
      diffcoll_halo_plan_t* plan = reinterpret_cast<diffcoll_halo_plan_t*>(0x1);
      EXPECT_EQ(diffcoll_halo_plan_create(comm, &cfg, &plan), status) << part;
      EXPECT_EQ(plan, nullptr);
      EXPECT_TRUE(has(diffcoll_last_error(), part)) << diffcoll_last_error();
    };
    diffcoll_halo_config_t cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.grid_rows = 3;
    expect_bad(cfg, DIFFCOLL_ERR_INVALID_ARGUMENT, "3 x 1");
    cfg.grid_rows = cfg.grid_cols = 2000000000;  // the product overflows 32 bits (a fuzz finding)
    expect_bad(cfg, DIFFCOLL_ERR_INVALID_ARGUMENT, "4000000000000000000 ranks");
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.grid_cols = 3;
    expect_bad(cfg, DIFFCOLL_ERR_INVALID_ARGUMENT, "multiple of grid_cols");
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.grid_cols = 0;
    expect_bad(cfg, DIFFCOLL_ERR_INVALID_ARGUMENT, "grid_cols");
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.grid_rows = -1;
    expect_bad(cfg, DIFFCOLL_ERR_INVALID_ARGUMENT, "grid_rows");
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.row_before = -1;
    expect_bad(cfg, DIFFCOLL_ERR_INVALID_ARGUMENT, ">= 0");
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.col_after = -2;
    expect_bad(cfg, DIFFCOLL_ERR_INVALID_ARGUMENT, ">= 0");
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.row_boundary_after = 9;
    expect_bad(cfg, DIFFCOLL_ERR_INVALID_ARGUMENT, "diffcoll_halo_boundary_t");
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.row_boundary_before = DIFFCOLL_HALO_CIRCULAR;
    expect_bad(cfg, DIFFCOLL_ERR_INVALID_ARGUMENT, "one end only");
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.col_before = 1;
    cfg.col_axis = -2;
    expect_bad(cfg, DIFFCOLL_ERR_INVALID_ARGUMENT, "two axes");
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.row_axis = 8;
    expect_bad(cfg, DIFFCOLL_ERR_INVALID_ARGUMENT, "row_axis 8");
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.exchange_corners = 2;
    expect_bad(cfg, DIFFCOLL_ERR_INVALID_ARGUMENT, "exchange_corners");
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.struct_size = 4;
    expect_bad(cfg, DIFFCOLL_ERR_VERSION, "DIFFCOLL_HALO_CONFIG_INIT");

    diffcoll_halo_plan_t* plan = nullptr;
    EXPECT_EQ(diffcoll_halo_plan_create(comm, nullptr, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(diffcoll_halo_plan_create(nullptr, nullptr, &plan), DIFFCOLL_ERR_INVALID_HANDLE);
    // NULL config: the defaults; a grid of 1 x 2 over two ranks is fine too.
    HALO_EXPECT_OK(diffcoll_halo_plan_create(comm, nullptr, &plan));
    HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
    cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.grid_rows = 1;
    cfg.grid_cols = 2;
    HALO_EXPECT_OK(diffcoll_halo_plan_create(comm, &cfg, &plan));
    HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
  });
}

TEST(HaloPlan, DestroyedPlansAndCommunicatorsAreReported) {
  run_ranks(1, [&](int, diffcoll_comm_t* comm) {
    Tensor t(DIFFCOLL_FLOAT32, {1, 2, 6, 4}, Layout::kContiguous);
    diffcoll_tensor_t d = t.desc();
    diffcoll_halo_plan_t* plan = nullptr;
    HALO_ASSERT_OK(diffcoll_halo_plan_create(comm, nullptr, &plan));
    HALO_EXPECT_OK(diffcoll_halo_exchange(plan, &d, nullptr));
    HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
    EXPECT_EQ(diffcoll_halo_exchange(plan, &d, nullptr), DIFFCOLL_ERR_INVALID_HANDLE);
    EXPECT_TRUE(has(diffcoll_last_error(), "destroyed")) << diffcoll_last_error();
    EXPECT_EQ(diffcoll_halo_exchange_into(plan, &d, &d, nullptr), DIFFCOLL_ERR_INVALID_HANDLE);
    EXPECT_EQ(diffcoll_halo_plan_destroy(plan), DIFFCOLL_ERR_INVALID_HANDLE);
    HALO_EXPECT_OK(diffcoll_halo_plan_destroy(nullptr));
    EXPECT_EQ(diffcoll_halo_exchange(nullptr, &d, nullptr), DIFFCOLL_ERR_INVALID_HANDLE);
    // A plan is not a communicator, nor a communicator a plan.
    HALO_ASSERT_OK(diffcoll_halo_plan_create(comm, nullptr, &plan));
    int32_t size = 0;
    EXPECT_EQ(diffcoll_comm_size(reinterpret_cast<diffcoll_comm_t*>(plan), &size),
              DIFFCOLL_ERR_INVALID_HANDLE);
    EXPECT_EQ(diffcoll_halo_exchange(reinterpret_cast<diffcoll_halo_plan_t*>(comm), &d, nullptr),
              DIFFCOLL_ERR_INVALID_HANDLE);
    HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
  });
  // The communicator destroyed under a plan.
  diffcoll_comm_t* comm = nullptr;
  diffcoll_config_t cfg = DIFFCOLL_CONFIG_INIT;
  const std::string rv = "local://" + unique_name("lone");
  HALO_ASSERT_OK(diffcoll_comm_create(rv.c_str(), 0, 1, &cfg, &comm));
  diffcoll_halo_plan_t* plan = nullptr;
  HALO_ASSERT_OK(diffcoll_halo_plan_create(comm, nullptr, &plan));
  HALO_ASSERT_OK(diffcoll_comm_destroy(comm));
  Tensor t(DIFFCOLL_FLOAT32, {1, 2, 6, 4}, Layout::kContiguous);
  diffcoll_tensor_t d = t.desc();
  EXPECT_EQ(diffcoll_halo_exchange(plan, &d, nullptr), DIFFCOLL_ERR_INVALID_HANDLE);
  EXPECT_TRUE(has(diffcoll_last_error(), "communicator was destroyed")) << diffcoll_last_error();
  HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
}

// ---- bad tensors --------------------------------------------------------------------

TEST(HaloExchange, RejectsTensorsThatDoNotFitThePlan) {
  run_ranks(2, [&](int, diffcoll_comm_t* comm) {
    diffcoll_halo_plan_t* plan = nullptr;
    HALO_ASSERT_OK(diffcoll_halo_plan_create(comm, nullptr, &plan));  // rows along dim -2
    auto expect_bad = [&](diffcoll_tensor_t d, diffcoll_status_t status, const char* part) {
      EXPECT_EQ(diffcoll_halo_exchange(plan, &d, nullptr), status) << part;
      EXPECT_TRUE(has(diffcoll_last_error(), part)) << diffcoll_last_error();
    };
    Tensor vec(DIFFCOLL_FLOAT32, {8}, Layout::kContiguous);
    expect_bad(vec.desc(), DIFFCOLL_ERR_INVALID_ARGUMENT, "outside the 1 dimensions");
    Tensor flat(DIFFCOLL_FLOAT32, {1, 2, 1, 4}, Layout::kContiguous);  // 1 row < 1 + 1
    expect_bad(flat.desc(), DIFFCOLL_ERR_INVALID_ARGUMENT, "fewer than its halo widths");
    Tensor t(DIFFCOLL_FLOAT32, {1, 2, 6, 4}, Layout::kContiguous);
    diffcoll_tensor_t d = t.desc();
    diffcoll_tensor_t zero_stride = d;
    zero_stride.strides[1] = 0;
    expect_bad(zero_stride, DIFFCOLL_ERR_INVALID_ARGUMENT, "overlapping");
    diffcoll_tensor_t bad_dtype = d;
    bad_dtype.dtype = 99;
    expect_bad(bad_dtype, DIFFCOLL_ERR_INVALID_ARGUMENT, "dtype");
    diffcoll_tensor_t cuda = d;
    cuda.device_type = DIFFCOLL_DEVICE_CUDA;
    EXPECT_EQ(diffcoll_halo_exchange(plan, &cuda, nullptr), DIFFCOLL_ERR_UNSUPPORTED)
        << diffcoll_last_error();
    EXPECT_EQ(diffcoll_halo_exchange(plan, nullptr, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
    HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));

    // Two axes that resolve to one dimension.
    diffcoll_halo_config_t cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.row_axis = 3;
    cfg.col_axis = -1;
    cfg.col_before = 1;
    HALO_ASSERT_OK(diffcoll_halo_plan_create(comm, &cfg, &plan));
    expect_bad(d, DIFFCOLL_ERR_INVALID_ARGUMENT, "the same dimension");
    HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
  });
}

TEST(HaloExchange, BoundaryModesNeedEnoughInteriorRows) {
  // One rank: REFLECT by 2 needs 3 rows, REPLICATE 1, CIRCULAR (over itself) 2.
  run_ranks(1, [&](int, diffcoll_comm_t* comm) {
    for (int mode : {DIFFCOLL_HALO_REFLECT, DIFFCOLL_HALO_REPLICATE, DIFFCOLL_HALO_CIRCULAR}) {
      diffcoll_halo_config_t cfg = DIFFCOLL_HALO_CONFIG_INIT;
      cfg.row_before = cfg.row_after = 2;
      cfg.row_boundary_before = cfg.row_boundary_after = mode;
      diffcoll_halo_plan_t* plan = nullptr;
      HALO_ASSERT_OK(diffcoll_halo_plan_create(comm, &cfg, &plan));
      const int64_t needed = mode == DIFFCOLL_HALO_REFLECT     ? 3
                             : mode == DIFFCOLL_HALO_REPLICATE ? 1
                                                               : 2;
      for (int64_t rows = 0; rows <= 3; ++rows) {
        Tensor t(DIFFCOLL_FLOAT32, {1, 2, 4 + rows, 3}, Layout::kContiguous);
        diffcoll_tensor_t d = t.desc();
        const diffcoll_status_t st = diffcoll_halo_exchange(plan, &d, nullptr);
        if (rows >= needed) {
          EXPECT_EQ(st, DIFFCOLL_SUCCESS) << mode << " " << rows << ": " << diffcoll_last_error();
        } else {
          EXPECT_EQ(st, DIFFCOLL_ERR_INVALID_ARGUMENT) << mode << " " << rows;
          EXPECT_TRUE(has(diffcoll_last_error(), "boundary needs")) << diffcoll_last_error();
        }
      }
      HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
    }
  });
}

// Slabs of 2, 2 and 1 rows with halos of 2: rank 2 cannot give rank 1 the two
// rows it needs (they would have to come from two ranks away).
TEST(HaloExchange, HaloWiderThanANeighboursInteriorIsAnErrorOnEveryRankWhenChecking) {
  run_ranks(
      3,
      [&](int r, diffcoll_comm_t* comm) {
        diffcoll_halo_config_t cfg = DIFFCOLL_HALO_CONFIG_INIT;
        cfg.row_before = cfg.row_after = 2;
        diffcoll_halo_plan_t* plan = nullptr;
        HALO_ASSERT_OK(diffcoll_halo_plan_create(comm, &cfg, &plan));
        const int64_t rows[3] = {2, 2, 1};
        Tensor t(DIFFCOLL_FLOAT32, {1, 2, rows[r] + 4, 3}, Layout::kContiguous);
        diffcoll_tensor_t d = t.desc();
        EXPECT_EQ(diffcoll_halo_exchange(plan, &d, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
        EXPECT_TRUE(has(diffcoll_last_error(), "wider than a neighbour's interior"))
            << diffcoll_last_error();
        EXPECT_TRUE(has(diffcoll_last_error(), "rank 2 holds 1 interior rows"))
            << diffcoll_last_error();
        // The communicator is still usable afterwards.
        Tensor ok(DIFFCOLL_FLOAT32, {1, 2, 3 + 4, 3}, Layout::kContiguous);
        diffcoll_tensor_t od = ok.desc();
        HALO_EXPECT_OK(diffcoll_halo_exchange(plan, &od, nullptr));
        HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
      },
      20000, /*check=*/1);
}

TEST(HaloExchange, HaloWiderThanANeighboursInteriorWithoutChecking) {
  // The rank that holds too few rows says so at once; its neighbour waits for
  // the rows and fails when the communicator's timeout passes.
  run_ranks(
      2,
      [&](int r, diffcoll_comm_t* comm) {
        diffcoll_halo_config_t cfg = DIFFCOLL_HALO_CONFIG_INIT;
        cfg.row_before = cfg.row_after = 2;
        diffcoll_halo_plan_t* plan = nullptr;
        HALO_ASSERT_OK(diffcoll_halo_plan_create(comm, &cfg, &plan));
        Tensor t(DIFFCOLL_FLOAT32, {1, 2, (r == 0 ? 3 : 1) + 4, 3}, Layout::kContiguous);
        diffcoll_tensor_t d = t.desc();
        const diffcoll_status_t st = diffcoll_halo_exchange(plan, &d, nullptr);
        if (r == 1) {
          EXPECT_EQ(st, DIFFCOLL_ERR_INVALID_ARGUMENT);
          EXPECT_TRUE(has(diffcoll_last_error(), "wider than a neighbour's interior"))
              << diffcoll_last_error();
        } else {
          EXPECT_TRUE(st == DIFFCOLL_ERR_TIMEOUT || st == DIFFCOLL_ERR_REMOTE)
              << diffcoll_status_string(st) << ": " << diffcoll_last_error();
        }
        HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
      },
      /*timeout_ms=*/1000, /*check=*/0, /*final_barrier=*/false);
}

TEST(HaloExchange, CheckModeReportsMismatchedLayoutsAndConfigs) {
  run_ranks(
      2,
      [&](int r, diffcoll_comm_t* comm) {
        diffcoll_halo_plan_t* plan = nullptr;
        HALO_ASSERT_OK(diffcoll_halo_plan_create(comm, nullptr, &plan));
        // Rank 1 passes channels-last, rank 0 contiguous.
        Tensor t(DIFFCOLL_FLOAT32, {1, 2, 6, 3},
                 r == 0 ? Layout::kContiguous : Layout::kChannelsLast);
        diffcoll_tensor_t d = t.desc();
        EXPECT_EQ(diffcoll_halo_exchange(plan, &d, nullptr), DIFFCOLL_ERR_MISMATCH);
        EXPECT_TRUE(has(diffcoll_last_error(), "memory layout")) << diffcoll_last_error();
        // Differing extents outside the split axis.
        Tensor u(DIFFCOLL_FLOAT32, {1, 2, 6, 3 + r}, Layout::kContiguous);
        diffcoll_tensor_t ud = u.desc();
        EXPECT_EQ(diffcoll_halo_exchange(plan, &ud, nullptr), DIFFCOLL_ERR_MISMATCH);
        HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
        // Differing configs.
        diffcoll_halo_config_t cfg = DIFFCOLL_HALO_CONFIG_INIT;
        cfg.row_after = r == 0 ? 1 : 0;
        HALO_ASSERT_OK(diffcoll_halo_plan_create(comm, &cfg, &plan));
        Tensor v(DIFFCOLL_FLOAT32, {1, 2, 6, 3}, Layout::kContiguous);
        diffcoll_tensor_t vd = v.desc();
        EXPECT_EQ(diffcoll_halo_exchange(plan, &vd, nullptr), DIFFCOLL_ERR_MISMATCH);
        EXPECT_TRUE(has(diffcoll_last_error(), "different config")) << diffcoll_last_error();
        HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
      },
      20000, /*check=*/1);
}

TEST(HaloExchange, RunsOnASubCommunicator) {
  // Ranks 1 and 3 of four form a chain (local ranks 0 and 1); 0 and 2 another.
  run_ranks(4, [&](int r, diffcoll_comm_t* world) {
    diffcoll_comm_t* group = nullptr;
    HALO_ASSERT_OK(diffcoll_comm_split(world, r % 2, -r, &group));  // reversed order
    diffcoll_halo_plan_t* plan = nullptr;
    HALO_ASSERT_OK(diffcoll_halo_plan_create(group, nullptr, &plan));
    int32_t local = -1;
    HALO_ASSERT_OK(diffcoll_comm_rank(group, &local));
    Tensor t(DIFFCOLL_FLOAT32, {1, 1, 4, 2}, Layout::kContiguous);
    t.fill([&](const Index& i) { return i[2] == 0 || i[2] == 3 ? -1.0 : 100.0 * r + i[2]; });
    diffcoll_tensor_t d = t.desc();
    HALO_EXPECT_OK(diffcoll_halo_exchange(plan, &d, nullptr));
    // Local rank 0 is the higher world rank of the pair (key -r).
    const int other = local == 0 ? r - 2 : r + 2;
    if (local == 0) {
      EXPECT_EQ(t.get({0, 0, 3, 1}), 100.0 * other + 1);  // the next rank's first row
      EXPECT_EQ(t.get({0, 0, 0, 1}), 0.0);
    } else {
      EXPECT_EQ(t.get({0, 0, 0, 1}), 100.0 * other + 2);  // the previous rank's last row
      EXPECT_EQ(t.get({0, 0, 3, 1}), 0.0);
    }
    HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
    HALO_EXPECT_OK(diffcoll_barrier(group, nullptr));
    HALO_EXPECT_OK(diffcoll_comm_destroy(group));
  });
}

// ---- diffcoll_gather_slabs ---------------------------------------------------------

double value_at(const Index& idx) {
  double v = 0;
  for (int64_t i : idx) v = v * 7 + static_cast<double>(i);
  return std::fmod(v, 97.0) - 48;
}

TEST(GatherSlabs, ReassemblesUnevenSlabsOnTheRootOrEveryRank) {
  for (int p = 1; p <= 5; ++p) {
    run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
      struct Setup {
        Shape whole;
        int axis;
        Layout slab_layout, whole_layout;
      };
      const std::vector<Setup> setups = {
          {{1, 3, 3 * p + 2, 5}, 2, Layout::kContiguous, Layout::kContiguous},
          {{1, 3, 3 * p + 1, 5}, 2, Layout::kChannelsLast, Layout::kChannelsLast},
          {{2, 4, 3, 2 * p + 1}, 3, Layout::kGapped, Layout::kContiguous},
          {{2, 2 * p - 1, 3, 2}, 1, Layout::kContiguous, Layout::kGapped},
          {{1, 2, p > 1 ? p - 1 : 1, 3},
           2,
           Layout::kContiguous,
           Layout::kChannelsLast},  // empty slabs
      };
      for (const Setup& s : setups)
        for (int root : {-1, 0, p - 1}) {
          int64_t start = 0, length = 0;
          HALO_ASSERT_OK(diffcoll_split_extent(s.whole[s.axis], p, r, &start, &length));
          Shape slab_shape = s.whole;
          slab_shape[s.axis] = length;
          Tensor slab(DIFFCOLL_BFLOAT16, slab_shape, s.slab_layout);
          slab.fill([&](Index i) {
            i[s.axis] += start;
            return value_at(i);
          });
          const bool receives = root == -1 || r == root;
          Tensor whole(DIFFCOLL_BFLOAT16, s.whole, s.whole_layout);
          whole.fill([](const Index&) { return 99.0; });
          diffcoll_tensor_t sd = slab.desc(), wd = whole.desc();
          HALO_EXPECT_OK(
              diffcoll_gather_slabs(comm, &sd, receives ? &wd : nullptr, s.axis, root, nullptr));
          for (int64_t f = 0; f < numel(s.whole); ++f) {
            const Index i = unflatten(f, s.whole);
            const double expected = receives ? value_at(i) : 99.0;
            if (whole.get(i) != expected) {
              ADD_FAILURE() << "p " << p << " rank " << r << " root " << root << " whole "
                            << str(s.whole) << " axis " << s.axis << ": element " << str(i)
                            << " is " << whole.get(i) << ", expected " << expected;
              break;
            }
          }
          EXPECT_EQ(whole.gap_bytes_changed(), 0u);
        }
    });
  }
}

TEST(GatherSlabs, ASlabThatLivesInItsWholeIsNotCopied) {
  // Slabs travel in row-major order: with C == 1 a slab of H rows is one
  // contiguous run in the whole and nothing is packed; with channels-last
  // (C == 4) each slab is packed once (and sent to both peers) and the
  // received ones unpacked, while a rank's own slab is never copied.
  for (int64_t channels : {1, 4}) {
    run_ranks(3, [&](int r, diffcoll_comm_t* comm) {
      const Shape shape = {1, channels, 8, 3};
      Tensor whole(DIFFCOLL_FLOAT32, shape, Layout::kChannelsLast);
      int64_t start = 0, length = 0;
      HALO_ASSERT_OK(diffcoll_split_extent(8, 3, r, &start, &length));
      whole.fill(
          [&](const Index& i) { return i[2] >= start && i[2] < start + length ? value_at(i) : 0; });
      diffcoll_tensor_t wd = whole.desc();
      diffcoll_tensor_t sd = wd;  // my rows of my own whole
      sd.shape[2] = length;
      sd.data = static_cast<char*>(wd.data) + start * wd.strides[2] * 4;
      HALO_EXPECT_OK(diffcoll_comm_reset_stats(comm));
      HALO_EXPECT_OK(diffcoll_gather_slabs(comm, &sd, &wd, 2, -1, nullptr));
      for (int64_t f = 0; f < numel(shape); ++f) {
        const Index i = unflatten(f, shape);
        ASSERT_EQ(whole.get(i), value_at(i)) << "rank " << r << " " << str(i);
      }
      const diffcoll_stats_t s = stats_of(comm);
      const uint64_t row = static_cast<uint64_t>(channels) * 3 * 4;
      EXPECT_EQ(s.bytes_packed, channels == 1 ? 0 : length * row) << "rank " << r;
      EXPECT_EQ(s.bytes_unpacked, channels == 1 ? 0 : (8 - length) * row) << "rank " << r;
    });
  }
}

TEST(GatherSlabs, RejectsSlabsThatDoNotMatchTheSplit) {
  run_ranks(
      2,
      [&](int r, diffcoll_comm_t* comm) {
        Tensor whole(DIFFCOLL_FLOAT32, {1, 2, 7, 3}, Layout::kContiguous);
        diffcoll_tensor_t wd = whole.desc();
        // Slab 0 of 7 rows over 2 ranks has 4 rows, slab 1 has 3; pass them swapped.
        Tensor slab(DIFFCOLL_FLOAT32, {1, 2, r == 0 ? 3 : 4, 3}, Layout::kContiguous);
        diffcoll_tensor_t sd = slab.desc();
        EXPECT_EQ(diffcoll_gather_slabs(comm, &sd, &wd, 2, -1, nullptr),
                  DIFFCOLL_ERR_INVALID_ARGUMENT);
        EXPECT_TRUE(has(diffcoll_last_error(), "diffcoll_split_extent")) << diffcoll_last_error();
        // Bad axis and root, NULL whole on the root: local errors on every rank.
        Tensor good(DIFFCOLL_FLOAT32, {1, 2, r == 0 ? 4 : 3, 3}, Layout::kContiguous);
        diffcoll_tensor_t gd = good.desc();
        EXPECT_EQ(diffcoll_gather_slabs(comm, &gd, &wd, 4, -1, nullptr),
                  DIFFCOLL_ERR_INVALID_ARGUMENT);
        EXPECT_EQ(diffcoll_gather_slabs(comm, &gd, &wd, 2, 2, nullptr),
                  DIFFCOLL_ERR_INVALID_ARGUMENT);
        EXPECT_EQ(diffcoll_gather_slabs(comm, &gd, nullptr, 2, -1, nullptr),
                  DIFFCOLL_ERR_INVALID_ARGUMENT);
        Tensor wrong(DIFFCOLL_FLOAT32, {1, 3, 7, 3}, Layout::kContiguous);  // C differs
        diffcoll_tensor_t xd = wrong.desc();
        EXPECT_EQ(diffcoll_gather_slabs(comm, &gd, &xd, 2, -1, nullptr),
                  DIFFCOLL_ERR_INVALID_ARGUMENT);
        // Still usable.
        HALO_EXPECT_OK(diffcoll_gather_slabs(comm, &gd, &wd, 2, -1, nullptr));
      },
      20000, /*check=*/1);
}

}  // namespace
