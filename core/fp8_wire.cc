// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
#include "fp8_wire.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "error.h"

namespace diffcoll {
namespace {

size_t align16(size_t bytes) { return (bytes + 15) & ~size_t{15}; }

float load(const char* p, DType dtype) {
  uint16_t h;
  switch (dtype) {
    case DType::kBFloat16:
      std::memcpy(&h, p, 2);
      return bf16_to_float(h);
    case DType::kFloat16:
      std::memcpy(&h, p, 2);
      return f16_to_float(h);
    default: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
  }
}

void store(char* p, DType dtype, float x) {
  uint16_t h;
  switch (dtype) {
    case DType::kBFloat16:
      h = float_to_bf16(x);
      std::memcpy(p, &h, 2);
      break;
    case DType::kFloat16:
      h = float_to_f16(x);
      std::memcpy(p, &h, 2);
      break;
    default:
      std::memcpy(p, &x, 4);
      break;
  }
}

// Calls fn(group, element address, code index) for every element of every
// group of wire view `v`, group by group, each group's elements in code order.
template <typename Fn>
void for_each_element(const TensorView& v, const Fp8Layout& l, int64_t block, Fn fn) {
  const int outer_dims = v.ndim - 2;
  const int64_t es = static_cast<int64_t>(v.element_size());
  const int64_t token_stride = v.strides[v.ndim - 2] * es, inner_stride = v.strides[v.ndim - 1] * es;
  for (int64_t o = 0; o < l.outer; ++o) {
    int64_t rest = o, base = 0;
    for (int d = outer_dims - 1; d >= 0; --d) {
      base += (rest % v.shape[d]) * v.strides[d] * es;
      rest /= v.shape[d];
    }
    for (int64_t k = 0; k < l.blocks; ++k) {
      const int64_t first = k * block, last = std::min(l.tokens, first + block);
      for (int64_t t = first; t < last; ++t)
        for (int64_t i = 0; i < l.inner; ++i)
          fn(o * l.blocks + k, static_cast<char*>(v.data) + base + t * token_stride + i * inner_stride,
             (o * l.tokens + t) * l.inner + i);
    }
  }
}

void check_wire_view(const TensorView& v, const char* op) {
  DIFFCOLL_REQUIRE(v.ndim >= 2, Status::kInternal, op, ": a wire view has >= 2 dimensions, ",
                   v.describe());
  DIFFCOLL_REQUIRE(fp8_wire_supports(v.dtype), Status::kInvalidArgument, op, ": ",
                   dtype_name(v.dtype), " cannot travel as FP8 (float16, bfloat16, float32 can)");
}

}  // namespace

Fp8Layout fp8_layout(const TensorView& v, int64_t block) {
  Fp8Layout l;
  for (int d = 0; d + 2 < v.ndim; ++d) l.outer *= v.shape[d];
  l.tokens = v.shape[v.ndim - 2];
  l.inner = v.shape[v.ndim - 1];
  l.blocks = (l.tokens + block - 1) / block;
  l.groups = l.outer * l.blocks;
  l.codes_offset = align16(static_cast<size_t>(l.groups) * sizeof(float));
  l.bytes = align16(l.codes_offset + static_cast<size_t>(l.outer * l.tokens * l.inner));
  return l;
}

TensorView fp8_wire_view(const TensorView& v, int tokens_axis, int skip_axis) {
  int inner = -1;
  for (int d = v.ndim - 1; d >= 0 && inner < 0; --d)
    if (d != tokens_axis && d != skip_axis) inner = d;
  TensorView w = v;
  int n = 0;
  for (int d = 0; d < v.ndim; ++d) {
    if (d == tokens_axis || d == inner) continue;
    w.shape[n] = v.shape[d];
    w.strides[n++] = v.strides[d];
  }
  w.shape[n] = v.shape[tokens_axis];
  w.strides[n++] = v.strides[tokens_axis];
  w.shape[n] = inner >= 0 ? v.shape[inner] : 1;
  w.strides[n++] = inner >= 0 ? v.strides[inner] : 1;
  w.ndim = n;
  return w;
}

bool fp8_wire_supports(DType dtype) {
  return dtype == DType::kFloat16 || dtype == DType::kBFloat16 || dtype == DType::kFloat32;
}

void fp8_pack_host(const TensorView& view, void* wire, const Fp8Wire& format) {
  check_wire_view(view, "fp8_pack_host");
  const Fp8Layout l = fp8_layout(view, format.block);
  const float max_finite = fp8_traits(format.format).max_finite;
  float* scales = static_cast<float*>(wire);
  uint8_t* codes = static_cast<uint8_t*>(wire) + l.codes_offset;
  std::vector<float> amax(static_cast<size_t>(l.groups), 0.0f);
  for_each_element(view, l, format.block, [&](int64_t g, const char* p, int64_t) {
    amax[g] = std::fmax(amax[g], std::fabs(load(p, view.dtype)));
  });
  std::vector<float>& inverse = amax;  // reused: amax[g] is needed no more
  for (int64_t g = 0; g < l.groups; ++g) {
    scales[g] = amax[g] / max_finite;
    inverse[g] = amax[g] > 0.0f ? max_finite / amax[g] : 0.0f;
  }
  for_each_element(view, l, format.block, [&](int64_t g, const char* p, int64_t c) {
    codes[c] = float_to_fp8(load(p, view.dtype) * inverse[g], format.format);
  });
}

void fp8_unpack_host(const void* wire, const TensorView& view, const Fp8Wire& format) {
  check_wire_view(view, "fp8_unpack_host");
  const Fp8Layout l = fp8_layout(view, format.block);
  const float* scales = static_cast<const float*>(wire);
  const uint8_t* codes = static_cast<const uint8_t*>(wire) + l.codes_offset;
  for_each_element(view, l, format.block, [&](int64_t g, const char* p, int64_t c) {
    store(const_cast<char*>(p), view.dtype, fp8_to_float(codes[c], format.format) * scales[g]);
  });
}

}  // namespace diffcoll
