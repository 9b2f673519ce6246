// CUDA twin of cfg_math_host.cc: every CfgMath function as kernels on the
// caller's stream, reproducing the host's arithmetic bit for bit.
//  - Every f32 operation is an explicitly rounded intrinsic (__fmul_rn,
//    __fadd_rn, ...), so that nvcc cannot contract a product and a sum into
//    an FMA; double operations likewise (__dmul_rn, __dadd_rn, __ddiv_rn,
//    __dsqrt_rn).
//  - The 16-bit conversions are the host's (core/dtype.{h,cc}) written for
//    the device, NaN and subnormal handling included.
//  - Per-sample sums run in the reduction order of cfg_math.h: one block of
//    kCfgReduceLanes threads per chunk and sample (thread l is lane l, loads
//    coalesced), a shared-memory fold, then one block per sample over the
//    chunk partials. The partials live in the caller's scratch, the results
//    in device memory: nothing is read back, nothing synchronises the host,
//    and every call may be captured into a CUDA graph.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "../ops/cfg_math.h"
#include "cuda_error.h"
#include "pack_cuda.h"

namespace diffcoll {
namespace ops {
namespace {

constexpr int kThreads = kCfgReduceLanes;  // a reduction block has one thread per lane
constexpr int kChunkSteps = static_cast<int>(kCfgReduceChunk / kCfgReduceLanes);
constexpr int64_t kMaxElementBlocks = 4096;  // per sample; threads loop beyond
constexpr int64_t kMaxGridY = 65535;
constexpr int kMaxDevices = 64;

// ---- element access through f32, as on the host ------------------------------------

struct Bf16 {
  using S = uint16_t;
  __device__ static float load(S v) { return __uint_as_float(static_cast<uint32_t>(v) << 16); }
  __device__ static S store(float f) {
    const uint32_t bits = __float_as_uint(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<S>((bits >> 16) | 0x40);
    return static_cast<S>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
  }
  __device__ static float round(float f) { return load(store(f)); }
};

struct F16 {
  using S = uint16_t;
  __device__ static float load(S h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0x1f) {
      bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {
      bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: normalise so that bit 10 is set
      const int shift = __clz(mantissa) - 21;
      mantissa = (mantissa << shift) & 0x3ffu;
      bits = sign | static_cast<uint32_t>(113 - shift) << 23 | (mantissa << 13);
    }
    return __uint_as_float(bits);
  }
  __device__ static S store(float f) {
    const uint32_t bits = __float_as_uint(f);
    const uint32_t sign = (bits >> 16) & 0x8000u;
    uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u) return static_cast<S>(sign | 0x7e00u);   // NaN
    if (abs >= 0x477ff000u) return static_cast<S>(sign | 0x7c00u);  // rounds to infinity
    if (abs < 0x38800000u) {                                         // subnormal or zero
      const float scaled = __fmul_rn(__uint_as_float(abs), 16777216.0f);  // 2^24, exact
      uint32_t q = __float2uint_rz(scaled);
      const float rest = __fsub_rn(scaled, __uint2float_rn(q));
      if (rest > 0.5f || (rest == 0.5f && (q & 1u))) ++q;
      return static_cast<S>(sign | q);
    }
    abs += 0xfffu + ((abs >> 13) & 1u);
    return static_cast<S>(sign | ((abs - 0x38000000u) >> 13));
  }
  __device__ static float round(float f) { return load(store(f)); }
};

struct F32 {
  using S = float;
  __device__ static float load(float v) { return v; }
  __device__ static float store(float v) { return v; }
  __device__ static float round(float v) { return v; }
};

template <typename Fn>
void dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat16: fn(F16{}); return;
    case DType::kBFloat16: fn(Bf16{}); return;
    case DType::kFloat32: fn(F32{}); return;
    default:
      fail(Status::kInternal, "CUDA CFG math called with dtype ", dtype_name(dtype));
  }
}

// ---- launch geometry ----------------------------------------------------------------

// Elementwise kernels: x strides over one sample's elements, y over samples.
dim3 element_grid(CfgExtent e) {
  const int64_t x = std::min<int64_t>(std::max<int64_t>((e.per_sample + kThreads - 1) / kThreads, 1),
                                      kMaxElementBlocks);
  return dim3(static_cast<unsigned>(x),
              static_cast<unsigned>(std::min<int64_t>(std::max<int64_t>(e.batch, 1), kMaxGridY)));
}

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    fail(Status::kCuda, "CFG math: launch of ", what, " failed: ", cudaGetErrorName(err), ": ",
         cudaGetErrorString(err));
}

cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// Puts the calling thread in relaxed capture mode for the scope, so that a
// pure query (cudaPointerGetAttributes) made while the caller captures a
// graph cannot be refused as "potentially unsafe" and invalidate the capture.
class RelaxedCaptureScope {
 public:
  RelaxedCaptureScope() { cudaThreadExchangeStreamCaptureMode(&mode_); }
  ~RelaxedCaptureScope() { cudaThreadExchangeStreamCaptureMode(&mode_); }
  RelaxedCaptureScope(const RelaxedCaptureScope&) = delete;
  RelaxedCaptureScope& operator=(const RelaxedCaptureScope&) = delete;

 private:
  cudaStreamCaptureMode mode_ = cudaStreamCaptureModeRelaxed;
};

// ---- weighted and serial sums ---------------------------------------------------------

struct WeightedSumArgs {
  const void* in[kCfgCudaMaxInputs];
  float w[kCfgCudaMaxInputs];  // f32(weights[i]) for the unscaled inputs
  int count;
  int scaled;                  // input whose weight varies per sample; -1: none
  double scaled_weight;        // weights[scaled], multiplied by sample_scale[b] in double
  const double* sample_scale;
  int64_t n, batch;
  void* out;
};

template <typename E>
__global__ void __launch_bounds__(kThreads) weighted_sum_kernel(const WeightedSumArgs a) {
  using S = typename E::S;
  S* out = static_cast<S*>(a.out);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t b = blockIdx.y; b < a.batch; b += gridDim.y) {
    const float ws =
        a.scaled >= 0 ? __double2float_rn(__dmul_rn(a.scaled_weight, a.sample_scale[b])) : 0.0f;
    const int64_t end = (b + 1) * a.n;
    for (int64_t j = b * a.n + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
         j < end; j += stride) {
      float acc = 0.0f;
      for (int i = 0; i < a.count; ++i) {
        const float w = i == a.scaled ? ws : a.w[i];
        const float term = E::round(__fmul_rn(w, E::load(static_cast<const S*>(a.in[i])[j])));
        acc = i == 0 ? term : E::round(__fadd_rn(acc, term));
      }
      out[j] = E::store(acc);
    }
  }
}

struct SerialSumArgs {
  const void* pred[kCfgCudaMaxInputs];
  float scale[kCfgCudaMaxTerms];  // f32(terms[k].scale)
  int plus[kCfgCudaMaxTerms];
  int minus[kCfgCudaMaxTerms];
  int num_terms;
  int base;
  int scaled;  // -1: no per-sample scale
  const double* sample_scale;
  int64_t n, batch;
  void* out;
};

template <typename E>
__global__ void __launch_bounds__(kThreads) serial_sum_kernel(const SerialSumArgs a) {
  using S = typename E::S;
  S* out = static_cast<S*>(a.out);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t b = blockIdx.y; b < a.batch; b += gridDim.y) {
    const float f = a.scaled >= 0 ? __double2float_rn(a.sample_scale[b]) : 1.0f;
    auto p = [&](int i, int64_t j) {
      const float v = E::load(static_cast<const S*>(a.pred[i])[j]);
      return i == a.scaled ? __fmul_rn(f, v) : v;
    };
    const int64_t end = (b + 1) * a.n;
    for (int64_t j = b * a.n + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
         j < end; j += stride) {
      float acc = p(a.base, j);
      for (int k = 0; k < a.num_terms; ++k) {
        const float diff = __fsub_rn(p(a.plus[k], j), p(a.minus[k], j));
        acc = __fadd_rn(acc, __fmul_rn(a.scale[k], diff));
      }
      out[j] = E::store(acc);
    }
  }
}

// ---- per-sample sums in the reduction order ---------------------------------------------

// Steps 2 of the reduction order: folds the lanes' values acc (one per
// thread) pairwise; every thread gets v[0].
template <int K>
__device__ void fold_lanes(double (&acc)[K], double (&shared)[K][kThreads]) {
  for (int k = 0; k < K; ++k) shared[k][threadIdx.x] = acc[k];
  __syncthreads();
  for (int s = kThreads / 2; s >= 1; s /= 2) {
    if (threadIdx.x < s)
      for (int k = 0; k < K; ++k)
        shared[k][threadIdx.x] = __dadd_rn(shared[k][threadIdx.x], shared[k][threadIdx.x + s]);
    __syncthreads();
  }
  for (int k = 0; k < K; ++k) acc[k] = shared[k][0];
  __syncthreads();  // shared is reused by the next sample
}

// Step 1 and 2: block (c, b) writes the K partials of chunk c of sample b to
// partials[(b * chunks + c) * K + k].
template <int K, typename Term>
__global__ void __launch_bounds__(kThreads)
    chunk_partials_kernel(Term term, int64_t n, int64_t batch, int64_t chunks, double* partials) {
  __shared__ double shared[K][kThreads];
  const int64_t begin = static_cast<int64_t>(blockIdx.x) * kCfgReduceChunk;
  for (int64_t b = blockIdx.y; b < batch; b += gridDim.y) {
    double acc[K];
    for (int k = 0; k < K; ++k) acc[k] = 0.0;
#pragma unroll 4
    for (int i = 0; i < kChunkSteps; ++i) {
      const int64_t j = begin + threadIdx.x + static_cast<int64_t>(i) * kThreads;
      if (j < n) {
        double t[K];
        term(b, n, j, t);
        for (int k = 0; k < K; ++k) acc[k] = __dadd_rn(acc[k], t[k]);
      }
    }
    fold_lanes<K>(acc, shared);
    if (threadIdx.x == 0)
      for (int k = 0; k < K; ++k) partials[(b * chunks + blockIdx.x) * K + k] = acc[k];
  }
}

// Step 3: one block per sample sums the chunk partials and hands the K sums
// to finish(b, sums).
template <int K, typename Finish>
__global__ void __launch_bounds__(kThreads)
    finish_sums_kernel(const double* partials, int64_t chunks, int64_t batch, Finish finish) {
  __shared__ double shared[K][kThreads];
  for (int64_t b = blockIdx.x; b < batch; b += gridDim.x) {
    double acc[K];
    for (int k = 0; k < K; ++k) acc[k] = 0.0;
    for (int64_t c = threadIdx.x; c < chunks; c += kThreads)
      for (int k = 0; k < K; ++k) acc[k] = __dadd_rn(acc[k], partials[(b * chunks + c) * K + k]);
    fold_lanes<K>(acc, shared);
    if (threadIdx.x == 0) finish(b, acc);
  }
}

// The K per-sample sums of term over each sample, handed to finish.
template <int K, typename Term, typename Finish>
void per_sample_sums(CfgExtent e, Term term, Finish finish, double* partials, void* stream,
                     const char* what) {
  const int64_t chunks = cfg_reduce_chunks(e.per_sample);
  const dim3 grid(static_cast<unsigned>(chunks),
                  static_cast<unsigned>(std::min<int64_t>(e.batch, kMaxGridY)));
  chunk_partials_kernel<K><<<grid, kThreads, 0, as_stream(stream)>>>(term, e.per_sample, e.batch,
                                                                     chunks, partials);
  check_launch(what);
  const unsigned samples = static_cast<unsigned>(std::min<int64_t>(e.batch, 1 << 20));
  finish_sums_kernel<K><<<samples, kThreads, 0, as_stream(stream)>>>(partials, chunks, e.batch,
                                                                     finish);
  check_launch(what);
}

template <typename E>
struct ValueTerm {
  const typename E::S* x;
  __device__ void operator()(int64_t b, int64_t n, int64_t j, double* t) const {
    t[0] = E::load(x[b * n + j]);
  }
};

// (x - mean)^2 and x^2, with the mean parked in the std column of stats.
template <typename E>
struct DeviationTerm {
  const typename E::S* x;
  const double* stats;
  __device__ void operator()(int64_t b, int64_t n, int64_t j, double* t) const {
    const double xj = E::load(x[b * n + j]);
    const double d = __dsub_rn(xj, stats[b * kCfgStatColumns + kCfgStatStd]);
    t[0] = __dmul_rn(d, d);
    t[1] = __dmul_rn(xj, xj);
  }
};

template <typename E>
struct ProductTerm {
  const typename E::S* cond;
  const typename E::S* uncond;
  __device__ void operator()(int64_t b, int64_t n, int64_t j, double* t) const {
    const double c = E::load(cond[b * n + j]), u = E::load(uncond[b * n + j]);
    t[0] = __dmul_rn(c, u);
    t[1] = __dmul_rn(u, u);
  }
};

struct MeanFinish {
  double* stats;
  int64_t n;
  __device__ void operator()(int64_t b, const double* sums) const {
    stats[b * kCfgStatColumns + kCfgStatStd] =
        n > 0 ? __ddiv_rn(sums[0], static_cast<double>(n)) : 0.0;
  }
};

struct StdFinish {
  double* stats;
  int64_t n;
  __device__ void operator()(int64_t b, const double* sums) const {
    stats[b * kCfgStatColumns + kCfgStatStd] =
        n > 1 ? __dsqrt_rn(__ddiv_rn(sums[0], static_cast<double>(n - 1))) : 0.0;
    stats[b * kCfgStatColumns + kCfgStatSumSq] = sums[1];
  }
};

struct ZeroStarFinish {
  double* scale;
  __device__ void operator()(int64_t b, const double* sums) const {
    scale[b] = __ddiv_rn(sums[0], __dadd_rn(sums[1], kCfgZeroStarEps));
  }
};

// ---- post-processing ------------------------------------------------------------------

// The per-sample factors of post_process, as the host computes them: a
// single thread, sums over samples in increasing b.
__global__ void post_factor_kernel(const double* cond_stats, const double* out_stats,
                                   double* factor, int64_t batch, CfgPost post) {
  auto col = [](const double* stats, int64_t b, int c) { return stats[b * kCfgStatColumns + c]; };
  for (int64_t b = 0; b < batch; ++b) {
    factor[b] = 1.0;
    const double std_out = col(out_stats, b, kCfgStatStd);
    if (post.rescale_phi != 0 && std_out > 0)
      factor[b] = __dadd_rn(
          __ddiv_rn(__dmul_rn(post.rescale_phi, col(cond_stats, b, kCfgStatStd)), std_out),
          __dsub_rn(1.0, post.rescale_phi));
  }
  if (post.norm_k == 0) return;
  if (post.norm_per_sample) {
    for (int64_t b = 0; b < batch; ++b) {
      const double n = __dmul_rn(factor[b], __dsqrt_rn(col(out_stats, b, kCfgStatSumSq)));
      const double c = __dsqrt_rn(col(cond_stats, b, kCfgStatSumSq));
      const double bound = __dmul_rn(post.norm_k, c);
      if (n > bound) factor[b] = __dmul_rn(factor[b], __ddiv_rn(bound, n));
    }
    return;
  }
  double nn = 0, cc = 0;
  for (int64_t b = 0; b < batch; ++b) {
    nn = __dadd_rn(nn, __dmul_rn(__dmul_rn(factor[b], factor[b]), col(out_stats, b, kCfgStatSumSq)));
    cc = __dadd_rn(cc, col(cond_stats, b, kCfgStatSumSq));
  }
  const double n = __dsqrt_rn(nn), c = __dsqrt_rn(cc);
  const double bound = __dmul_rn(post.norm_k, c);
  if (n > bound)
    for (int64_t b = 0; b < batch; ++b) factor[b] = __dmul_rn(factor[b], __ddiv_rn(bound, n));
}

template <typename E>
__global__ void __launch_bounds__(kThreads)
    scale_kernel(typename E::S* out, const double* factor, int64_t n, int64_t batch) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t b = blockIdx.y; b < batch; b += gridDim.y) {
    const double fb = factor[b];
    if (fb == 1.0) continue;
    const float f = __double2float_rn(fb);
    const int64_t end = (b + 1) * n;
    for (int64_t j = b * n + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < end;
         j += stride)
      out[j] = E::store(__fmul_rn(E::load(out[j]), f));
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) fill_kernel(T* out, int64_t count, T value) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride)
    out[i] = value;
}

// ---- the CfgMath of one device ------------------------------------------------------------

class CudaCfgMath final : public CfgMath {
 public:
  explicit CudaCfgMath(int device = 0) : device_(device) {}

  void weighted_sum(DType dtype, const void* const* inputs, const double* weights, int count,
                    int scaled, const double* sample_scale, CfgExtent extent, void* out,
                    void* stream) const override {
    if (count == 0) {
      fill_zero(dtype, out, extent.numel(), true, stream);
      return;
    }
    if (extent.numel() == 0) return;
    DIFFCOLL_REQUIRE(count <= kCfgCudaMaxInputs, Status::kUnsupported,
                     "the CFG combine on CUDA tensors sums at most ", kCfgCudaMaxInputs,
                     " predictions on one rank, this one holds ", count);
    WeightedSumArgs a{};
    for (int i = 0; i < count; ++i) {
      a.in[i] = inputs[i];
      a.w[i] = static_cast<float>(weights[i]);
    }
    a.count = count;
    a.scaled = sample_scale != nullptr ? scaled : -1;
    a.scaled_weight = a.scaled >= 0 ? weights[scaled] : 0.0;
    a.sample_scale = sample_scale;
    a.n = extent.per_sample;
    a.batch = extent.batch;
    a.out = out;
    DeviceGuard guard(device_);
    dispatch(dtype, [&](auto e) {
      weighted_sum_kernel<decltype(e)><<<element_grid(extent), kThreads, 0, as_stream(stream)>>>(a);
    });
    check_launch("the weighted sum");
  }

  void serial_sum(DType dtype, const void* const* preds, int base, const CfgTerm* terms,
                  int num_terms, int scaled, const double* sample_scale, CfgExtent extent,
                  void* out, void* stream) const override {
    if (extent.numel() == 0) return;
    DIFFCOLL_REQUIRE(num_terms <= kCfgCudaMaxTerms, Status::kUnsupported,
                     "the CFG combine on CUDA tensors takes at most ", kCfgCudaMaxTerms,
                     " guidance terms, the policy has ", num_terms);
    SerialSumArgs a{};
    int used = base + 1;
    for (int k = 0; k < num_terms; ++k) {
      a.scale[k] = static_cast<float>(terms[k].scale);
      a.plus[k] = terms[k].plus;
      a.minus[k] = terms[k].minus;
      used = std::max({used, terms[k].plus + 1, terms[k].minus + 1});
    }
    a.scaled = sample_scale != nullptr ? scaled : -1;
    used = std::max(used, a.scaled + 1);
    DIFFCOLL_REQUIRE(used <= kCfgCudaMaxInputs, Status::kUnsupported,
                     "the CFG combine on CUDA tensors takes at most ", kCfgCudaMaxInputs,
                     " branches, the policy uses ", used);
    for (int i = 0; i < used; ++i) a.pred[i] = preds[i];
    a.num_terms = num_terms;
    a.base = base;
    a.sample_scale = sample_scale;
    a.n = extent.per_sample;
    a.batch = extent.batch;
    a.out = out;
    DeviceGuard guard(device_);
    dispatch(dtype, [&](auto e) {
      serial_sum_kernel<decltype(e)><<<element_grid(extent), kThreads, 0, as_stream(stream)>>>(a);
    });
    check_launch("the serial sum");
  }

  void branch_stats(DType dtype, const void* x, CfgExtent extent, double* stats,
                    double* partials, void* stream) const override {
    if (extent.batch == 0) return;
    DeviceGuard guard(device_);
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      const auto* v = static_cast<const typename E::S*>(x);
      per_sample_sums<1>(extent, ValueTerm<E>{v}, MeanFinish{stats, extent.per_sample}, partials,
                         stream, "the branch statistics (mean)");
      per_sample_sums<2>(extent, DeviationTerm<E>{v, stats}, StdFinish{stats, extent.per_sample},
                         partials, stream, "the branch statistics (deviations)");
    });
  }

  void zero_star_scale(DType dtype, const void* cond, const void* uncond, CfgExtent extent,
                       double* scale, double* partials, void* stream) const override {
    if (extent.batch == 0) return;
    DeviceGuard guard(device_);
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      using S = typename E::S;
      per_sample_sums<2>(extent,
                         ProductTerm<E>{static_cast<const S*>(cond), static_cast<const S*>(uncond)},
                         ZeroStarFinish{scale}, partials, stream, "the CFG-zero* scale");
    });
  }

  void post_process(DType dtype, void* out, CfgExtent extent, const double* cond_stats,
                    const CfgPost& post, double* work, double* partials,
                    void* stream) const override {
    if (!post.any() || extent.numel() == 0) return;
    double* out_stats = work;
    double* factor = work + extent.batch * kCfgStatColumns;
    branch_stats(dtype, out, extent, out_stats, partials, stream);
    DeviceGuard guard(device_);
    post_factor_kernel<<<1, 1, 0, as_stream(stream)>>>(cond_stats, out_stats, factor,
                                                       extent.batch, post);
    check_launch("the post-processing factors");
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      scale_kernel<E><<<element_grid(extent), kThreads, 0, as_stream(stream)>>>(
          static_cast<typename E::S*>(out), factor, extent.per_sample, extent.batch);
    });
    check_launch("the post-processing scale");
  }

  void fill_zero(DType dtype, void* out, int64_t count, bool negative,
                 void* stream) const override {
    if (count <= 0) return;
    DeviceGuard guard(device_);
    if (!negative) {
      DIFFCOLL_CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(count) * dtype_size(dtype),
                                          as_stream(stream)));
      return;
    }
    const unsigned blocks = static_cast<unsigned>(
        std::min<int64_t>((count + kThreads - 1) / kThreads, kMaxElementBlocks));
    switch (dtype) {
      case DType::kFloat16:
      case DType::kBFloat16:
        fill_kernel<uint16_t><<<blocks, kThreads, 0, as_stream(stream)>>>(
            static_cast<uint16_t*>(out), count, uint16_t{0x8000u});
        break;
      case DType::kFloat32:
        fill_kernel<uint32_t><<<blocks, kThreads, 0, as_stream(stream)>>>(
            static_cast<uint32_t*>(out), count, 0x80000000u);
        break;
      case DType::kFloat64:
        fill_kernel<uint64_t><<<blocks, kThreads, 0, as_stream(stream)>>>(
            static_cast<uint64_t*>(out), count, uint64_t{1} << 63);
        break;
      default:
        fail(Status::kInternal, "negative zeros of ", dtype_name(dtype), " asked for");
    }
    check_launch("the zero fill");
  }

  void* allocate(size_t bytes, void* stream) const override {
    DeviceGuard guard(device_);
    void* memory = nullptr;
    const cudaError_t err = cudaMallocAsync(&memory, std::max<size_t>(bytes, 1), as_stream(stream));
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      fail(Status::kOutOfMemory, "cannot allocate ", bytes,
           " bytes of device staging memory for the CFG combine on device ", device_);
    }
    DIFFCOLL_CUDA_CHECK(err);
    return memory;
  }

  void release(void* memory, void* stream) const override {
    DeviceGuard guard(device_);
    // Called from a destructor, possibly while an error propagates: never throws.
    if (cudaFreeAsync(memory, as_stream(stream)) != cudaSuccess) cudaGetLastError();
  }

  void pack(const TensorView& view, void* dense, void* stream) const override {
    DeviceGuard guard(device_);
    PackPiece piece{view, dense};
    pack_cuda(&piece, 1, stream);
  }

  void unpack(const void* dense, const TensorView& view, void* stream) const override {
    DeviceGuard guard(device_);
    PackPiece piece{view, const_cast<void*>(dense)};
    unpack_cuda(&piece, 1, stream);
  }

  void check_memory(const TensorView& view, const std::string& what) const override {
    RelaxedCaptureScope relaxed;  // pure queries only, legal inside the caller's capture
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess) {
      cudaGetLastError();
      devices = 0;
    }
    DIFFCOLL_REQUIRE(device_ < devices, Status::kUnsupported, what, " ", view.describe(),
                     " is on CUDA device ", device_, " but this process sees ", devices,
                     " CUDA device(s)");
    if (view.numel() == 0) return;
    cudaPointerAttributes attributes{};
    const cudaError_t err = cudaPointerGetAttributes(&attributes, view.span_begin());
    if (err != cudaSuccess) cudaGetLastError();
    const bool usable = err == cudaSuccess &&
                        ((attributes.type == cudaMemoryTypeDevice && attributes.device == device_) ||
                         attributes.type == cudaMemoryTypeManaged);
    DIFFCOLL_REQUIRE(usable, Status::kInvalidArgument, what, " ", view.describe(),
                     " does not point to memory of CUDA device ", device_,
                     " (cudaPointerGetAttributes: ",
                     err != cudaSuccess                              ? cudaGetErrorName(err)
                     : attributes.type == cudaMemoryTypeDevice       ? "memory of another device"
                     : attributes.type == cudaMemoryTypeHost         ? "pinned host memory"
                                                                     : "not CUDA memory",
                     ")");
  }

 private:
  int device_;
};

}  // namespace

const CfgMath& cuda_cfg_math(int device) {
  DIFFCOLL_REQUIRE(device >= 0 && device < kMaxDevices, Status::kInvalidArgument,
                   "CUDA device ", device, " is outside 0..", kMaxDevices - 1);
  static const struct Table {
    CudaCfgMath math[kMaxDevices];
    Table() {
      for (int d = 0; d < kMaxDevices; ++d) math[d] = CudaCfgMath(d);
    }
  } table;
  return table.math[device];
}

}  // namespace ops
}  // namespace diffcoll
