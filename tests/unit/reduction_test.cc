// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// White-box tests of the 16-bit float conversions and the host reduction
// arithmetic (reduce_host, prescale_host, finalize_host).
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/reduction.h"

namespace diffcoll {
namespace {

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
float float_of(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Independent reference decoders.
float ref_f16_to_float(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  float v;
  if (e == 0) v = std::ldexp(static_cast<float>(m), -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp(static_cast<float>(m + 1024), e - 25);
  return s ? -v : v;
}
uint16_t ref_float_to_f16(float f) {  // the compiler's IEEE conversion (RNE)
  _Float16 h = static_cast<_Float16>(f);
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
bool f16_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0; }
bool bf16_is_nan(uint16_t h) { return (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0; }

// ---- float16 -------------------------------------------------------------------------

TEST(Float16, AllPatternsDecodeAndRoundTrip) {
  std::set<uint16_t> nan_results[2];
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = static_cast<uint16_t>(i);
    const float f = f16_to_float(h);
    const uint16_t back = float_to_f16(f);
    if (f16_is_nan(h)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << i;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << i;
      ASSERT_TRUE(f16_is_nan(back)) << std::hex << i << " -> " << back;
      ASSERT_EQ(back & 0x8000, h & 0x8000) << std::hex << i;
      nan_results[h >> 15].insert(back);
    } else {
      const float ref = ref_f16_to_float(h);
      ASSERT_EQ(bits_of(f), bits_of(ref)) << "f16 " << std::hex << i << ": " << f << " vs " << ref;
      ASSERT_EQ(back, h) << "f16 " << std::hex << i << " -> " << f << " -> " << back;
    }
  }
  // NaN payloads are canonicalised: one NaN pattern per sign.
  EXPECT_EQ(nan_results[0].size(), 1u);
  EXPECT_EQ(nan_results[1].size(), 1u);
}

TEST(Float16, MidpointsRoundToEven) {
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float lo = f16_to_float(static_cast<uint16_t>(h));
    const float hi = h == 0x7bff ? 65536.0f : f16_to_float(static_cast<uint16_t>(h + 1));
    const float mid = static_cast<float>((static_cast<double>(lo) + hi) / 2);
    ASSERT_EQ(static_cast<double>(mid), (static_cast<double>(lo) + hi) / 2);  // exact
    const uint16_t even = (h & 1) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
    for (int sign = 0; sign < 2; ++sign) {
      const float s = sign ? -1.0f : 1.0f;
      const uint16_t sb = sign ? 0x8000 : 0;
      ASSERT_EQ(float_to_f16(s * mid), sb | even) << std::hex << h << " mid " << mid;
      ASSERT_EQ(float_to_f16(s * std::nextafter(mid, 0.0f)), sb | h) << std::hex << h;
      ASSERT_EQ(float_to_f16(s * std::nextafter(mid, INFINITY)), sb | (h + 1)) << std::hex << h;
    }
  }
}

TEST(Float16, ChosenValues) {
  EXPECT_EQ(float_to_f16(0.0f), 0x0000);
  EXPECT_EQ(float_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(float_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(float_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_f16(65519.0f), 0x7bff);
  EXPECT_EQ(float_to_f16(65520.0f), 0x7c00);  // halfway to 65536: even is infinity
  EXPECT_EQ(float_to_f16(1e6f), 0x7c00);
  EXPECT_EQ(float_to_f16(-1e6f), 0xfc00);
  EXPECT_EQ(float_to_f16(INFINITY), 0x7c00);
  EXPECT_EQ(float_to_f16(-INFINITY), 0xfc00);
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // halfway to 0: even is 0
  EXPECT_EQ(float_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units: even is 2
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25)), 0x0400);
  EXPECT_EQ(float_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(float_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3c02);
  EXPECT_EQ(float_to_f16(1e-10f), 0x0000);
  EXPECT_EQ(float_to_f16(-1e-10f), 0x8000);
  EXPECT_EQ(float_to_f16(FLT_MIN), 0x0000);
  EXPECT_TRUE(f16_is_nan(float_to_f16(NAN)));
  EXPECT_TRUE(f16_is_nan(float_to_f16(-NAN)));
  EXPECT_EQ(f16_to_float(0x7c00), INFINITY);
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_float(0x03ff), std::ldexp(1023.0f, -24));
}

TEST(Float16, RandomFloatsMatchCompilerConversion) {
  std::mt19937 gen(7);
  for (int i = 0; i < 400000; ++i) {
    uint32_t b = gen();
    if (i % 2) b = (b & 0x80000000u) | (0x30000000u + (b & 0x1fffffffu) % 0x18000000u);  // near f16 range
    const float f = float_of(b);
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_f16(f), ref_float_to_f16(f)) << std::hex << b << " (" << f << ")";
  }
}

// ---- bfloat16 -----------------------------------------------------------------------

TEST(BFloat16, AllPatternsDecodeAndRoundTrip) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const uint16_t h = static_cast<uint16_t>(i);
    const float f = bf16_to_float(h);
    ASSERT_EQ(bits_of(f), i << 16);
    const uint16_t back = float_to_bf16(f);
    if (bf16_is_nan(h)) {
      ASSERT_TRUE(bf16_is_nan(back)) << std::hex << i << " -> " << back;
      ASSERT_EQ(back & 0x8000, h & 0x8000);
    } else {
      ASSERT_EQ(back, h) << std::hex << i;
    }
  }
}

TEST(BFloat16, MidpointsRoundToEven) {
  for (uint32_t h = 0; h < 0x7f80; ++h) {
    const float lo = bf16_to_float(static_cast<uint16_t>(h));
    const uint32_t mid_bits = (h << 16) | 0x8000u;  // exactly halfway to h + 1
    const float mid = float_of(mid_bits);
    const uint16_t even = (h & 1) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
    for (int sign = 0; sign < 2; ++sign) {
      const uint32_t sb = sign ? 0x80000000u : 0;
      ASSERT_EQ(float_to_bf16(float_of(sb | mid_bits)), (sb >> 16) | even) << std::hex << h;
      ASSERT_EQ(float_to_bf16(float_of(sb | (mid_bits - 1))), (sb >> 16) | h) << std::hex << h;
      ASSERT_EQ(float_to_bf16(float_of(sb | (mid_bits + 1))), (sb >> 16) | (h + 1)) << std::hex << h;
    }
    (void)lo;
  }
}

TEST(BFloat16, ChosenValues) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);   // tie: even
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(3.0f, -8)), 0x3f82);   // tie: even (up)
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
  EXPECT_EQ(float_to_bf16(-(1.0f + std::ldexp(1.0f, -8))), 0xbf80);
  EXPECT_EQ(float_to_bf16(257.0f), 0x4380);  // 256
  EXPECT_EQ(float_to_bf16(259.0f), 0x4382);  // 260
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_bf16(FLT_MAX), 0x7f80);  // rounds up to infinity
  EXPECT_EQ(float_to_bf16(INFINITY), 0x7f80);
  EXPECT_EQ(float_to_bf16(-INFINITY), 0xff80);
  EXPECT_EQ(float_to_bf16(1e-40f), 0x0001);  // float subnormal
  EXPECT_EQ(float_to_bf16(3.0f), 0x4040);
  EXPECT_TRUE(bf16_is_nan(float_to_bf16(NAN)));
  EXPECT_TRUE(bf16_is_nan(float_to_bf16(float_of(0x7f800001u))));  // payload in the low bits only
  EXPECT_TRUE(bf16_is_nan(float_to_bf16(float_of(0xff800001u))));
}

// ---- reduce_host -------------------------------------------------------------------

const DType kAllDtypes[] = {DType::kFloat16, DType::kBFloat16, DType::kFloat32, DType::kFloat64,
                            DType::kInt8,    DType::kUInt8,    DType::kInt32,   DType::kInt64};
const RedOp kAllOps[] = {RedOp::kSum, RedOp::kProd, RedOp::kMin,
                         RedOp::kMax, RedOp::kAvg,  RedOp::kPreMulSum};

void put(DType dtype, void* base, size_t i, double x) {
  char* p = static_cast<char*>(base) + i * dtype_size(dtype);
  switch (dtype) {
    case DType::kFloat16: { uint16_t v = float_to_f16(static_cast<float>(x)); std::memcpy(p, &v, 2); break; }
    case DType::kBFloat16: { uint16_t v = float_to_bf16(static_cast<float>(x)); std::memcpy(p, &v, 2); break; }
    case DType::kFloat32: { float v = static_cast<float>(x); std::memcpy(p, &v, 4); break; }
    case DType::kFloat64: std::memcpy(p, &x, 8); break;
    case DType::kInt8: { int8_t v = static_cast<int8_t>(x); std::memcpy(p, &v, 1); break; }
    case DType::kUInt8: { uint8_t v = static_cast<uint8_t>(x); std::memcpy(p, &v, 1); break; }
    case DType::kInt32: { int32_t v = static_cast<int32_t>(x); std::memcpy(p, &v, 4); break; }
    case DType::kInt64: { int64_t v = static_cast<int64_t>(x); std::memcpy(p, &v, 8); break; }
  }
}

double get(DType dtype, const void* base, size_t i) {
  const char* p = static_cast<const char*>(base) + i * dtype_size(dtype);
  switch (dtype) {
    case DType::kFloat16: { uint16_t v; std::memcpy(&v, p, 2); return f16_to_float(v); }
    case DType::kBFloat16: { uint16_t v; std::memcpy(&v, p, 2); return bf16_to_float(v); }
    case DType::kFloat32: { float v; std::memcpy(&v, p, 4); return v; }
    case DType::kFloat64: { double v; std::memcpy(&v, p, 8); return v; }
    case DType::kInt8: { int8_t v; std::memcpy(&v, p, 1); return v; }
    case DType::kUInt8: { uint8_t v; std::memcpy(&v, p, 1); return v; }
    case DType::kInt32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case DType::kInt64: { int64_t v; std::memcpy(&v, p, 8); return static_cast<double>(v); }
  }
  return NAN;
}

std::vector<char> buffer(DType dtype, const std::vector<double>& values) {
  std::vector<char> b(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) put(dtype, b.data(), i, values[i]);
  return b;
}

std::vector<double> values(DType dtype, const std::vector<char>& b) {
  std::vector<double> v(b.size() / dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) v[i] = get(dtype, b.data(), i);
  return v;
}

double combine_ref(RedOp op, double a, double b) {
  switch (op) {
    case RedOp::kProd: return a * b;
    case RedOp::kMin: return std::min(a, b);
    case RedOp::kMax: return std::max(a, b);
    default: return a + b;
  }
}

TEST(ReduceHost, EveryDtypeAndOp) {
  std::mt19937 gen(99);
  for (DType dtype : kAllDtypes) {
    for (RedOp op : kAllOps) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + red_op_name(op));
      const int lo = dtype == DType::kUInt8 ? 0 : -10, hi = 10;
      std::uniform_int_distribution<int> dist(lo, hi);
      const size_t n = 37;
      std::vector<double> a(n), b(n), expected(n);
      for (size_t i = 0; i < n; ++i) {
        a[i] = dist(gen);
        b[i] = dist(gen);
        expected[i] = combine_ref(op, a[i], b[i]);
      }
      std::vector<char> ba = buffer(dtype, a), bb = buffer(dtype, b), out(ba.size());
      reduce_host(dtype, op, out.data(), ba.data(), bb.data(), n);
      EXPECT_EQ(values(dtype, out), expected);
      // out may alias either input.
      std::vector<char> alias_a = ba;
      reduce_host(dtype, op, alias_a.data(), alias_a.data(), bb.data(), n);
      EXPECT_EQ(values(dtype, alias_a), expected);
      std::vector<char> alias_b = bb;
      reduce_host(dtype, op, alias_b.data(), ba.data(), alias_b.data(), n);
      EXPECT_EQ(values(dtype, alias_b), expected);
      // n = 0 touches nothing.
      std::vector<char> untouched = ba;
      reduce_host(dtype, op, untouched.data(), bb.data(), bb.data(), 0);
      EXPECT_EQ(untouched, ba);
    }
  }
}

TEST(ReduceHost, ExtremesAndRounding) {
  auto reduce1 = [](DType dtype, RedOp op, double a, double b) {
    std::vector<char> ba = buffer(dtype, {a}), bb = buffer(dtype, {b}), out(ba.size());
    reduce_host(dtype, op, out.data(), ba.data(), bb.data(), 1);
    return get(dtype, out.data(), 0);
  };
  EXPECT_EQ(reduce1(DType::kInt8, RedOp::kMin, -128, 127), -128);
  EXPECT_EQ(reduce1(DType::kInt8, RedOp::kMax, -128, 127), 127);
  EXPECT_EQ(reduce1(DType::kUInt8, RedOp::kMax, 255, 3), 255);
  EXPECT_EQ(reduce1(DType::kUInt8, RedOp::kSum, 200, 55), 255);
  EXPECT_EQ(reduce1(DType::kInt64, RedOp::kSum, std::ldexp(1.0, 52), 1), std::ldexp(1.0, 52) + 1);
  EXPECT_EQ(reduce1(DType::kInt64, RedOp::kProd, -(1 << 20), 1 << 20), -std::ldexp(1.0, 40));
  EXPECT_EQ(reduce1(DType::kInt32, RedOp::kMin, -2147483648.0, 2147483647.0), -2147483648.0);
  // 16-bit floats: combined in float, rounded once to nearest even.
  EXPECT_EQ(reduce1(DType::kFloat16, RedOp::kSum, 2048, 1), 2048);
  EXPECT_EQ(reduce1(DType::kFloat16, RedOp::kSum, 2048, 3), 2052);
  EXPECT_EQ(reduce1(DType::kBFloat16, RedOp::kSum, 256, 1), 256);
  EXPECT_EQ(reduce1(DType::kBFloat16, RedOp::kSum, 256, 3), 260);
  EXPECT_EQ(reduce1(DType::kBFloat16, RedOp::kProd, 3, 0.5), 1.5);
  EXPECT_EQ(reduce1(DType::kFloat16, RedOp::kMax, -0.5, -0.25), -0.25);
  EXPECT_EQ(reduce1(DType::kFloat16, RedOp::kSum, 60000, 10000), INFINITY);
  EXPECT_EQ(reduce1(DType::kFloat32, RedOp::kSum, 0.1f, 0.2f), static_cast<double>(0.1f + 0.2f));
}

// ---- prescale / finalize ------------------------------------------------------------

std::vector<double> prescaled(DType dtype, Reduction red, int p, const std::vector<double>& v) {
  std::vector<char> b = buffer(dtype, v);
  prescale_host(dtype, red, p, b.data(), v.size());
  return values(dtype, b);
}
std::vector<double> finalized(DType dtype, Reduction red, int p, const std::vector<double>& v) {
  std::vector<char> b = buffer(dtype, v);
  finalize_host(dtype, red, p, b.data(), v.size());
  return values(dtype, b);
}

TEST(PrescaleFinalize, NoOpForPlainOps) {
  const std::vector<double> v = {3, -6, 9, 0, 1};
  for (DType dtype : kAllDtypes) {
    if (dtype == DType::kUInt8) continue;
    for (RedOp op : {RedOp::kSum, RedOp::kProd, RedOp::kMin, RedOp::kMax}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + red_op_name(op));
      Reduction red{op, 7.0};
      EXPECT_EQ(prescaled(dtype, red, 3, v), v);
      EXPECT_EQ(finalized(dtype, red, 3, v), v);
    }
  }
}

TEST(PrescaleFinalize, AverageFloats) {
  for (DType dtype : {DType::kFloat16, DType::kBFloat16, DType::kFloat32, DType::kFloat64}) {
    SCOPED_TRACE(dtype_name(dtype));
    Reduction avg{RedOp::kAvg, 1.0};
    // Multiplied by 1/P before the sum, nothing after.
    EXPECT_EQ(prescaled(dtype, avg, 3, {3, -6, 9, 0}), (std::vector<double>{1, -2, 3, 0}));
    EXPECT_EQ(prescaled(dtype, avg, 4, {4, 2, -1}), (std::vector<double>{1, 0.5, -0.25}));
    EXPECT_EQ(prescaled(dtype, avg, 1, {5, -7}), (std::vector<double>{5, -7}));
    EXPECT_EQ(finalized(dtype, avg, 3, {3, -6, 9}), (std::vector<double>{3, -6, 9}));
    // End to end: prescale each of P inputs, sum, finalize = the mean.
    const int p = 8;
    std::vector<char> acc = buffer(dtype, {0, 0, 0});
    for (int r = 0; r < p; ++r) {
      std::vector<char> x = buffer(dtype, {8.0 * r, -16.0, 8.0});
      prescale_host(dtype, avg, p, x.data(), 3);
      reduce_host(dtype, RedOp::kAvg, acc.data(), acc.data(), x.data(), 3);
    }
    finalize_host(dtype, avg, p, acc.data(), 3);
    EXPECT_EQ(values(dtype, acc), (std::vector<double>{28, -16, 8}));
  }
}

TEST(PrescaleFinalize, AverageIntegersDivideAfterTheSum) {
  Reduction avg{RedOp::kAvg, 1.0};
  for (DType dtype : {DType::kInt8, DType::kInt32, DType::kInt64}) {
    SCOPED_TRACE(dtype_name(dtype));
    EXPECT_EQ(prescaled(dtype, avg, 2, {7, -7, 8}), (std::vector<double>{7, -7, 8}));
    EXPECT_EQ(finalized(dtype, avg, 2, {7, -7, 8, 0}), (std::vector<double>{3, -3, 4, 0}));
    EXPECT_EQ(finalized(dtype, avg, 3, {-100, 100, 2}), (std::vector<double>{-33, 33, 0}));
  }
  EXPECT_EQ(finalized(DType::kInt8, avg, 2, {-128, 127}), (std::vector<double>{-64, 63}));
  EXPECT_EQ(finalized(DType::kUInt8, avg, 4, {255, 3, 4}), (std::vector<double>{63, 0, 1}));
  EXPECT_EQ(finalized(DType::kInt64, avg, 8, {std::ldexp(1.0, 50)}),
            (std::vector<double>{std::ldexp(1.0, 47)}));
}

TEST(PrescaleFinalize, PremulSum) {
  for (DType dtype : {DType::kFloat16, DType::kBFloat16, DType::kFloat32, DType::kFloat64}) {
    SCOPED_TRACE(dtype_name(dtype));
    EXPECT_EQ(prescaled(dtype, Reduction{RedOp::kPreMulSum, 2.5}, 4, {2, -4, 0, 1}),
              (std::vector<double>{5, -10, 0, 2.5}));
    EXPECT_EQ(prescaled(dtype, Reduction{RedOp::kPreMulSum, 0.5}, 4, {3, -1}),
              (std::vector<double>{1.5, -0.5}));
    EXPECT_EQ(prescaled(dtype, Reduction{RedOp::kPreMulSum, -1.0}, 4, {3}), (std::vector<double>{-3}));
    EXPECT_EQ(finalized(dtype, Reduction{RedOp::kPreMulSum, 2.5}, 4, {3, -1}),
              (std::vector<double>{3, -1}));
  }
  for (DType dtype : {DType::kInt8, DType::kInt32, DType::kInt64}) {
    SCOPED_TRACE(dtype_name(dtype));
    EXPECT_EQ(prescaled(dtype, Reduction{RedOp::kPreMulSum, 3.0}, 2, {2, -4, 0}),
              (std::vector<double>{6, -12, 0}));
    EXPECT_EQ(finalized(dtype, Reduction{RedOp::kPreMulSum, 3.0}, 2, {2, -4}),
              (std::vector<double>{2, -4}));
  }
  EXPECT_EQ(prescaled(DType::kUInt8, Reduction{RedOp::kPreMulSum, 2.0}, 2, {7, 100}),
            (std::vector<double>{14, 200}));
  // bf16 rounds the product once: 3 * 85.5 = 256.5 -> 256.
  EXPECT_EQ(prescaled(DType::kBFloat16, Reduction{RedOp::kPreMulSum, 85.5}, 2, {3}),
            (std::vector<double>{256}));
}

TEST(RedOp, NamesAndValidity) {
  for (int v = 0; v <= 5; ++v) EXPECT_TRUE(red_op_valid(v)) << v;
  EXPECT_FALSE(red_op_valid(-1));
  EXPECT_FALSE(red_op_valid(6));
  EXPECT_STREQ(red_op_name(RedOp::kSum), "sum");
  EXPECT_STREQ(red_op_name(RedOp::kPreMulSum), "premul_sum");
  EXPECT_STREQ(red_op_name(RedOp::kAvg), "avg");
  for (DType d : kAllDtypes) EXPECT_TRUE(dtype_valid(static_cast<int32_t>(d)));
  EXPECT_FALSE(dtype_valid(0));
  EXPECT_FALSE(dtype_valid(9));
  EXPECT_FALSE(dtype_valid(99));
}

}  // namespace
}  // namespace diffcoll
