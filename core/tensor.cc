// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "tensor.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "error.h"

namespace diffcoll {
namespace {

// Dimensions of extent > 1 sorted by |stride|, ascending.
int sorted_dims(const TensorView& t, int* order) {
  int n = 0;
  for (int d = 0; d < t.ndim; ++d)
    if (t.shape[d] > 1) order[n++] = d;
  std::sort(order, order + n, [&](int a, int b) {
    return std::llabs(t.strides[a]) < std::llabs(t.strides[b]);
  });
  return n;
}

bool mul_overflows(int64_t a, int64_t b, int64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

}  // namespace

void TensorView::validate(const char* what) const {
  DIFFCOLL_REQUIRE(ndim >= 0 && ndim <= kMaxDims, Status::kInvalidArgument, what,
                   ": ndim ", ndim, " is outside 0..", kMaxDims);
  int64_t count = 1;
  int64_t reach = 0;  // largest |offset| in elements
  for (int d = 0; d < ndim; ++d) {
    DIFFCOLL_REQUIRE(shape[d] >= 0, Status::kInvalidArgument, what, ": shape[", d,
                     "] is negative (", shape[d], ")");
    DIFFCOLL_REQUIRE(!mul_overflows(count, shape[d], &count), Status::kInvalidArgument,
                     what, ": the number of elements overflows int64");
    if (shape[d] == 0) continue;
    int64_t step;
    DIFFCOLL_REQUIRE(strides[d] != INT64_MIN &&
                         !mul_overflows(std::llabs(strides[d]), shape[d] - 1, &step) &&
                         !__builtin_add_overflow(reach, step, &reach),
                     Status::kInvalidArgument, what, ": stride ", strides[d],
                     " of dimension ", d, " reaches past the address space");
  }
  int64_t bytes;
  DIFFCOLL_REQUIRE(!mul_overflows(count, static_cast<int64_t>(element_size()), &bytes) &&
                       !mul_overflows(reach, static_cast<int64_t>(element_size()), &bytes),
                   Status::kInvalidArgument, what, ": the tensor's size in bytes overflows");
  DIFFCOLL_REQUIRE(count == 0 || data != nullptr, Status::kInvalidArgument, what,
                   ": data is NULL for a tensor of ", count, " elements");
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  return n;
}

bool TensorView::is_contiguous() const {
  int64_t expected = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    if (shape[d] == 0) return true;
    if (strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

bool TensorView::is_dense() const {
  if (numel() == 0) return true;
  int order[kMaxViewDims];
  int n = sorted_dims(*this, order);
  int64_t expected = 1;
  for (int i = 0; i < n; ++i) {
    if (std::llabs(strides[order[i]]) != expected) return false;
    expected *= shape[order[i]];
  }
  return true;
}

bool TensorView::may_overlap() const {
  if (numel() <= 1) return false;
  int order[kMaxViewDims];
  int n = sorted_dims(*this, order);
  int64_t extent = 0;  // span of the dimensions seen so far, minus one
  for (int i = 0; i < n; ++i) {
    int64_t s = std::llabs(strides[order[i]]);
    if (s <= extent) return true;
    extent += s * (shape[order[i]] - 1);
  }
  return false;
}

void* TensorView::span_begin() const {
  if (numel() == 0) return data;  // strides of an empty view may point anywhere
  int64_t offset = 0;
  for (int d = 0; d < ndim; ++d)
    if (strides[d] < 0 && shape[d] > 0) offset += strides[d] * (shape[d] - 1);
  return static_cast<char*>(data) + offset * static_cast<int64_t>(element_size());
}

MemoryFormat TensorView::memory_format() const {
  // Dimensions listed from the innermost in memory to the outermost.
  static const int kChannelsLast[] = {1, 3, 2, 0};
  static const int kChannelsLast3d[] = {1, 4, 3, 2, 0};
  auto follows = [this](const int* inner_to_outer) {
    int64_t expected = 1;
    for (int i = 0; i < ndim; ++i) {
      int d = inner_to_outer[i];
      if (shape[d] != 1 && strides[d] != expected) return false;
      expected *= shape[d];
    }
    return true;
  };
  if (is_contiguous()) return MemoryFormat::kContiguous;
  if (ndim == 4 && follows(kChannelsLast)) return MemoryFormat::kChannelsLast;
  if (ndim == 5 && follows(kChannelsLast3d)) return MemoryFormat::kChannelsLast3d;
  return MemoryFormat::kOther;
}

TensorView TensorView::slab(int axis, int64_t start, int64_t length) const {
  TensorView t = *this;
  t.data = static_cast<char*>(data) +
           start * strides[axis] * static_cast<int64_t>(element_size());
  t.shape[axis] = length;
  return t;
}

TensorView TensorView::split_axis(int axis, int64_t parts) const {
  TensorView t = *this;
  for (int d = ndim; d > axis; --d) {
    t.shape[d] = shape[d - 1];
    t.strides[d] = strides[d - 1];
  }
  t.ndim = ndim + 1;
  t.shape[axis] = parts;
  t.shape[axis + 1] = shape[axis] / parts;
  // One part is a dimension of size 1, whose stride never matters; for more
  // parts the product stays within the validated extent stride * (shape - 1).
  t.strides[axis] = parts == 1 ? 0 : strides[axis] * t.shape[axis + 1];
  return t;
}

TensorView TensorView::move_axis(int from, int to) const {
  TensorView t = *this;
  int64_t s = shape[from], st = strides[from];
  if (from < to) {
    for (int d = from; d < to; ++d) {
      t.shape[d] = t.shape[d + 1];
      t.strides[d] = t.strides[d + 1];
    }
  } else {
    for (int d = from; d > to; --d) {
      t.shape[d] = t.shape[d - 1];
      t.strides[d] = t.strides[d - 1];
    }
  }
  t.shape[to] = s;
  t.strides[to] = st;
  return t;
}

std::string TensorView::describe() const {
  std::ostringstream os;
  os << dtype_name(dtype) << "[";
  for (int d = 0; d < ndim; ++d) os << (d ? "," : "") << shape[d];
  os << "] strides [";
  for (int d = 0; d < ndim; ++d) os << (d ? "," : "") << strides[d];
  os << "] on " << (device.is_cuda() ? "cuda:" + std::to_string(device.id) : "cpu");
  return os.str();
}

void contiguous_strides(int ndim, const int64_t* shape, int64_t* strides) {
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    strides[d] = s;
    s *= shape[d] > 0 ? shape[d] : 1;
  }
}

}  // namespace diffcoll
