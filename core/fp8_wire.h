// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// The FP8 wire: a view of float16, bfloat16 or float32 elements travels as
// 8-bit floats (fp8.h) with one float32 scale per group, quantised by the
// pack and dequantised by the unpack, so that the caller's tensors keep
// their dtype and no pass is added.
//
// A wire view has its dimensions ordered [outer..., tokens, inner]
// (fp8_wire_view() permutes a caller's view into that order). A group is one
// index of the outer dimensions, `block` consecutive tokens (the last block
// of a view may be shorter) and the whole inner dimension. The wire buffer
// holds the groups' scales (float32, group g = outer index * blocks + block
// index), then from a 16-byte boundary the codes, one byte per element, in
// row-major order of the wire view; each group's codes are thus one run.
//
// Arithmetic (the host and the CUDA kernels compute exactly this, in
// float32 with correctly rounded operations):
//   amax  = max |x| over the group (NaN elements are ignored)
//   scale = amax / F            (F = the format's largest finite value)
//   q     = fp8(x * (amax > 0 ? F / amax : 0))   round to nearest even, saturated
//   x'    = dtype(float(q) * scale)              round to nearest even
// so that the largest element of a group maps to +-F and an all-zero group
// comes back as zeros.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fp8.h"
#include "tensor.h"

namespace diffcoll {

struct Fp8Wire {
  Fp8Format format = Fp8Format::kE4M3;
  int64_t block = 32;  // tokens per scale, >= 1
};

// Where the parts of a wire view's buffer lie.
struct Fp8Layout {
  int64_t outer = 1;   // product of the outer dimensions
  int64_t tokens = 1;  // extent of dimension ndim - 2
  int64_t inner = 1;   // extent of dimension ndim - 1
  int64_t blocks = 0;  // token blocks per outer index: ceil(tokens / block)
  int64_t groups = 0;  // outer * blocks: one scale each
  size_t codes_offset = 0;
  size_t bytes = 0;  // the whole buffer, a multiple of 16
};

// The layout of wire view `v` (ndim >= 2) with `block` tokens per scale.
Fp8Layout fp8_layout(const TensorView& v, int64_t block);

// `v` permuted into wire order: every dimension but `tokens_axis` and the
// inner one in their order, then `tokens_axis`, then the inner dimension:
// the last dimension that is neither `tokens_axis` nor `skip_axis` (-1: none
// skipped), or a unit dimension appended when there is none.
TensorView fp8_wire_view(const TensorView& v, int tokens_axis, int skip_axis);

// float16, bfloat16 and float32 travel as FP8; other dtypes cannot.
bool fp8_wire_supports(DType dtype);

// One view and its wire buffer (fp8_layout(view).bytes bytes).
struct Fp8Piece {
  TensorView view;
  void* wire = nullptr;
};

// Quantise `view` (a wire view) into `wire` / dequantise `wire` into `view`.
void fp8_pack_host(const TensorView& view, void* wire, const Fp8Wire& format);
void fp8_unpack_host(const void* wire, const TensorView& view, const Fp8Wire& format);

}  // namespace diffcoll
