// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "pack.h"

#include <cstdint>
#include <cstring>

namespace diffcoll {
namespace {

// A view reduced to the fewest dimensions: size-1 dimensions dropped and
// neighbours merged where the outer stride equals inner stride * inner size.
struct Coalesced {
  int ndim = 0;
  int64_t shape[kMaxViewDims];
  int64_t strides[kMaxViewDims];  // in bytes
};

Coalesced coalesce(const TensorView& t) {
  Coalesced c;
  const int64_t es = static_cast<int64_t>(t.element_size());
  for (int d = 0; d < t.ndim; ++d) {
    if (t.shape[d] == 1) continue;
    int64_t stride = t.strides[d] * es;
    if (c.ndim > 0 && c.strides[c.ndim - 1] == stride * t.shape[d]) {
      c.shape[c.ndim - 1] *= t.shape[d];
      c.strides[c.ndim - 1] = stride;
    } else {
      c.shape[c.ndim] = t.shape[d];
      c.strides[c.ndim] = stride;
      ++c.ndim;
    }
  }
  return c;
}

// Walks every innermost row of a coalesced view; copy(row_base) is called with
// the address of each row's first element, in row-major order.
template <typename RowFn>
void for_each_row(const Coalesced& c, char* base, RowFn row) {
  if (c.ndim <= 1) {
    row(base);
    return;
  }
  int64_t index[kMaxViewDims] = {};
  const int outer = c.ndim - 1;  // dimensions above the innermost
  for (;;) {
    row(base);
    int d = outer - 1;
    for (; d >= 0; --d) {
      base += c.strides[d];
      if (++index[d] < c.shape[d]) break;
      base -= c.strides[d] * c.shape[d];
      index[d] = 0;
    }
    if (d < 0) return;
  }
}

// Copies `count` elements of type T between a strided row and a dense run.
template <bool kPack, typename T>
void strided_row(char* row, int64_t stride, char* dense, int64_t count) {
  T* d = reinterpret_cast<T*>(dense);
  for (int64_t i = 0; i < count; ++i) {
    T* element = reinterpret_cast<T*>(row + i * stride);
    if (kPack) std::memcpy(d + i, element, sizeof(T));
    else std::memcpy(element, d + i, sizeof(T));
  }
}

template <bool kPack>
void transfer(const TensorView& t, char* dense) {
  if (t.numel() == 0) return;
  const size_t es = t.element_size();
  Coalesced c = coalesce(t);
  if (c.ndim == 0) {
    if (kPack) std::memcpy(dense, t.data, es);
    else std::memcpy(t.data, dense, es);
    return;
  }
  const int64_t inner = c.shape[c.ndim - 1];
  const int64_t inner_stride = c.strides[c.ndim - 1];
  const size_t row_bytes = static_cast<size_t>(inner) * es;
  for_each_row(c, static_cast<char*>(t.data), [&](char* row) {
    if (inner_stride == static_cast<int64_t>(es)) {
      if (kPack) std::memcpy(dense, row, row_bytes);
      else std::memcpy(row, dense, row_bytes);
    } else {
      switch (es) {  // fixed-size copies the compiler turns into plain moves
        case 1: strided_row<kPack, uint8_t>(row, inner_stride, dense, inner); break;
        case 2: strided_row<kPack, uint16_t>(row, inner_stride, dense, inner); break;
        case 4: strided_row<kPack, uint32_t>(row, inner_stride, dense, inner); break;
        default: strided_row<kPack, uint64_t>(row, inner_stride, dense, inner); break;
      }
    }
    dense += row_bytes;
  });
}

}  // namespace

void pack_host(const TensorView& src, void* dst) {
  transfer<true>(src, static_cast<char*>(dst));
}

void unpack_host(const void* src, const TensorView& dst) {
  transfer<false>(dst, const_cast<char*>(static_cast<const char*>(src)));
}

}  // namespace diffcoll
