// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The Ulysses all-to-all through the public API, ranks as threads: every
// standard call (ulysses_cases.h) at degrees 1, 2, 3, 4 and 8 against the
// whole tensor sliced, one exchange per call, and bad input.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "ulysses_cases.h"

namespace {

using namespace ulysses_test;
using halo_test::run_ranks;
using halo_test::stats_of;

class UlyssesDegree : public ::testing::TestWithParam<int> {};

TEST_P(UlyssesDegree, MatchesTheWholeTensorSlicedAndRoundTrips) {
  const int p = GetParam();
  const std::vector<Call> calls = standard_calls(p);
  run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 0;
    for (const Call& c : calls) run_call(c, r, p, comm, ++salt);
  });
}

INSTANTIATE_TEST_SUITE_P(Degrees, UlyssesDegree, ::testing::Values(1, 2, 3, 4, 8),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return "P" + std::to_string(info.param);
                         });

TEST(Ulysses, SeveralTensorsMoveAsOneOperation) {
  const int p = 3;
  run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    const Call c = standard_calls(p)[8];  // q, k, v, uneven
    ASSERT_EQ(c.tensors.size(), 3u);
    ASSERT_EQ(diffcoll_comm_reset_stats(comm), DIFFCOLL_SUCCESS);
    run_call(c, r, p, comm, 7);
    EXPECT_EQ(stats_of(comm).ops, 2u) << "one operation per direction for q, k and v together";
  });
}

// q, k, v [1, S, H, D] contiguous: the forward direction packs its inputs
// once (the layout change) and receives straight into the outputs; the
// backward direction sends straight from its inputs and unpacks once.
TEST(Ulysses, EachDirectionCopiesEachByteOnce) {
  const int p = 3;
  run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    const Shape whole = {1, 7, 5, 4};
    std::vector<Tensor> in, out, back;
    std::vector<diffcoll_tensor_t> din, dout, dback;
    uint64_t in_bytes = 0;
    for (int t = 0; t < 3; ++t) {
      int64_t start;
      in.emplace_back(DIFFCOLL_FLOAT32, shard(whole, 1, p, r, &start), Layout::kContiguous);
      out.emplace_back(DIFFCOLL_FLOAT32, shard(whole, 2, p, r, &start), Layout::kContiguous);
      back.emplace_back(DIFFCOLL_FLOAT32, in.back().shape(), Layout::kContiguous);
      in_bytes += halo_test::numel(in.back().shape()) * 4;
    }
    for (int t = 0; t < 3; ++t) {
      din.push_back(in[t].desc());
      dout.push_back(out[t].desc());
      dback.push_back(back[t].desc());
    }
    ASSERT_EQ(diffcoll_comm_reset_stats(comm), DIFFCOLL_SUCCESS);
    ASSERT_EQ(diffcoll_ulysses_all_to_all(comm, din.data(), dout.data(), 3, 1, 2,
                                          DIFFCOLL_ULYSSES_SEQ_TO_HEAD, nullptr),
              DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    diffcoll_stats_t s = stats_of(comm);
    EXPECT_EQ(s.bytes_packed, in_bytes);
    EXPECT_EQ(s.bytes_unpacked, 0u);
    ASSERT_EQ(diffcoll_comm_reset_stats(comm), DIFFCOLL_SUCCESS);
    ASSERT_EQ(diffcoll_ulysses_all_to_all(comm, dout.data(), dback.data(), 3, 1, 2,
                                          DIFFCOLL_ULYSSES_HEAD_TO_SEQ, nullptr),
              DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    s = stats_of(comm);
    EXPECT_EQ(s.bytes_packed, 0u);
    EXPECT_EQ(s.bytes_unpacked, in_bytes);  // back has the input's shapes
  });
}

// A rank's tensors for one [1, S, H, D] float32 call, for the error cases.
struct Pair {
  Tensor in, out;
  diffcoll_tensor_t din, dout;
  Pair(int p, int r, Shape whole, int dtype = DIFFCOLL_FLOAT32) {
    int64_t start;
    in = Tensor(dtype, shard(whole, 1, p, r, &start), Layout::kContiguous);
    out = Tensor(dtype, shard(whole, 2, p, r, &start), Layout::kContiguous);
    din = in.desc();
    dout = out.desc();
  }
};

diffcoll_status_t forward(diffcoll_comm_t* comm, const diffcoll_tensor_t* in,
                          const diffcoll_tensor_t* out, int32_t count = 1, int32_t seq = 1,
                          int32_t head = 2, int32_t direction = DIFFCOLL_ULYSSES_SEQ_TO_HEAD) {
  return diffcoll_ulysses_all_to_all(comm, in, out, count, seq, head, direction, nullptr);
}

void expect_error(diffcoll_status_t st, diffcoll_status_t expected, const char* needle) {
  EXPECT_EQ(st, expected) << diffcoll_last_error();
  EXPECT_NE(std::string(diffcoll_last_error()).find(needle), std::string::npos)
      << "message: " << diffcoll_last_error() << "\nexpected to contain: " << needle;
}

TEST(Ulysses, BadInputIsRefusedWithAClearMessage) {
  const int p = 2;
  run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    Pair a(p, r, {1, 6, 4, 2});
    expect_error(forward(nullptr, &a.din, &a.dout), DIFFCOLL_ERR_INVALID_HANDLE, "comm");
    expect_error(forward(comm, nullptr, &a.dout), DIFFCOLL_ERR_INVALID_ARGUMENT, "inputs is NULL");
    expect_error(forward(comm, &a.din, &a.dout, 0), DIFFCOLL_ERR_INVALID_ARGUMENT, "count 0");
    expect_error(forward(comm, &a.din, &a.dout, 1, 1, 2, 5), DIFFCOLL_ERR_INVALID_ARGUMENT,
                 "direction 5");
    expect_error(forward(comm, &a.din, &a.dout, 1, 2, 2), DIFFCOLL_ERR_INVALID_ARGUMENT,
                 "both dimension 2");
    expect_error(forward(comm, &a.din, &a.dout, 1, 4, 2), DIFFCOLL_ERR_INVALID_ARGUMENT,
                 "seq_axis 4");
    // The output must hold this rank's heads by the split rule.
    Pair wrong(p, r, {1, 6, 4, 2});
    wrong.dout.shape[2] = 4;
    wrong.dout.strides[1] = 8;
    wrong.dout.strides[0] = 48;
    expect_error(forward(comm, &wrong.din, &wrong.dout), DIFFCOLL_ERR_INVALID_ARGUMENT,
                 "diffcoll_split_extent");
    // Backward: the input must hold this rank's heads.
    expect_error(forward(comm, &a.din, &a.dout, 1, 1, 2, DIFFCOLL_ULYSSES_HEAD_TO_SEQ),
                 DIFFCOLL_ERR_INVALID_ARGUMENT, "must hold");
    // Mixed dtypes in one call.
    Pair b(p, r, {1, 6, 4, 2}, DIFFCOLL_BFLOAT16);
    diffcoll_tensor_t ins[2] = {a.din, b.din}, outs[2] = {a.dout, b.dout};
    expect_error(forward(comm, ins, outs, 2), DIFFCOLL_ERR_INVALID_ARGUMENT, "one dtype");
    // Output on top of an input, and two outputs on one buffer.
    expect_error(forward(comm, &a.din, &a.din), DIFFCOLL_ERR_INVALID_ARGUMENT, "");
    diffcoll_tensor_t same_out[2] = {a.dout, a.dout}, two_in[2] = {a.din, a.din};
    expect_error(forward(comm, two_in, same_out, 2), DIFFCOLL_ERR_INVALID_ARGUMENT,
                 "outputs[0] overlaps outputs[1]");
    // A broadcast (stride 0) output cannot be written.
    diffcoll_tensor_t bcast = a.dout;
    bcast.strides[3] = 0;
    expect_error(forward(comm, &a.din, &bcast), DIFFCOLL_ERR_INVALID_ARGUMENT, "overlapping");
    // After all of that the communicator still works.
    const Call c{"after errors", {{{1, 5, 3, 2}}}, 1, 2};
    run_call(c, r, p, comm, 99);
  });
}

TEST(Ulysses, RanksThatDisagreeFailInCheckMode) {
  const int p = 2;
  run_ranks(
      p,
      [&](int r, diffcoll_comm_t* comm) {
        // Rank 1 believes the sequence is one token longer.
        Pair a(p, r, {1, r == 0 ? 6 : 7, 4, 2});
        EXPECT_EQ(forward(comm, &a.din, &a.dout), DIFFCOLL_ERR_MISMATCH) << diffcoll_last_error();
      },
      20000, /*check=*/1, /*final_barrier=*/false);
}

}  // namespace
