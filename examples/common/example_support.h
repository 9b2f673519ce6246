// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// What the examples, benchmarks and test programs share: stopping with the
// library's message on a failed call (and with CUDA's, where cuda_runtime.h
// comes first), a 1-D host tensor descriptor, and bf16 conversions for
// filling and checking tensors.
#pragma once

#include <diffcoll/diffcoll.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#define CHECK(call)                                                                  \
  do {                                                                               \
    diffcoll_status_t s_ = (call);                                                   \
    if (s_ != DIFFCOLL_SUCCESS) {                                                    \
      std::fprintf(stderr, "%s failed: %s: %s\n", #call, diffcoll_status_string(s_), \
                   diffcoll_last_error());                                           \
      std::exit(1);                                                                  \
    }                                                                                \
  } while (0)

#ifdef CUDART_VERSION  // included after cuda_runtime.h: the same for CUDA calls
#define CUDA(call)                                                            \
  do {                                                                        \
    cudaError_t e_ = (call);                                                  \
    if (e_ != cudaSuccess) {                                                  \
      std::fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                           \
    }                                                                         \
  } while (0)
#endif

// Round to nearest even (inputs here are finite).
inline uint16_t to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

inline float from_bf16(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// A contiguous 1-D host tensor of `n` elements of `dtype` at `data`.
inline diffcoll_tensor_t host_tensor_1d(void* data, int32_t dtype, int64_t n) {
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = dtype;
  t.device_type = DIFFCOLL_DEVICE_CPU;
  t.ndim = 1;
  t.shape[0] = n;
  t.strides[0] = 1;
  return t;
}
