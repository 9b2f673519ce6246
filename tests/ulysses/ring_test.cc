// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Ring exchange through the public API, ranks as threads: over P steps every
// rank holds every rank's (k, v) block exactly once, in ring order; a step is
// posted without waiting for the peers; bad input and misuse are refused.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../halo/halo_support.h"

namespace {

using halo_test::Index;
using halo_test::Layout;
using halo_test::run_ranks;
using halo_test::Shape;
using halo_test::Tensor;

// Element idx of tensor t of rank `origin`'s block: identifies all three.
double block_value(int origin, int t, const Index& idx) {
  double v = origin * 1000.0 + t * 100.0;
  for (int64_t i : idx) v = v * 3 + static_cast<double>(i);
  return v;
}

// The block in `half` came from rank `origin` (every element checked).
bool holds_block_of(std::vector<Tensor>& half, int origin) {
  for (size_t t = 0; t < half.size(); ++t)
    for (int64_t i = 0; i < halo_test::numel(half[t].shape()); ++i) {
      const Index idx = halo_test::unflatten(i, half[t].shape());
      if (half[t].get(idx) != block_value(origin, static_cast<int>(t), idx)) return false;
    }
  return true;
}

// k [S, H, D] float32 and v [S, H, D] float64 for both halves.
struct DoubleBuffer {
  std::vector<Tensor> half[2];
  std::vector<diffcoll_tensor_t> desc[2];
  explicit DoubleBuffer(Shape shape) {
    for (int h = 0; h < 2; ++h) {
      half[h].emplace_back(DIFFCOLL_FLOAT32, shape, Layout::kContiguous);
      half[h].emplace_back(DIFFCOLL_FLOAT64, shape, Layout::kContiguous);
      for (Tensor& t : half[h]) desc[h].push_back(t.desc());
    }
  }
};

class RingDegree : public ::testing::TestWithParam<int> {};

TEST_P(RingDegree, EveryRankSeesEveryBlockOnceInRingOrder) {
  const int p = GetParam();
  run_ranks(p, [&](int rank, diffcoll_comm_t* comm) {
    DoubleBuffer buf({5, 3, 4});
    for (size_t t = 0; t < 2; ++t)
      buf.half[0][t].fill(
          [&](const Index& idx) { return block_value(rank, static_cast<int>(t), idx); });
    diffcoll_ring_t* ring = nullptr;
    ASSERT_EQ(diffcoll_ring_create(comm, buf.desc[0].data(), buf.desc[1].data(), 2, &ring),
              DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    int32_t current = 0;
    std::multiset<int> seen;
    for (int step = 0; step < p; ++step) {
      if (step + 1 < p) ASSERT_EQ(diffcoll_ring_start(ring, nullptr), DIFFCOLL_SUCCESS);
      // "Attention" on the current block while the next one travels.
      const int origin = ((rank - step) % p + p) % p;
      EXPECT_TRUE(holds_block_of(buf.half[current], origin))
          << "step " << step << ": half " << current << " should hold rank " << origin
          << "'s block";
      for (int r = 0; r < p; ++r)
        if (holds_block_of(buf.half[current], r)) seen.insert(r);
      if (step + 1 < p) {
        int32_t next = -1;
        ASSERT_EQ(diffcoll_ring_wait(ring, nullptr, &next), DIFFCOLL_SUCCESS)
            << diffcoll_last_error();
        EXPECT_EQ(next, 1 - current);
        current = next;
      }
    }
    EXPECT_EQ(seen.size(), static_cast<size_t>(p));
    for (int r = 0; r < p; ++r) EXPECT_EQ(seen.count(r), 1u) << "block of rank " << r;
    EXPECT_EQ(diffcoll_ring_destroy(ring), DIFFCOLL_SUCCESS);
  });
}

INSTANTIATE_TEST_SUITE_P(Degrees, RingDegree, ::testing::Values(1, 2, 3, 4, 8),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return "P" + std::to_string(info.param);
                         });

// On a ring of one rank a step copies the current half into the other.
TEST(Ring, OneRankCopiesItsOwnBlock) {
  run_ranks(1, [&](int, diffcoll_comm_t* comm) {
    DoubleBuffer buf({3, 2, 5});
    for (size_t t = 0; t < 2; ++t)
      buf.half[0][t].fill(
          [&](const Index& idx) { return block_value(0, static_cast<int>(t), idx); });
    diffcoll_ring_t* ring = nullptr;
    ASSERT_EQ(diffcoll_ring_create(comm, buf.desc[0].data(), buf.desc[1].data(), 2, &ring),
              DIFFCOLL_SUCCESS);
    ASSERT_EQ(diffcoll_ring_start(ring, nullptr), DIFFCOLL_SUCCESS) << diffcoll_last_error();
    int32_t current = -1;
    ASSERT_EQ(diffcoll_ring_wait(ring, nullptr, &current), DIFFCOLL_SUCCESS);
    EXPECT_EQ(current, 1);
    EXPECT_TRUE(holds_block_of(buf.half[1], 0));
    EXPECT_EQ(diffcoll_ring_destroy(ring), DIFFCOLL_SUCCESS);
  });
}

// Rank 1 starts its step late; rank 0's start returns at once, and its wait
// completes only once rank 1 has sent.
TEST(Ring, StartReturnsWithoutWaitingForThePeers) {
  using clock = std::chrono::steady_clock;
  run_ranks(2, [&](int rank, diffcoll_comm_t* comm) {
    DoubleBuffer buf({64, 4, 8});
    for (size_t t = 0; t < 2; ++t)
      buf.half[0][t].fill(
          [&](const Index& idx) { return block_value(rank, static_cast<int>(t), idx); });
    diffcoll_ring_t* ring = nullptr;
    ASSERT_EQ(diffcoll_ring_create(comm, buf.desc[0].data(), buf.desc[1].data(), 2, &ring),
              DIFFCOLL_SUCCESS);
    const auto delay = std::chrono::milliseconds(400);
    if (rank == 1) std::this_thread::sleep_for(delay);
    const auto t0 = clock::now();
    ASSERT_EQ(diffcoll_ring_start(ring, nullptr), DIFFCOLL_SUCCESS) << diffcoll_last_error();
    const auto started = clock::now() - t0;
    ASSERT_EQ(diffcoll_ring_wait(ring, nullptr, nullptr), DIFFCOLL_SUCCESS);
    const auto done = clock::now() - t0;
    if (rank == 0) {
      EXPECT_LT(started, delay / 2) << "start waited for the peer";
      EXPECT_GE(done, delay / 2) << "wait returned before the peer sent";
    }
    EXPECT_TRUE(holds_block_of(buf.half[1], 1 - rank));
    EXPECT_EQ(diffcoll_ring_destroy(ring), DIFFCOLL_SUCCESS);
  });
}

TEST(Ring, MisuseAndBadBuffersAreRefused) {
  run_ranks(2, [&](int, diffcoll_comm_t* comm) {
    DoubleBuffer buf({4, 2, 2});
    diffcoll_ring_t* ring = nullptr;
    EXPECT_EQ(diffcoll_ring_create(comm, buf.desc[0].data(), buf.desc[1].data(), 0, &ring),
              DIFFCOLL_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ring, nullptr);
    EXPECT_EQ(diffcoll_ring_create(comm, buf.desc[0].data(), nullptr, 2, &ring),
              DIFFCOLL_ERR_INVALID_ARGUMENT);
    // Halves that differ.
    diffcoll_tensor_t other[2] = {buf.desc[1][0], buf.desc[1][1]};
    other[1].shape[0] = 3;
    EXPECT_EQ(diffcoll_ring_create(comm, buf.desc[0].data(), other, 2, &ring),
              DIFFCOLL_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(diffcoll_last_error()).find("differ"), std::string::npos);
    // A non-contiguous buffer.
    Tensor gapped(DIFFCOLL_FLOAT32, {4, 2, 2}, Layout::kGapped);
    diffcoll_tensor_t g[1] = {gapped.desc()};
    EXPECT_EQ(diffcoll_ring_create(comm, g, g, 1, &ring), DIFFCOLL_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(diffcoll_last_error()).find("contiguous"), std::string::npos);
    // Both halves on one buffer.
    EXPECT_EQ(diffcoll_ring_create(comm, buf.desc[0].data(), buf.desc[0].data(), 2, &ring),
              DIFFCOLL_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(diffcoll_last_error()).find("share memory"), std::string::npos);

    ASSERT_EQ(diffcoll_ring_create(comm, buf.desc[0].data(), buf.desc[1].data(), 2, &ring),
              DIFFCOLL_SUCCESS);
    EXPECT_EQ(diffcoll_ring_wait(ring, nullptr, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(diffcoll_last_error()).find("no step is in flight"), std::string::npos);
    ASSERT_EQ(diffcoll_ring_start(ring, nullptr), DIFFCOLL_SUCCESS);
    EXPECT_EQ(diffcoll_ring_start(ring, nullptr), DIFFCOLL_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(diffcoll_last_error()).find("not waited for"), std::string::npos);
    // Destroying a ring with a step in flight completes the step.
    EXPECT_EQ(diffcoll_ring_destroy(ring), DIFFCOLL_SUCCESS) << diffcoll_last_error();
    EXPECT_EQ(diffcoll_ring_start(ring, nullptr), DIFFCOLL_ERR_INVALID_HANDLE);
    EXPECT_EQ(diffcoll_ring_destroy(nullptr), DIFFCOLL_SUCCESS);
  });
}

}  // namespace
