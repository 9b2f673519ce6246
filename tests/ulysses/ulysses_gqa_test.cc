// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// Grouped-query attention and FP8 transport of the Ulysses all-to-all (and
// FP8 of the all-gather) through the public API, ranks as threads: the
// exchange against the whole tensors (gqa_cases.h) at degrees 1 to 8, even
// and uneven, P above the k/v and the query head counts; attention with the
// GQA-aware exchange equal bit for bit to the copy-up path and to attention
// on one rank; FP8 within its documented bound; default options equal to
// the call without options; bad input.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gqa_cases.h"
#include "ulysses_cases.h"

namespace {

using namespace gqa_test;
using halo_test::run_ranks;

class GqaDegree : public ::testing::TestWithParam<int> {};

TEST_P(GqaDegree, ExchangeMatchesTheWholeTensors) {
  const int p = GetParam();
  const std::vector<Case> cases = exchange_cases();
  run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 100;
    for (const Case& c : cases) {
      const std::vector<Tally> t = run_exchange(comm, c, ++salt, r, p);
      // FP8 really ran: most values that crossed between ranks changed.
      if (c.wire != DIFFCOLL_WIRE_NATIVE)
        for (const Tally& x : t) EXPECT_GE(x.changed * 2, x.moved) << c.where(r, p);
    }
  });
}

TEST_P(GqaDegree, AttentionEqualsTheCopyUpPathBitForBit) {
  const int p = GetParam();
  const std::vector<Case> cases = attention_cases();
  run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    uint64_t salt = 200;
    for (const Case& c : cases) {
      ++salt;
      const Tensor gqa = ulysses_attention(comm, c, salt, r, p, /*copy_up=*/false, nullptr);
      const Tensor up = ulysses_attention(comm, c, salt, r, p, /*copy_up=*/true, nullptr);
      EXPECT_EQ(differing_elements(gqa, up), 0) << c.where(r, p) << ": GQA-aware vs copy-up";
      if (c.wire == DIFFCOLL_WIRE_NATIVE) {
        const Tensor one = reference_attention(c, salt, split(c.seq, p, r));
        EXPECT_EQ(differing_elements(gqa, one), 0) << c.where(r, p) << ": vs one rank";
      }
    }
  });
}

INSTANTIATE_TEST_SUITE_P(Degrees, GqaDegree, ::testing::Values(1, 2, 3, 4, 5, 8),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return "P" + std::to_string(info.param);
                         });

// diffcoll_ulysses_kv_heads against the heads a rank's query heads attend,
// enumerated one by one.
TEST(Gqa, KvHeadsAreExactlyThoseTheQueryHeadsAttend) {
  for (int64_t q : {1, 6, 8, 28, 32, 40})
    for (int64_t kv = 1; kv <= q; ++kv) {
      if (q % kv) continue;
      for (int p = 1; p <= 9; ++p)
        for (int r = 0; r < p; ++r) {
          const Part mine = split(q, p, r), held = kv_part(q, kv, p, r);
          std::vector<int64_t> want;
          for (int64_t h = mine.start; h < mine.start + mine.length; ++h)
            if (want.empty() || want.back() != h / (q / kv)) want.push_back(h / (q / kv));
          std::vector<int64_t> got;
          for (int64_t j = held.start; j < held.start + held.length; ++j) got.push_back(j);
          EXPECT_EQ(got, want) << q << " query heads, " << kv << " k/v heads, rank " << r
                               << " of " << p;
        }
    }
  // The header's example: 32 / 8 on 3 ranks, rank 1 holds k/v heads 2..5.
  const Part example = kv_part(32, 8, 3, 1);
  EXPECT_EQ(example.start, 2);
  EXPECT_EQ(example.length, 4);
}

// With options off, the call with options is the call without them: the
// standard calls of ulysses_test, exactly, through NULL and default options.
TEST(Gqa, DefaultOptionsGiveTheCallWithoutOptions) {
  for (int p : {1, 3, 4}) {
    std::vector<ulysses_test::Call> calls = ulysses_test::standard_calls(p);
    const diffcoll_ulysses_options_t defaults = DIFFCOLL_ULYSSES_OPTIONS_INIT;
    run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
      uint64_t salt = 300;
      for (ulysses_test::Call c : calls) {
        c.options = &defaults;
        ulysses_test::run_call(c, r, p, comm, ++salt);
      }
    });
  }
}

TEST(Fp8, AllGatherStaysWithinTheBoundAndAgreesOnEveryRank) {
  const int p = 3;
  std::vector<Case> cases = {
      {"all_gather e4m3 bf16 block 2", 2, 5, 3, 3, 8, false, Layout::kContiguous,
       Layout::kGapped, DIFFCOLL_BFLOAT16, DIFFCOLL_WIRE_FP8_E4M3, 2},
      {"all_gather e5m2 f32 BHSD", 1, 4, 2, 2, 16, true, Layout::kChannelsLast,
       Layout::kContiguous, DIFFCOLL_FLOAT32, DIFFCOLL_WIRE_FP8_E5M2, 32},
      {"all_gather native", 1, 3, 2, 2, 4, false, Layout::kGapped, Layout::kContiguous,
       DIFFCOLL_BFLOAT16, DIFFCOLL_WIRE_NATIVE, 32}};
  std::vector<std::vector<Tensor>> outputs(cases.size(), std::vector<Tensor>(p));
  run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    for (size_t i = 0; i < cases.size(); ++i)
      outputs[i][r] = run_all_gather(comm, cases[i], 400 + i, r, p);
  });
  for (size_t i = 0; i < cases.size(); ++i)
    for (int r = 1; r < p; ++r)
      EXPECT_EQ(differing_elements(outputs[i][r], outputs[i][0]), 0)
          << cases[i].name << ": rank " << r << " differs from rank 0";
}

void expect_error(diffcoll_status_t st, diffcoll_status_t expected, const char* needle) {
  EXPECT_EQ(st, expected) << diffcoll_last_error();
  EXPECT_NE(std::string(diffcoll_last_error()).find(needle), std::string::npos)
      << "message: " << diffcoll_last_error() << "\nexpected to contain: " << needle;
}

TEST(Gqa, BadInputIsRefusedWithAClearMessage) {
  int64_t start, length;
  expect_error(diffcoll_ulysses_kv_heads(8, 3, 2, 0, &start, &length),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "divide");
  expect_error(diffcoll_ulysses_kv_heads(8, 0, 2, 0, &start, &length),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "divide");
  expect_error(diffcoll_ulysses_kv_heads(8, 2, 2, 2, &start, &length),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "index 2");
  expect_error(diffcoll_ulysses_kv_heads(8, 2, 2, 0, nullptr, &length),
               DIFFCOLL_ERR_INVALID_ARGUMENT, "start");
  const int p = 2;
  run_ranks(p, [&](int r, diffcoll_comm_t* comm) {
    // Every error below is found on every rank before any communication.
    const Case c{"bad", 1, 6, 8, 2, 4};
    const Part tokens = split(c.seq, p, r), kv = kv_part(c.q_heads, c.kv_heads, p, r);
    Tensor k = shard(c, 1, kK, tokens, {0, c.kv_heads}, Layout::kContiguous);
    Tensor kh(c.dtype, c.shape(c.seq, kv.length), Layout::kContiguous);
    diffcoll_tensor_t in = k.desc(), out = kh.desc();
    auto call = [&](const diffcoll_ulysses_options_t& o) {
      return diffcoll_ulysses_all_to_all_ex(comm, &in, &out, 1, 1, 2,
                                            DIFFCOLL_ULYSSES_SEQ_TO_HEAD, &o, nullptr);
    };
    diffcoll_ulysses_options_t o = c.options(c.q_heads);
    o.query_heads = -1;
    expect_error(call(o), DIFFCOLL_ERR_INVALID_ARGUMENT, "query_heads -1");
    o.query_heads = 3;
    expect_error(call(o), DIFFCOLL_ERR_INVALID_ARGUMENT, "neither the 3 query heads");
    // A k/v output with one head too many.
    Tensor wide(c.dtype, c.shape(c.seq, kv.length + 1), Layout::kContiguous);
    diffcoll_tensor_t wide_out = wide.desc();
    o = c.options(c.q_heads);
    expect_error(diffcoll_ulysses_all_to_all_ex(comm, &in, &wide_out, 1, 1, 2,
                                                DIFFCOLL_ULYSSES_SEQ_TO_HEAD, &o, nullptr),
                 DIFFCOLL_ERR_INVALID_ARGUMENT, "diffcoll_ulysses_kv_heads(8, 2, 2, r)");
    o = c.options(c.q_heads);
    o.wire_format = 7;
    expect_error(call(o), DIFFCOLL_ERR_INVALID_ARGUMENT, "wire_format 7");
    o.wire_format = DIFFCOLL_WIRE_FP8_E4M3;
    o.scale_block = 0;
    expect_error(call(o), DIFFCOLL_ERR_INVALID_ARGUMENT, "scale_block 0");
    o = c.options(c.q_heads);
    o.struct_size = sizeof(size_t) + sizeof(int64_t);
    expect_error(call(o), DIFFCOLL_ERR_VERSION, "DIFFCOLL_ULYSSES_OPTIONS_INIT");
    // FP8 needs a float dtype.
    diffcoll_tensor_t ints = in, ints_out = out;
    ints.dtype = ints_out.dtype = DIFFCOLL_INT8;
    o = c.options(c.q_heads);
    o.wire_format = DIFFCOLL_WIRE_FP8_E5M2;
    expect_error(diffcoll_ulysses_all_to_all_ex(comm, &ints, &ints_out, 1, 1, 2,
                                                DIFFCOLL_ULYSSES_SEQ_TO_HEAD, &o, nullptr),
                 DIFFCOLL_ERR_INVALID_ARGUMENT, "cannot travel as FP8");
    // The all-gather's options.
    Tensor whole(c.dtype, c.shape(c.seq, c.kv_heads), Layout::kContiguous);
    Tensor piece = shard(c, 2, kK, {0, c.seq / p}, {0, c.kv_heads}, Layout::kContiguous);
    diffcoll_tensor_t gi = piece.desc(), go = whole.desc();
    diffcoll_all_gather_options_t ag = DIFFCOLL_ALL_GATHER_OPTIONS_INIT;
    ag.wire_format = -1;
    expect_error(diffcoll_all_gather_ex(comm, &gi, &go, 1, &ag, nullptr),
                 DIFFCOLL_ERR_INVALID_ARGUMENT, "wire_format -1");
    ag.wire_format = DIFFCOLL_WIRE_FP8_E4M3;
    ag.struct_size = 4;
    expect_error(diffcoll_all_gather_ex(comm, &gi, &go, 1, &ag, nullptr), DIFFCOLL_ERR_VERSION,
                 "DIFFCOLL_ALL_GATHER_OPTIONS_INIT");
    // After all of that the communicator still works.
    run_exchange(comm, c, 3, r, p);
  });
}

TEST(Gqa, RanksThatDisagreeOnOptionsFailInCheckMode) {
  const int p = 2;
  run_ranks(
      p,
      [&](int r, diffcoll_comm_t* comm) {
        // Both ranks' shapes are right for their own options: rank 1 asks
        // for e5m2 where rank 0 asks for e4m3.
        Case c{"disagree", 1, 6, 8, 8, 4, false, Layout::kContiguous, Layout::kContiguous,
               DIFFCOLL_BFLOAT16, r ? DIFFCOLL_WIRE_FP8_E5M2 : DIFFCOLL_WIRE_FP8_E4M3, 32};
        Tensor q = shard(c, 1, kQ, split(c.seq, p, r), {0, c.q_heads}, Layout::kContiguous);
        Tensor qh(c.dtype, c.shape(c.seq, split(c.q_heads, p, r).length), Layout::kContiguous);
        EXPECT_EQ(ulysses(comm, c, {&q}, {&qh}, DIFFCOLL_ULYSSES_SEQ_TO_HEAD,
                          c.options(c.q_heads), nullptr),
                  DIFFCOLL_ERR_MISMATCH)
            << diffcoll_last_error();
      },
      20000, /*check=*/1, /*final_barrier=*/false);
}

}  // namespace
