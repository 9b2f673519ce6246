// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// The FP8 wire, white-box: the host conversions against a nearest-code
// search over all codes (and, in CUDA builds, against cuda_fp8.h's
// conversions, which the kernels use), the wire view and layout, and the
// host quantising pack / dequantising unpack on strided float16, bfloat16
// and float32 views: scales, the documented error bound, zero groups and
// non-finite values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/fp8.h"
#include "core/fp8_wire.h"

#ifdef DIFFCOLL_WITH_CUDA
#include <cuda_fp8.h>
#endif

namespace diffcoll {
namespace {

const Fp8Format kFormats[] = {Fp8Format::kE4M3, Fp8Format::kE5M2};

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

TEST(Fp8Format, EveryCodeConvertsBackToItself) {
  for (Fp8Format f : kFormats)
    for (int c = 0; c < 256; ++c) {
      const float x = fp8_to_float(static_cast<uint8_t>(c), f);
      if (std::isnan(x)) {
        EXPECT_EQ(float_to_fp8(x, f), 0x7f) << c;
      } else if (std::isinf(x)) {  // e5m2 only: saturated
        EXPECT_EQ(float_to_fp8(x, f), (c & 0x80) | fp8_traits(f).max_code) << c;
      } else {
        EXPECT_EQ(float_to_fp8(x, f), c) << "code " << c << " value " << x;
      }
    }
  EXPECT_EQ(fp8_to_float(0x7e, Fp8Format::kE4M3), 448.0f);
  EXPECT_EQ(fp8_to_float(0x01, Fp8Format::kE4M3), std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_to_float(0x7b, Fp8Format::kE5M2), 57344.0f);
  EXPECT_EQ(fp8_to_float(0x01, Fp8Format::kE5M2), std::ldexp(1.0f, -16));
}

// The code nearest to x among all finite codes, ties to the even code,
// beyond the largest finite value the largest code.
uint8_t nearest_code(float x, Fp8Format f) {
  if (std::isnan(x)) return 0x7f;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const double a = std::fabs(static_cast<double>(x));
  if (a > fp8_traits(f).max_finite) return sign | fp8_traits(f).max_code;
  int best = 0;
  double best_distance = INFINITY;
  for (int c = 0; c <= fp8_traits(f).max_code; ++c) {
    const double d = std::fabs(fp8_to_float(static_cast<uint8_t>(c), f) - a);
    if (d < best_distance || (d == best_distance && c % 2 == 0)) {
      best = c;
      best_distance = d;
    }
  }
  return sign | static_cast<uint8_t>(best);
}

TEST(Fp8Format, RoundsToTheNearestCodeTiesToEvenAndSaturates) {
  std::mt19937 rng(7);
  for (Fp8Format f : kFormats) {
    const float max = fp8_traits(f).max_finite;
    std::vector<float> xs = {0.0f, -0.0f, max, -max, max * 1.01f, -max * 4, INFINITY, -INFINITY,
                             NAN};
    // Every midpoint between neighbouring codes (the ties) and its neighbours.
    for (int c = 0; c < fp8_traits(f).max_code; ++c) {
      const float lo = fp8_to_float(static_cast<uint8_t>(c), f);
      const float hi = fp8_to_float(static_cast<uint8_t>(c + 1), f);
      const float mid = (lo + hi) / 2;
      xs.insert(xs.end(), {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, max), -mid});
    }
    std::uniform_real_distribution<float> exponent(-24.0f, std::log2(max) + 1);
    for (int i = 0; i < 20000; ++i)
      xs.push_back((i % 2 ? -1.0f : 1.0f) * std::exp2(exponent(rng)));
    for (float x : xs) EXPECT_EQ(float_to_fp8(x, f), nearest_code(x, f)) << "x = " << x;
  }
}

#ifdef DIFFCOLL_WITH_CUDA
// The kernels convert with cuda_fp8.h; the host must round the same way
// (NaN codes aside, whose sign CUDA drops: both give 0x7f).
TEST(Fp8Format, AgreesWithCudaFp8) {
  std::mt19937 rng(11);
  int64_t differ = 0;
  auto check = [&](float x) {
    for (Fp8Format f : kFormats) {
      const uint8_t ref = __nv_cvt_float_to_fp8(
          x, __NV_SATFINITE, f == Fp8Format::kE4M3 ? __NV_E4M3 : __NV_E5M2);
      if (float_to_fp8(x, f) != ref && differ++ < 5)
        ADD_FAILURE() << "x = " << x << " (" << std::hexfloat << x << ")";
    }
  };
  for (uint32_t hi = 0; hi < (1u << 16); ++hi)
    for (uint32_t lo : {0u, 1u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu}) check(from_bits(hi << 16 | lo));
  for (int i = 0; i < 2000000; ++i) check(from_bits(rng()));
  EXPECT_EQ(differ, 0);
}
#endif

TensorView view_of(void* data, DType dtype, std::vector<int64_t> shape,
                   std::vector<int64_t> strides) {
  TensorView v;
  v.data = data;
  v.dtype = dtype;
  v.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < v.ndim; ++d) {
    v.shape[d] = shape[d];
    v.strides[d] = strides[d];
  }
  return v;
}

TEST(Fp8Wire, ViewsPutTokensThenTheInnerDimensionLast) {
  std::vector<float> buffer(2 * 5 * 3 * 4);
  const TensorView bshd = view_of(buffer.data(), DType::kFloat32, {2, 5, 3, 4}, {60, 12, 4, 1});
  TensorView w = fp8_wire_view(bshd, /*tokens*/ 1, /*skip*/ 2);
  ASSERT_EQ(w.ndim, 4);
  EXPECT_EQ(std::vector<int64_t>(w.shape, w.shape + 4), (std::vector<int64_t>{2, 3, 5, 4}));
  EXPECT_EQ(std::vector<int64_t>(w.strides, w.strides + 4), (std::vector<int64_t>{60, 4, 12, 1}));
  // [B, S, D, H] with the heads last: the inner dimension is D.
  w = fp8_wire_view(bshd, 1, 3);
  EXPECT_EQ(std::vector<int64_t>(w.shape, w.shape + 4), (std::vector<int64_t>{2, 4, 5, 3}));
  // [S, H]: no other dimension, a unit one is appended.
  const TensorView sh = view_of(buffer.data(), DType::kFloat32, {5, 3}, {3, 1});
  w = fp8_wire_view(sh, 0, 1);
  ASSERT_EQ(w.ndim, 3);
  EXPECT_EQ(std::vector<int64_t>(w.shape, w.shape + 3), (std::vector<int64_t>{3, 5, 1}));
  // All-gather: nothing skipped.
  w = fp8_wire_view(bshd, 1, -1);
  EXPECT_EQ(std::vector<int64_t>(w.shape, w.shape + 4), (std::vector<int64_t>{2, 3, 5, 4}));

  const Fp8Layout l = fp8_layout(fp8_wire_view(bshd, 1, 2), 2);
  EXPECT_EQ(l.outer, 6);
  EXPECT_EQ(l.blocks, 3);  // 5 tokens in blocks of 2
  EXPECT_EQ(l.groups, 18);
  EXPECT_EQ(l.codes_offset, 80u);  // 72 bytes of scales, to 16
  EXPECT_EQ(l.bytes, 80u + 128u);  // 120 codes, to 16
}

void store(DType dtype, char* p, float x) {
  if (dtype == DType::kFloat32) {
    std::memcpy(p, &x, 4);
    return;
  }
  const uint16_t h = dtype == DType::kBFloat16 ? float_to_bf16(x) : float_to_f16(x);
  std::memcpy(p, &h, 2);
}

float load(DType dtype, const char* p) {
  if (dtype == DType::kFloat32) {
    float x;
    std::memcpy(&x, p, 4);
    return x;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return dtype == DType::kBFloat16 ? bf16_to_float(h) : f16_to_float(h);
}

// Elements of a [G, T, D] wire view stored transposed in memory ([T, G, D]),
// every value of group g scaled by 2^(g % 7 - 3).
struct Strided {
  DType dtype;
  int64_t groups_outer, tokens, inner;
  std::vector<char> bytes;
  TensorView view;
  Strided(DType d, int64_t g, int64_t t, int64_t i) : dtype(d), groups_outer(g), tokens(t), inner(i) {
    const int64_t es = static_cast<int64_t>(dtype_size(d));
    bytes.assign(static_cast<size_t>(g * t * i * es), 0);
    view = view_of(bytes.data(), d, {g, t, i}, {i, g * i, 1});
  }
  char* at(int64_t g, int64_t t, int64_t i) {
    return bytes.data() + ((t * groups_outer + g) * inner + i) * dtype_size(dtype);
  }
};

TEST(Fp8Wire, HostPackAndUnpackStayWithinTheBound) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  for (DType dtype : {DType::kFloat16, DType::kBFloat16, DType::kFloat32})
    for (Fp8Format format : kFormats)
      for (int64_t block : {1, 3, 16}) {
        SCOPED_TRACE(std::string(dtype_name(dtype)) + (format == Fp8Format::kE4M3 ? " e4m3" : " e5m2") +
                     " block " + std::to_string(block));
        Strided in(dtype, 5, 10, 12), out(dtype, 5, 10, 12);
        for (int64_t g = 0; g < 5; ++g)
          for (int64_t t = 0; t < 10; ++t)
            for (int64_t i = 0; i < 12; ++i)
              store(dtype, in.at(g, t, i), g == 4 ? 0.0f : unit(rng) * std::ldexp(1.0f, g % 7 - 3));
        const Fp8Wire wire{format, block};
        const Fp8Layout l = fp8_layout(in.view, block);
        std::vector<char> buffer(l.bytes);
        fp8_pack_host(in.view, buffer.data(), wire);
        fp8_unpack_host(buffer.data(), out.view, wire);
        const float max = fp8_traits(format).max_finite;
        const double relative = format == Fp8Format::kE4M3 ? 1.0 / 16 : 1.0 / 8;
        const double subnormal = std::ldexp(1.0, format == Fp8Format::kE4M3 ? -10 : -17);
        const double rounding = dtype == DType::kBFloat16 ? std::ldexp(1.0, -8)
                                : dtype == DType::kFloat16 ? std::ldexp(1.0, -11)
                                                           : std::ldexp(1.0, -24);
        int64_t changed = 0;
        for (int64_t g = 0; g < 5; ++g)
          for (int64_t k = 0; k * block < 10; ++k) {
            float amax = 0;
            for (int64_t t = k * block; t < std::min<int64_t>(10, (k + 1) * block); ++t)
              for (int64_t i = 0; i < 12; ++i) amax = std::max(amax, std::fabs(load(dtype, in.at(g, t, i))));
            float scale;
            std::memcpy(&scale, buffer.data() + (g * l.blocks + k) * 4, 4);
            EXPECT_EQ(scale, amax / max) << "group " << g << " block " << k;
            for (int64_t t = k * block; t < std::min<int64_t>(10, (k + 1) * block); ++t)
              for (int64_t i = 0; i < 12; ++i) {
                const double x = load(dtype, in.at(g, t, i)), y = load(dtype, out.at(g, t, i));
                const double bound = relative * std::fabs(x) + subnormal * scale +
                                     rounding * std::fabs(y) + 1e-6 * (std::fabs(x) + scale);
                EXPECT_LE(std::fabs(y - x), bound) << g << "," << t << "," << i;
                if (g == 4) EXPECT_EQ(y, 0.0) << "a zero group comes back as zeros";
                changed += y != x;
              }
          }
        EXPECT_GT(changed, 5 * 10 * 12 / 4) << "most values change under FP8";
      }
}

TEST(Fp8Wire, NaNStaysNaNAndInfinityPoisonsItsGroup) {
  Strided in(DType::kFloat32, 2, 4, 8), out(DType::kFloat32, 2, 4, 8);
  for (int64_t g = 0; g < 2; ++g)
    for (int64_t t = 0; t < 4; ++t)
      for (int64_t i = 0; i < 8; ++i) store(DType::kFloat32, in.at(g, t, i), 0.5f + i);
  store(DType::kFloat32, in.at(0, 1, 2), NAN);
  store(DType::kFloat32, in.at(1, 3, 3), INFINITY);
  const Fp8Wire wire{Fp8Format::kE4M3, 4};
  std::vector<char> buffer(fp8_layout(in.view, 4).bytes);
  fp8_pack_host(in.view, buffer.data(), wire);
  fp8_unpack_host(buffer.data(), out.view, wire);
  for (int64_t t = 0; t < 4; ++t)
    for (int64_t i = 0; i < 8; ++i) {
      const float y0 = load(DType::kFloat32, out.at(0, t, i));
      if (t == 1 && i == 2)
        EXPECT_TRUE(std::isnan(y0));
      else
        EXPECT_NEAR(y0, 0.5f + i, (0.5f + i) / 16) << t << "," << i;
      EXPECT_TRUE(std::isnan(load(DType::kFloat32, out.at(1, t, i)))) << t << "," << i;
    }
}

TEST(Fp8Wire, RefusesDtypesThatAreNotFloats) {
  std::vector<int32_t> data(8);
  const TensorView v = view_of(data.data(), DType::kInt32, {2, 4}, {4, 1});
  std::vector<char> buffer(64);
  EXPECT_FALSE(fp8_wire_supports(DType::kInt32));
  EXPECT_FALSE(fp8_wire_supports(DType::kFloat64));
  EXPECT_THROW(fp8_pack_host(v, buffer.data(), Fp8Wire{}), Error);
}

}  // namespace
}  // namespace diffcoll
