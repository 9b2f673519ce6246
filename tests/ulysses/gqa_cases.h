// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// Grouped-query attention and FP8 transport through
// diffcoll_ulysses_all_to_all_ex and diffcoll_all_gather_ex, shared by the
// host tests (ranks as threads) and the GPU tests (HALO_TEST_CUDA: the same
// calls on device copies of the tensors, or on the host where `where` is
// NULL). Everything is checked against a
// whole tensor on one rank built from a deterministic random function:
//  - the exchange: every element where it belongs, exactly natively and
//    within the documented FP8 bound otherwise (computed here from the
//    format's definition, independently of the library's codec);
//  - attention: q, k, v sequence-sharded, GQA-aware exchange, attention on
//    each rank's heads with the stated k/v head map, output back to
//    sequence-sharded; equal bit for bit to the same steps with k/v copied
//    up to the query head count, and (natively) to attention on one rank.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#ifdef HALO_TEST_CUDA
#include "../halo/halo_cases.h"
#else
#include "../halo/halo_support.h"
#endif

namespace gqa_test {

using halo_test::Index;
using halo_test::Layout;
using halo_test::Shape;
using halo_test::Tensor;

struct Part {
  int64_t start = 0, length = 0;
};

inline Part split(int64_t extent, int parts, int index) {
  Part p;
  EXPECT_EQ(diffcoll_split_extent(extent, parts, index, &p.start, &p.length), DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  return p;
}

inline Part kv_part(int64_t q_heads, int64_t kv_heads, int parts, int index) {
  Part p;
  EXPECT_EQ(diffcoll_ulysses_kv_heads(q_heads, kv_heads, parts, index, &p.start, &p.length),
            DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  return p;
}

// One attention layer's shapes and the way its tensors lie and travel.
struct Case {
  std::string name;
  int64_t batch, seq, q_heads, kv_heads, dim;
  bool heads_first = false;  // [B, H, S, D] rather than [B, S, H, D]
  Layout in = Layout::kContiguous, out = Layout::kContiguous;
  int dtype = DIFFCOLL_BFLOAT16;
  int32_t wire = DIFFCOLL_WIRE_NATIVE;
  int32_t block = 32;

  int seq_axis() const { return heads_first ? 2 : 1; }
  int head_axis() const { return heads_first ? 1 : 2; }
  Shape shape(int64_t tokens, int64_t heads) const {
    return heads_first ? Shape{batch, heads, tokens, dim} : Shape{batch, tokens, heads, dim};
  }
  Index at(int64_t b, int64_t s, int64_t h, int64_t d) const {
    return heads_first ? Index{b, h, s, d} : Index{b, s, h, d};
  }
  diffcoll_ulysses_options_t options(int64_t query_heads) const {
    diffcoll_ulysses_options_t o = DIFFCOLL_ULYSSES_OPTIONS_INIT;
    o.query_heads = query_heads;
    o.wire_format = wire;
    o.scale_block = block;
    return o;
  }
  std::string where(int rank, int p) const {
    return name + " on rank " + std::to_string(rank) + " of " + std::to_string(p);
  }
};

// Tensor roles, for the values.
enum Role { kQ = 0, kK = 1, kV = 2, kO = 3 };

// Element (b, s, h, d) of the whole tensor `role`: uniform in [-1, 1), times
// a magnitude that differs between heads and tokens, so that FP8 groups get
// different scales.
inline double whole_value(uint64_t salt, int role, int64_t b, int64_t s, int64_t h, int64_t d) {
  uint64_t x = salt * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(role) * 0xBF58476D1CE4E5B9ull;
  for (int64_t i : {b, s, h, d}) x = (x ^ static_cast<uint64_t>(i + 1)) * 0x100000001B3ull;
  x ^= x >> 29;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 32;
  const double unit = static_cast<double>(x >> 11) / static_cast<double>(1ull << 53) * 2.0 - 1.0;
  return unit * std::ldexp(1.0, static_cast<int>(h % 4) - 1) * (1.0 + static_cast<double>(s % 3));
}

// x as a tensor of `dtype` stores it.
inline double stored(int dtype, double x) {
  uint8_t bytes[8];
  halo_test::store(dtype, bytes, x);
  return halo_test::load(dtype, bytes);
}

// Rank r's share of a whole tensor: tokens `tokens`, heads `heads`.
inline Tensor shard(const Case& c, uint64_t salt, int role, Part tokens, Part heads,
                    Layout layout) {
  Tensor t(c.dtype, c.shape(tokens.length, heads.length), layout);
  const int s_axis = c.seq_axis(), h_axis = c.head_axis();
  t.fill([&](const Index& i) {
    return whole_value(salt, role, i[0], i[s_axis] + tokens.start, i[h_axis] + heads.start, i[3]);
  });
  return t;
}

// ---- the exchange, on the host or on device copies -----------------------------

#ifdef HALO_TEST_CUDA
// Where a call runs in the GPU tests: NULL for the host, else device copies
// of the tensors on `device`, the call on `stream`.
struct Where {
  int device;
  void* stream;
};
#endif

inline diffcoll_status_t ulysses(diffcoll_comm_t* comm, const Case& c,
                                 const std::vector<Tensor*>& in, const std::vector<Tensor*>& out,
                                 int direction, const diffcoll_ulysses_options_t& o,
                                 const void* where) {
  std::vector<diffcoll_tensor_t> di, dout;
  const int32_t n = static_cast<int32_t>(in.size());
#ifdef HALO_TEST_CUDA
  if (where) {
    const Where& w = *static_cast<const Where*>(where);
    std::vector<std::unique_ptr<halo_test::Mirror>> mirrors;
    for (Tensor* t : in) {
      mirrors.emplace_back(new halo_test::Mirror(*t, w.device));
      di.push_back(mirrors.back()->desc(w.device));
    }
    for (Tensor* t : out) {
      mirrors.emplace_back(new halo_test::Mirror(*t, w.device));
      dout.push_back(mirrors.back()->desc(w.device));
    }
    const diffcoll_status_t st = diffcoll_ulysses_all_to_all_ex(
        comm, di.data(), dout.data(), n, c.seq_axis(), c.head_axis(), direction, &o, w.stream);
    EXPECT_EQ(cudaStreamSynchronize(static_cast<cudaStream_t>(w.stream)), cudaSuccess);
    for (size_t t = in.size(); t < mirrors.size(); ++t) mirrors[t]->download();
    return st;
  }
#else
  (void)where;
#endif
  for (Tensor* t : in) di.push_back(t->desc());
  for (Tensor* t : out) dout.push_back(t->desc());
  return diffcoll_ulysses_all_to_all_ex(comm, di.data(), dout.data(), n, c.seq_axis(),
                                        c.head_axis(), direction, &o, nullptr);
}

inline diffcoll_status_t all_gather(diffcoll_comm_t* comm, Tensor& in, Tensor& out, int axis,
                                    const diffcoll_all_gather_options_t& o, const void* where) {
#ifdef HALO_TEST_CUDA
  if (where) {
    const Where& w = *static_cast<const Where*>(where);
    halo_test::Mirror mi(in, w.device), mo(out, w.device);
    const diffcoll_tensor_t di = mi.desc(w.device), dout = mo.desc(w.device);
    const diffcoll_status_t st = diffcoll_all_gather_ex(comm, &di, &dout, axis, &o, w.stream);
    EXPECT_EQ(cudaStreamSynchronize(static_cast<cudaStream_t>(w.stream)), cudaSuccess);
    mo.download();
    return st;
  }
#else
  (void)where;
#endif
  const diffcoll_tensor_t di = in.desc(), dout = out.desc();
  return diffcoll_all_gather_ex(comm, &di, &dout, axis, &o, nullptr);
}

// ---- FP8's bound ------------------------------------------------------------------

// The documented bound for element x (as stored) of a group with largest
// magnitude amax (as stored), for the case's wire format and dtype. A small
// slack covers float32's rounding of the scale and of x * F / amax.
inline double fp8_bound(const Case& c, double x, double amax) {
  const bool e4m3 = c.wire == DIFFCOLL_WIRE_FP8_E4M3;
  const double relative = e4m3 ? std::ldexp(1.0, -4) : std::ldexp(1.0, -3);
  const double scale = amax / (e4m3 ? 448.0 : 57344.0);
  const double subnormal = e4m3 ? std::ldexp(1.0, -10) : std::ldexp(1.0, -17);
  const double out_rounding = c.dtype == DIFFCOLL_BFLOAT16 ? std::ldexp(1.0, -8)
                              : c.dtype == DIFFCOLL_FLOAT16 ? std::ldexp(1.0, -11)
                                                            : std::ldexp(1.0, -24);
  const double slack = std::ldexp(1.0, -20) * (std::fabs(x) + scale);
  return relative * std::fabs(x) + subnormal * scale +
         out_rounding * std::fabs(x) * (1.0 + relative) + slack;
}

// Largest stored magnitude of the group that element (b, s, h) of whole
// tensor `role` belongs to when it travels in a message whose tokens start
// at `first` and end before `end` (the sequence shard of the rank that holds
// the token): tokens in blocks of c.block from `first`, every d.
inline double group_amax(const Case& c, uint64_t salt, int role, int64_t b, int64_t s, int64_t h,
                         int64_t first, int64_t end) {
  const int64_t lo = first + (s - first) / c.block * c.block;
  const int64_t hi = std::min(end, lo + c.block);
  double amax = 0;
  for (int64_t t = lo; t < hi; ++t)
    for (int64_t d = 0; d < c.dim; ++d)
      amax = std::max(amax, std::fabs(stored(c.dtype, whole_value(salt, role, b, t, h, d))));
  return amax;
}

// group_amax, each group computed once.
class GroupAmax {
 public:
  GroupAmax(const Case& c, uint64_t salt, int role) : c_(c), salt_(salt), role_(role) {}
  double operator()(int64_t b, int64_t s, int64_t h, int64_t first, int64_t end) {
    const auto key = std::make_tuple(b, first + (s - first) / c_.block, h);
    auto it = cache_.find(key);
    if (it == cache_.end())
      it = cache_.emplace(key, group_amax(c_, salt_, role_, b, s, h, first, end)).first;
    return it->second;
  }

 private:
  const Case& c_;
  uint64_t salt_;
  int role_;
  std::map<std::tuple<int64_t, int64_t, int64_t>, double> cache_;
};

// Counts what a checked tensor looked like, for messages and for the test
// that FP8 really ran.
struct Tally {
  int64_t wrong = 0, moved = 0, changed = 0;
};

// Checks rank `rank`'s tensor `t` holding tokens `tokens` and heads `heads`
// of whole tensor `role` after an exchange over `p` ranks: an element whose
// token the rank held itself before (stays(s, h)) or that moved natively must
// be exact; one that moved as FP8 must be within fp8_bound of its group.
template <typename Stays>
Tally check_tensor(const Case& c, uint64_t salt, int role, const Tensor& t, Part tokens,
                   Part heads, int p, Stays stays, const std::string& what) {
  Tally tally;
  const int s_axis = c.seq_axis(), h_axis = c.head_axis();
  std::vector<Part> shards;
  for (int r = 0; r < p; ++r) shards.push_back(split(c.seq, p, r));
  GroupAmax amax(c, salt, role);
  for (int64_t i = 0; i < halo_test::numel(t.shape()); ++i) {
    const Index idx = halo_test::unflatten(i, t.shape());
    const int64_t b = idx[0], s = idx[s_axis] + tokens.start, h = idx[h_axis] + heads.start;
    const double want = stored(c.dtype, whole_value(salt, role, b, s, h, idx[3]));
    const double got = t.get(idx);
    const bool exact = c.wire == DIFFCOLL_WIRE_NATIVE || stays(s, h);
    double allowed = 0;
    if (!exact) {
      ++tally.moved;
      int r = 0;
      while (shards[r].start + shards[r].length <= s) ++r;
      allowed = fp8_bound(c, want, amax(b, s, h, shards[r].start,
                                        shards[r].start + shards[r].length));
      if (got != want) ++tally.changed;
    }
    if (!(std::fabs(got - want) <= allowed) && tally.wrong++ < 3)
      ADD_FAILURE() << what << ": tensor " << role << " element " << halo_test::str(idx)
                    << " (token " << s << ", head " << h << ") is " << got << ", expected "
                    << want << " within " << allowed;
  }
  EXPECT_EQ(tally.wrong, 0) << what << ": tensor " << role << " has wrong elements";
  EXPECT_EQ(t.gap_bytes_changed(), 0u) << what << ": tensor " << role << " written outside";
  return tally;
}

// ---- attention ------------------------------------------------------------------

// o[b, s, ho] = softmax(q[b, s, hq] . k[b, :, hk] / sqrt(D)) v[b, :, hk] for
// every b and s of o, in float32 in a fixed order; q, k, v and o hold every
// token (the head-sharded side).
inline void attend(const Case& c, const Tensor& q, int64_t hq, const Tensor& k, const Tensor& v,
                   int64_t hk, Tensor& o, int64_t ho) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.dim));
  std::vector<float> logits(static_cast<size_t>(c.seq));
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t s = 0; s < c.seq; ++s) {
      float top = -INFINITY;
      for (int64_t t = 0; t < c.seq; ++t) {
        float dot = 0;
        for (int64_t d = 0; d < c.dim; ++d)
          dot += static_cast<float>(q.get(c.at(b, s, hq, d))) *
                 static_cast<float>(k.get(c.at(b, t, hk, d)));
        logits[t] = dot * scale;
        top = std::max(top, logits[t]);
      }
      float sum = 0;
      for (int64_t t = 0; t < c.seq; ++t) sum += logits[t] = std::exp(logits[t] - top);
      for (int64_t d = 0; d < c.dim; ++d) {
        float acc = 0;
        for (int64_t t = 0; t < c.seq; ++t)
          acc += logits[t] * static_cast<float>(v.get(c.at(b, t, hk, d)));
        o.set(c.at(b, s, ho, d), acc / sum);
      }
    }
}

// The sequence-sharded attention output of rank `rank`: q, k, v shards
// exchanged to heads (GQA-aware when `copy_up` is false; else k and v are
// first copied up to the query head count, as engines do today), attention
// on the rank's heads, the output exchanged back.
inline Tensor ulysses_attention(diffcoll_comm_t* comm, const Case& c, uint64_t salt, int rank,
                                int p, bool copy_up, const void* where) {
  const Part tokens = split(c.seq, p, rank), q_heads = split(c.q_heads, p, rank);
  const int64_t group = c.q_heads / c.kv_heads;
  // Copied up, "k/v head" h is k/v head h / group of the model.
  const int64_t kv_count = copy_up ? c.q_heads : c.kv_heads;
  const Part kv_heads = copy_up ? q_heads : kv_part(c.q_heads, c.kv_heads, p, rank);
  Tensor q = shard(c, salt, kQ, tokens, {0, c.q_heads}, c.in);
  Tensor k(c.dtype, c.shape(tokens.length, kv_count), c.in);
  Tensor v(c.dtype, c.shape(tokens.length, kv_count), c.in);
  const int s_axis = c.seq_axis(), h_axis = c.head_axis();
  for (int role : {kK, kV})
    (role == kK ? k : v).fill([&](const Index& i) {
      const int64_t h = copy_up ? i[h_axis] / group : i[h_axis];
      return whole_value(salt, role, i[0], i[s_axis] + tokens.start, h, i[3]);
    });
  Tensor qh(c.dtype, c.shape(c.seq, q_heads.length), c.out);
  Tensor kh(c.dtype, c.shape(c.seq, kv_heads.length), c.out);
  Tensor vh(c.dtype, c.shape(c.seq, kv_heads.length), c.out);
  const diffcoll_ulysses_options_t o = c.options(copy_up ? 0 : c.q_heads);
  EXPECT_EQ(ulysses(comm, c, {&q, &k, &v}, {&qh, &kh, &vh}, DIFFCOLL_ULYSSES_SEQ_TO_HEAD, o, where),
            DIFFCOLL_SUCCESS)
      << c.where(rank, p) << ": " << diffcoll_last_error();
  Tensor oh(c.dtype, c.shape(c.seq, q_heads.length), c.out);
  for (int64_t i = 0; i < q_heads.length; ++i) {
    // The map the header states: local query head i attends local k/v head
    // (qs + i) / G - start.
    const int64_t j = copy_up ? i : (q_heads.start + i) / group - kv_heads.start;
    attend(c, qh, i, kh, vh, j, oh, i);
  }
  Tensor out(c.dtype, c.shape(tokens.length, c.q_heads), c.in);
  EXPECT_EQ(ulysses(comm, c, {&oh}, {&out}, DIFFCOLL_ULYSSES_HEAD_TO_SEQ, o, where),
            DIFFCOLL_SUCCESS)
      << c.where(rank, p) << ": " << diffcoll_last_error();
  return out;
}

// Attention of the whole q, k, v on one rank, rows `tokens` of the output.
inline Tensor reference_attention(const Case& c, uint64_t salt, Part tokens) {
  const Part all_tokens{0, c.seq};
  Tensor q = shard(c, salt, kQ, all_tokens, {0, c.q_heads}, Layout::kContiguous);
  Tensor k = shard(c, salt, kK, all_tokens, {0, c.kv_heads}, Layout::kContiguous);
  Tensor v = shard(c, salt, kV, all_tokens, {0, c.kv_heads}, Layout::kContiguous);
  Tensor o(c.dtype, c.shape(c.seq, c.q_heads), Layout::kContiguous);
  for (int64_t h = 0; h < c.q_heads; ++h) attend(c, q, h, k, v, h / (c.q_heads / c.kv_heads), o, h);
  Tensor rows(c.dtype, c.shape(tokens.length, c.q_heads), Layout::kContiguous);
  rows.fill([&](const Index& i) {
    Index g = i;
    g[c.seq_axis()] += tokens.start;
    return o.get(g);
  });
  return rows;
}

inline int64_t differing_elements(const Tensor& a, const Tensor& b) {
  int64_t n = 0;
  for (int64_t i = 0; i < halo_test::numel(a.shape()); ++i) {
    const Index idx = halo_test::unflatten(i, a.shape());
    const double x = a.get(idx), y = b.get(idx);
    if (!(x == y || (std::isnan(x) && std::isnan(y)))) ++n;
  }
  return n;
}

// ---- one exchange checked element by element ---------------------------------------

// q, k, v of `c` sequence-sharded on rank `rank`: SEQ_TO_HEAD (GQA-aware)
// checked against the whole tensors, then HEAD_TO_SEQ of head-sharded whole
// values checked the same way. Returns the tallies of q, k and v of both
// directions; `outputs` receives the six results (for the GPU tests'
// comparison with the host).
inline std::vector<Tally> run_exchange(diffcoll_comm_t* comm, const Case& c, uint64_t salt,
                                       int rank, int p, const void* where = nullptr,
                                       std::vector<Tensor>* outputs = nullptr) {
  const Part tokens = split(c.seq, p, rank), q_heads = split(c.q_heads, p, rank);
  const Part kv_held = kv_part(c.q_heads, c.kv_heads, p, rank);
  Part kv_owned;  // the rank that holds a group's first query head owns its k/v head
  kv_owned.start = (q_heads.start + c.q_heads / c.kv_heads - 1) / (c.q_heads / c.kv_heads);
  kv_owned.length = q_heads.length ? kv_held.start + kv_held.length - kv_owned.start : 0;
  const diffcoll_ulysses_options_t o = c.options(c.q_heads);
  auto in_part = [](const Part& part, int64_t x) {
    return x >= part.start && x < part.start + part.length;
  };
  std::vector<Tally> tallies;
  // Forward: every element of the head-sharded outputs.
  Tensor q = shard(c, salt, kQ, tokens, {0, c.q_heads}, c.in);
  Tensor k = shard(c, salt, kK, tokens, {0, c.kv_heads}, c.in);
  Tensor v = shard(c, salt, kV, tokens, {0, c.kv_heads}, c.out);
  Tensor qh(c.dtype, c.shape(c.seq, q_heads.length), c.out);
  Tensor kh(c.dtype, c.shape(c.seq, kv_held.length), c.out);
  Tensor vh(c.dtype, c.shape(c.seq, kv_held.length), c.in);
  EXPECT_EQ(ulysses(comm, c, {&q, &k, &v}, {&qh, &kh, &vh}, DIFFCOLL_ULYSSES_SEQ_TO_HEAD, o, where),
            DIFFCOLL_SUCCESS)
      << c.where(rank, p) << ": " << diffcoll_last_error();
  auto mine = [&](int64_t s, int64_t) { return in_part(tokens, s); };
  const std::string fwd = c.where(rank, p) + " SEQ_TO_HEAD";
  tallies.push_back(check_tensor(c, salt, kQ, qh, {0, c.seq}, q_heads, p, mine, fwd));
  tallies.push_back(check_tensor(c, salt, kK, kh, {0, c.seq}, kv_held, p, mine, fwd));
  tallies.push_back(check_tensor(c, salt, kV, vh, {0, c.seq}, kv_held, p, mine, fwd));
  // Backward: head-sharded whole values to sequence-sharded. A k/v element
  // stays on the rank when the rank owns its head and holds its token.
  Tensor qb = shard(c, salt, kQ, {0, c.seq}, q_heads, c.in);
  Tensor kb = shard(c, salt, kK, {0, c.seq}, kv_held, c.out);
  Tensor vb = shard(c, salt, kV, {0, c.seq}, kv_held, c.in);
  Tensor qs(c.dtype, c.shape(tokens.length, c.q_heads), c.out);
  Tensor ks(c.dtype, c.shape(tokens.length, c.kv_heads), c.in);
  Tensor vs(c.dtype, c.shape(tokens.length, c.kv_heads), c.out);
  EXPECT_EQ(ulysses(comm, c, {&qb, &kb, &vb}, {&qs, &ks, &vs}, DIFFCOLL_ULYSSES_HEAD_TO_SEQ, o,
                    where),
            DIFFCOLL_SUCCESS)
      << c.where(rank, p) << ": " << diffcoll_last_error();
  const std::string back = c.where(rank, p) + " HEAD_TO_SEQ";
  tallies.push_back(check_tensor(c, salt, kQ, qs, tokens, {0, c.q_heads}, p,
                                 [&](int64_t, int64_t h) { return in_part(q_heads, h); }, back));
  for (int role : {kK, kV})
    tallies.push_back(check_tensor(c, salt, role, role == kK ? ks : vs, tokens, {0, c.kv_heads},
                                   p, [&](int64_t, int64_t h) { return in_part(kv_owned, h); },
                                   back));
  if (outputs) *outputs = {qh, kh, vh, qs, ks, vs};
  return tallies;
}

// The host and GQA calls every degree runs: group sizes 1 (MQA) to 7, P
// dividing the k/v heads or not, P > k/v heads, P > query heads, both
// layouts, strided views, bf16 and f32, natively and as FP8.
inline std::vector<Case> exchange_cases() {
  std::vector<Case> v;
  v.push_back({"32/8-like (8/2) BSHD", 1, 13, 8, 2, 8});
  v.push_back({"28/7-like (14/2) BHSD, channels_last in, gapped out", 2, 11, 14, 2, 4, true,
               Layout::kChannelsLast, Layout::kGapped});
  v.push_back({"MQA (6/1) gapped in", 1, 9, 6, 1, 8, false, Layout::kGapped});
  v.push_back({"G = 3 (12/4) f32", 1, 10, 12, 4, 4, false, Layout::kContiguous,
               Layout::kContiguous, DIFFCOLL_FLOAT32});
  v.push_back({"e4m3 8/2 block 4", 2, 23, 8, 2, 16, false, Layout::kContiguous,
               Layout::kContiguous, DIFFCOLL_BFLOAT16, DIFFCOLL_WIRE_FP8_E4M3, 4});
  v.push_back({"e5m2 14/2 BHSD gapped block 3", 1, 17, 14, 2, 8, true, Layout::kGapped,
               Layout::kContiguous, DIFFCOLL_BFLOAT16, DIFFCOLL_WIRE_FP8_E5M2, 3});
  v.push_back({"e4m3 f32 12/4 channels_last block 32", 1, 40, 12, 4, 8, false,
               Layout::kChannelsLast, Layout::kChannelsLast, DIFFCOLL_FLOAT32,
               DIFFCOLL_WIRE_FP8_E4M3, 32});
  return v;
}

// Smaller shapes for the attention comparison (attention is O(S^2) here).
inline std::vector<Case> attention_cases() {
  std::vector<Case> v;
  v.push_back({"attention 8/2", 1, 12, 8, 2, 8});
  v.push_back({"attention 28/7 BHSD gapped", 1, 9, 28, 7, 4, true, Layout::kGapped,
               Layout::kChannelsLast});
  v.push_back({"attention MQA f32", 2, 7, 5, 1, 4, false, Layout::kContiguous,
               Layout::kContiguous, DIFFCOLL_FLOAT32});
  v.push_back({"attention 8/2 e4m3", 1, 12, 8, 2, 8, false, Layout::kContiguous,
               Layout::kContiguous, DIFFCOLL_BFLOAT16, DIFFCOLL_WIRE_FP8_E4M3, 4});
  return v;
}

// Rank `rank`'s [B, S_r, H, D] shard for the all-gather, S_r = tokens_per_rank.
inline Tensor gather_input(const Case& c, uint64_t salt, int rank) {
  return shard(c, salt, kK, {rank * c.seq, c.seq}, {0, c.kv_heads}, c.in);
}

// The FP8 all-gather of every rank's gather_input along the sequence: every
// element, the rank's own block too, within the bound of its group (tokens
// in blocks from the start of each rank's block).
inline Tensor run_all_gather(diffcoll_comm_t* comm, const Case& c, uint64_t salt, int rank, int p,
                             const void* where = nullptr) {
  Tensor in = gather_input(c, salt, rank);
  Tensor out(c.dtype, c.shape(c.seq * p, c.kv_heads), c.out);
  diffcoll_all_gather_options_t o = DIFFCOLL_ALL_GATHER_OPTIONS_INIT;
  o.wire_format = c.wire;
  o.scale_block = c.block;
  EXPECT_EQ(all_gather(comm, in, out, c.seq_axis(), o, where), DIFFCOLL_SUCCESS)
      << c.where(rank, p) << ": " << diffcoll_last_error();
  Case whole = c;
  whole.seq = c.seq * p;
  const Tally t = check_tensor(whole, salt, kK, out, {0, whole.seq}, {0, c.kv_heads}, p,
                               [](int64_t, int64_t) { return false; },
                               c.where(rank, p) + " all_gather");
  if (c.wire != DIFFCOLL_WIRE_NATIVE) {
    EXPECT_GT(t.changed, t.moved / 4) << c.where(rank, p) << ": FP8 changed too few values";
  }
  return out;
}

}  // namespace gqa_test
