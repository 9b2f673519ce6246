// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Helpers of the CFG tests: host tensors of any layout in a poisoned parent
// buffer, independent 16-bit conversions, a double-precision reference of
// every CFG formula and post-process, and ranks as threads.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "diffcoll/diffcoll.h"

namespace cfgt {

#define CFG_OK(call)                                                                     \
  do {                                                                                   \
    diffcoll_status_t s_ = (call);                                                       \
    ASSERT_EQ(s_, DIFFCOLL_SUCCESS) << #call << ": " << diffcoll_last_error();          \
  } while (0)

// ---- dtypes (conversions independent of the library's) ------------------------------

inline const std::vector<int>& float_dtypes() {
  static const std::vector<int> v = {DIFFCOLL_BFLOAT16, DIFFCOLL_FLOAT16, DIFFCOLL_FLOAT32};
  return v;
}

inline const char* dtype_str(int dtype) {
  switch (dtype) {
    case DIFFCOLL_FLOAT16: return "f16";
    case DIFFCOLL_BFLOAT16: return "bf16";
    case DIFFCOLL_FLOAT32: return "f32";
  }
  return "?";
}

inline size_t dtype_bytes(int dtype) { return dtype == DIFFCOLL_FLOAT32 ? 4 : 2; }

// Unit roundoff of the dtype (half an ulp, relative); float32 gets one bit of
// slack for its float32 arithmetic on large intermediate sums.
inline double dtype_eps(int dtype) {
  switch (dtype) {
    case DIFFCOLL_FLOAT16: return std::ldexp(1.0, -11);
    case DIFFCOLL_BFLOAT16: return std::ldexp(1.0, -8);
  }
  return std::ldexp(1.0, -23);
}

inline double load(int dtype, const void* p) {
  if (dtype == DIFFCOLL_FLOAT32) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  if (dtype == DIFFCOLL_BFLOAT16) {
    uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  _Float16 x;
  std::memcpy(&x, &h, 2);
  return static_cast<double>(x);
}

inline void store(int dtype, void* p, double x) {
  if (dtype == DIFFCOLL_FLOAT32) {
    float v = static_cast<float>(x);
    std::memcpy(p, &v, 4);
  } else if (dtype == DIFFCOLL_BFLOAT16) {
    float f = static_cast<float>(x);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    uint16_t b = static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    std::memcpy(p, &b, 2);
  } else {
    _Float16 h = static_cast<_Float16>(static_cast<float>(x));
    std::memcpy(p, &h, 2);
  }
}

// ---- shapes and layouts -----------------------------------------------------------

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

enum class Layout { kContiguous, kTransposed, kGapped, kFlipped, kChannelsLast };

inline const char* layout_str(Layout l) {
  switch (l) {
    case Layout::kContiguous: return "contiguous";
    case Layout::kTransposed: return "transposed";
    case Layout::kGapped: return "gapped";
    case Layout::kFlipped: return "flipped";
    case Layout::kChannelsLast: return "channels_last";
  }
  return "?";
}

inline uint8_t poison(size_t i) { return static_cast<uint8_t>(0x5A ^ (i * 29)); }

// A host tensor of one layout inside a parent buffer filled with a poison
// pattern; elements are addressed by their row-major flat index.
class Tensor {
 public:
  Tensor() = default;
  Tensor(int dtype, Shape shape, Layout layout = Layout::kContiguous)
      : dtype_(dtype), shape_(std::move(shape)), layout_(layout) {
    const int nd = static_cast<int>(shape_.size());
    strides_.assign(nd, 0);
    int64_t parent = 0;
    auto row_major = [&](const Shape& s) {
      std::vector<int64_t> st(s.size());
      int64_t acc = 1;
      for (int d = static_cast<int>(s.size()) - 1; d >= 0; --d) {
        st[d] = acc;
        acc *= s[d];
      }
      return std::make_pair(st, acc);
    };
    switch (layout) {
      case Layout::kContiguous: {
        auto r = row_major(shape_);
        strides_ = r.first;
        parent = r.second;
        break;
      }
      case Layout::kTransposed: {  // dimensions reversed in memory: dense, not contiguous
        int64_t acc = 1;
        for (int d = 0; d < nd; ++d) {
          strides_[d] = acc;
          acc *= shape_[d];
        }
        parent = acc;
        break;
      }
      case Layout::kGapped: {  // every other element of a wider last dimension, offset 3
        Shape wide = shape_;
        if (nd > 0) wide.back() = 2 * wide.back() + 1;
        auto r = row_major(wide);
        strides_ = r.first;
        if (nd > 0) strides_.back() = 2;
        offset_ = 3;
        parent = r.second + 3;
        break;
      }
      case Layout::kFlipped: {  // dimension 0 walked backwards
        auto r = row_major(shape_);
        strides_ = r.first;
        parent = r.second;
        if (nd > 0 && shape_[0] > 1) {
          offset_ = (shape_[0] - 1) * strides_[0];
          strides_[0] = -strides_[0];
        }
        break;
      }
      case Layout::kChannelsLast: {  // dimension 1 innermost, then the last ones, batch outermost
        std::vector<int> inner_to_outer;
        inner_to_outer.push_back(nd > 1 ? 1 : 0);
        for (int d = nd - 1; d >= 2; --d) inner_to_outer.push_back(d);
        if (nd > 1) inner_to_outer.push_back(0);
        int64_t acc = 1;
        for (int d : inner_to_outer) {
          strides_[d] = acc;
          acc *= shape_[d];
        }
        parent = acc;
        break;
      }
    }
    storage_.resize(static_cast<size_t>(parent) * dtype_bytes(dtype_) + 16);
    for (size_t i = 0; i < storage_.size(); ++i) storage_[i] = poison(i);
  }

  int dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  Layout layout() const { return layout_; }
  int64_t size() const { return numel(shape_); }

  diffcoll_tensor_t desc() const {
    diffcoll_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = const_cast<uint8_t*>(storage_.data()) + offset_ * dtype_bytes(dtype_);
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

  size_t byte_offset(int64_t flat) const {
    int64_t off = offset_;
    for (int d = static_cast<int>(shape_.size()) - 1; d >= 0; --d) {
      off += (flat % shape_[d]) * strides_[d];
      flat /= shape_[d];
    }
    return static_cast<size_t>(off) * dtype_bytes(dtype_);
  }
  double get(int64_t flat) const { return load(dtype_, storage_.data() + byte_offset(flat)); }
  void set(int64_t flat, double v) { store(dtype_, storage_.data() + byte_offset(flat), v); }
  uint64_t bits(int64_t flat) const {
    uint64_t b = 0;
    std::memcpy(&b, storage_.data() + byte_offset(flat), dtype_bytes(dtype_));
    return b;
  }
  std::vector<double> values() const {
    std::vector<double> v(size());
    for (int64_t i = 0; i < size(); ++i) v[i] = get(i);
    return v;
  }
  // Stores `v` (rounded to the dtype) and returns the values as stored.
  std::vector<double> fill(const std::vector<double>& v) {
    for (int64_t i = 0; i < size(); ++i) set(i, v[i]);
    return values();
  }
  // The parent buffer (poison and elements) and where element 0 starts in it,
  // for tests that mirror the tensor in device memory.
  std::vector<uint8_t>& storage() { return storage_; }
  size_t data_offset() const { return static_cast<size_t>(offset_) * dtype_bytes(dtype_); }
  // True if every byte that is not an element still holds the poison.
  bool gaps_intact() const {
    std::vector<bool> used(storage_.size(), false);
    for (int64_t i = 0; i < size(); ++i)
      for (size_t k = 0; k < dtype_bytes(dtype_); ++k) used[byte_offset(i) + k] = true;
    for (size_t i = 0; i < storage_.size(); ++i)
      if (!used[i] && storage_[i] != poison(i)) return false;
    return true;
  }

 private:
  int dtype_ = DIFFCOLL_FLOAT32;
  Shape shape_;
  Layout layout_ = Layout::kContiguous;
  std::vector<int64_t> strides_;
  int64_t offset_ = 0;
  std::vector<uint8_t> storage_;
};

// Predictions that look like a denoiser's: a shared signal plus a branch-specific part.
inline std::vector<std::vector<double>> make_preds(int n, int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> common(count);
  for (double& x : common) x = normal(rng);
  std::vector<std::vector<double>> preds(n, std::vector<double>(count));
  for (int i = 0; i < n; ++i) {
    const double a = 0.6 + 0.15 * i, b = 0.3 + 0.1 * ((i * 7) % 3);
    for (int64_t j = 0; j < count; ++j) preds[i][j] = a * common[j] + b * normal(rng);
  }
  return preds;
}

// ---- policies -----------------------------------------------------------------------

struct PolicySpec {
  std::vector<std::string> names;
  std::vector<int32_t> roles;
  int32_t base = 0;
  std::vector<diffcoll_cfg_term_t> terms;
  diffcoll_cfg_options_t options = DIFFCOLL_CFG_OPTIONS_INIT;

  int n() const { return static_cast<int>(names.size()); }
  int index_of_role(int32_t role) const {
    for (int i = 0; i < n(); ++i)
      if (roles[i] == role) return i;
    return -1;
  }
  std::vector<double> weights() const {
    std::vector<double> w(n(), 0.0);
    w[base] += 1;
    for (const auto& t : terms) {
      w[t.plus] += t.scale;
      w[t.minus] -= t.scale;
    }
    return w;
  }
  diffcoll_status_t create(diffcoll_cfg_policy_t** out) const {
    std::vector<diffcoll_cfg_branch_t> b(n());
    for (int i = 0; i < n(); ++i) b[i] = {names[i].c_str(), roles[i]};
    return diffcoll_cfg_policy_create(b.data(), n(), base, terms.data(),
                                      static_cast<int32_t>(terms.size()), &options, out);
  }
};

// Standard CFG: uncond + g (cond - uncond), cond first.
inline PolicySpec standard_cfg(double g) {
  PolicySpec s;
  s.names = {"cond", "uncond"};
  s.roles = {DIFFCOLL_CFG_COND, DIFFCOLL_CFG_UNCOND};
  s.base = 1;
  s.terms = {{g, 0, 1}};
  return s;
}

// A policy of n = 1..5 branches exercising the formulas of the issue:
// 1: cond alone; 2: standard CFG; 3, 4: multi-term (cond base, (g-1)(c-u),
// s_stg (c-p), s_mod (c-m)); 5: uncond first and a free-form extra term.
inline PolicySpec policy_of(int n) {
  PolicySpec s;
  const double g = 5.0;
  switch (n) {
    case 1:
      s.names = {"cond"};
      s.roles = {DIFFCOLL_CFG_COND};
      s.base = 0;
      break;
    case 2:
      s = standard_cfg(g);
      break;
    case 3:
    case 4:
      s.names = {"cond", "uncond", "perturbed"};
      s.roles = {DIFFCOLL_CFG_COND, DIFFCOLL_CFG_UNCOND, DIFFCOLL_CFG_PERTURBED};
      s.base = 0;
      s.terms = {{g - 1, 0, 1}, {1.5, 0, 2}};
      if (n == 4) {
        s.names.push_back("modality");
        s.roles.push_back(DIFFCOLL_CFG_MODALITY);
        s.terms.push_back({0.75, 0, 3});
      }
      break;
    default:
      s.names = {"uncond", "cond", "perturbed", "modality", "image_only"};
      s.roles = {DIFFCOLL_CFG_UNCOND, DIFFCOLL_CFG_COND, DIFFCOLL_CFG_PERTURBED,
                 DIFFCOLL_CFG_MODALITY, DIFFCOLL_CFG_OTHER};
      s.base = 0;
      s.terms = {{g, 1, 0}, {1.25, 1, 2}, {0.5, 4, 3}, {-0.25, 3, 0}};
      break;
  }
  return s;
}

// ---- reference ------------------------------------------------------------------------

struct Reference {
  std::vector<double> out;     // expected result
  std::vector<double> mag;     // sum_i |w_i p_i| * |factor|: the scale of rounding errors
  std::vector<double> factor;  // per-sample post-processing factor
  double norm_ratio = 0;       // ||combined|| / ||cond|| before normalization (whole tensor)
  std::vector<double> sample_norm_ratio;
  int roundings = 0;           // roundings of the dtype an element goes through, at most
};

// Roundings of the dtype on an element's way through `s` in its order: SERIAL and
// PARALLEL round each term and the result (n + 1), their post-processing the
// result once more; TORCH rounds three times per term, twice for CFG-zero*
// (the scale and uncond * scale), twice for normalization and five times
// for rescale (two ratios of rounded statistics, three operations).
inline int roundings(const PolicySpec& s) {
  const auto& o = s.options;
  if (o.order != DIFFCOLL_CFG_ORDER_TORCH) return s.n() + 3;
  return 3 * static_cast<int>(s.terms.size()) + 2 + (o.zero_star ? 2 : 0) + (o.norm_k > 0 ? 2 : 0) +
         (o.rescale_phi > 0 ? 5 : 0);
}

// Straightforward double-precision evaluation of the policy on `preds`
// (values as stored), batch = dimension 0. Post-processing in the order's
// sequence: rescale then normalization, except TORCH (normalization first,
// then rescale of the normalized output, as SGLang's CFGPolicy).
inline Reference reference(const PolicySpec& s, const std::vector<std::vector<double>>& preds,
                           int64_t batch, int step) {
  const int64_t count = static_cast<int64_t>(preds[0].size());
  const int64_t per = batch > 0 ? count / batch : 0;
  const int c = s.index_of_role(DIFFCOLL_CFG_COND), u = s.index_of_role(DIFFCOLL_CFG_UNCOND);
  const auto& o = s.options;
  Reference r;
  r.out.assign(count, 0.0);
  r.mag.assign(count, 0.0);
  r.factor.assign(batch, 1.0);
  r.sample_norm_ratio.assign(batch, 0.0);
  r.roundings = roundings(s);
  if (step < o.zero_init_steps) return r;
  const bool torch = o.order == DIFFCOLL_CFG_ORDER_TORCH;
  const std::vector<double> w = s.weights();
  double out_sq = 0, cond_sq = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t lo = b * per, hi = lo + per;
    double zs = 1.0;
    if (o.zero_star) {
      double dot = 0, uu = 0;
      for (int64_t j = lo; j < hi; ++j) {
        dot += preds[c][j] * preds[u][j];
        uu += preds[u][j] * preds[u][j];
      }
      zs = dot / (uu + 1e-8);
    }
    auto p = [&](int i, int64_t j) { return (o.zero_star && i == u) ? zs * preds[i][j] : preds[i][j]; };
    for (int64_t j = lo; j < hi; ++j) {
      double acc = p(s.base, j);
      for (const auto& t : s.terms) acc += t.scale * (p(t.plus, j) - p(t.minus, j));
      r.out[j] = acc;
      for (int i = 0; i < s.n(); ++i) r.mag[j] += std::fabs(w[i] * p(i, j));
    }
    auto stdev = [&](const std::function<double(int64_t)>& x) {
      double mean = 0;
      for (int64_t j = lo; j < hi; ++j) mean += x(j);
      mean /= static_cast<double>(per);
      double m2 = 0;
      for (int64_t j = lo; j < hi; ++j) m2 += (x(j) - mean) * (x(j) - mean);
      return std::sqrt(m2 / static_cast<double>(per - 1));
    };
    if (o.rescale_phi > 0 && !torch) {
      const double sc = stdev([&](int64_t j) { return preds[c][j]; });
      const double so = stdev([&](int64_t j) { return r.out[j]; });
      for (int64_t j = lo; j < hi; ++j) {
        const double rescaled = r.out[j] * sc / so;
        r.out[j] = o.rescale_phi * rescaled + (1 - o.rescale_phi) * r.out[j];
      }
      r.factor[b] = o.rescale_phi * sc / so + (1 - o.rescale_phi);
    }
    double on = 0, cn = 0;
    for (int64_t j = lo; j < hi; ++j) {
      on += r.out[j] * r.out[j];
      if (c >= 0) cn += preds[c][j] * preds[c][j];
    }
    out_sq += on;
    cond_sq += cn;
    r.sample_norm_ratio[b] = cn > 0 ? std::sqrt(on / cn) : 0;
  }
  r.norm_ratio = cond_sq > 0 ? std::sqrt(out_sq / cond_sq) : 0;
  if (o.norm_k > 0) {
    for (int64_t b = 0; b < batch; ++b) {
      const double ratio = o.norm_per_sample ? r.sample_norm_ratio[b] : r.norm_ratio;
      if (ratio > o.norm_k) {
        const double f = o.norm_k / ratio;
        for (int64_t j = b * per; j < (b + 1) * per; ++j) r.out[j] *= f;
        r.factor[b] *= f;
      }
    }
  }
  if (o.rescale_phi > 0 && torch) {
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t lo = b * per, hi = lo + per;
      auto stdev = [&](const std::vector<double>& x) {
        double mean = 0, m2 = 0;
        for (int64_t j = lo; j < hi; ++j) mean += x[j];
        mean /= static_cast<double>(per);
        for (int64_t j = lo; j < hi; ++j) m2 += (x[j] - mean) * (x[j] - mean);
        return std::sqrt(m2 / static_cast<double>(per - 1));
      };
      const double f = o.rescale_phi * stdev(preds[c]) / stdev(r.out) + (1 - o.rescale_phi);
      for (int64_t j = lo; j < hi; ++j) r.out[j] *= f;
      r.factor[b] *= f;
    }
  }
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = b * per; j < (b + 1) * per; ++j) r.mag[j] *= std::fabs(r.factor[b]);
  return r;
}

// Index of the first element of `got` outside the tolerance, -1 if none.
inline int64_t first_mismatch(int dtype, const std::vector<double>& got, const Reference& ref,
                              double* error = nullptr) {
  const double eps = dtype_eps(dtype);
  for (size_t j = 0; j < got.size(); ++j) {
    // Each rounding is within eps of the term magnitudes or of the result.
    const double tol = ref.roundings * eps * (ref.mag[j] + std::fabs(ref.out[j])) + 1e-6;
    if (!(std::fabs(got[j] - ref.out[j]) <= tol)) {
      if (error) *error = got[j] - ref.out[j];
      return static_cast<int64_t>(j);
    }
  }
  return -1;
}

#define EXPECT_MATCHES_REFERENCE(dtype, got, ref, n, context)                             \
  do {                                                                                    \
    double err_ = 0;                                                                      \
    (void)(n);                                                                            \
    int64_t at_ = ::cfgt::first_mismatch((dtype), (got), (ref), &err_);                  \
    EXPECT_EQ(at_, -1) << (context) << ": element " << at_ << " got "                     \
                       << (at_ >= 0 ? (got)[at_] : 0) << " expected "                     \
                       << (at_ >= 0 ? (ref).out[at_] : 0) << " (error " << err_ << ")";   \
  } while (0)

// ---- policies and configurations of the sweeps ------------------------------------

// A policy handle, destroyed with the scope.
struct Policy {
  diffcoll_cfg_policy_t* p = nullptr;
  explicit Policy(const PolicySpec& s) {
    EXPECT_EQ(s.create(&p), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  }
  ~Policy() { diffcoll_cfg_policy_destroy(p); }
};

// One configuration of the sweep.
struct Config {
  const char* name;
  int order;
  bool zero_star;
  double phi;
  double norm_rel;  // norm_k = norm_rel * ||combined|| / ||cond|| (0: off)
  bool per_sample;
};

inline const std::vector<Config>& configs() {
  static const std::vector<Config> v = {
      {"serial", DIFFCOLL_CFG_ORDER_SERIAL, false, 0, 0, false},
      {"parallel", DIFFCOLL_CFG_ORDER_PARALLEL, false, 0, 0, false},
      {"parallel+rescale+norm", DIFFCOLL_CFG_ORDER_PARALLEL, false, 0.7, 0.7, false},
      {"serial+zero*", DIFFCOLL_CFG_ORDER_SERIAL, true, 0, 0, false},
      {"parallel+zero*+rescale+norm/sample", DIFFCOLL_CFG_ORDER_PARALLEL, true, 0.5, 0.8, true},
      {"torch", DIFFCOLL_CFG_ORDER_TORCH, false, 0, 0, false},
      {"torch+zero*+rescale+norm", DIFFCOLL_CFG_ORDER_TORCH, true, 0.7, 0.8, false},
  };
  return v;
}

// What the header promises to be bitwise equal to the serial combine.
inline bool promised_bitwise(const PolicySpec& s, const std::vector<std::vector<int32_t>>& shares) {
  const int n = s.n();
  std::vector<int> owner(n, -1);
  int holders = 0;
  size_t most = 0;
  for (size_t r = 0; r < shares.size(); ++r) {
    for (int32_t b : shares[r]) owner[b] = static_cast<int>(r);
    holders += !shares[r].empty();
    most = std::max(most, shares[r].size());
  }
  // One rank, or the TORCH order: every rank runs the serial combine.
  if (n == 1 || shares.size() == 1 || s.options.order == DIFFCOLL_CFG_ORDER_TORCH) return true;
  if (s.options.zero_star) {
    const int c = s.index_of_role(DIFFCOLL_CFG_COND), u = s.index_of_role(DIFFCOLL_CFG_UNCOND);
    if (owner[c] != owner[u]) return true;  // all-gather: the serial combine on every rank
  }
  if (s.options.order != DIFFCOLL_CFG_ORDER_PARALLEL) return false;
  return holders == 1 || (most <= 1 && holders <= 2);
}

// Sets the options of configuration `cfg` on `s`, except the normalization bound.
inline void configure(PolicySpec& s, const Config& cfg) {
  s.options.order = cfg.order;
  s.options.zero_star = cfg.zero_star;
  s.options.rescale_phi = cfg.phi;
  s.options.norm_per_sample = cfg.per_sample;
}

// The normalization bound of `cfg` for predictions `values` (as stored): a
// fraction of the combined-to-cond norm ratio, below every sample's ratio in
// the per-sample variant, so that normalization scales every sample.
inline void set_norm_bound(PolicySpec& s, const Config& cfg,
                           const std::vector<std::vector<double>>& values, int64_t batch) {
  if (cfg.norm_rel <= 0) return;
  const Reference pre = reference(s, values, batch, 0);
  s.options.norm_k = cfg.per_sample ? cfg.norm_rel * *std::min_element(pre.sample_norm_ratio.begin(),
                                                                       pre.sample_norm_ratio.end())
                                    : cfg.norm_rel * pre.norm_ratio;
}

// ---- ranks as threads -----------------------------------------------------------------

// Runs fn(rank, comm) on `size` ranks, threads of this process, each with its
// own world communicator at a fresh local:// rendezvous.
inline void run_ranks(int size, const std::function<void(int, diffcoll_comm_t*)>& fn,
                      int32_t check = 0) {
  static std::atomic<int> counter{0};
  const std::string rendezvous =
      "local://cfg-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
      config.timeout_ms = 20000;
      config.check = check;
      diffcoll_comm_t* comm = nullptr;
      diffcoll_status_t s = diffcoll_comm_create(rendezvous.c_str(), r, size, &config, &comm);
      EXPECT_EQ(s, DIFFCOLL_SUCCESS) << "rank " << r << ": " << diffcoll_last_error();
      if (s != DIFFCOLL_SUCCESS) return;
      fn(r, comm);
      EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS);
    });
  for (auto& t : threads) t.join();
}

inline std::vector<int32_t> dispatch(const diffcoll_cfg_policy_t* p, int degree, int rank) {
  int32_t count = 0;
  EXPECT_EQ(diffcoll_cfg_dispatch(p, degree, rank, nullptr, 0, &count), DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  std::vector<int32_t> v(count);
  if (count > 0) {
    EXPECT_EQ(diffcoll_cfg_dispatch(p, degree, rank, v.data(), count, &count), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
  }
  return v;
}

}  // namespace cfgt
