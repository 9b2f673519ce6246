// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// TensorView: a pointer, a dtype, a device, a shape and strides in elements,
// and the layout questions the planner asks of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "dtype.h"

namespace diffcoll {

constexpr int kMaxDims = 8;  // what a caller's tensor may have
// What a view made inside diffcoll may have: split_axis() adds one.
constexpr int kMaxViewDims = kMaxDims + 1;

enum class DeviceType : int32_t { kCpu = 1, kCuda = 2 };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int32_t id = 0;
  bool is_cuda() const { return type == DeviceType::kCuda; }
};

// The memory layout that strides describe, as far as the planner cares.
enum class MemoryFormat { kContiguous, kChannelsLast, kChannelsLast3d, kOther };

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kFloat32;
  Device device;
  int ndim = 0;
  int64_t shape[kMaxViewDims] = {};  // validate() holds callers to kMaxDims
  int64_t strides[kMaxViewDims] = {};

  // Validates ndim, shapes, strides and that every byte offset fits in
  // int64; throws Error(kInvalidArgument) naming `what` otherwise.
  void validate(const char* what) const;

  int64_t numel() const;
  size_t element_size() const { return dtype_size(dtype); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * element_size(); }

  // Row-major contiguous: elements in logical order with no gaps.
  bool is_contiguous() const;
  // The elements exactly fill one span, in any order (a permutation of a
  // contiguous block, negative strides allowed).
  bool is_dense() const;
  // Two index tuples may reach one address (stride 0, or strides that
  // interleave). Conservative: a few exotic non-overlapping layouts count.
  bool may_overlap() const;
  // Lowest address an element occupies (data when no stride is negative).
  void* span_begin() const;
  MemoryFormat memory_format() const;

  // Elements [start, start + length) along `axis`.
  TensorView slab(int axis, int64_t start, int64_t length) const;
  // The same view with dimension `axis` split into (parts, shape/parts),
  // the new outer dimension first: block j of the split is index j.
  TensorView split_axis(int axis, int64_t parts) const;
  // Moves dimension `from` to position `to`, shifting the others.
  TensorView move_axis(int from, int to) const;

  std::string describe() const;  // "bfloat16[2,16,90] strides [1440,90,1] on cpu"
};

// Contiguous row-major strides for a shape.
void contiguous_strides(int ndim, const int64_t* shape, int64_t* strides);

}  // namespace diffcoll
