// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// What the fuzz targets share: a reader of typed values from the input and a
// one-rank host communicator.
#pragma once

#include <diffcoll/diffcoll.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace dcfuzz {

// Reads typed values from a libFuzzer input; past its end every value is zero,
// so any input, however short, describes one complete call.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  template <typename T>
  T take() {
    T value{};
    size_t n = size_ - used_ < sizeof(T) ? size_ - used_ : sizeof(T);
    std::memcpy(&value, data_ + used_, n);
    used_ += n;
    return value;
  }

  // A string of up to `max` bytes (its length comes first); may hold any
  // byte, zero included, which a C string then ends at.
  std::string text(size_t max) {
    size_t n = take<uint8_t>() % (max + 1);
    n = n < size_ - used_ ? n : size_ - used_;
    std::string s(reinterpret_cast<const char*>(data_ + used_), n);
    used_ += n;
    return s;
  }

  // Everything not read yet.
  std::string rest() {
    std::string s(reinterpret_cast<const char*>(data_ + used_), size_ - used_);
    used_ = size_;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_, used_ = 0;
};

// A one-rank host communicator made on first use and kept for the process.
inline diffcoll_comm_t* world() {
  static diffcoll_comm_t* comm = [] {
    diffcoll_comm_t* c = nullptr;
    diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
    config.timeout_ms = 5000;
    if (diffcoll_comm_create("local://fuzz", 0, 1, &config, &c) != DIFFCOLL_SUCCESS) std::abort();
    return c;
  }();
  return comm;
}

}  // namespace dcfuzz
