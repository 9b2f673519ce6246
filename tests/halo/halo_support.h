// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Helpers of the halo tests: host tensors of any layout inside a poisoned
// parent buffer (so that writes outside the view show up), element access in
// f32 / bf16 / f64, the whole-tensor padding reference, and ranks as threads.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "diffcoll/diffcoll.h"

namespace halo_test {

using Shape = std::vector<int64_t>;
using Index = std::vector<int64_t>;

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

inline std::string str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << "]";
  return os.str();
}

inline Index unflatten(int64_t flat, const Shape& shape) {
  Index idx(shape.size());
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}

inline size_t dtype_bytes(int dtype) {
  switch (dtype) {
    case DIFFCOLL_BFLOAT16:
    case DIFFCOLL_FLOAT16:
      return 2;
    case DIFFCOLL_FLOAT32:
      return 4;
    default:
      return 8;
  }
}

inline const char* dtype_str(int dtype) {
  return dtype == DIFFCOLL_BFLOAT16 ? "bf16" : dtype == DIFFCOLL_FLOAT32 ? "f32" : "f64";
}

// Exact for the small integers the tests use.
inline double load(int dtype, const uint8_t* p) {
  if (dtype == DIFFCOLL_BFLOAT16) {
    uint16_t b;
    std::memcpy(&b, p, 2);
    uint32_t bits = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  if (dtype == DIFFCOLL_FLOAT32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  double d;
  std::memcpy(&d, p, 8);
  return d;
}

inline void store(int dtype, uint8_t* p, double x) {
  if (dtype == DIFFCOLL_BFLOAT16) {
    float f = static_cast<float>(x);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    uint16_t b = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    std::memcpy(p, &b, 2);
  } else if (dtype == DIFFCOLL_FLOAT32) {
    float f = static_cast<float>(x);
    std::memcpy(p, &f, 4);
  } else {
    std::memcpy(p, &x, 8);
  }
}

enum class Layout {
  kContiguous,    // row-major
  kChannelsLast,  // dimension 1 innermost (NHWC / NDHWC)
  kGapped,        // a window of a larger buffer, every other element of the last dim
};

inline const char* layout_str(Layout l) {
  switch (l) {
    case Layout::kContiguous:
      return "contiguous";
    case Layout::kChannelsLast:
      return "channels_last";
    case Layout::kGapped:
      return "gapped";
  }
  return "?";
}

inline uint8_t poison_byte(size_t i) { return static_cast<uint8_t>(0xA5 ^ (i * 37)); }

// A host tensor in a parent buffer whose other bytes hold a poison pattern.
class Tensor {
 public:
  Tensor() = default;
  Tensor(int dtype, Shape shape, Layout layout) : dtype_(dtype), shape_(std::move(shape)) {
    const int n = static_cast<int>(shape_.size());
    std::vector<int> order(n);  // outermost first
    for (int d = 0; d < n; ++d) order[d] = d;
    Shape alloc = shape_;
    std::vector<int64_t> step(n, 1), start(n, 0);
    if (layout == Layout::kChannelsLast && n >= 3) {
      order.clear();
      order.push_back(0);
      for (int d = 2; d < n; ++d) order.push_back(d);
      order.push_back(1);
    } else if (layout == Layout::kGapped) {
      for (int d = 0; d < n; ++d) {
        alloc[d] = shape_[d] + 1;
        start[d] = 1;
      }
      alloc[n - 1] = 2 * shape_[n - 1] + 1;
      step[n - 1] = 2;
    }
    int64_t s = 1;
    std::vector<int64_t> parent_stride(n);
    for (int i = n - 1; i >= 0; --i) {
      parent_stride[order[i]] = s;
      s *= std::max<int64_t>(alloc[order[i]], 1);
    }
    parent_elems_ = s;
    strides_.resize(n);
    for (int d = 0; d < n; ++d) {
      strides_[d] = parent_stride[d] * step[d];
      offset_ += start[d] * parent_stride[d];
    }
    parent_.resize(static_cast<size_t>(parent_elems_) * dtype_bytes(dtype_));
    for (size_t i = 0; i < parent_.size(); ++i) parent_[i] = poison_byte(i);
  }

  const Shape& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  int dtype() const { return dtype_; }
  size_t row_bytes(int axis) const {
    return static_cast<size_t>(numel(shape_) / std::max<int64_t>(shape_[axis], 1)) *
           dtype_bytes(dtype_);
  }

  diffcoll_tensor_t desc() {
    diffcoll_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = parent_.data() + offset_ * static_cast<int64_t>(dtype_bytes(dtype_));
    t.dtype = dtype_;
    t.device_type = DIFFCOLL_DEVICE_CPU;
    t.ndim = static_cast<int32_t>(shape_.size());
    for (size_t d = 0; d < shape_.size(); ++d) {
      t.shape[d] = shape_[d];
      t.strides[d] = strides_[d];
    }
    return t;
  }

  // The parent buffer (the view and its poisoned surroundings), e.g. to
  // mirror it in device memory, and the view's byte offset in it.
  uint8_t* parent_data() { return parent_.data(); }
  size_t parent_bytes() const { return parent_.size(); }
  int64_t offset_bytes() const { return offset_ * static_cast<int64_t>(dtype_bytes(dtype_)); }

  int64_t element(const Index& idx) const {
    int64_t off = offset_;
    for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * strides_[d];
    return off;
  }
  double get(const Index& idx) const {
    return load(dtype_, parent_.data() + element(idx) * dtype_bytes(dtype_));
  }
  void set(const Index& idx, double v) {
    store(dtype_, parent_.data() + element(idx) * dtype_bytes(dtype_), v);
  }
  template <typename Fn>
  void fill(Fn fn) {
    for (int64_t i = 0; i < numel(shape_); ++i) {
      Index idx = unflatten(i, shape_);
      set(idx, fn(idx));
    }
  }

  // Bytes of the parent outside the view that no longer hold the poison.
  size_t gap_bytes_changed() const {
    std::vector<bool> covered(parent_elems_, false);
    for (int64_t i = 0; i < numel(shape_); ++i) covered[element(unflatten(i, shape_))] = true;
    const size_t es = dtype_bytes(dtype_);
    size_t changed = 0;
    for (int64_t e = 0; e < parent_elems_; ++e) {
      if (covered[e]) continue;
      for (size_t b = 0; b < es; ++b)
        if (parent_[e * es + b] != poison_byte(e * es + b)) ++changed;
    }
    return changed;
  }

 private:
  int dtype_ = DIFFCOLL_FLOAT32;
  Shape shape_;
  std::vector<int64_t> strides_;
  int64_t offset_ = 0;
  int64_t parent_elems_ = 0;
  std::vector<uint8_t> parent_;
};

// ---- ranks as threads ----------------------------------------------------------

inline std::string unique_name(const char* what) {
  static std::atomic<int> counter{0};
  std::ostringstream os;
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  os << "halo." << (info ? info->test_suite_name() : "t") << "." << (info ? info->name() : "t")
     << "." << what << "." << getpid() << "." << counter++;
  std::string s = os.str();
  for (char& c : s)
    if (c == '/') c = '_';
  return s;
}

// One rank of run_ranks: joins `rendezvous` as rank r of `size` (with a
// device side on CUDA device `device`, or host only when it is negative),
// runs fn(r, comm), then a final barrier if asked, and destroys the comm.
inline void run_rank(const std::string& rendezvous, int r, int size,
                     const std::function<void(int, diffcoll_comm_t*)>& fn, int timeout_ms,
                     int check, bool final_barrier, int device) {
  diffcoll_config_t cfg = DIFFCOLL_CONFIG_INIT;
  cfg.timeout_ms = timeout_ms;
  cfg.check = check;
  if (device >= 0) cfg.device_id = device;
  diffcoll_comm_t* comm = nullptr;
  diffcoll_status_t st = diffcoll_comm_create(rendezvous.c_str(), r, size, &cfg, &comm);
  if (st != DIFFCOLL_SUCCESS || comm == nullptr) {
    ADD_FAILURE() << "rank " << r << ": diffcoll_comm_create: " << diffcoll_last_error();
    return;
  }
  fn(r, comm);
  if (final_barrier)
    EXPECT_EQ(diffcoll_barrier(comm, nullptr), DIFFCOLL_SUCCESS)
        << "rank " << r << ": final barrier: " << diffcoll_last_error();
  EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS) << diffcoll_last_error();
}

// Runs fn(rank, comm) on `size` threads, each with its own world communicator
// of one fresh local:// rendezvous; with final_barrier the ranks meet before
// destroying their communicators.
inline void run_ranks(int size, const std::function<void(int, diffcoll_comm_t*)>& fn,
                      int timeout_ms = 20000, int check = 0, bool final_barrier = true) {
  const std::string rendezvous = "local://" + unique_name("world");
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r)
    threads.emplace_back(
        [&, r] { run_rank(rendezvous, r, size, fn, timeout_ms, check, final_barrier, -1); });
  for (auto& t : threads) t.join();
}

inline diffcoll_stats_t stats_of(diffcoll_comm_t* comm) {
  diffcoll_stats_t s = DIFFCOLL_STATS_INIT;
  EXPECT_EQ(diffcoll_comm_get_stats(comm, &s), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  return s;
}

}  // namespace halo_test

#define HALO_EXPECT_OK(call)                                                              \
  do {                                                                                    \
    diffcoll_status_t st_ = (call);                                                       \
    EXPECT_EQ(st_, DIFFCOLL_SUCCESS)                                                      \
        << #call << ": " << diffcoll_status_string(st_) << ": " << diffcoll_last_error(); \
  } while (0)

#define HALO_ASSERT_OK(call)                                                              \
  do {                                                                                    \
    diffcoll_status_t st_ = (call);                                                       \
    ASSERT_EQ(st_, DIFFCOLL_SUCCESS)                                                      \
        << #call << ": " << diffcoll_status_string(st_) << ": " << diffcoll_last_error(); \
  } while (0)
