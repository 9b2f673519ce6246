// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The Ulysses all-to-all cases shared by the host tests and the CUDA tests
// (the latter define HALO_TEST_CUDA for halo_cases.h's device Mirror): a Call
// is a set of tensors (whole shapes and layouts) with one sequence axis and
// one head axis; run_call builds rank r's sequence shard of each from a
// deterministic whole tensor, runs SEQ_TO_HEAD and checks every element
// against the whole tensor sliced to rank r's heads, then runs HEAD_TO_SEQ
// and checks the result equals the input bit for bit.
#pragma once

#include <memory>
#include <string>
#include <vector>

#ifdef HALO_TEST_CUDA
#include "../halo/halo_cases.h"
#else
#include "../halo/halo_support.h"
#endif

namespace ulysses_test {

using halo_test::Index;
using halo_test::Layout;
using halo_test::Shape;
using halo_test::Tensor;

struct Operand {
  Shape whole;  // the global tensor: full sequence, all heads
  Layout in = Layout::kContiguous;
  Layout out = Layout::kContiguous;
};

struct Call {
  std::string name;
  std::vector<Operand> tensors;
  int seq_axis = 1;
  int head_axis = 2;
  int dtype = DIFFCOLL_FLOAT32;
  // Set: the call goes through diffcoll_ulysses_all_to_all_ex with these.
  const diffcoll_ulysses_options_t* options = nullptr;
};

inline int axis_of(int axis, size_t ndim) {
  return axis < 0 ? axis + static_cast<int>(ndim) : axis;
}

inline void split(int64_t extent, int parts, int index, int64_t* start, int64_t* length) {
  EXPECT_EQ(diffcoll_split_extent(extent, parts, index, start, length), DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
}

// Element `idx` of the whole tensor `t`: small integers, exact in bf16,
// different for neighbouring positions and tensors.
inline double whole_value(int dtype, uint64_t salt, int t, const Index& idx) {
  uint64_t h = salt * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(t) * 1000003ull;
  for (int64_t i : idx) h = (h ^ static_cast<uint64_t>(i + 1)) * 0x100000001B3ull;
  const int64_t range = dtype == DIFFCOLL_BFLOAT16 ? 255 : 1000003;
  return static_cast<double>(static_cast<int64_t>(h >> 20) % range - range / 2);
}

// `whole` with dimension `axis` cut to rank r's part; *start receives the
// part's first row.
inline Shape shard(Shape whole, int axis, int parts, int r, int64_t* start) {
  int64_t length;
  split(whole[axis], parts, r, start, &length);
  whole[axis] = length;
  return whole;
}

#ifdef HALO_TEST_CUDA
struct Where {
  int device;
  void* stream;
};
#endif

// One all-to-all of every tensor of `call` in `direction`, on the host or
// (CUDA tests) through device copies on where->stream.
inline diffcoll_status_t all_to_all(diffcoll_comm_t* comm, const Call& call,
                                    std::vector<Tensor>& in, std::vector<Tensor>& out,
                                    int direction, const void* where) {
  std::vector<diffcoll_tensor_t> di, dout;
#ifdef HALO_TEST_CUDA
  const Where& w = *static_cast<const Where*>(where);
  std::vector<std::unique_ptr<halo_test::Mirror>> mi, mo;
  for (size_t t = 0; t < in.size(); ++t) {
    mi.emplace_back(new halo_test::Mirror(in[t], w.device));
    mo.emplace_back(new halo_test::Mirror(out[t], w.device));
    di.push_back(mi.back()->desc(w.device));
    dout.push_back(mo.back()->desc(w.device));
  }
  const int32_t n = static_cast<int32_t>(in.size());
  diffcoll_status_t st =
      call.options ? diffcoll_ulysses_all_to_all_ex(comm, di.data(), dout.data(), n, call.seq_axis,
                                                    call.head_axis, direction, call.options,
                                                    w.stream)
                   : diffcoll_ulysses_all_to_all(comm, di.data(), dout.data(), n, call.seq_axis,
                                                 call.head_axis, direction, w.stream);
  EXPECT_EQ(cudaStreamSynchronize(static_cast<cudaStream_t>(w.stream)), cudaSuccess);
  for (auto& m : mo) m->download();
  return st;
#else
  (void)where;
  for (size_t t = 0; t < in.size(); ++t) {
    di.push_back(in[t].desc());
    dout.push_back(out[t].desc());
  }
  const int32_t n = static_cast<int32_t>(in.size());
  return call.options ? diffcoll_ulysses_all_to_all_ex(comm, di.data(), dout.data(), n,
                                                       call.seq_axis, call.head_axis, direction,
                                                       call.options, nullptr)
                      : diffcoll_ulysses_all_to_all(comm, di.data(), dout.data(), n,
                                                    call.seq_axis, call.head_axis, direction,
                                                    nullptr);
#endif
}

// Runs `call` on rank `rank` of `comm` (size p); see the file comment.
// `where` is NULL on the host, a Where* in the CUDA tests.
inline void run_call(const Call& call, int rank, int p, diffcoll_comm_t* comm, uint64_t salt,
                     const void* where = nullptr) {
  SCOPED_TRACE(call.name + " on rank " + std::to_string(rank) + " of " + std::to_string(p));
  std::vector<Tensor> in, out, back;
  std::vector<int64_t> seq_start(call.tensors.size()), head_start(call.tensors.size());
  for (size_t t = 0; t < call.tensors.size(); ++t) {
    const Operand& o = call.tensors[t];
    const int s = axis_of(call.seq_axis, o.whole.size());
    const int h = axis_of(call.head_axis, o.whole.size());
    const Shape in_shape = shard(o.whole, s, p, rank, &seq_start[t]);
    const Shape out_shape = shard(o.whole, h, p, rank, &head_start[t]);
    in.emplace_back(call.dtype, in_shape, o.in);
    const int64_t s0 = seq_start[t];
    in.back().fill([&](const Index& idx) {
      Index g = idx;
      g[s] += s0;
      return whole_value(call.dtype, salt, static_cast<int>(t), g);
    });
    out.emplace_back(call.dtype, out_shape, o.out);
    back.emplace_back(call.dtype, in_shape, o.out);
  }

  ASSERT_EQ(all_to_all(comm, call, in, out, DIFFCOLL_ULYSSES_SEQ_TO_HEAD, where),
            DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  for (size_t t = 0; t < out.size(); ++t) {
    const int h = axis_of(call.head_axis, out[t].shape().size());
    int64_t wrong = 0;
    for (int64_t i = 0; i < halo_test::numel(out[t].shape()); ++i) {
      const Index idx = halo_test::unflatten(i, out[t].shape());
      Index g = idx;
      g[h] += head_start[t];
      if (out[t].get(idx) != whole_value(call.dtype, salt, static_cast<int>(t), g) &&
          wrong++ < 3)
        ADD_FAILURE() << "tensor " << t << " element " << halo_test::str(idx) << " is "
                      << out[t].get(idx) << ", expected "
                      << whole_value(call.dtype, salt, static_cast<int>(t), g);
    }
    EXPECT_EQ(wrong, 0) << "tensor " << t << ": wrong elements after SEQ_TO_HEAD";
    EXPECT_EQ(out[t].gap_bytes_changed(), 0u) << "tensor " << t << ": written outside the view";
  }

  ASSERT_EQ(all_to_all(comm, call, out, back, DIFFCOLL_ULYSSES_HEAD_TO_SEQ, where),
            DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  for (size_t t = 0; t < back.size(); ++t) {
    int64_t wrong = 0;
    for (int64_t i = 0; i < halo_test::numel(back[t].shape()); ++i) {
      const Index idx = halo_test::unflatten(i, back[t].shape());
      if (back[t].get(idx) != in[t].get(idx)) ++wrong;
    }
    EXPECT_EQ(wrong, 0) << "tensor " << t << ": HEAD_TO_SEQ did not return the input";
    EXPECT_EQ(back[t].gap_bytes_changed(), 0u) << "tensor " << t << ": written outside the view";
  }
}

// The calls every degree runs: the three layouts of the issue, a permuted
// (channels-last) and a gapped view, uneven sequence and heads, several
// tensors of different head counts in one call, bf16.
inline std::vector<Call> standard_calls(int p) {
  const int64_t even_s = 2 * p, even_h = 2 * p;
  const int64_t odd_s = 2 * p + 1, odd_h = p + 2;  // uneven for p > 1
  std::vector<Call> calls;
  calls.push_back({"BSHD even", {{{2, even_s, even_h, 3}}}, 1, 2});
  calls.push_back({"BSHD uneven S and H", {{{1, odd_s, odd_h, 4}}}, 1, 2});
  calls.push_back({"BHSD uneven", {{{2, odd_h, odd_s, 3}}}, 2, 1});
  calls.push_back({"SBHD", {{{even_s, 2, odd_h, 3}}}, 0, 2});
  calls.push_back({"BSHD negative axes", {{{1, odd_s, even_h, 2}}}, -3, -2});
  calls.push_back({"BSHD fewer heads than ranks", {{{1, odd_s, 1, 5}}}, 1, 2});
  calls.push_back({"BSHD channels_last in, gapped out",
                   {{{2, odd_s, even_h, 3}, Layout::kChannelsLast, Layout::kGapped}}, 1, 2});
  calls.push_back({"BHSD gapped in, channels_last out",
                   {{{1, even_h, odd_s, 4}, Layout::kGapped, Layout::kChannelsLast}}, 2, 1});
  calls.push_back({"q, k, v with fewer k/v heads",
                   {{{1, odd_s, 2 * odd_h, 4}},
                    {{1, odd_s, odd_h, 4}, Layout::kGapped, Layout::kContiguous},
                    {{1, odd_s, odd_h, 4}, Layout::kContiguous, Layout::kChannelsLast}},
                   1, 2});
  calls.push_back({"q, k, v even", {{{1, even_s, even_h, 8}}, {{1, even_s, even_h, 8}},
                                    {{1, even_s, even_h, 8}}}, 1, 2});
  Call bf16{"BSHD bf16 uneven", {{{1, odd_s, odd_h, 8}}}, 1, 2, DIFFCOLL_BFLOAT16};
  calls.push_back(bf16);
  return calls;
}

}  // namespace ulysses_test
