// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// The two 8-bit float formats of the FP8 wire (OCP FP8, as CUDA's cuda_fp8.h
// and PyTorch's float8_e4m3fn / float8_e5m2 define them), converted on the
// host. float -> fp8 rounds to nearest, ties to even, and saturates: a
// finite value beyond the largest finite code becomes that code (cuda_fp8.h's
// __NV_SATFINITE), NaN becomes the NaN code 0x7f. The CUDA kernels use
// cuda_fp8.h's conversions, which round the same way; fp8_wire_test checks
// that the two agree.
#pragma once

#include <cmath>
#include <cstdint>

namespace diffcoll {

// Values equal diffcoll_wire_format_t's FP8 members minus one.
enum class Fp8Format : int32_t {
  kE4M3 = 0,  // 4 exponent bits (bias 7), 3 mantissa bits, no infinity, max 448
  kE5M2 = 1,  // 5 exponent bits (bias 15), 2 mantissa bits, max finite 57344
};

struct Fp8Traits {
  int mantissa_bits;
  int min_exponent;  // of the smallest normal value, 2^min_exponent
  int bias;
  float max_finite;
  uint8_t max_code;  // the code of +max_finite
};

inline Fp8Traits fp8_traits(Fp8Format f) {
  return f == Fp8Format::kE4M3 ? Fp8Traits{3, -6, 7, 448.0f, 0x7e}
                               : Fp8Traits{2, -14, 15, 57344.0f, 0x7b};
}

inline uint8_t float_to_fp8(float x, Fp8Format format) {
  const Fp8Traits t = fp8_traits(format);
  if (std::isnan(x)) return 0x7f;  // the canonical NaN of both formats, as CUDA's
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const float a = std::fabs(x);
  if (a >= t.max_finite) return sign | t.max_code;
  // The codes are consecutive integers in value order, spaced 2^(e - M)
  // apart in the binade [2^e, 2^(e+1)) of a normal a, 2^(min_exponent - M)
  // below the normal range. So the code is the count of spacings from the
  // start of a's binade, rounded (the scaling by a power of two is exact),
  // plus the binade's first code; rounding up to the next binade lands on its
  // first code. Below max_finite no rounding passes max_code.
  const bool normal = a >= std::ldexp(1.0f, t.min_exponent);
  const int e = normal ? std::ilogb(a) : t.min_exponent;
  const int steps = static_cast<int>(std::nearbyint(std::ldexp(a, t.mantissa_bits - e)));
  const int code = normal ? ((e + t.bias - 1) << t.mantissa_bits) + steps : steps;
  return sign | static_cast<uint8_t>(code);
}

inline float fp8_to_float(uint8_t code, Fp8Format format) {
  const Fp8Traits t = fp8_traits(format);
  const int exponent_bits = 7 - t.mantissa_bits;
  const int e = (code >> t.mantissa_bits) & ((1 << exponent_bits) - 1);
  const int m = code & ((1 << t.mantissa_bits) - 1);
  if ((format == Fp8Format::kE4M3 && e == 15 && m == 7) ||
      (format == Fp8Format::kE5M2 && e == 31 && m != 0))
    return NAN;
  float a;
  if (format == Fp8Format::kE5M2 && e == 31) {
    a = INFINITY;
  } else if (e == 0) {
    a = std::ldexp(static_cast<float>(m), t.min_exponent - t.mantissa_bits);
  } else {
    a = std::ldexp(static_cast<float>(m + (1 << t.mantissa_bits)), e - t.bias - t.mantissa_bits);
  }
  return code & 0x80 ? -a : a;
}

}  // namespace diffcoll
