// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// libFuzzer target: arbitrary tensor descriptors (any ndim, shapes, strides,
// dtypes and devices, overflow-sized products, negative and zero strides) and
// arguments through the public C ABI on a one-rank host communicator.
//
// A view whose elements all lie inside a scratch buffer goes through real
// collectives (so packing and unpacking run); any other view is described as
// a CUDA tensor, which the host-only communicator refuses only after the
// descriptor has been validated, so no memory outside the buffer is touched.
// Every call must return a status; a crash, a sanitizer report or a hang is a
// finding.
#include <diffcoll/diffcoll.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "fuzz_support.h"

namespace {

constexpr int64_t kBufferElements = 1 << 14;
alignas(16) unsigned char buffer[kBufferElements * 8 * 2];  // +-kBufferElements of 8 bytes
alignas(16) unsigned char output[kBufferElements * 8 * 2];

size_t element_size(int32_t dtype) {
  switch (dtype) {
    case DIFFCOLL_INT8: case DIFFCOLL_UINT8: return 1;
    case DIFFCOLL_FLOAT16: case DIFFCOLL_BFLOAT16: return 2;
    case DIFFCOLL_FLOAT32: case DIFFCOLL_INT32: return 4;
    default: return 8;
  }
}

// True if every element of `t` lies within +-limit elements of its data
// pointer and it has at most `limit` elements (a stride-0 view can be huge
// while reaching little memory: packing it would need as much staging, which
// the library refuses cleanly but a sanitizer's allocator aborts on).
bool fits(const diffcoll_tensor_t& t, int64_t limit) {
  if (t.ndim < 0 || t.ndim > DIFFCOLL_MAX_DIMS) return false;
  __int128 low = 0, high = 0, count = 1;
  for (int d = 0; d < t.ndim; ++d) {
    if (t.shape[d] < 0) return false;
    if (t.shape[d] == 0) return true;  // no elements
    __int128 reach = static_cast<__int128>(t.strides[d]) * (t.shape[d] - 1);
    if (reach < 0) low += reach; else high += reach;
    count *= t.shape[d];
    if (count > limit) return false;
  }
  return low >= -limit && high < limit;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dcfuzz::Reader in(data, size);
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.dtype = in.take<int8_t>() % 10;  // includes invalid values 0 and 9
  t.ndim = in.take<int8_t>() % 11;   // includes negative and > 8
  for (int d = 0; d < DIFFCOLL_MAX_DIMS; ++d) {
    // Mostly small values, sometimes anything (overflow-sized products).
    uint8_t kind = in.take<uint8_t>();
    t.shape[d] = kind & 1 ? in.take<int64_t>() : static_cast<int8_t>(in.take<int8_t>()) % 9;
    t.strides[d] = kind & 2 ? in.take<int64_t>() : static_cast<int8_t>(in.take<int8_t>());
  }
  const int32_t op = in.take<int8_t>() % 8;
  const int32_t axis = in.take<int8_t>() % 10;
  const int32_t other_axis = in.take<int8_t>() % 10;
  const int32_t root = in.take<int8_t>() % 3;

  const bool in_buffer = fits(t, kBufferElements);
  t.device_type = in_buffer ? DIFFCOLL_DEVICE_CPU : DIFFCOLL_DEVICE_CUDA;
  t.data = buffer + kBufferElements * element_size(t.dtype);  // the middle of the buffer
  diffcoll_tensor_t out = t;  // world of one: outputs have the input's shape
  out.data = output + kBufferElements * element_size(t.dtype);

  diffcoll_comm_t* comm = dcfuzz::world();
  diffcoll_all_reduce(comm, &t, op, 0.5, nullptr);
  diffcoll_broadcast(comm, &t, root, nullptr);
  diffcoll_reduce(comm, &t, op, 1.5, root, nullptr);
  diffcoll_all_gather(comm, &t, &out, axis, nullptr);
  diffcoll_reduce_scatter(comm, &t, &out, axis, op, 1.0, nullptr);
  diffcoll_all_to_all(comm, &t, &out, axis, other_axis, nullptr);
  diffcoll_gather(comm, &t, &out, axis, root, nullptr);
  diffcoll_scatter(comm, &t, &out, axis, root, nullptr);
  if (diffcoll_group_start(comm) == DIFFCOLL_SUCCESS) {
    diffcoll_send(comm, &t, 0, nullptr);
    diffcoll_recv(comm, &out, 0, nullptr);
    diffcoll_group_end(comm);
  }
  return 0;
}
