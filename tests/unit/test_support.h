// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Helpers shared by the public-API tests: strided host tensors in a poisoned
// parent buffer, element access for every dtype, deterministic per-rank data,
// and a harness that runs one lambda on P ranks as threads.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "diffcoll/diffcoll.h"

namespace dct {

// ---- dtypes -----------------------------------------------------------------

inline const std::vector<int>& all_dtypes() {
  static const std::vector<int> v = {DIFFCOLL_FLOAT16, DIFFCOLL_BFLOAT16, DIFFCOLL_FLOAT32,
                                     DIFFCOLL_FLOAT64, DIFFCOLL_INT8,     DIFFCOLL_UINT8,
                                     DIFFCOLL_INT32,   DIFFCOLL_INT64};
  return v;
}

inline const char* dtype_str(int dtype) {
  switch (dtype) {
    case DIFFCOLL_FLOAT16: return "f16";
    case DIFFCOLL_BFLOAT16: return "bf16";
    case DIFFCOLL_FLOAT32: return "f32";
    case DIFFCOLL_FLOAT64: return "f64";
    case DIFFCOLL_INT8: return "i8";
    case DIFFCOLL_UINT8: return "u8";
    case DIFFCOLL_INT32: return "i32";
    case DIFFCOLL_INT64: return "i64";
  }
  return "?";
}

inline size_t dtype_bytes(int dtype) {
  switch (dtype) {
    case DIFFCOLL_INT8:
    case DIFFCOLL_UINT8: return 1;
    case DIFFCOLL_FLOAT16:
    case DIFFCOLL_BFLOAT16: return 2;
    case DIFFCOLL_FLOAT32:
    case DIFFCOLL_INT32: return 4;
    default: return 8;
  }
}

inline bool dtype_float(int dtype) {
  return dtype == DIFFCOLL_FLOAT16 || dtype == DIFFCOLL_BFLOAT16 ||
         dtype == DIFFCOLL_FLOAT32 || dtype == DIFFCOLL_FLOAT64;
}
inline bool dtype_unsigned(int dtype) { return dtype == DIFFCOLL_UINT8; }

// Independent 16-bit float conversions (exact for the small integers and
// halves the tests use; round-to-nearest-even otherwise).
inline float half_to_float(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  float v;
  if (e == 0) v = std::ldexp(static_cast<float>(m), -24);
  else if (e == 31) v = m ? NAN : INFINITY;
  else v = std::ldexp(static_cast<float>(m + 1024), e - 25);
  return s ? -v : v;
}
inline uint16_t float_to_half(float f) {
  _Float16 h = static_cast<_Float16>(f);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}
inline float bfloat_to_float(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t float_to_bfloat(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  uint32_t lsb = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7fffu + lsb) >> 16);
}

inline double load(int dtype, const void* p) {
  switch (dtype) {
    case DIFFCOLL_FLOAT16: { uint16_t v; std::memcpy(&v, p, 2); return half_to_float(v); }
    case DIFFCOLL_BFLOAT16: { uint16_t v; std::memcpy(&v, p, 2); return bfloat_to_float(v); }
    case DIFFCOLL_FLOAT32: { float v; std::memcpy(&v, p, 4); return v; }
    case DIFFCOLL_FLOAT64: { double v; std::memcpy(&v, p, 8); return v; }
    case DIFFCOLL_INT8: return *static_cast<const int8_t*>(p);
    case DIFFCOLL_UINT8: return *static_cast<const uint8_t*>(p);
    case DIFFCOLL_INT32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case DIFFCOLL_INT64: { int64_t v; std::memcpy(&v, p, 8); return static_cast<double>(v); }
  }
  return NAN;
}

inline void store(int dtype, void* p, double x) {
  switch (dtype) {
    case DIFFCOLL_FLOAT16: { uint16_t v = float_to_half(static_cast<float>(x)); std::memcpy(p, &v, 2); break; }
    case DIFFCOLL_BFLOAT16: { uint16_t v = float_to_bfloat(static_cast<float>(x)); std::memcpy(p, &v, 2); break; }
    case DIFFCOLL_FLOAT32: { float v = static_cast<float>(x); std::memcpy(p, &v, 4); break; }
    case DIFFCOLL_FLOAT64: std::memcpy(p, &x, 8); break;
    case DIFFCOLL_INT8: *static_cast<int8_t*>(p) = static_cast<int8_t>(x); break;
    case DIFFCOLL_UINT8: *static_cast<uint8_t*>(p) = static_cast<uint8_t>(x); break;
    case DIFFCOLL_INT32: { int32_t v = static_cast<int32_t>(x); std::memcpy(p, &v, 4); break; }
    case DIFFCOLL_INT64: { int64_t v = static_cast<int64_t>(x); std::memcpy(p, &v, 8); break; }
  }
}

// ---- shapes -----------------------------------------------------------------

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

inline std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  os << "]";
  return os.str();
}

// Multi-index of row-major position `flat` in `shape`.
inline std::vector<int64_t> unflatten(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}
inline int64_t flatten(const std::vector<int64_t>& idx, const Shape& shape) {
  int64_t f = 0;
  for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + idx[d];
  return f;
}

// ---- strided tensors in a parent buffer ---------------------------------------

enum class Layout {
  kContiguous,   // row-major
  kTransposed,   // dense, dimensions reversed in memory
  kChannelsLast, // dense, dimension 1 innermost (NHWC / NDHWC for 4D / 5D)
  kGapped,       // sub-block of a larger buffer, every other element of the last dim
  kFlipped,      // dense, dimension 0 with a negative stride
};

inline const std::vector<Layout>& all_layouts() {
  static const std::vector<Layout> v = {Layout::kContiguous, Layout::kTransposed,
                                        Layout::kChannelsLast, Layout::kGapped,
                                        Layout::kFlipped};
  return v;
}

inline const char* layout_str(Layout l) {
  switch (l) {
    case Layout::kContiguous: return "contiguous";
    case Layout::kTransposed: return "transposed";
    case Layout::kChannelsLast: return "channels_last";
    case Layout::kGapped: return "gapped";
    case Layout::kFlipped: return "flipped";
  }
  return "?";
}

inline bool layout_dense(Layout l) { return l != Layout::kGapped; }

inline uint8_t poison_byte(size_t i) { return static_cast<uint8_t>(0xA5 ^ (i * 37)); }

class Strided {
 public:
  Strided() = default;
  Strided(int dtype, Shape shape, Layout layout) : dtype_(dtype), shape_(std::move(shape)) {
    const int n = static_cast<int>(shape_.size());
    strides_.assign(n, 0);
    // Memory order of dimensions, outermost first, and per-dimension extent in memory.
    std::vector<int> order(n);
    for (int d = 0; d < n; ++d) order[d] = d;
    Shape alloc = shape_;  // extent of each dimension in the parent
    std::vector<int64_t> step(n, 1);  // element step within the parent dimension
    std::vector<int64_t> start(n, 0);
    switch (layout) {
      case Layout::kContiguous:
      case Layout::kFlipped:
        break;
      case Layout::kTransposed:
        for (int d = 0; d < n; ++d) order[d] = n - 1 - d;
        break;
      case Layout::kChannelsLast:
        if (n >= 3) {
          order.clear();
          order.push_back(0);
          for (int d = 2; d < n; ++d) order.push_back(d);
          order.push_back(1);
        } else {
          for (int d = 0; d < n; ++d) order[d] = n - 1 - d;
        }
        break;
      case Layout::kGapped:
        for (int d = 0; d < n; ++d) {
          alloc[d] = shape_[d] + 1;
          start[d] = 1;
        }
        if (n > 0) {
          alloc[n - 1] = 2 * shape_[n - 1] + 1;
          step[n - 1] = 2;
        }
        break;
    }
    int64_t s = 1;
    std::vector<int64_t> parent_stride(n);
    for (int i = n - 1; i >= 0; --i) {
      parent_stride[order[i]] = s;
      s *= std::max<int64_t>(alloc[order[i]], 1);
    }
    parent_elems_ = s;
    offset_ = 0;
    for (int d = 0; d < n; ++d) {
      strides_[d] = parent_stride[d] * step[d];
      offset_ += start[d] * parent_stride[d];
    }
    if (layout == Layout::kFlipped && n > 0 && shape_[0] > 0) {
      offset_ += (shape_[0] - 1) * strides_[0];
      strides_[0] = -strides_[0];
    }
    parent_.assign(static_cast<size_t>(parent_elems_) * dtype_bytes(dtype_), 0);
    poison();
  }

  int dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  int64_t numel() const { return dct::numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_bytes(dtype_); }

  diffcoll_tensor_t desc() {
    diffcoll_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = parent_.data() + offset_ * static_cast<int64_t>(dtype_bytes(dtype_));
    t.dtype = dtype_;
    t.device_type = DIFFCOLL_DEVICE_CPU;
    t.device_id = 0;
    t.ndim = static_cast<int32_t>(shape_.size());
    for (size_t d = 0; d < shape_.size(); ++d) {
      t.shape[d] = shape_[d];
      t.strides[d] = strides_[d];
    }
    return t;
  }

  // Parent element index of row-major logical position `flat`.
  int64_t parent_index(int64_t flat) const {
    std::vector<int64_t> idx = unflatten(flat, shape_);
    int64_t off = offset_;
    for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * strides_[d];
    return off;
  }

  void poison() {
    for (size_t i = 0; i < parent_.size(); ++i) parent_[i] = poison_byte(i);
  }

  void fill(const std::vector<double>& values) {
    for (int64_t i = 0; i < numel(); ++i)
      store(dtype_, parent_.data() + parent_index(i) * dtype_bytes(dtype_), values[i]);
  }

  std::vector<double> read() const {
    std::vector<double> out(numel());
    for (int64_t i = 0; i < numel(); ++i)
      out[i] = load(dtype_, parent_.data() + parent_index(i) * dtype_bytes(dtype_));
    return out;
  }

  // Bytes of the parent that are not elements of the view still hold the poison.
  // Returns the number of changed bytes.
  size_t gap_bytes_changed() const {
    std::vector<bool> covered(parent_elems_, false);
    for (int64_t i = 0; i < numel(); ++i) covered[parent_index(i)] = true;
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

// ---- deterministic data -------------------------------------------------------

// Small integers in [lo, hi] (for unsigned dtypes lo is raised to 0), one
// stream per (rank, salt).
inline std::vector<double> random_values(int rank, uint64_t salt, int64_t n, int dtype,
                                         int lo = -3, int hi = 3) {
  std::mt19937_64 gen(0x9E3779B97F4A7C15ull * (rank + 1) + salt * 1000003ull);
  if (dtype_unsigned(dtype) && lo < 0) lo = 0;
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

inline std::string compare(const std::vector<double>& actual, const std::vector<double>& expected) {
  if (actual.size() != expected.size())
    return "size " + std::to_string(actual.size()) + " != " + std::to_string(expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    if (!(actual[i] == expected[i]) && !(std::isnan(actual[i]) && std::isnan(expected[i]))) {
      std::ostringstream os;
      os << "element " << i << ": got " << actual[i] << ", expected " << expected[i];
      return os.str();
    }
  }
  return "";
}

// ---- thread ranks ---------------------------------------------------------------

inline std::string unique_name(const char* what) {
  static std::atomic<int> counter{0};
  std::ostringstream os;
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  os << (info ? info->test_suite_name() : "t") << "." << (info ? info->name() : "t") << "."
     << what << "." << getpid() << "." << counter++;
  std::string s = os.str();
  for (char& c : s)
    if (c == '/') c = '_';
  return s;
}

inline diffcoll_config_t test_config(int timeout_ms = 10000, int check = 0) {
  diffcoll_config_t cfg = DIFFCOLL_CONFIG_INIT;
  cfg.timeout_ms = timeout_ms;
  cfg.check = check;
  return cfg;
}

// Runs fn(rank, comm) on `size` threads, each with its own world communicator
// of one fresh local:// rendezvous. gtest assertions from the threads are
// fine (EXPECT_* is thread-safe with pthreads); a failed ASSERT_* returns from
// fn only. With final_barrier, the ranks meet in a barrier on the world
// before destroying it.
inline void run_ranks(int size, const std::function<void(int, diffcoll_comm_t*)>& fn,
                      int timeout_ms = 10000, int check = 0, bool final_barrier = true) {
  const std::string rendezvous = "local://" + unique_name("world");
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      diffcoll_config_t cfg = test_config(timeout_ms, check);
      diffcoll_comm_t* comm = nullptr;
      diffcoll_status_t st = diffcoll_comm_create(rendezvous.c_str(), r, size, &cfg, &comm);
      if (st != DIFFCOLL_SUCCESS || comm == nullptr) {
        ADD_FAILURE() << "rank " << r << ": diffcoll_comm_create: "
                      << diffcoll_status_string(st) << ": " << diffcoll_last_error();
        return;
      }
      fn(r, comm);
      // No rank destroys its communicator before every rank is done with it
      // (see Lifecycle.DestroyRightAfterCreateDoesNotBreakPeers for why).
      if (final_barrier) {
        diffcoll_status_t bst = diffcoll_barrier(comm, nullptr);
        EXPECT_EQ(bst, DIFFCOLL_SUCCESS) << "rank " << r << ": final barrier: "
                                         << diffcoll_last_error();
      }
      EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS) << diffcoll_last_error();
    });
  }
  for (auto& t : threads) t.join();
}

}  // namespace dct

// EXPECT success of a diffcoll call, printing the status and last error.
#define DC_EXPECT_OK(call)                                                            \
  do {                                                                                \
    diffcoll_status_t dc_st_ = (call);                                                \
    EXPECT_EQ(dc_st_, DIFFCOLL_SUCCESS) << #call << ": " << diffcoll_status_string(dc_st_) \
                                        << ": " << diffcoll_last_error();             \
  } while (0)

#define DC_ASSERT_OK(call)                                                            \
  do {                                                                                \
    diffcoll_status_t dc_st_ = (call);                                                \
    ASSERT_EQ(dc_st_, DIFFCOLL_SUCCESS) << #call << ": " << diffcoll_status_string(dc_st_) \
                                        << ": " << diffcoll_last_error();             \
  } while (0)
