// Host implementation of the CFG math (see cfg_math.h for the exact
// arithmetic every function must reproduce). Single-threaded loops over
// dense row-major images; the CUDA twin lives next to the other kernels.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <new>
#include <vector>

#include "../error.h"
#include "../pack.h"
#include "cfg_math.h"

// a * b + c must stay a rounded product and a rounded sum: the all-reduce of
// the parallel combine adds rounded products, so a fused multiply-add here
// would break the serial == parallel guarantee on machines with FMA.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace diffcoll {
namespace ops {
namespace {

// Element access through f32.
struct Bf16 {
  using Storage = uint16_t;
  static float load(uint16_t v) { return bf16_to_float(v); }
  static uint16_t store(float v) { return float_to_bf16(v); }
  static float round(float v) { return bf16_to_float(float_to_bf16(v)); }
  static uint16_t negative_zero() { return 0x8000u; }
};
struct F16 {
  using Storage = uint16_t;
  static float load(uint16_t v) { return f16_to_float(v); }
  static uint16_t store(float v) { return float_to_f16(v); }
  static float round(float v) { return f16_to_float(float_to_f16(v)); }
  static uint16_t negative_zero() { return 0x8000u; }
};
struct F32 {
  using Storage = float;
  static float load(float v) { return v; }
  static float store(float v) { return v; }
  static float round(float v) { return v; }
  static float negative_zero() { return -0.0f; }
};

template <typename Fn>
void dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat16: fn(F16{}); return;
    case DType::kBFloat16: fn(Bf16{}); return;
    case DType::kFloat32: fn(F32{}); return;
    default:
      fail(Status::kInternal, "CFG math called with dtype ", dtype_name(dtype));
  }
}

// v[0] after the pairwise fold of kCfgReduceLanes lanes (cfg_math.h, step 2).
double fold(double* v) {
  for (int s = kCfgReduceLanes / 2; s >= 1; s /= 2)
    for (int l = 0; l < s; ++l) v[l] = v[l] + v[l + s];
  return v[0];
}

// K per-sample sums over j = 0..n-1 of the terms term(j, t) writes into
// t[0..K), in the reduction order of cfg_math.h. Chunk partials go straight
// into the lanes of the final reduction, in increasing chunk order, which is
// the order a lane of that reduction adds them in.
template <int K, typename Term>
std::array<double, K> ordered_sum(int64_t n, Term&& term) {
  constexpr int L = kCfgReduceLanes;
  std::vector<double> outer(static_cast<size_t>(K) * L, 0.0), lane(static_cast<size_t>(K) * L);
  const int64_t chunks = cfg_reduce_chunks(n);
  double t[K];
  for (int64_t c = 0; c < chunks; ++c) {
    std::fill(lane.begin(), lane.end(), 0.0);
    const int64_t begin = c * kCfgReduceChunk, end = std::min(n, begin + kCfgReduceChunk);
    for (int64_t j = begin; j < end; ++j) {
      term(j, t);
      const int64_t l = (j - begin) % L;
      for (int k = 0; k < K; ++k) lane[k * L + l] += t[k];
    }
    for (int k = 0; k < K; ++k) outer[k * L + c % L] += fold(&lane[k * L]);
  }
  std::array<double, K> sums;
  for (int k = 0; k < K; ++k) sums[k] = fold(&outer[k * L]);
  return sums;
}

template <typename E>
const typename E::Storage* as(const void* p) {
  return static_cast<const typename E::Storage*>(p);
}

class HostCfgMath final : public CfgMath {
 public:
  void weighted_sum(DType dtype, const void* const* inputs, const double* weights, int count,
                    int scaled, const double* sample_scale, CfgExtent extent, void* out,
                    void*) const override {
    if (count == 0) {
      fill_zero(dtype, out, extent.numel(), true, nullptr);
      return;
    }
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      using S = typename E::Storage;
      const int64_t n = extent.per_sample;
      std::vector<const S*> in(count);
      std::vector<float> w(count);
      for (int i = 0; i < count; ++i) in[i] = as<E>(inputs[i]);
      S* o = static_cast<S*>(out);
      for (int64_t b = 0; b < extent.batch; ++b) {
        for (int i = 0; i < count; ++i) {
          double wi = weights[i];
          if (i == scaled && sample_scale) wi *= sample_scale[b];
          w[i] = static_cast<float>(wi);
        }
        for (int64_t j = b * n; j < (b + 1) * n; ++j) {
          float acc = E::round(w[0] * E::load(in[0][j]));
          for (int i = 1; i < count; ++i) {
            const float term = E::round(w[i] * E::load(in[i][j]));
            acc = E::round(acc + term);
          }
          o[j] = E::store(acc);
        }
      }
    });
  }

  void serial_sum(DType dtype, const void* const* preds, int base, const CfgTerm* terms,
                  int num_terms, int scaled, const double* sample_scale, CfgExtent extent,
                  void* out, void*) const override {
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      using S = typename E::Storage;
      const int64_t n = extent.per_sample;
      std::vector<float> s(num_terms);
      for (int k = 0; k < num_terms; ++k) s[k] = static_cast<float>(terms[k].scale);
      S* o = static_cast<S*>(out);
      for (int64_t b = 0; b < extent.batch; ++b) {
        const bool scaling = sample_scale != nullptr && scaled >= 0;
        const float f = scaling ? static_cast<float>(sample_scale[b]) : 1.0f;
        auto p = [&](int i, int64_t j) {
          const float v = E::load(as<E>(preds[i])[j]);
          return (scaling && i == scaled) ? f * v : v;
        };
        for (int64_t j = b * n; j < (b + 1) * n; ++j) {
          float acc = p(base, j);
          for (int k = 0; k < num_terms; ++k) {
            const float diff = p(terms[k].plus, j) - p(terms[k].minus, j);
            const float term = s[k] * diff;
            acc = acc + term;
          }
          o[j] = E::store(acc);
        }
      }
    });
  }

  void branch_stats(DType dtype, const void* x, CfgExtent extent, double* stats, double*,
                    void*) const override {
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      const auto* v = as<E>(x);
      const int64_t n = extent.per_sample;
      for (int64_t b = 0; b < extent.batch; ++b) {
        const auto* s = v + b * n;
        const double sum =
            ordered_sum<1>(n, [&](int64_t j, double* t) { t[0] = E::load(s[j]); })[0];
        const double mean = n > 0 ? sum / static_cast<double>(n) : 0.0;
        const auto dev = ordered_sum<2>(n, [&](int64_t j, double* t) {
          const double xj = E::load(s[j]);
          t[0] = (xj - mean) * (xj - mean);
          t[1] = xj * xj;
        });
        stats[b * kCfgStatColumns + kCfgStatStd] =
            n > 1 ? std::sqrt(dev[0] / static_cast<double>(n - 1)) : 0.0;
        stats[b * kCfgStatColumns + kCfgStatSumSq] = dev[1];
      }
    });
  }

  void zero_star_scale(DType dtype, const void* cond, const void* uncond, CfgExtent extent,
                       double* scale, double*, void*) const override {
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      const int64_t n = extent.per_sample;
      for (int64_t b = 0; b < extent.batch; ++b) {
        const auto* c = as<E>(cond) + b * n;
        const auto* u = as<E>(uncond) + b * n;
        const auto sums = ordered_sum<2>(n, [&](int64_t j, double* t) {
          const double cj = E::load(c[j]), uj = E::load(u[j]);
          t[0] = cj * uj;
          t[1] = uj * uj;
        });
        scale[b] = sums[0] / (sums[1] + kCfgZeroStarEps);
      }
    });
  }

  void post_process(DType dtype, void* out, CfgExtent extent, const double* cond_stats,
                    const CfgPost& post, double* work, double* partials,
                    void* stream) const override {
    if (!post.any() || extent.numel() == 0) return;
    const int64_t batch = extent.batch;
    double* out_stats = work;
    double* factor = work + batch * kCfgStatColumns;
    branch_stats(dtype, out, extent, out_stats, partials, stream);
    auto col = [](const double* stats, int64_t b, int c) { return stats[b * kCfgStatColumns + c]; };
    for (int64_t b = 0; b < batch; ++b) {
      factor[b] = 1.0;
      const double std_out = col(out_stats, b, kCfgStatStd);
      if (post.rescale_phi != 0 && std_out > 0)
        factor[b] = post.rescale_phi * col(cond_stats, b, kCfgStatStd) / std_out +
                    (1.0 - post.rescale_phi);
    }
    if (post.norm_k != 0) {
      if (post.norm_per_sample) {
        for (int64_t b = 0; b < batch; ++b) {
          const double n = factor[b] * std::sqrt(col(out_stats, b, kCfgStatSumSq));
          const double c = std::sqrt(col(cond_stats, b, kCfgStatSumSq));
          if (n > post.norm_k * c) factor[b] *= post.norm_k * c / n;
        }
      } else {
        double nn = 0, cc = 0;
        for (int64_t b = 0; b < batch; ++b) {
          nn += factor[b] * factor[b] * col(out_stats, b, kCfgStatSumSq);
          cc += col(cond_stats, b, kCfgStatSumSq);
        }
        const double n = std::sqrt(nn), c = std::sqrt(cc);
        if (n > post.norm_k * c)
          for (int64_t b = 0; b < batch; ++b) factor[b] *= post.norm_k * c / n;
      }
    }
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      using S = typename E::Storage;
      S* o = static_cast<S*>(out);
      const int64_t n = extent.per_sample;
      for (int64_t b = 0; b < batch; ++b) {
        if (factor[b] == 1.0) continue;
        const float f = static_cast<float>(factor[b]);
        for (int64_t j = b * n; j < (b + 1) * n; ++j) o[j] = E::store(E::load(o[j]) * f);
      }
    });
  }

  void fill_zero(DType dtype, void* out, int64_t count, bool negative, void*) const override {
    if (count <= 0) return;
    if (!negative) {
      std::memset(out, 0, static_cast<size_t>(count) * dtype_size(dtype));
      return;
    }
    switch (dtype) {
      case DType::kFloat64: {
        double* o = static_cast<double*>(out);
        for (int64_t i = 0; i < count; ++i) o[i] = -0.0;
        return;
      }
      default:
        dispatch(dtype, [&](auto e) {
          using E = decltype(e);
          using S = typename E::Storage;
          S* o = static_cast<S*>(out);
          const S z = E::negative_zero();
          for (int64_t i = 0; i < count; ++i) o[i] = z;
        });
    }
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
};

}  // namespace

const CfgMath& host_cfg_math() {
  static const HostCfgMath math;
  return math;
}

}  // namespace ops
}  // namespace diffcoll
