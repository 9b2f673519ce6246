// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Host implementation of the CFG math: the passes of cfg_math.h as
// single-threaded loops that walk every sample in the reduction order
// (chunk, lane, vector, element), with every formula from cfg_arith.h, which
// the CUDA kernels share; hence bitwise the device's results.

// a * b + c must stay a rounded product and a rounded sum: the all-reduce of
// the parallel combine adds rounded products, and the CUDA twin rounds every
// operation; a fused multiply-add here would break both agreements on
// machines with FMA.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <array>
#include <cstring>
#include <new>
#include <vector>

#include "../error.h"
#include "../pack.h"
#include "cfg_arith.h"

namespace diffcoll {
namespace ops {
namespace {

using cfg::Partial;

template <typename Fn>
void dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat16: fn(cfg::F16{}); return;
    case DType::kBFloat16: fn(cfg::Bf16{}); return;
    case DType::kFloat32: fn(cfg::F32{}); return;
    default:
      fail(Status::kInternal, "CFG math called with dtype ", dtype_name(dtype));
  }
}

using Lanes = std::array<Partial, kCfgReduceLanes>;

// v[0] after the pairwise steps s = lanes/2, ..., 1 of the reduction order:
// plain sums (step 3, the lanes of a chunk) or merges (step 4, chunk partials).
template <typename Step>
void fold(Lanes& v, Step&& step) {
  for (int s = kCfgReduceLanes / 2; s >= 1; s /= 2)
    for (int l = 0; l < s; ++l) step(v[l], v[l + s]);
}

// The elements of one lane: sample-relative indices in the lane's order.
struct Lane {
  int64_t index[cfg::kLaneElements];
  int count = 0;
};

// Step 2's move of a lane's moments to the chunk's reference, `first`'s (lane 0's).
void to_chunk_reference(cfg::Moments& m, const cfg::Moments& first) {
  m = cfg::recentered(m, first.ref);
}

// The merged record of one sample of `n` elements: lane(const Lane&) returns
// each lane's record (moments about the lane's first value), called for
// every lane of every chunk in turn.
template <typename E, typename LaneFn>
Partial reduce_sample(int64_t n, LaneFn&& lane_fn) {
  constexpr int kVectors = cfg::kLaneElements / E::kVector;
  const int64_t chunks = cfg_reduce_chunks(n);
  Lanes outer, lanes;
  outer.fill(cfg::empty_partial());
  for (int64_t c = 0; c < chunks; ++c) {
    for (int l = 0; l < kCfgReduceLanes; ++l) {
      Lane lane;
      for (int v = 0; v < kVectors; ++v)
        for (int t = 0; t < E::kVector; ++t) {
          const int64_t e =
              c * kCfgReduceChunk + (l + int64_t{v} * kCfgReduceLanes) * E::kVector + t;
          if (e < n) lane.index[lane.count++] = e;
        }
      lanes[l] = lane_fn(lane);
    }
    // Lane 0 holds the chunk's first element: its moments are collected
    // (n > 0) exactly when the pass collects that slot.
    const cfg::Moments first_a = lanes[0].a, first_b = lanes[0].b;
    for (Partial& p : lanes) {
      to_chunk_reference(p.a, first_a);
      to_chunk_reference(p.b, first_b);
    }
    fold(lanes, [](Partial& v, const Partial& w) { cfg::sum_into(v, w); });
    Partial& chunk = lanes[0];
    const double count = static_cast<double>(cfg::chunk_elements(n, c));
    if (first_a.n > 0) chunk.a.n = count;
    if (first_b.n > 0) chunk.b.n = count;
    cfg::merge_into(outer[c % kCfgReduceLanes], chunk);
  }
  fold(outer, [](Partial& v, const Partial& w) { cfg::merge_into(v, w); });
  return outer[0];
}

// Runs a statistics pass: reduce(b) merges sample b, then the last step.
template <typename E, typename Reduce>
void statistics_pass(const cfg::FinishArgs& finish, Reduce&& reduce) {
  for (int64_t b = 0; b < finish.batch; ++b) cfg::finish_sample<E>(finish, b, reduce(b));
  cfg::finish_all<E>(finish);
}

cfg::FinishArgs finish_args(cfg::Finish kind, CfgOrder order, const CfgPost& post,
                            CfgExtent extent, const CfgScalars& scalars) {
  cfg::FinishArgs f;
  f.kind = kind;
  f.order = order;
  f.post = post;
  f.batch = extent.batch;
  f.scalars = scalars;
  return f;
}

template <typename E>
const typename E::S* as(const void* p) {
  return static_cast<const typename E::S*>(p);
}

// The record of a lane of one sample `x` of the output: its moments (slot b).
template <typename E>
Partial output_lane(const typename E::S* x, const Lane& lane) {
  float v[cfg::kLaneElements];
  for (int i = 0; i < lane.count; ++i) v[i] = E::load(x[lane.index[i]]);
  Partial p = cfg::empty_partial();
  p.b = cfg::lane_moments<typename E::Acc>(v, lane.count);
  return p;
}

class HostCfgMath final : public CfgMath {
 public:
  void begin(const CfgScalars&, void*) const override {}

  void input_stats(DType dtype, const void* cond, const void* uncond, bool moments,
                   CfgOrder order, CfgExtent extent, const CfgScalars& scalars,
                   void*) const override {
    cfg::FinishArgs finish = finish_args(cfg::Finish::kInputs, order, CfgPost{}, extent, scalars);
    finish.cond_moments = moments;
    finish.zero_star = uncond != nullptr;
    const int64_t n = extent.per_sample;
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      statistics_pass<E>(finish, [&](int64_t b) {
        const auto* c = as<E>(cond) + b * n;
        const auto* u = uncond ? as<E>(uncond) + b * n : nullptr;
        return reduce_sample<E>(n, [&](const Lane& lane) {
          Partial p = cfg::empty_partial();
          float cv[cfg::kLaneElements], uv[cfg::kLaneElements];
          for (int i = 0; i < lane.count; ++i) {
            cv[i] = E::load(c[lane.index[i]]);
            uv[i] = u ? E::load(u[lane.index[i]]) : 0.0f;
          }
          if (moments) p.a = cfg::lane_moments<typename E::Acc>(cv, lane.count);
          if (u) cfg::lane_products(cv, uv, lane.count, &p.dot, &p.uu);
          return p;
        });
      });
    });
  }

  void combine(DType dtype, const CfgCombine& c, CfgExtent extent, void* out,
               const CfgScalars& scalars, void*) const override {
    if (c.count == 0) {
      fill_zero(dtype, out, extent.numel(), true, nullptr);
      return;
    }
    const bool output_moments = c.final_output && c.post.any();
    cfg::FinishArgs finish = finish_args(output_moments ? cfg::Finish::kOutput
                                         : c.cond >= 0  ? cfg::Finish::kCondOnly
                                                        : cfg::Finish::kNone,
                                         c.order, c.post, extent, scalars);
    finish.cond_moments = c.cond >= 0;
    const int64_t n = extent.per_sample;
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      using S = typename E::S;
      S* o = static_cast<S*>(out);
      if (finish.kind == cfg::Finish::kNone) {  // no statistics: any order of elements
        for (int64_t b = 0; b < extent.batch; ++b) {
          const Formula<E> formula(c, scalars, b);
          for (int64_t j = b * n; j < (b + 1) * n; ++j) o[j] = E::store(formula(j));
        }
        return;
      }
      statistics_pass<E>(finish, [&](int64_t b) {
        const Formula<E> formula(c, scalars, b);
        return reduce_sample<E>(n, [&](const Lane& lane) {
          float cv[cfg::kLaneElements], ov[cfg::kLaneElements];
          for (int i = 0; i < lane.count; ++i) {
            const int64_t j = b * n + lane.index[i];
            if (c.cond >= 0) cv[i] = E::load(as<E>(c.inputs[c.cond])[j]);  // before out[j] is written
            o[j] = E::store(formula(j));
            ov[i] = E::load(o[j]);
          }
          Partial p = cfg::empty_partial();
          if (c.cond >= 0) p.a = cfg::lane_moments<typename E::Acc>(cv, lane.count);
          if (output_moments) p.b = cfg::lane_moments<typename E::Acc>(ov, lane.count);
          return p;
        });
      });
    });
  }

  void output_stats(DType dtype, const void* out, CfgOrder order, const CfgPost& post,
                    CfgExtent extent, const CfgScalars& scalars, void*) const override {
    const cfg::FinishArgs finish = finish_args(cfg::Finish::kOutput, order, post, extent, scalars);
    const int64_t n = extent.per_sample;
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      statistics_pass<E>(finish, [&](int64_t b) {
        return reduce_sample<E>(
            n, [&](const Lane& lane) { return output_lane<E>(as<E>(out) + b * n, lane); });
      });
    });
  }

  void post_process(DType dtype, void* out, CfgOrder order, const CfgPost& post,
                    CfgExtent extent, const CfgScalars& scalars, void*) const override {
    if (!post.any() || extent.numel() == 0) return;
    const int64_t n = extent.per_sample;
    const double* params = scalars.post;
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      using S = typename E::S;
      S* o = static_cast<S*>(out);
      auto scale = [&](int64_t b, int64_t j) {
        const float f = cfg::f32(params[b * kCfgPostColumns + kCfgPostFactor]);
        o[j] = E::store(cfg::apply_factor<E>(E::load(o[j]), f));
      };
      auto rescale = [&](int64_t b, int64_t j) {
        const float r = cfg::f32(params[b * kCfgPostColumns + kCfgPostRescale]);
        o[j] = E::store(cfg::torch_rescale<E>(E::load(o[j]), r, cfg::f32(post.rescale_phi),
                                              cfg::f32(1.0 - post.rescale_phi)));
      };
      auto factor_is_one = [&](int64_t b) {
        return params[b * kCfgPostColumns + kCfgPostFactor] == 1.0;
      };
      const bool torch = order == CfgOrder::kTorch;
      if (!torch || post.rescale_phi == 0) {  // one pass of factors
        for (int64_t b = 0; b < extent.batch; ++b)
          if (!factor_is_one(b))
            for (int64_t j = b * n; j < (b + 1) * n; ++j) scale(b, j);
        return;
      }
      if (post.norm_k != 0) {  // TORCH normalization, then rescale on its result
        statistics_pass<E>(finish_args(cfg::Finish::kNormalized, order, post, extent, scalars),
                           [&](int64_t b) {
          return reduce_sample<E>(n, [&](const Lane& lane) {
            if (!factor_is_one(b))
              for (int i = 0; i < lane.count; ++i) scale(b, b * n + lane.index[i]);
            return output_lane<E>(o + b * n, lane);
          });
        });
      }
      for (int64_t b = 0; b < extent.batch; ++b)
        for (int64_t j = b * n; j < (b + 1) * n; ++j) rescale(b, j);
    });
  }

  void fill_zero(DType dtype, void* out, int64_t count, bool negative, void*) const override {
    if (count <= 0) return;
    if (!negative) {
      std::memset(out, 0, static_cast<size_t>(count) * dtype_size(dtype));
      return;
    }
    if (dtype == DType::kFloat64) {
      std::fill_n(static_cast<double*>(out), count, -0.0);
      return;
    }
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      std::fill_n(static_cast<typename E::S*>(out), count, E::kNegativeZero);
    });
  }

  void* allocate(size_t bytes, void*) const override {
    void* memory = ::operator new(std::max<size_t>(bytes, 1), std::nothrow);
    DIFFCOLL_REQUIRE(memory != nullptr, Status::kOutOfMemory, "cannot allocate ", bytes,
                     " bytes of host staging memory");
    return memory;
  }

  void release(void* memory, void*) const override { ::operator delete(memory); }

  void pack(const TensorView& view, void* dense, void*) const override { pack_host(view, dense); }

  void unpack(const void* dense, const TensorView& view, void*) const override {
    unpack_host(dense, view);
  }

  void check_memory(const TensorView&, const std::string&) const override {}

 private:
  // The guidance formula of one sample, element by element.
  template <typename E>
  class Formula {
   public:
    Formula(const CfgCombine& c, const CfgScalars& scalars, int64_t b) : c_(c) {
      const bool scaling = c.scaled >= 0;
      const double s = scaling ? scalars.zero_star[b] : 1.0;
      weights_.resize(c.count);
      for (int i = 0; i < c.count; ++i)
        weights_[i] = c.order == CfgOrder::kParallel && scaling && i == c.scaled
                          ? cfg::parallel_scaled_weight(c.weights[i], s)
                      : c.order == CfgOrder::kParallel ? cfg::f32(c.weights[i])
                                                       : 0.0f;
      scales_.resize(c.num_terms);
      for (int k = 0; k < c.num_terms; ++k) scales_[k] = cfg::f32(c.terms[k].scale);
      sample_scale_ = cfg::f32(s);
    }

    float operator()(int64_t j) const {
      if (c_.order == CfgOrder::kParallel) {
        float acc = cfg::parallel_first<E>(weights_[0], value(0, j));
        for (int i = 1; i < c_.count; ++i) acc = cfg::parallel_next<E>(acc, weights_[i], value(i, j));
        return acc;
      }
      float acc = p(c_.base, j);
      for (int k = 0; k < c_.num_terms; ++k) {
        const float plus = p(c_.terms[k].plus, j), minus = p(c_.terms[k].minus, j);
        acc = c_.order == CfgOrder::kTorch ? cfg::torch_term<E>(acc, scales_[k], plus, minus)
                                           : cfg::serial_term(acc, scales_[k], plus, minus);
      }
      return acc;
    }

   private:
    float value(int i, int64_t j) const { return E::load(as<E>(c_.inputs[i])[j]); }
    // An input of the SERIAL / TORCH chain, CFG-zero*-scaled where it applies.
    float p(int i, int64_t j) const {
      const float x = value(i, j);
      if (i != c_.scaled) return x;
      return c_.order == CfgOrder::kTorch ? cfg::torch_scaled<E>(sample_scale_, x)
                                          : cfg::serial_scaled(sample_scale_, x);
    }

    const CfgCombine& c_;
    std::vector<float> weights_, scales_;
    float sample_scale_ = 1.0f;
  };
};

}  // namespace

const CfgMath& host_cfg_math() {
  static const HostCfgMath math;
  return math;
}

}  // namespace ops
}  // namespace diffcoll
