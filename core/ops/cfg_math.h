// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The arithmetic of the CFG combine, on dense row-major images only.
//
// Every per-element and per-sample computation of core/ops/cfg.cc goes
// through one CfgMath, chosen by the memory the tensors live in: the host
// loops of cfg_math_host.cc or the CUDA kernels of
// core/cuda/cfg_math_cuda.cu. Both take every formula from cfg_arith.h and
// follow the reduction order below, so that they compute the same bits and
// serial and parallel combines agree wherever the arithmetic is the same.
//
// A combine is a few passes over memory, each one kernel on a device:
//  1. input_stats (only with CFG-zero*): cond and uncond are read once for
//     the CFG-zero* scale and, with post-processing, cond's statistics;
//  2. combine: the inputs are read once, the combined image written once,
//     and the statistics post-processing needs (of cond, unless pass 1 had
//     them, and of the output when it is final) collected on the way; its
//     last step turns them into per-sample post-processing parameters;
//  2'. output_stats (the parallel combine, after its all-reduce): the
//     output's statistics and the parameters;
//  3. post_process: the output is read and written once more (twice for
//     TORCH normalization followed by TORCH rescale, whose statistics need
//     the normalized output).
// The last step of a statistics pass runs in the pass itself on a device
// (the last block to finish, elected by a counter that starts at zero and
// that the election leaves at zero: a communicator's side keeps them, memory
// allocated for one call has them zeroed by begin()), so nothing is read
// back and nothing synchronises the host.
//
// Conventions shared by every function:
//  - An image is `extent.numel()` elements of `dtype` in row-major order of
//    the tensor's shape; sample b is elements [b * N, (b + 1) * N) with
//    N = extent.per_sample (the batch dimension is dimension 0).
//  - Per-sample scalars (CfgScalars) are in the same memory as the images,
//    so a device implementation never reads them back on the host: the
//    whole combine stays stream-ordered and graph-capturable.
//  - dtype is float16, bfloat16 or float32; arithmetic is float32 ("f32"),
//    statistics are double sums (float ones inside a lane of a 16-bit
//    dtype, see "Reduction order"). round(x) is rounding of an f32 value
//    to dtype, to nearest even (the identity for float32). No FMA
//    contraction anywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../dtype.h"
#include "../tensor.h"

namespace diffcoll {
namespace ops {

// Values equal diffcoll_cfg_order_t.
enum class CfgOrder : int32_t { kSerial = 0, kParallel = 1, kTorch = 2 };

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

// Post-processing of the combined prediction.
struct CfgPost {
  double rescale_phi = 0;  // guidance rescale strength; 0: off
  double norm_k = 0;       // CFG normalization bound; 0: off
  bool norm_per_sample = false;
  bool any() const { return rescale_phi != 0 || norm_k != 0; }
};

// Reduction order. Every per-sample statistic (moments, sums of products)
// is computed in this order, on the host as on the device:
//  1. a sample's N elements are cut into chunks of kCfgReduceChunk
//     consecutive elements (the last one may be shorter);
//  2. in a chunk, lane l (of kCfgReduceLanes) holds the 16-byte vectors
//     l, l + lanes, l + 2 lanes, ... (a vector is 16 / sizeof(dtype)
//     consecutive elements: 8 of a 16-bit type, 4 of float32), i.e.
//     kCfgReduceChunk / kCfgReduceLanes elements. Its moments are sums of
//     (x - k) and (x - k)^2 about its own first value k, in element order,
//     in float for 16-bit dtypes and in double for float32; in double they
//     are moved to the chunk's reference, the chunk's first value (lane 0's
//     k), without a division (cfg::recentered). Sums of products (CFG-zero*)
//     are double sums in element order;
//  3. the lanes' records are summed pairwise, v[l] += v[l + s] for l < s,
//     s = lanes/2, lanes/4, ..., 1; v[0] is the chunk's partial (count,
//     reference, sums);
//  4. the G chunk partials are merged like the lanes of one chunk: lane l
//     merges partials l, l + lanes, ... in turn into an empty record, then
//     pairwise, v[l] = merge(v[l], v[l + s]); merge() moves the second
//     record to the first one's reference and adds (cfg_arith.h).
// This is the order a GPU reduces in naturally (16-byte coalesced loads,
// per-element arithmetic in float, a shared-memory tree of plain sums, the
// last block merging the chunk partials): deterministic, no atomics in the
// arithmetic, no division before the last step, one read of the data even
// for a standard deviation, and references taken from the data, so that no
// sum of squares about zero cancels (a constant sample has exactly zero
// deviation).
constexpr int kCfgReduceLanes = 256;
constexpr int64_t kCfgReduceChunk = 16 * kCfgReduceLanes;

// Chunks of a per-sample reduction over `per_sample` elements (at least 1).
inline int64_t cfg_reduce_chunks(int64_t per_sample) {
  return per_sample <= 0 ? 1 : (per_sample + kCfgReduceChunk - 1) / kCfgReduceChunk;
}

// Epsilon added to ||uncond||^2 in the CFG-zero* scale, as the paper's code does.
constexpr double kCfgZeroStarEps = 1e-8;

// Columns of a per-sample statistics buffer ([B x kCfgStatColumns] doubles).
constexpr int kCfgStatStd = 0;    // standard deviation, Bessel-corrected (N-1); 0 if N < 2
constexpr int kCfgStatSumSq = 1;  // sum of squares: the squared L2 norm
constexpr int kCfgStatColumns = 2;

// Columns of the post-processing parameters ([B x kCfgPostColumns] doubles).
constexpr int kCfgPostFactor = 0;   // SERIAL/PARALLEL: the folded factor; TORCH: normalization ratio
constexpr int kCfgPostRescale = 1;  // TORCH: the rescale ratio std(cond) / std(out), in the dtype
constexpr int kCfgPostColumns = 2;

// Doubles of one merged record (cfg::Partial: two moments of four doubles,
// count, reference and two sums, and two sums of products).
constexpr int kCfgPartialDoubles = 10;
// Statistics passes of one call that elect a last block (ticket counters).
constexpr int kCfgTickets = 4;
enum class CfgPass : int { kInputs = 0, kCombine = 1, kOutput = 2, kNormalize = 3 };

// The per-call scalars of one combine, carved from one allocation.
struct CfgScalars {
  double* cond_stats = nullptr;  // [B x kCfgStatColumns]; all-reduced by the parallel combine
  double* out_stats = nullptr;   // [B x kCfgStatColumns]
  double* zero_star = nullptr;   // [B]: CFG-zero* scale (TORCH: alpha, of the dtype)
  double* post = nullptr;        // [B x kCfgPostColumns]
  double* partials = nullptr;    // [B x chunks x kCfgPartialDoubles]
  uint32_t* tickets = nullptr;   // [kCfgTickets]

  static size_t bytes(CfgExtent e) {
    const size_t b = static_cast<size_t>(e.batch);
    return sizeof(double) * (b * (2 * kCfgStatColumns + 1 + kCfgPostColumns) +
                             b * static_cast<size_t>(cfg_reduce_chunks(e.per_sample)) *
                                 kCfgPartialDoubles) +
           sizeof(uint32_t) * kCfgTickets;
  }
  CfgScalars() = default;
  CfgScalars(void* memory, CfgExtent e)
      : cond_stats(static_cast<double*>(memory)),
        out_stats(cond_stats + e.batch * kCfgStatColumns),
        zero_star(out_stats + e.batch * kCfgStatColumns),
        post(zero_star + e.batch),
        partials(post + e.batch * kCfgPostColumns),
        tickets(reinterpret_cast<uint32_t*>(
            partials + e.batch * cfg_reduce_chunks(e.per_sample) * kCfgPartialDoubles)) {}
};

// The combine pass: which inputs, which formula, which statistics.
struct CfgCombine {
  CfgOrder order = CfgOrder::kParallel;
  const void* const* inputs = nullptr;
  int count = 0;
  // PARALLEL: acc = round(w_0 x_0); acc = round(acc + round(w_i x_i)), i = 1..count-1,
  // w_i = f32(weights[i]). count == 0 writes negative zeros: -0 is the exact
  // identity of IEEE addition, so a rank without branches leaves the
  // all-reduce bitwise unchanged.
  const double* weights = nullptr;
  // SERIAL: acc = p[base]; acc = acc + f32(scale_k) * (p[plus_k] - p[minus_k]);
  // out = round(acc). TORCH: every operation of that chain rounded to the
  // dtype, as PyTorch eager computes it. Indices are input indices.
  int base = 0;
  const CfgTerm* terms = nullptr;
  int num_terms = 0;
  // Input scaled per sample by scalars.zero_star (CFG-zero*); -1: none.
  // PARALLEL: its weight is f32(weights[scaled] * s_b); SERIAL: p = f32(s_b) * x;
  // TORCH: p = round(x * alpha_b).
  int scaled = -1;
  // Input whose statistics go to scalars.cond_stats; -1: none.
  int cond = -1;
  // The output is the final combined prediction: with post-processing on,
  // collect its statistics and derive the post-processing parameters.
  bool final_output = false;
  // The post-processing the statistics serve, also when the output is not
  // final: sums of squares are collected only for CFG normalization.
  CfgPost post;
};

class CfgMath {
 public:
  virtual ~CfgMath() = default;

  // Zeroes the ticket counters of `scalars` (for scalars in fresh memory;
  // the passes leave them at zero).
  virtual void begin(const CfgScalars& scalars, void* stream) const = 0;

  // Pass 1: per sample, with moments, cond's statistics into
  // scalars.cond_stats; with uncond, the CFG-zero* scale into
  // scalars.zero_star: SERIAL/PARALLEL s_b = <c, u> / (||u||^2 + eps) in
  // double; TORCH alpha_b = round(f32(<c, u>) / (f32(||u||^2) + f32(eps)))
  // (diffusers' cfg_zero_star_scale: f32 sums, then .to(dtype)).
  virtual void input_stats(DType dtype, const void* cond, const void* uncond, bool moments,
                           CfgOrder order, CfgExtent extent, const CfgScalars& scalars,
                           void* stream) const = 0;

  // Pass 2: the combine of `c` into `out` (which may be one of the inputs,
  // same address, but must not partly overlap one). With c.final_output and
  // post-processing on, the parameters of post_process are computed too.
  virtual void combine(DType dtype, const CfgCombine& c, CfgExtent extent, void* out,
                       const CfgScalars& scalars, void* stream) const = 0;

  // Pass 2': statistics of the combined `out` and the parameters of
  // post_process, from scalars.cond_stats.
  virtual void output_stats(DType dtype, const void* out, CfgOrder order, const CfgPost& post,
                            CfgExtent extent, const CfgScalars& scalars,
                            void* stream) const = 0;

  // Pass 3: post-processing of `out` in place from the parameters.
  // SERIAL/PARALLEL: per sample, in double, rescale and normalization folded:
  //   f_b = phi * std(cond_b) / std(out_b) + (1 - phi)   (1 if phi == 0 or std(out_b) == 0)
  //   per-sample normalization: n_b = f_b ||out_b||, c_b = ||cond_b||
  //   whole tensor:             n = sqrt(sum_b f_b^2 ||out_b||^2), c = ||cond||
  //   if n > k c: f *= k c / n          (sums over b in increasing b)
  //   out = round(out * f32(f_b)) (samples with f_b == 1 untouched).
  // TORCH, as SGLang's CFGPolicy: normalization first, with f32 norms
  //   (sqrt of the double sums of squares, rounded), if ||out|| > k ||cond||:
  //   out = round(out * round(max / ||out||)), max = ||cond|| * f32(k);
  //   then guidance rescale (diffusers' rescale_noise_cfg in the dtype):
  //   r = round(round(std(cond)) / round(std(out))),
  //   out = round(round(phi * round(out * r)) + round((1 - phi) * out)).
  virtual void post_process(DType dtype, void* out, CfgOrder order, const CfgPost& post,
                            CfgExtent extent, const CfgScalars& scalars,
                            void* stream) const = 0;

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
