// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Tensors of the most dimensions the ABI allows (8) through every gather-like
// operation: the planner views them with one dimension more (blocks first),
// which once overflowed its arrays (found by tests/fuzz).
#include <diffcoll/diffcoll.h>
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace {

TEST(MaxDims, GatherLikeOpsOnEightDimensionalTensors) {
  diffcoll_comm_t* comm = nullptr;
  ASSERT_EQ(diffcoll_comm_create("local://max-dims", 0, 1, nullptr, &comm), DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  // [2,1,3,1,2,1,2,3] with the last two dimensions swapped in memory (dense).
  const int64_t shape[8] = {2, 1, 3, 1, 2, 1, 2, 3};
  const int64_t strides[8] = {36, 36, 12, 12, 6, 6, 1, 2};
  std::vector<float> in(72), out(72);
  std::iota(in.begin(), in.end(), 1.0f);
  diffcoll_tensor_t a = {in.data(), DIFFCOLL_FLOAT32, DIFFCOLL_DEVICE_CPU, 0, 8, {}, {}};
  for (int d = 0; d < 8; ++d) {
    a.shape[d] = shape[d];
    a.strides[d] = strides[d];
  }
  diffcoll_tensor_t b = a;
  b.data = out.data();
  for (int axis = 0; axis < 8; ++axis) {
    SCOPED_TRACE(axis);
    std::fill(out.begin(), out.end(), 0.0f);
    ASSERT_EQ(diffcoll_all_gather(comm, &a, &b, axis, nullptr), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    EXPECT_EQ(in, out);  // one rank: a copy between identical layouts
    std::fill(out.begin(), out.end(), 0.0f);
    ASSERT_EQ(diffcoll_all_to_all(comm, &a, &b, axis, 7 - axis, nullptr), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    EXPECT_EQ(in, out);
    std::fill(out.begin(), out.end(), 0.0f);
    ASSERT_EQ(diffcoll_reduce_scatter(comm, &a, &b, axis, DIFFCOLL_SUM, 1.0, nullptr),
              DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    EXPECT_EQ(in, out);
  }
  EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS);
}

}  // namespace
