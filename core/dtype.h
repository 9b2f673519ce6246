// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Element types, their sizes, and float conversions for the 16-bit formats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace diffcoll {

// Values equal diffcoll_dtype_t.
enum class DType : int32_t {
  kFloat16 = 1,
  kBFloat16 = 2,
  kFloat32 = 3,
  kFloat64 = 4,
  kInt8 = 5,
  kUInt8 = 6,
  kInt32 = 7,
  kInt64 = 8,
};

bool dtype_valid(int32_t value);
size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
bool dtype_is_float(DType dtype);

// Round-to-nearest-even conversions; NaN stays NaN, infinities are kept.
inline float bf16_to_float(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_float(uint16_t h);
uint16_t float_to_f16(float f);

}  // namespace diffcoll
