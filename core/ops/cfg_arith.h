// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// The arithmetic of the CFG combine, written once for the host loops
// (cfg_math_host.cc) and the CUDA kernels (core/cuda/cfg_math_cuda.cu), so
// that both compute the same bits by construction: element access through
// f32, the guidance formula in each order, per-sample moments and their
// merge in the reduction order of cfg_math.h, and what the last step of a
// pass derives from the merged sums (statistics, CFG-zero* scales,
// post-processing factors).
//
// Every f32 and f64 operation goes through the helpers below: explicitly
// rounded intrinsics on the device (nvcc cannot contract them into an FMA),
// plain IEEE operators on the host, where the including file turns
// contraction off.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define CFG_HD __host__ __device__ __forceinline__
#define CFG_UNROLL _Pragma("unroll")
#else
#include <cmath>
#define CFG_HD inline
#define CFG_UNROLL
#endif

#include "cfg_math.h"

namespace diffcoll {
namespace ops {
namespace cfg {

// ---- rounded arithmetic ----------------------------------------------------------------

// fadd(a, b) is a + b rounded to float, dmul(a, b) a * b rounded to double, ...
#ifdef __CUDA_ARCH__
#define CFG_ROUNDED(name, T, op, intrinsic) \
  CFG_HD T name(T a, T b) { return intrinsic(a, b); }
#else
#define CFG_ROUNDED(name, T, op, intrinsic) \
  CFG_HD T name(T a, T b) { return a op b; }
#endif
CFG_ROUNDED(fadd, float, +, __fadd_rn)
CFG_ROUNDED(fsub, float, -, __fsub_rn)
CFG_ROUNDED(fmul, float, *, __fmul_rn)
CFG_ROUNDED(fdiv, float, /, __fdiv_rn)
CFG_ROUNDED(dadd, double, +, __dadd_rn)
CFG_ROUNDED(dsub, double, -, __dsub_rn)
CFG_ROUNDED(dmul, double, *, __dmul_rn)
CFG_ROUNDED(ddiv, double, /, __ddiv_rn)
#undef CFG_ROUNDED

CFG_HD double dsqrt(double a) {
#ifdef __CUDA_ARCH__
  return __dsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
// A double rounded to the nearest float.
CFG_HD float f32(double a) {
#ifdef __CUDA_ARCH__
  return __double2float_rn(a);
#else
  return static_cast<float>(a);
#endif
}
CFG_HD uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
#endif
}
CFG_HD float bits_float(uint32_t b) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(b);
#else
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
#endif
}

// ---- element types ---------------------------------------------------------------------
// load: the stored value as f32 (exact); store: an f32 rounded to the type,
// to nearest even, NaN kept NaN, overflow to infinity; round = load(store()).
// The device uses its conversion instructions, which round the same way (the
// CFG passes spend most of their instructions rounding): the bits agree
// with the host loops' except a NaN's sign and payload, which no two
// processors agree on anyway (CUDA's arithmetic returns one canonical NaN).
// kVector elements make one 16-byte access (the unit of the reduction order);
// Acc is what a lane accumulates its moments in.

struct Bf16 {
  using S = uint16_t;
  using Acc = float;
  static constexpr int kVector = 8;
  static constexpr S kNegativeZero = 0x8000u;
  static CFG_HD float load(S v) { return bits_float(static_cast<uint32_t>(v) << 16); }
  static CFG_HD S store(float f) {
#ifdef __CUDA_ARCH__
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));  // one conversion instruction
#else
    const uint32_t bits = float_bits(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<S>((bits >> 16) | 0x40);
    return static_cast<S>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
#endif
  }
  static CFG_HD float round(float f) { return load(store(f)); }
};

struct F16 {
  using S = uint16_t;
  using Acc = float;
  static constexpr int kVector = 8;
  static constexpr S kNegativeZero = 0x8000u;
  static CFG_HD float load(S h) {
#ifdef __CUDA_ARCH__
    return __half2float(__ushort_as_half(h));
#else
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1f) return bits_float(sign | 0x7f800000u | (mantissa << 13));
    if (exponent != 0) return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
    if (mantissa == 0) return bits_float(sign);
    int shift = 0;  // subnormal: normalise so that bit 10 is set
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      ++shift;
    }
    return bits_float(sign | static_cast<uint32_t>(113 - shift) << 23 | ((mantissa & 0x3ffu) << 13));
#endif
  }
  static CFG_HD S store(float f) {
#ifdef __CUDA_ARCH__
    return __half_as_ushort(__float2half_rn(f));
#else
    const uint32_t bits = float_bits(f);
    const uint32_t sign = (bits >> 16) & 0x8000u;
    uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u) return static_cast<S>(sign | 0x7e00u);   // NaN
    if (abs >= 0x477ff000u) return static_cast<S>(sign | 0x7c00u);  // rounds to infinity
    if (abs < 0x38800000u) {  // subnormal or zero: scale the unit 2^-24 to 1, round to even
      const float scaled = fmul(bits_float(abs), 16777216.0f);  // exact
      uint32_t q = static_cast<uint32_t>(scaled);                // truncates
      const float rest = fsub(scaled, static_cast<float>(q));
      if (rest > 0.5f || (rest == 0.5f && (q & 1u))) ++q;
      return static_cast<S>(sign | q);
    }
    abs += 0xfffu + ((abs >> 13) & 1u);
    return static_cast<S>(sign | ((abs - 0x38000000u) >> 13));
#endif
  }
  static CFG_HD float round(float f) { return load(store(f)); }
};

struct F32 {
  using S = float;
  using Acc = double;
  static constexpr int kVector = 4;
  static constexpr float kNegativeZero = -0.0f;
  static CFG_HD float load(float v) { return v; }
  static CFG_HD float store(float v) { return v; }
  static CFG_HD float round(float v) { return v; }
};

// Elements of one lane of the reduction order (cfg_math.h): the same for every dtype.
constexpr int kLaneElements = static_cast<int>(kCfgReduceChunk / kCfgReduceLanes);

// ---- the guidance formula, one element at a time --------------------------------------
// x are stored values as f32; R() rounds to the dtype E.

// PARALLEL: acc = R(w_0 x_0), then acc = R(acc + R(w_i x_i)).
template <typename E>
CFG_HD float parallel_first(float w, float x) {
  return E::round(fmul(w, x));
}
template <typename E>
CFG_HD float parallel_next(float acc, float w, float x) {
  return E::round(fadd(acc, E::round(fmul(w, x))));
}
// SERIAL: acc = p[base]; acc = acc + s * (plus - minus) in f32; rounded once when stored.
CFG_HD float serial_term(float acc, float s, float plus, float minus) {
  return fadd(acc, fmul(s, fsub(plus, minus)));
}
// TORCH: what PyTorch eager computes for `acc + s * (plus - minus)` on tensors of
// dtype E with a Python float s: every operation in f32, rounded to E.
template <typename E>
CFG_HD float torch_term(float acc, float s, float plus, float minus) {
  return E::round(fadd(acc, E::round(fmul(s, E::round(fsub(plus, minus))))));
}
// The CFG-zero*-scaled unconditional prediction, per order: SERIAL multiplies
// by f32(s) without rounding; TORCH computes `uncond * alpha` with alpha
// already of dtype E (diffusers' guider); PARALLEL folds s into the weight.
CFG_HD float serial_scaled(float scale, float x) { return fmul(scale, x); }
template <typename E>
CFG_HD float torch_scaled(float alpha, float x) {
  return E::round(fmul(x, alpha));
}
CFG_HD float parallel_scaled_weight(double weight, double scale) { return f32(dmul(weight, scale)); }

// ---- per-sample moments and their merge ----------------------------------------------
// A run of n values x about a reference r: s1 = sum (x - r), s2 = sum (x - r)^2,
// in double. Records about the same reference add up component by component
// (sum_into); records about different references are merged by moving one
// to the other's reference first (recentered), which needs no division and,
// references being values of the data, none of the cancellation of
// sum(x^2) - n mean^2 about zero. A run of equal values has s1 = s2 = 0
// exactly, so its standard deviation is exactly 0.

struct Moments {
  double n, ref, s1, s2;
};

// m about `ref` instead: sum (x - ref) = s1 + n d, sum (x - ref)^2 = s2 + d (2 s1 + n d),
// d = m.ref - ref. An empty run stays empty.
CFG_HD Moments recentered(const Moments& m, double ref) {
  if (m.n == 0.0) return Moments{0.0, ref, 0.0, 0.0};
  const double d = dsub(m.ref, ref);
  return Moments{m.n, ref, dadd(m.s1, dmul(m.n, d)),
                 dadd(m.s2, dmul(d, dadd(dmul(2.0, m.s1), dmul(m.n, d))))};
}

// The run of a followed by b, about a's reference (b's if a is empty).
CFG_HD Moments merge(const Moments& a, const Moments& b) {
  if (b.n == 0.0) return a;
  if (a.n == 0.0) return b;
  const Moments c = recentered(b, a.ref);
  return Moments{dadd(a.n, c.n), a.ref, dadd(a.s1, c.s1), dadd(a.s2, c.s2)};
}

// Accumulation in a lane: float for 16-bit dtypes (their values, and the
// differences of two of them up to a 2^13 ratio, are exact in float), double
// for float32 (whose statistics round to float32 bits, where float sums
// would show).
CFG_HD float acc_sub(float a, float b) { return fsub(a, b); }
CFG_HD float acc_add(float a, float b) { return fadd(a, b); }
CFG_HD float acc_mul(float a, float b) { return fmul(a, b); }
CFG_HD double acc_sub(double a, double b) { return dsub(a, b); }
CFG_HD double acc_add(double a, double b) { return dadd(a, b); }
CFG_HD double acc_mul(double a, double b) { return dmul(a, b); }

// Moments of x[0..count), count <= kLaneElements, about the lane's own first
// value k: t1 = sum (x_i - k), t2 = sum (x_i - k)^2 over i = 1..count-1 in
// element order, in Acc. x[i] is the i-th value as f32 (an array, or a
// device lane decoding its stored values).
template <typename Acc, typename Values>
CFG_HD Moments lane_moments(const Values& x, int count) {
  if (count <= 0) return Moments{0.0, 0.0, 0.0, 0.0};
  const Acc k = static_cast<Acc>(x[0]);
  Acc t1 = 0, t2 = 0;
CFG_UNROLL
  for (int i = 1; i < kLaneElements; ++i)
    if (i < count) {
      const Acc d = acc_sub(static_cast<Acc>(x[i]), k);
      t1 = acc_add(t1, d);
      t2 = acc_add(t2, acc_mul(d, d));
    }
  return Moments{static_cast<double>(count), static_cast<double>(k), static_cast<double>(t1),
                 static_cast<double>(t2)};
}

// Standard deviation with Bessel's correction (as torch.std); 0 below 2
// values. Rounding can leave the squared deviations a hair below zero: 0 then.
CFG_HD double std_of(const Moments& m) {
  if (m.n <= 1.0) return 0.0;
  const double m2 = dsub(m.s2, dmul(m.s1, ddiv(m.s1, m.n)));
  return dsqrt(ddiv(m2 < 0.0 ? 0.0 : m2, dsub(m.n, 1.0)));
}

// Sum of squares: the moments about zero.
CFG_HD double squares_of(const Moments& m) { return recentered(m, 0.0).s2; }

// What one pass sums per sample: moments of an input (usually cond, slot
// a) and of the output (slot b), and the two sums of CFG-zero*.
struct Partial {
  Moments a, b;
  double dot, uu;  // sum cond * uncond, sum uncond^2
};

static_assert(sizeof(Partial) == kCfgPartialDoubles * sizeof(double), "cfg_math.h sizes Partial");

CFG_HD Partial empty_partial() { return Partial{{0, 0, 0, 0}, {0, 0, 0, 0}, 0.0, 0.0}; }

// Lane records of one chunk, both about the chunk's references: their sums
// (count and reference are the chunk's, set once the chunk is summed).
CFG_HD void sum_into(Partial& into, const Partial& p) {
  into.a.s1 = dadd(into.a.s1, p.a.s1);
  into.a.s2 = dadd(into.a.s2, p.a.s2);
  into.b.s1 = dadd(into.b.s1, p.b.s1);
  into.b.s2 = dadd(into.b.s2, p.b.s2);
  into.dot = dadd(into.dot, p.dot);
  into.uu = dadd(into.uu, p.uu);
}

// Chunk records (and their merges): about references of their own.
CFG_HD void merge_into(Partial& into, const Partial& p) {
  into.a = merge(into.a, p.a);
  into.b = merge(into.b, p.b);
  into.dot = dadd(into.dot, p.dot);
  into.uu = dadd(into.uu, p.uu);
}

// Elements of chunk c of a sample of n elements.
CFG_HD int64_t chunk_elements(int64_t n, int64_t c) {
  const int64_t rest = n - c * kCfgReduceChunk;
  return rest < kCfgReduceChunk ? rest : kCfgReduceChunk;
}

// sum c*u and sum u*u of a lane, in element order.
template <typename Values>
CFG_HD void lane_products(const Values& c, const Values& u, int count, double* dot, double* uu) {
  double cu = 0.0, uu2 = 0.0;
CFG_UNROLL
  for (int i = 0; i < kLaneElements; ++i)
    if (i < count) {
      const double cv = c[i], uv = u[i];
      cu = dadd(cu, dmul(cv, uv));
      uu2 = dadd(uu2, dmul(uv, uv));
    }
  *dot = cu;
  *uu = uu2;
}

// ---- what the last step of a pass derives ------------------------------------------------

// Which sums a pass collects and what its last step makes of them.
enum class Finish : int {
  kNone = 0,
  kInputs,      // cond statistics (slot a) and/or the CFG-zero* scale
  kCondOnly,    // cond statistics only (the parallel combine's partial pass)
  kOutput,      // cond (slot a, when collected) and output (slot b) statistics, then the post factors
  kNormalized,  // TORCH: statistics of the normalized output (slot b), then the rescale ratio
};

struct FinishArgs {
  Finish kind = Finish::kNone;
  CfgOrder order = CfgOrder::kSerial;
  CfgPost post;
  bool cond_moments = false;  // slot a holds cond's moments in this pass
  bool zero_star = false;     // dot and uu hold the CFG-zero* sums in this pass
  int64_t batch = 0;
  CfgScalars scalars;
};

CFG_HD double stat(const double* stats, int64_t b, int column) {
  return stats[b * kCfgStatColumns + column];
}
CFG_HD void set_stats(double* stats, int64_t b, const Moments& m) {
  stats[b * kCfgStatColumns + kCfgStatStd] = std_of(m);
  stats[b * kCfgStatColumns + kCfgStatSumSq] = squares_of(m);
}

// Per sample, once the sample's sums are merged.
template <typename E>
CFG_HD void finish_sample(const FinishArgs& f, int64_t b, const Partial& p) {
  const CfgScalars& s = f.scalars;
  if (f.cond_moments) set_stats(s.cond_stats, b, p.a);
  switch (f.kind) {
    case Finish::kInputs:
      if (f.zero_star) {
        if (f.order == CfgOrder::kTorch)  // diffusers: f32 sums and quotient, then .to(dtype)
          s.zero_star[b] = E::round(fdiv(f32(p.dot), fadd(f32(p.uu), f32(kCfgZeroStarEps))));
        else
          s.zero_star[b] = ddiv(p.dot, dadd(p.uu, kCfgZeroStarEps));
      }
      break;
    case Finish::kOutput:
    case Finish::kNormalized:
      set_stats(s.out_stats, b, p.b);
      break;
    default:
      break;
  }
}

// The factors of SERIAL and PARALLEL post-processing (cfg_math.h,
// CfgMath::output_stats): one per sample, rescale and normalization folded.
CFG_HD void blend_factors(const FinishArgs& f) {
  const CfgScalars& s = f.scalars;
  const CfgPost& post = f.post;
  for (int64_t b = 0; b < f.batch; ++b) {
    double factor = 1.0;
    const double std_out = stat(s.out_stats, b, kCfgStatStd);
    if (post.rescale_phi != 0 && std_out > 0)
      factor = dadd(ddiv(dmul(post.rescale_phi, stat(s.cond_stats, b, kCfgStatStd)), std_out),
                    dsub(1.0, post.rescale_phi));
    s.post[b * kCfgPostColumns + kCfgPostFactor] = factor;
  }
  if (post.norm_k == 0) return;
  if (post.norm_per_sample) {
    for (int64_t b = 0; b < f.batch; ++b) {
      double& factor = s.post[b * kCfgPostColumns + kCfgPostFactor];
      const double n = dmul(factor, dsqrt(stat(s.out_stats, b, kCfgStatSumSq)));
      const double bound = dmul(post.norm_k, dsqrt(stat(s.cond_stats, b, kCfgStatSumSq)));
      if (n > bound) factor = dmul(factor, ddiv(bound, n));
    }
    return;
  }
  double nn = 0, cc = 0;
  for (int64_t b = 0; b < f.batch; ++b) {
    const double factor = s.post[b * kCfgPostColumns + kCfgPostFactor];
    nn = dadd(nn, dmul(dmul(factor, factor), stat(s.out_stats, b, kCfgStatSumSq)));
    cc = dadd(cc, stat(s.cond_stats, b, kCfgStatSumSq));
  }
  const double n = dsqrt(nn), bound = dmul(post.norm_k, dsqrt(cc));
  if (n > bound)
    for (int64_t b = 0; b < f.batch; ++b) {
      double& factor = s.post[b * kCfgPostColumns + kCfgPostFactor];
      factor = dmul(factor, ddiv(bound, n));
    }
}

// TORCH post-processing parameters, as SGLang's CFGPolicy computes them:
// normalization (norms of the f32 upcasts, `new > k * ori`, the quotient
// applied in the dtype) and guidance rescale (diffusers' rescale_noise_cfg:
// std in the dtype, their quotient in the dtype).
template <typename E>
CFG_HD float torch_rescale_ratio(const CfgScalars& s, int64_t b) {
  const float std_cond = E::round(f32(stat(s.cond_stats, b, kCfgStatStd)));
  const float std_out = E::round(f32(stat(s.out_stats, b, kCfgStatStd)));
  return E::round(fdiv(std_cond, std_out));
}

template <typename E>
CFG_HD void torch_params(const FinishArgs& f) {
  const CfgScalars& s = f.scalars;
  const CfgPost& post = f.post;
  const bool normalize = post.norm_k != 0;
  if (normalize) {
    double oo = 0, cc = 0;  // whole tensor: sums over samples in increasing b
    for (int64_t b = 0; b < f.batch; ++b) {
      oo = dadd(oo, stat(s.out_stats, b, kCfgStatSumSq));
      cc = dadd(cc, stat(s.cond_stats, b, kCfgStatSumSq));
    }
    for (int64_t b = 0; b < f.batch; ++b) {
      const double o2 = post.norm_per_sample ? stat(s.out_stats, b, kCfgStatSumSq) : oo;
      const double c2 = post.norm_per_sample ? stat(s.cond_stats, b, kCfgStatSumSq) : cc;
      const float new_norm = f32(dsqrt(o2));
      const float max_norm = fmul(f32(dsqrt(c2)), f32(post.norm_k));
      s.post[b * kCfgPostColumns + kCfgPostFactor] =
          new_norm > max_norm ? E::round(fdiv(max_norm, new_norm)) : 1.0f;
    }
  }
  if (post.rescale_phi != 0 && !normalize)
    for (int64_t b = 0; b < f.batch; ++b)
      s.post[b * kCfgPostColumns + kCfgPostRescale] = torch_rescale_ratio<E>(s, b);
}

// Once every sample is finished.
template <typename E>
CFG_HD void finish_all(const FinishArgs& f) {
  if (f.kind == Finish::kOutput) {
    if (f.order == CfgOrder::kTorch)
      torch_params<E>(f);
    else
      blend_factors(f);
  } else if (f.kind == Finish::kNormalized) {
    for (int64_t b = 0; b < f.batch; ++b)
      f.scalars.post[b * kCfgPostColumns + kCfgPostRescale] = torch_rescale_ratio<E>(f.scalars, b);
  }
}

// ---- applying the post-processing, one element at a time ---------------------------------

// SERIAL / PARALLEL, and TORCH normalization: out = R(out * f32(factor)).
template <typename E>
CFG_HD float apply_factor(float x, float factor) {
  return E::round(fmul(x, factor));
}
// TORCH guidance rescale: R(R(phi * R(x * ratio)) + R((1 - phi) * x)), phi
// and 1 - phi Python floats (f32 in the kernel), ratio of dtype E.
template <typename E>
CFG_HD float torch_rescale(float x, float ratio, float phi, float one_minus_phi) {
  return E::round(fadd(E::round(fmul(phi, E::round(fmul(x, ratio)))), E::round(fmul(one_minus_phi, x))));
}

}  // namespace cfg
}  // namespace ops
}  // namespace diffcoll
