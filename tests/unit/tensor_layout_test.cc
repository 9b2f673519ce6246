// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// White-box tests of TensorView's layout predicates, validation, and the host
// packer (pack_host / unpack_host) against a naive index-by-index reference.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/pack.h"
#include "core/tensor.h"

namespace diffcoll {
namespace {

TensorView make_view(void* data, DType dtype, std::vector<int64_t> shape,
                     std::vector<int64_t> strides) {
  TensorView t;
  t.data = data;
  t.dtype = dtype;
  t.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < t.ndim; ++d) {
    t.shape[d] = shape[d];
    t.strides[d] = strides[d];
  }
  return t;
}

// A float32 view over a static buffer (the predicates never dereference it).
float g_buffer[4096];
TensorView view(std::vector<int64_t> shape, std::vector<int64_t> strides) {
  return make_view(g_buffer + 2048, DType::kFloat32, std::move(shape), std::move(strides));
}

struct LayoutCase {
  const char* name;
  std::vector<int64_t> shape, strides;
  bool contiguous, dense, overlap;
  MemoryFormat format;
};

const char* format_name(MemoryFormat f) {
  switch (f) {
    case MemoryFormat::kContiguous: return "contiguous";
    case MemoryFormat::kChannelsLast: return "channels_last";
    case MemoryFormat::kChannelsLast3d: return "channels_last_3d";
    case MemoryFormat::kOther: return "other";
  }
  return "?";
}

TEST(TensorLayout, Predicates) {
  const MemoryFormat C = MemoryFormat::kContiguous, CL = MemoryFormat::kChannelsLast,
                     CL3 = MemoryFormat::kChannelsLast3d, O = MemoryFormat::kOther;
  const std::vector<LayoutCase> cases = {
      {"contiguous 3d", {2, 3, 4}, {12, 4, 1}, true, true, false, C},
      {"contiguous 1d", {7}, {1}, true, true, false, C},
      {"scalar", {}, {}, true, true, false, C},
      {"size-1 dims with odd strides", {3, 1, 4}, {4, 999, 1}, true, true, false, C},
      {"empty", {0, 5}, {5, 1}, true, true, false, C},
      {"empty with junk strides", {5, 0}, {-7, 0}, true, true, false, C},
      {"transposed 2d", {4, 3}, {1, 4}, false, true, false, O},
      {"transposed 3d", {2, 3, 4}, {1, 2, 6}, false, true, false, O},
      {"permuted 2d [2,3] strides [1,2]", {2, 3}, {1, 2}, false, true, false, O},
      {"channels_last NCHW", {2, 3, 4, 5}, {60, 1, 15, 3}, false, true, false, CL},
      {"channels_last N=1", {1, 3, 4, 5}, {60, 1, 15, 3}, false, true, false, CL},
      {"channels_last_3d NCDHW", {2, 3, 4, 5, 6}, {360, 1, 90, 18, 3}, false, true, false, CL3},
      {"every other column", {3, 4}, {10, 2}, false, false, false, O},
      {"sub-block of [5,5]", {2, 3}, {5, 1}, false, false, false, O},
      {"gapped 4d", {2, 3, 4, 5}, {120, 40, 10, 2}, false, false, false, O},
      {"negative outer stride", {3, 4}, {-4, 1}, false, true, false, O},
      {"negative strides", {3, 4}, {-4, -1}, false, true, false, O},
      {"negative gapped", {3, 4}, {-8, -1}, false, false, false, O},
      {"stride 0 broadcast", {3, 4}, {0, 1}, false, false, true, O},
      {"stride 0 inner", {3, 4}, {4, 0}, false, false, true, O},
      {"stride 0 on size-1 dim", {1, 4}, {0, 1}, true, true, false, C},
      {"interleaved [2,3] strides [2,1]", {2, 3}, {2, 1}, false, false, true, O},
      {"equal strides [2,2] strides [1,1]", {2, 2}, {1, 1}, false, false, true, O},
      {"interleaved negative", {2, 3}, {-2, 1}, false, false, true, O},
  };
  for (const LayoutCase& c : cases) {
    SCOPED_TRACE(c.name);
    TensorView t = view(c.shape, c.strides);
    EXPECT_EQ(t.is_contiguous(), c.contiguous);
    EXPECT_EQ(t.is_dense(), c.dense);
    EXPECT_EQ(t.may_overlap(), c.overlap);
    EXPECT_EQ(t.memory_format(), c.format)
        << format_name(t.memory_format()) << " vs " << format_name(c.format);
    EXPECT_NO_THROW(t.validate("t"));
  }
}

TEST(TensorLayout, NumelNbytesSpanBegin) {
  TensorView t = view({3, 4}, {-4, 1});
  EXPECT_EQ(t.numel(), 12);
  EXPECT_EQ(t.nbytes(), 48u);
  EXPECT_EQ(t.span_begin(), static_cast<void*>(g_buffer + 2048 - 8));
  TensorView u = view({3, 4}, {-4, -1});
  EXPECT_EQ(u.span_begin(), static_cast<void*>(g_buffer + 2048 - 11));
  TensorView s = view({}, {});
  EXPECT_EQ(s.numel(), 1);
  EXPECT_EQ(s.span_begin(), static_cast<void*>(g_buffer + 2048));
  TensorView e = view({0, 3}, {-3, 1});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.nbytes(), 0u);
}

TEST(TensorLayout, SlabSplitMoveAxis) {
  TensorView t = view({6, 4}, {4, 1});
  TensorView s = t.slab(0, 2, 3);
  EXPECT_EQ(s.data, static_cast<void*>(g_buffer + 2048 + 8));
  EXPECT_EQ(s.shape[0], 3);
  TensorView p = t.split_axis(0, 3);
  ASSERT_EQ(p.ndim, 3);
  EXPECT_EQ(p.shape[0], 3);
  EXPECT_EQ(p.shape[1], 2);
  EXPECT_EQ(p.shape[2], 4);
  EXPECT_EQ(p.strides[0], 8);
  EXPECT_EQ(p.strides[1], 4);
  EXPECT_EQ(p.strides[2], 1);
  TensorView q = t.split_axis(1, 2).move_axis(1, 0);  // [2 blocks, 6, 2]
  ASSERT_EQ(q.ndim, 3);
  EXPECT_EQ(q.shape[0], 2);
  EXPECT_EQ(q.shape[1], 6);
  EXPECT_EQ(q.shape[2], 2);
  EXPECT_EQ(q.strides[0], 2);
  EXPECT_EQ(q.strides[1], 4);
  EXPECT_EQ(q.strides[2], 1);
  TensorView r = view({2, 3, 4}, {12, 4, 1}).move_axis(0, 2);
  EXPECT_EQ(r.shape[0], 3);
  EXPECT_EQ(r.shape[1], 4);
  EXPECT_EQ(r.shape[2], 2);
  EXPECT_EQ(r.strides[2], 12);
}

TEST(TensorLayout, Describe) {
  TensorView t = make_view(g_buffer, DType::kBFloat16, {2, 16, 90}, {1440, 90, 1});
  EXPECT_EQ(t.describe(), "bfloat16[2,16,90] strides [1440,90,1] on cpu");
}

TEST(TensorLayout, ContiguousStrides) {
  int64_t shape[4] = {2, 0, 3, 5}, strides[4];
  contiguous_strides(4, shape, strides);
  EXPECT_EQ(strides[3], 1);
  EXPECT_EQ(strides[2], 5);
  EXPECT_EQ(strides[1], 15);
  EXPECT_EQ(strides[0], 15);
}

// ---- validate ------------------------------------------------------------------

void expect_invalid(const TensorView& t, const std::string& needle) {
  try {
    t.validate("my tensor");
    ADD_FAILURE() << "validate accepted " << t.describe() << " (expected: " << needle << ")";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::kInvalidArgument);
    std::string msg = e.what();
    EXPECT_NE(msg.find("my tensor"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

TEST(TensorValidate, RejectsBadDescriptors) {
  TensorView t = view({2, 3}, {3, 1});
  t.ndim = 9;
  expect_invalid(t, "ndim 9");
  t.ndim = -1;
  expect_invalid(t, "ndim -1");
  expect_invalid(view({2, -3}, {3, 1}), "shape[1] is negative");
  expect_invalid(view({int64_t{1} << 32, int64_t{1} << 32}, {0, 0}),
                 "number of elements overflows");
  expect_invalid(view({4}, {INT64_MAX / 2}), "reaches past the address space");
  expect_invalid(view({3}, {INT64_MAX / 2}), "size in bytes overflows");
  expect_invalid(view({3}, {INT64_MIN}), "reaches past the address space");
  expect_invalid(view({2, 2}, {INT64_MAX / 2 + 1, INT64_MAX / 2 + 1}),
                 "reaches past the address space");
  expect_invalid(view({int64_t{1} << 62}, {1}), "size in bytes overflows");
  expect_invalid(view({int64_t{1} << 40}, {int64_t{1} << 22}), "size in bytes overflows");
  expect_invalid(make_view(nullptr, DType::kFloat32, {2}, {1}), "data is NULL");
}

TEST(TensorValidate, AcceptsEdgeCases) {
  EXPECT_NO_THROW(view({}, {}).validate("t"));
  EXPECT_NO_THROW(make_view(nullptr, DType::kFloat32, {0, 7}, {7, 1}).validate("t"));
  EXPECT_NO_THROW(make_view(nullptr, DType::kFloat32, {0, 3}, {INT64_MIN, 1}).validate("t"));
  EXPECT_NO_THROW(view({3, 4}, {0, 0}).validate("t"));   // overlap is the ops' business
  EXPECT_NO_THROW(view({3, 4}, {-4, -1}).validate("t"));
  TensorView eight = view({1, 1, 1, 1, 1, 1, 1, 2}, {1, 1, 1, 1, 1, 1, 1, 1});
  EXPECT_NO_THROW(eight.validate("t"));
}

// ---- pack / unpack -----------------------------------------------------------------

struct RandomView {
  std::vector<int64_t> shape, strides;
  int64_t min_off = 0, max_off = 0;  // element offsets reached, relative to data
};

RandomView random_view(std::mt19937_64& gen, int ndim, bool allow_overlap) {
  RandomView v;
  auto rnd = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); };
  const int max_extent = ndim <= 3 ? 6 : ndim <= 5 ? 4 : 3;
  v.shape.resize(ndim);
  v.strides.resize(ndim);
  for (int d = 0; d < ndim; ++d) v.shape[d] = rnd(1, max_extent);
  if (ndim > 0 && rnd(0, 19) == 0) v.shape[rnd(0, ndim - 1)] = 0;
  std::vector<int> order(ndim);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), gen);
  const bool packed = rnd(0, 3) == 0;  // no gaps at all
  int64_t s = packed ? 1 : rnd(1, 2);
  for (int d : order) {  // innermost first
    int64_t stride = s;
    if (rnd(0, 3) == 0) stride = -stride;
    if (v.shape[d] == 1 && rnd(0, 2) == 0) stride = rnd(-50, 50);  // irrelevant stride
    if (allow_overlap && rnd(0, 9) == 0) stride = 0;
    v.strides[d] = stride;
    s *= (v.shape[d] > 0 ? v.shape[d] : 1) + (packed ? 0 : rnd(0, 1));
  }
  bool empty = false;
  for (int64_t e : v.shape) empty |= e == 0;
  if (!empty) {
    for (int d = 0; d < ndim; ++d) {
      int64_t reach = v.strides[d] * (v.shape[d] - 1);
      (reach < 0 ? v.min_off : v.max_off) += reach;
    }
  }
  return v;
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t e : shape) n *= e;
  return n;
}

// Element offset (relative to data) of row-major position `flat`.
int64_t offset_of(const RandomView& v, int64_t flat) {
  int64_t off = 0;
  for (int d = static_cast<int>(v.shape.size()) - 1; d >= 0; --d) {
    off += (flat % v.shape[d]) * v.strides[d];
    flat /= v.shape[d];
  }
  return off;
}

void check_round_trip(std::mt19937_64& gen, int ndim, DType dtype, bool allow_overlap) {
  RandomView v = random_view(gen, ndim, allow_overlap);
  const size_t es = dtype_size(dtype);
  const int64_t n = numel_of(v.shape);
  const int64_t span = v.max_off - v.min_off + 1;
  std::vector<uint8_t> parent((span + 4) * es);
  for (auto& b : parent) b = static_cast<uint8_t>(gen());
  uint8_t* data = parent.data() + (2 - v.min_off) * es;
  TensorView t = make_view(data, dtype, v.shape, v.strides);
  SCOPED_TRACE(t.describe());
  ASSERT_NO_THROW(t.validate("t"));

  // pack: dense[i] is the element at row-major position i.
  std::vector<uint8_t> dense(n * es + 16, 0xEE);
  pack_host(t, dense.data());
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* src = data + offset_of(v, i) * static_cast<int64_t>(es);
    ASSERT_EQ(std::memcmp(dense.data() + i * es, src, es), 0) << "pack, element " << i;
  }
  for (size_t b = n * es; b < dense.size(); ++b) ASSERT_EQ(dense[b], 0xEE) << "pack overran";

  if (t.may_overlap()) return;  // unpack into overlapping views is undefined
  // unpack: poison the parent, unpack random bytes, check elements and gaps.
  std::vector<uint8_t> poison(parent.size());
  for (size_t b = 0; b < poison.size(); ++b) poison[b] = static_cast<uint8_t>(0x5A ^ b);
  parent = poison;
  std::vector<uint8_t> source(n * es);
  for (auto& b : source) b = static_cast<uint8_t>(gen());
  unpack_host(source.data(), t);
  std::vector<bool> covered(parent.size() / es, false);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t off = offset_of(v, i);
    covered[off + 2 - v.min_off] = true;
    ASSERT_EQ(std::memcmp(data + off * static_cast<int64_t>(es), source.data() + i * es, es), 0)
        << "unpack, element " << i;
  }
  for (size_t e = 0; e < covered.size(); ++e) {
    if (covered[e]) continue;
    for (size_t b = 0; b < es; ++b)
      ASSERT_EQ(parent[e * es + b], poison[e * es + b]) << "unpack wrote a gap at element " << e;
  }
}

TEST(Pack, RoundTripRandomViews) {
  std::mt19937_64 gen(12345);
  const DType dtypes[] = {DType::kInt8, DType::kBFloat16, DType::kFloat32, DType::kFloat64};
  for (int ndim = 0; ndim <= kMaxDims; ++ndim) {
    for (DType dtype : dtypes) {
      for (int trial = 0; trial < 40; ++trial) {
        SCOPED_TRACE("ndim " + std::to_string(ndim) + " trial " + std::to_string(trial));
        check_round_trip(gen, ndim, dtype, /*allow_overlap=*/trial % 4 == 3);
        if (::testing::Test::HasFatalFailure()) return;
      }
    }
  }
}

TEST(Pack, KnownLayouts) {
  // A 3x4 int32 matrix 0..11; pack views of it and check the row-major order.
  int32_t m[12];
  std::iota(m, m + 12, 0);
  auto packed = [&](std::vector<int64_t> shape, std::vector<int64_t> strides, int32_t* base) {
    TensorView t = make_view(base, DType::kInt32, shape, strides);
    std::vector<int32_t> out(t.numel());
    pack_host(t, out.data());
    return out;
  };
  EXPECT_EQ(packed({3, 4}, {4, 1}, m), std::vector<int32_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(packed({4, 3}, {1, 4}, m), std::vector<int32_t>({0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  EXPECT_EQ(packed({3, 2}, {4, 2}, m), std::vector<int32_t>({0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(packed({3, 4}, {-4, 1}, m + 8), std::vector<int32_t>({8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3}));
  EXPECT_EQ(packed({2, 2}, {-4, -1}, m + 7), std::vector<int32_t>({7, 6, 3, 2}));
  EXPECT_EQ(packed({2, 3}, {0, 1}, m), std::vector<int32_t>({0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(packed({}, {}, m + 5), std::vector<int32_t>({5}));
  EXPECT_EQ(packed({1, 1, 1}, {7, 9, 11}, m + 3), std::vector<int32_t>({3}));

  // unpack of a column pair into the middle of the matrix leaves the rest.
  int32_t src[6] = {100, 101, 102, 103, 104, 105};
  TensorView cols = make_view(m + 1, DType::kInt32, {3, 2}, {4, 1});
  unpack_host(src, cols);
  EXPECT_EQ(std::vector<int32_t>(m, m + 12),
            std::vector<int32_t>({0, 100, 101, 3, 4, 102, 103, 7, 8, 104, 105, 11}));
}

}  // namespace
}  // namespace diffcoll
