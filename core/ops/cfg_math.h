// The arithmetic of the CFG combine, on dense row-major images only.
//
// Every per-element and per-sample computation of core/ops/cfg.cc goes
// through one CfgMath, chosen by the memory the tensors live in. The host
// implementation is cfg_math_host.cc; a CUDA twin implements the same
// interface on device memory (one kernel per function, on `stream`) and must
// reproduce the host's rounding points exactly (see each function) so that
// serial and parallel combines keep agreeing bit for bit on the GPU too.
//
// Conventions shared by every function:
//  - An image is `extent.numel()` elements of `dtype` in row-major order of
//    the tensor's shape; sample b is elements [b * N, (b + 1) * N) with
//    N = extent.per_sample (the batch dimension is dimension 0).
//  - Per-sample scalars (statistics, scales, factors) are doubles in the same
//    memory as the images (host memory here, device memory for CUDA), so a
//    device implementation never has to read them back on the host: the whole
//    combine stays stream-ordered and graph-capturable.
//  - dtype is float16, bfloat16 or float32; arithmetic is float32 ("f32"),
//    statistics accumulate in double.
//  - round(x) is rounding of an f32 value to dtype, to nearest even (the
//    identity for float32).
//  - No FMA contraction: a * b + c is a rounded product then a rounded sum.
//  - Every per-sample sum in double runs in the fixed order of "Reduction
//    order" below, on the host as on the device, so that statistics (and
//    hence the whole combine) are bitwise the same wherever they are computed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../dtype.h"
#include "../tensor.h"

namespace diffcoll {
namespace ops {

// Shape of an image as the CFG math sees it.
struct CfgExtent {
  int64_t batch = 1;       // B: extent of dimension 0 (1 for a 0-d tensor)
  int64_t per_sample = 0;  // N: elements per sample
  int64_t numel() const { return batch * per_sample; }
};

// One guidance term: scale * (pred[plus] - pred[minus]).
struct CfgTerm {
  double scale = 0;
  int plus = 0;
  int minus = 0;
};

// Columns of a per-sample statistics buffer ([B x kCfgStatColumns] doubles).
constexpr int kCfgStatStd = 0;    // standard deviation, Bessel-corrected (N-1); 0 if N < 2
constexpr int kCfgStatSumSq = 1;  // sum of squares: the squared L2 norm
constexpr int kCfgStatColumns = 2;

// Reduction order. A per-sample sum of double terms t_j, j = 0..N-1, is:
//  1. per chunk c of kCfgReduceChunk consecutive elements (the last one may be
//     shorter), kCfgReduceLanes lanes: lane l starts from 0.0 and adds
//     t_{c*chunk + l + i*lanes} for i = 0, 1, ... in increasing i;
//  2. the lanes are folded pairwise, v[l] = v[l] + v[l + s] for l < s, with
//     s = lanes/2, lanes/4, ..., 1; v[0] is the chunk's partial;
//  3. the G chunk partials are reduced like the terms of one chunk: lane l
//     adds partials l, l + lanes, ... to 0.0, then the same fold.
// This is the order a GPU sums in naturally (one block per chunk, coalesced
// loads, a shared-memory tree), and the host follows it exactly.
constexpr int kCfgReduceLanes = 256;
constexpr int64_t kCfgReduceChunk = 16 * kCfgReduceLanes;

// Chunks of a per-sample sum over `per_sample` elements (at least 1).
inline int64_t cfg_reduce_chunks(int64_t per_sample) {
  return per_sample <= 0 ? 1 : (per_sample + kCfgReduceChunk - 1) / kCfgReduceChunk;
}

// Doubles of `partials` scratch the statistics functions need (two sums per
// chunk and sample).
inline int64_t cfg_partials_doubles(CfgExtent extent) {
  return extent.batch * cfg_reduce_chunks(extent.per_sample) * 2;
}

// Epsilon added to ||uncond||^2 in the CFG-zero* scale, as the paper's code does.
constexpr double kCfgZeroStarEps = 1e-8;

// Post-processing of the combined prediction.
struct CfgPost {
  double rescale_phi = 0;  // guidance rescale strength; 0: off
  double norm_k = 0;       // CFG normalization bound; 0: off
  bool norm_per_sample = false;
  bool any() const { return rescale_phi != 0 || norm_k != 0; }
};

class CfgMath {
 public:
  virtual ~CfgMath() = default;

  // The PARALLEL-order weighted sum of `count` images into `out`:
  //   acc = round(w_0 * x_0); acc = round(acc + round(w_i * x_i)), i = 1..count-1
  // with w_i = f32(weights[i]), except that the weight of input `scaled`
  // (when sample_scale is non-null) is f32(weights[scaled] * sample_scale[b])
  // in sample b. count == 0 writes negative zero everywhere: -0 is the exact
  // identity of IEEE addition (-0 + x == x for every x, +0 and -0 included),
  // so a rank that holds no branch leaves the all-reduce bitwise unchanged.
  // `out` may be one of the inputs (same address) but must not partly overlap one.
  virtual void weighted_sum(DType dtype, const void* const* inputs, const double* weights,
                            int count, int scaled, const double* sample_scale,
                            CfgExtent extent, void* out, void* stream) const = 0;

  // The SERIAL-order combine, evaluated as written, in f32, rounded once:
  //   acc = p[base]; acc = acc + f32(terms[k].scale) * (p[plus_k] - p[minus_k]); out = round(acc)
  // where p[i] is image i as f32, and p[scaled] is f32(sample_scale[b]) * image
  // (when sample_scale is non-null). Aliasing as for weighted_sum.
  virtual void serial_sum(DType dtype, const void* const* preds, int base,
                          const CfgTerm* terms, int num_terms, int scaled,
                          const double* sample_scale, CfgExtent extent, void* out,
                          void* stream) const = 0;

  // Per-sample statistics of one image into stats[B x kCfgStatColumns].
  // Two passes in double: mean = sum / N, then the squared deviations
  // (x - mean) * (x - mean) and the squares x * x, each summed in the
  // reduction order. `partials` is cfg_partials_doubles(extent) of scratch.
  virtual void branch_stats(DType dtype, const void* x, CfgExtent extent, double* stats,
                            double* partials, void* stream) const = 0;

  // CFG-zero*: scale[b] = <cond_b, uncond_b> / (||uncond_b||^2 + kCfgZeroStarEps),
  // the products c*u and u*u summed in double in the reduction order.
  // `partials` as for branch_stats.
  virtual void zero_star_scale(DType dtype, const void* cond, const void* uncond,
                               CfgExtent extent, double* scale, double* partials,
                               void* stream) const = 0;

  // Guidance rescale and CFG normalization of `out` in place, from the
  // statistics of the conditional branch (cond_stats, [B x kCfgStatColumns]).
  // `work` holds B * kCfgStatColumns + B doubles of scratch and `partials`
  // cfg_partials_doubles(extent) (same memory).
  // Per sample b, in double, from the statistics of `out` as stored:
  //   f_b = phi * std(cond_b) / std(out_b) + (1 - phi)       (1 if phi == 0 or std(out_b) == 0)
  //   per-sample normalization: n_b = f_b * ||out_b||, c_b = ||cond_b||
  //   whole-tensor:             n = sqrt(sum_b f_b^2 ||out_b||^2), c = ||cond||
  //   if n > k * c: f *= k * c / n
  //   (sums over b run in increasing b, each product and quotient rounded)
  // then out = round(out * f32(f_b)) in one pass (samples with f_b == 1 untouched).
  virtual void post_process(DType dtype, void* out, CfgExtent extent,
                            const double* cond_stats, const CfgPost& post, double* work,
                            double* partials, void* stream) const = 0;

  // Writes `count` zeros of `dtype`: any dtype with negative == false (a
  // plain byte clear), or negative zeros of a float dtype (float64 included,
  // for per-sample buffers).
  virtual void fill_zero(DType dtype, void* out, int64_t count, bool negative,
                         void* stream) const = 0;

  // Memory services for the serial combine, which has no communicator and
  // hence no staging arena. allocate returns `bytes` of this memory, usable
  // on `stream` (stream-ordered on a device, so capturable), and throws
  // Error(kOutOfMemory) when there is none; release gives it back after the
  // work queued on `stream`. pack / unpack are the strided gather into a
  // dense row-major image and the scatter back.
  virtual void* allocate(size_t bytes, void* stream) const = 0;
  virtual void release(void* memory, void* stream) const = 0;
  virtual void pack(const TensorView& view, void* dense, void* stream) const = 0;
  virtual void unpack(const void* dense, const TensorView& view, void* stream) const = 0;

  // Throws Error(kInvalidArgument) if the data of `view` (named `what` in the
  // message) is not memory this implementation can read and write, and
  // Error(kUnsupported) if the memory's device is not there at all. The host
  // cannot tell, and checks nothing; a device checks that the pointer is
  // memory of its device (or managed memory), so that a host pointer labelled
  // CUDA is refused instead of faulting in a kernel.
  virtual void check_memory(const TensorView& view, const std::string& what) const = 0;
};

// The host implementation (cfg_math_host.cc).
const CfgMath& host_cfg_math();

// The CUDA implementation for CUDA device `device` (core/cuda/cfg_math_cuda.cu):
// every function is a stream-ordered launch on that device, never synchronises
// the host and may be captured into a CUDA graph. It takes at most
// kCfgCudaMaxInputs images and kCfgCudaMaxTerms guidance terms per call
// (Error(kUnsupported) beyond). In a build without CUDA it throws
// Error(kUnsupported).
constexpr int kCfgCudaMaxInputs = 32;
constexpr int kCfgCudaMaxTerms = 32;
const CfgMath& cuda_cfg_math(int device);

}  // namespace ops
}  // namespace diffcoll
