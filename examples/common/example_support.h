// What the examples and benchmarks share: stopping with the library's message
// on a failed call, and bf16 conversions for filling and checking tensors.
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
