// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Helpers of the fused-norm tests: dense rows of any float dtype, the data
// every rank contributes, and the single-process reference computed in
// double from all ranks' data.
#pragma once

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.h"

namespace fn_test {

// Integers in [-3, 3] per global rank: sums over a few ranks, plus the
// residual, are exact in every dtype, so residual_out must match exactly.
inline double x_value(int global_rank, int64_t i) {
  return static_cast<double>((i * 31 + global_rank * 17 + i / 7) % 7) - 3;
}
inline double residual_value(int64_t i) { return static_cast<double>((i * 13) % 9) - 4; }
// Multiples of 1/8 in [-1, 1]: exact in every dtype.
inline double weight_value(int64_t j) { return static_cast<double>((j * 5) % 17 - 8) / 8.0; }

// `tokens` rows of `hidden` elements of one dtype, dense, in host memory.
struct Rows {
  int dtype = DIFFCOLL_BFLOAT16;
  int64_t tokens = 0, hidden = 0;
  std::vector<uint8_t> bytes;

  Rows(int dtype_, int64_t tokens_, int64_t hidden_)
      : dtype(dtype_), tokens(tokens_), hidden(hidden_),
        bytes(static_cast<size_t>(tokens_ * hidden_) * dct::dtype_bytes(dtype_)) {}
  int64_t size() const { return tokens * hidden; }
  size_t offset(int64_t i) const { return static_cast<size_t>(i) * dct::dtype_bytes(dtype); }
  double get(int64_t i) const { return dct::load(dtype, bytes.data() + offset(i)); }
  void set(int64_t i, double v) { dct::store(dtype, bytes.data() + offset(i), v); }
  template <typename Fn>
  void fill(Fn fn) {
    for (int64_t i = 0; i < size(); ++i) set(i, fn(i));
  }
  // A [tokens, hidden] descriptor of `data` (this host buffer by default).
  diffcoll_tensor_t desc(void* data = nullptr, int device_type = DIFFCOLL_DEVICE_CPU,
                         int device_id = 0) {
    diffcoll_tensor_t t{};
    t.data = data ? data : bytes.data();
    t.dtype = dtype;
    t.device_type = device_type;
    t.device_id = device_id;
    t.ndim = 2;
    t.shape[0] = tokens;
    t.shape[1] = hidden;
    t.strides[0] = hidden;
    t.strides[1] = 1;
    return t;
  }
  // The weight's one-dimensional [hidden] descriptor (tokens == 1).
  diffcoll_tensor_t desc_1d(void* data = nullptr, int device_type = DIFFCOLL_DEVICE_CPU,
                            int device_id = 0) {
    diffcoll_tensor_t t = desc(data, device_type, device_id);
    t.ndim = 1;
    t.shape[0] = hidden;
    t.strides[0] = 1;
    return t;
  }
};

// Which optional tensors a call passes, and which outputs alias inputs.
struct Forms {
  bool residual = true;
  bool weight = true;
  bool residual_out = true;
  bool in_place_residual = false;  // residual_out written over residual
  bool in_place_y = false;         // y written over x
};

// In place, no residual, no weight, and nothing optional at all.
inline std::vector<Forms> optional_forms() {
  Forms in_place, no_residual, no_weight, bare;
  in_place.in_place_residual = in_place.in_place_y = true;
  no_residual.residual = false;
  no_weight.weight = false;
  bare.residual = bare.weight = bare.residual_out = false;
  return {in_place, no_residual, no_weight, bare};
}

struct Expected {
  std::vector<double> residual_out, y;
};

// What every rank of a group of `global_ranks` must get, in double.
inline Expected reference(const std::vector<int>& global_ranks, int64_t tokens, int64_t hidden,
                          bool with_residual, bool with_weight, double eps) {
  Expected e;
  e.residual_out.resize(static_cast<size_t>(tokens * hidden));
  e.y.resize(e.residual_out.size());
  for (int64_t t = 0; t < tokens; ++t) {
    double squares = 0;
    for (int64_t j = 0; j < hidden; ++j) {
      const int64_t i = t * hidden + j;
      double v = with_residual ? residual_value(i) : 0;
      for (int g : global_ranks) v += x_value(g, i);
      e.residual_out[i] = v;
      squares += v * v;
    }
    const double scale = 1 / std::sqrt(squares / hidden + eps);
    for (int64_t j = 0; j < hidden; ++j) {
      const int64_t i = t * hidden + j;
      e.y[i] = e.residual_out[i] * scale * (with_weight ? weight_value(j) : 1);
    }
  }
  return e;
}

// Relative error bound of y: the output's rounding (half an ulp) plus float
// arithmetic (the mean square and the scale), generously.
inline double tolerance(int dtype) {
  return dtype == DIFFCOLL_BFLOAT16 ? 1.0 / 128 : dtype == DIFFCOLL_FLOAT16 ? 1.0 / 512 : 1e-5;
}

// "" if `got` matches `want` (exactly when tol == 0), else the first miss.
inline std::string compare(const Rows& got, const std::vector<double>& want, double tol) {
  for (int64_t i = 0; i < got.size(); ++i) {
    const double g = got.get(i), w = want[static_cast<size_t>(i)];
    if (!(std::fabs(g - w) <= tol * std::fabs(w) + 1e-6)) {
      std::ostringstream os;
      os << "element " << i << " (token " << i / got.hidden << ", column " << i % got.hidden
         << "): got " << g << ", expected " << w;
      return os.str();
    }
  }
  return "";
}

inline std::string case_name(int64_t tokens, int64_t hidden, int dtype) {
  return std::to_string(tokens) + "x" + std::to_string(hidden) + " " + dct::dtype_str(dtype);
}

}  // namespace fn_test
