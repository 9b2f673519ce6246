// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "reduction.h"

#include <algorithm>

namespace diffcoll {
namespace {

// Element access through a computation type: float for the 16-bit formats.
struct Bf16 {
  using Storage = uint16_t;
  using Compute = float;
  static float load(uint16_t v) { return bf16_to_float(v); }
  static uint16_t store(float v) { return float_to_bf16(v); }
};
struct F16 {
  using Storage = uint16_t;
  using Compute = float;
  static float load(uint16_t v) { return f16_to_float(v); }
  static uint16_t store(float v) { return float_to_f16(v); }
};
template <typename T>
struct Plain {
  using Storage = T;
  using Compute = T;
  static T load(T v) { return v; }
  static T store(T v) { return v; }
};

template <typename E, typename Fn>
void combine(void* out, const void* a, const void* b, size_t n, Fn fn) {
  using S = typename E::Storage;
  auto* o = static_cast<S*>(out);
  auto* x = static_cast<const S*>(a);
  auto* y = static_cast<const S*>(b);
  for (size_t i = 0; i < n; ++i) o[i] = E::store(fn(E::load(x[i]), E::load(y[i])));
}

template <typename E>
void reduce_typed(RedOp op, void* out, const void* a, const void* b, size_t n) {
  using C = typename E::Compute;
  switch (op) {
    case RedOp::kSum:
    case RedOp::kAvg:
    case RedOp::kPreMulSum:
      combine<E>(out, a, b, n, [](C p, C q) { return static_cast<C>(p + q); });
      break;
    case RedOp::kProd:
      combine<E>(out, a, b, n, [](C p, C q) { return static_cast<C>(p * q); });
      break;
    case RedOp::kMin:
      combine<E>(out, a, b, n, [](C p, C q) { return std::min(p, q); });
      break;
    case RedOp::kMax:
      combine<E>(out, a, b, n, [](C p, C q) { return std::max(p, q); });
      break;
  }
}

template <typename E>
void scale_typed(void* buf, size_t n, double factor) {
  using S = typename E::Storage;
  using C = typename E::Compute;
  auto* p = static_cast<S*>(buf);
  const C f = static_cast<C>(factor);
  for (size_t i = 0; i < n; ++i) p[i] = E::store(static_cast<C>(E::load(p[i]) * f));
}

template <typename T>
void divide_typed(void* buf, size_t n, T divisor) {
  auto* p = static_cast<T*>(buf);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<T>(p[i] / divisor);
}

// Calls fn.template operator()<Element>() for the dtype.
template <typename Fn>
void dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat16: fn(F16{}); break;
    case DType::kBFloat16: fn(Bf16{}); break;
    case DType::kFloat32: fn(Plain<float>{}); break;
    case DType::kFloat64: fn(Plain<double>{}); break;
    case DType::kInt8: fn(Plain<int8_t>{}); break;
    case DType::kUInt8: fn(Plain<uint8_t>{}); break;
    case DType::kInt32: fn(Plain<int32_t>{}); break;
    case DType::kInt64: fn(Plain<int64_t>{}); break;
  }
}

}  // namespace

bool red_op_valid(int32_t value) { return value >= 0 && value <= 5; }

const char* red_op_name(RedOp op) {
  switch (op) {
    case RedOp::kSum: return "sum";
    case RedOp::kProd: return "prod";
    case RedOp::kMin: return "min";
    case RedOp::kMax: return "max";
    case RedOp::kAvg: return "avg";
    case RedOp::kPreMulSum: return "premul_sum";
  }
  return "invalid";
}

void reduce_host(DType dtype, RedOp op, void* out, const void* a, const void* b, size_t n) {
  dispatch(dtype, [&](auto element) {
    reduce_typed<decltype(element)>(op, out, a, b, n);
  });
}

void prescale_host(DType dtype, Reduction red, int group_size, void* buf, size_t n) {
  double factor;
  if (red.op == RedOp::kPreMulSum) factor = red.scalar;
  else if (red.op == RedOp::kAvg && dtype_is_float(dtype)) factor = 1.0 / group_size;
  else return;
  dispatch(dtype, [&](auto element) { scale_typed<decltype(element)>(buf, n, factor); });
}

void finalize_host(DType dtype, Reduction red, int group_size, void* buf, size_t n) {
  if (red.op != RedOp::kAvg || dtype_is_float(dtype)) return;
  switch (dtype) {
    case DType::kInt8: divide_typed<int8_t>(buf, n, static_cast<int8_t>(group_size)); break;
    case DType::kUInt8: divide_typed<uint8_t>(buf, n, static_cast<uint8_t>(group_size)); break;
    case DType::kInt32: divide_typed<int32_t>(buf, n, group_size); break;
    case DType::kInt64: divide_typed<int64_t>(buf, n, group_size); break;
    default: break;
  }
}

}  // namespace diffcoll
