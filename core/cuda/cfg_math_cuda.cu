// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// CUDA twin of cfg_math_host.cc: the passes of cfg_math.h as one kernel
// each, on the caller's stream, with every formula from cfg_arith.h (shared
// with the host loops, hence bitwise the host's results).
//  - Geometry: blocks of kCfgReduceLanes threads, one wave of them (as many
//    as the SMs hold at once), each walking (sample, chunk) items of the
//    reduction order with a grid stride; thread l is lane l of the item's
//    chunk and handles its 16-byte vectors l, l + lanes, ..., read and
//    written with 16-byte accesses where every pointer is aligned (scalar
//    accesses otherwise, same arithmetic).
//  - Statistics: a lane sums its values in float (16-bit dtypes) about its
//    first value; lane 0's first value, the chunk's reference, is broadcast
//    and every lane moves its sums to it in double; the lanes' sums are then
//    plain sums in the fixed pairwise order (shared memory across warps,
//    shuffles inside warp 0), thread 0 writes the chunk partial, and the
//    last block to finish (elected by a ticket counter that starts at zero
//    and that its increment wraps back to zero; the counter decides who
//    finishes, never what is summed) merges the
//    partials in the fixed order and writes the per-sample results and
//    post-processing parameters to device memory. Only the doubles the
//    post-processing reads are collected and moved (Fields). Nothing is read
//    back, nothing synchronises the host, and every call may be captured
//    into a CUDA graph.
//  - Cost: the bytes are the floor (each input read once, the output written
//    once per pass); per element a statistic costs four float operations,
//    and no division is made before the last block's last step.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "../ops/cfg_arith.h"
#include "cuda_error.h"
#include "pack_cuda.h"

namespace diffcoll {
namespace ops {
namespace {

using cfg::Finish;
using cfg::Partial;

constexpr int kThreads = kCfgReduceLanes;  // a block has one thread per lane
// Blocks of a pass resident per SM, which its launch bounds guarantee and
// its one-wave grid fills (at most 80 registers a thread): a block reads its
// 8 KiB to 16 KiB and then sums, so the loads of the others hide its sums.
// A pass without statistics needs few registers (at most 32): a full SM of
// threads fits, the most loads in flight.
constexpr int kBlocksPerSm = 3;
constexpr int kPlainBlocksPerSm = 8;
// 16-byte vectors a thread of rewrite_kernel has in flight.
constexpr int kRewriteVectors = 4;
constexpr int kMaxDevices = 64;

template <typename Fn>
void dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat16: fn(cfg::F16{}); return;
    case DType::kBFloat16: fn(cfg::Bf16{}); return;
    case DType::kFloat32: fn(cfg::F32{}); return;
    default:
      fail(Status::kInternal, "CUDA CFG math called with dtype ", dtype_name(dtype));
  }
}

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    fail(Status::kCuda, "CFG math: launch of ", what, " failed: ", cudaGetErrorName(err), ": ",
         cudaGetErrorString(err));
}

cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

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

// The CUDA devices this process sees, asked once (the set cannot change
// after CUDA starts): check_memory runs for every tensor of every call.
int device_count() {
  static const int count = [] {
    RelaxedCaptureScope relaxed;  // the first call may come inside the caller's capture
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess) {
      cudaGetLastError();
      devices = 0;
    }
    return devices;
  }();
  return count;
}

// ---- everything a pass needs -----------------------------------------------------------

enum class PostMode : int { kFactor, kNormalize, kRescale };

// The sums a statistics pass collects. Lane records, sums through shared
// memory and shuffles, and the chunk partials move only these doubles, so a
// pass pays for no statistic its post-processing does not read (guidance
// rescale needs no sums of products).
struct Fields {
  bool a = false;         // moments of an input (slot a)
  bool b = false;         // moments of the output (slot b)
  bool products = false;  // the CFG-zero* sums
};

struct Pass {
  const void* in[kCfgCudaMaxInputs];
  float weight[kCfgCudaMaxInputs];  // PARALLEL: f32(weights[i])
  float scale[kCfgCudaMaxTerms];    // SERIAL / TORCH: f32(terms[k].scale)
  int8_t plus[kCfgCudaMaxTerms];
  int8_t minus[kCfgCudaMaxTerms];
  int count, num_terms, base;
  int scaled;             // input scaled per sample by zero_star; -1: none
  double scaled_weight;   // PARALLEL: weights[scaled]
  int cond;               // input whose moments go to slot a; -1: none
  bool out_moments;       // moments of the written / read output into slot b
  bool products;          // input_stats: the CFG-zero* sums of in[0] and in[1]
  PostMode post_mode;
  float phi, one_minus_phi;
  void* out;
  int64_t n, batch, chunks;
  bool vec;               // 16-byte accesses: every pointer aligned, n a multiple of the vector
  Fields fields;          // what the statistics (finish.kind != kNone) collect
  uint32_t* ticket;
  cfg::FinishArgs finish;
};

Pass make_pass(CfgExtent extent, const CfgScalars& scalars, CfgPass pass) {
  Pass a{};
  a.scaled = -1;
  a.cond = -1;
  a.n = extent.per_sample;
  a.batch = extent.batch;
  a.chunks = cfg_reduce_chunks(extent.per_sample);
  a.ticket = scalars.tickets + static_cast<int>(pass);
  a.finish.batch = extent.batch;
  a.finish.scalars = scalars;
  return a;
}

// Streaming multiprocessors of `device`, asked once per device.
int sm_count(int device) {
  static std::atomic<int> counts[kMaxDevices];  // 0: not asked yet
  int count = counts[device].load(std::memory_order_relaxed);
  if (count == 0) {
    RelaxedCaptureScope relaxed;  // a pure query, legal inside the caller's capture
    DIFFCOLL_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
    counts[device].store(count, std::memory_order_relaxed);
  }
  return count;
}

// `blocks` blocks of work, but at most one wave: as many as the device holds
// at once (`per_sm` is what the kernel's launch bounds guarantee).
unsigned one_wave(int64_t blocks, int device, int per_sm) {
  const int64_t wave = int64_t{sm_count(device)} * per_sm;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(blocks, wave)));
}

// A pass's blocks each walk the (sample, chunk) items with a grid stride.
// Which block sums a chunk changes nothing: chunk partials are stored by
// item and merged in the fixed order.
unsigned pass_grid(const Pass& a, int device, int per_sm) {
  return one_wave(std::max<int64_t>(a.batch, 1) * a.chunks, device, per_sm);
}

// rewrite_kernel's grid: no more blocks than its vectors need.
template <typename E>
unsigned rewrite_grid(const Pass& a, int device) {
  const int64_t vectors = a.batch * (a.n / E::kVector);
  const int64_t per_block = int64_t{kThreads} * kRewriteVectors;
  return one_wave((vectors + per_block - 1) / per_block, device, kPlainBlocksPerSm);
}

// Every pointer 16-byte aligned and every sample a whole number of vectors.
template <typename E>
bool vectorizable(const Pass& a, const void* const* pointers, int count) {
  if (a.n % E::kVector != 0) return false;
  for (int i = 0; i < count; ++i)
    if (!aligned16(pointers[i])) return false;
  return true;
}

// ---- the vectors of a lane ---------------------------------------------------------------
// Lane threadIdx.x of chunk c holds vectors v = 0 .. kLane / kVector - 1,
// starting at sample-relative element vector_start(c, v); its element k is
// element k % kVector of vector k / kVector, and its valid elements are a
// prefix (lane_count of them). A lane of an input is kept as loaded, 16-byte
// vectors of stored values (LaneData: half the registers of floats for a
// 16-bit dtype), and decoded where it is used; results are floats
// (float[kLane]). Whole lanes are loaded before anything is computed or
// stored, so that all their loads are in flight at once (and an output that
// aliases an input is read before it is written: each element is read and
// written by the same thread).

constexpr int kLane = cfg::kLaneElements;

__device__ __forceinline__ uint32_t word(const uint4& q, int i) {
  return i == 0 ? q.x : i == 1 ? q.y : i == 2 ? q.z : q.w;
}

// Element `slot` of a 16-byte vector of stored values, as f32.
template <typename E>
__device__ __forceinline__ float vector_element(const uint4& q, int slot) {
  if constexpr (sizeof(typename E::S) == 4)
    return E::load(__uint_as_float(word(q, slot)));
  else
    return E::load(static_cast<typename E::S>(word(q, slot / 2) >> (16 * (slot % 2))));
}

template <typename E>
struct LaneData {
  static constexpr int kVectors = kLane / E::kVector;
  uint4 v[kVectors];
  // Element k as f32 (k is a constant once loops are unrolled).
  __device__ __forceinline__ float operator[](int k) const {
    return vector_element<E>(v[k / E::kVector], k % E::kVector);
  }
};

template <typename E>
__device__ int64_t vector_start(int64_t c, int v) {
  return c * kCfgReduceChunk + (threadIdx.x + static_cast<int64_t>(v) * kCfgReduceLanes) * E::kVector;
}

// How many of the kVector elements from sample-relative `e` on exist (<= 0: none).
template <typename E>
__device__ int vector_valid(int64_t n, int64_t e) {
  return n - e < E::kVector ? static_cast<int>(n - e) : E::kVector;
}

template <typename E>
__device__ int lane_count(int64_t n, int64_t c) {
  int count = 0;
#pragma unroll
  for (int v = 0; v < kLane / E::kVector; ++v) count += max(0, vector_valid<E>(n, vector_start<E>(c, v)));
  return count;
}

// x = the lane of sample b of `image` (zero bits, +0, past the end).
template <typename E>
__device__ void load_lane(const void* image, const Pass& a, int64_t b, int64_t c, LaneData<E>& x) {
  using S = typename E::S;
#pragma unroll
  for (int v = 0; v < LaneData<E>::kVectors; ++v) {
    const int64_t e = vector_start<E>(c, v);
    const int valid = vector_valid<E>(a.n, e);
    const S* p = static_cast<const S*>(image) + b * a.n + e;
    if (a.vec && valid == E::kVector) {
      x.v[v] = *reinterpret_cast<const uint4*>(p);
    } else {
      S s[E::kVector];
#pragma unroll
      for (int t = 0; t < E::kVector; ++t) s[t] = t < valid ? p[t] : S{};
      memcpy(&x.v[v], s, sizeof s);
    }
  }
}

// Stores round(x) as the lane of sample b of `image`; x becomes the stored values.
template <typename E>
__device__ void store_lane(void* image, const Pass& a, int64_t b, int64_t c, float (&x)[kLane]) {
  using S = typename E::S;
#pragma unroll
  for (int v = 0; v < kLane / E::kVector; ++v) {
    const int64_t e = vector_start<E>(c, v);
    const int valid = vector_valid<E>(a.n, e);
    S* p = static_cast<S*>(image) + b * a.n + e;
    S s[E::kVector];
#pragma unroll
    for (int t = 0; t < E::kVector; ++t) {
      s[t] = E::store(x[v * E::kVector + t]);
      x[v * E::kVector + t] = E::load(s[t]);
    }
    if (a.vec && valid == E::kVector) {
      *reinterpret_cast<uint4*>(p) = *reinterpret_cast<const uint4*>(s);
    } else {
#pragma unroll
      for (int t = 0; t < E::kVector; ++t)
        if (t < valid) p[t] = s[t];
    }
  }
}

// ---- merging in the reduction order ----------------------------------------------------

constexpr int kWarp = 32;

// Calls fn(index, value) for each double of `p` that a step moves; index is
// the double's place in a stored record (cfg::Partial's order). The sums of
// a chunk's lanes (kRecords false) move the sums only, all about the chunk's
// references; chunk records (kRecords true) carry count and reference too.
template <bool kRecords, typename Fn>
__device__ __forceinline__ void for_fields(const Fields& f, Partial& p, Fn&& fn) {
  if (f.a) {
    if (kRecords) {
      fn(0, p.a.n);
      fn(1, p.a.ref);
    }
    fn(2, p.a.s1);
    fn(3, p.a.s2);
  }
  if (f.b) {
    if (kRecords) {
      fn(4, p.b.n);
      fn(5, p.b.ref);
    }
    fn(6, p.b.s1);
    fn(7, p.b.s2);
  }
  if (f.products) {
    fn(8, p.dot);
    fn(9, p.uu);
  }
}

// v = v + w (kRecords false: cfg::sum_into) or merge(v, w) (cfg::merge_into),
// w's moved doubles given by get(index). Fields a pass does not collect are
// empty in both, and stay so.
template <bool kRecords, typename Get>
__device__ __forceinline__ void step_fields(Partial& v, const Fields& f, Get&& get) {
  if (kRecords) {
    if (f.a) v.a = cfg::merge(v.a, {get(0), get(1), get(2), get(3)});
    if (f.b) v.b = cfg::merge(v.b, {get(4), get(5), get(6), get(7)});
  } else {
    if (f.a) {
      v.a.s1 = cfg::dadd(v.a.s1, get(2));
      v.a.s2 = cfg::dadd(v.a.s2, get(3));
    }
    if (f.b) {
      v.b.s1 = cfg::dadd(v.b.s1, get(6));
      v.b.s2 = cfg::dadd(v.b.s2, get(7));
    }
  }
  if (f.products) {
    v.dot = cfg::dadd(v.dot, get(8));
    v.uu = cfg::dadd(v.uu, get(9));
  }
}

// Lane records in shared memory, one array per double (consecutive lanes hit
// consecutive banks), and the chunk's references broadcast by lane 0.
struct LaneRecords {
  double v[kCfgPartialDoubles][kThreads];
  double reference[2];
};

// The pairwise steps s = 128, ..., 1 of the reduction order over the block's
// lanes: sums (step 3) or merges (step 4); thread 0 returns v[0] (the others
// return partial results). The steps across warps go through shared memory:
// lanes [s, 2s) publish, lanes below s step after a barrier. A step's slots
// [s, 2s) are read only in that step, before the next step's barrier, so no
// fold (this one or the next, which may follow at once) overwrites a slot
// still to be read. The steps inside warp 0 are shuffles.
template <bool kRecords>
__device__ Partial fold_lanes(Partial v, LaneRecords& shared, const Fields& f) {
  const int l = threadIdx.x;
  for (int s = kThreads / 2; s >= kWarp; s /= 2) {
    if (l >= s && l < 2 * s)
      for_fields<kRecords>(f, v, [&](int k, double& x) { shared.v[k][l] = x; });
    __syncthreads();
    if (l < s) step_fields<kRecords>(v, f, [&](int k) { return shared.v[k][l + s]; });
  }
  if (l < kWarp) {
    for (int s = kWarp / 2; s >= 1; s /= 2) {
      Partial w = v;  // lane l + s's record (fields not moved: unused)
      for_fields<kRecords>(f, w, [&](int, double& x) { x = __shfl_down_sync(0xffffffffu, x, s); });
      if (l < s) step_fields<kRecords>(v, f, [&](int k) {
        switch (k) {
          case 0: return w.a.n;
          case 1: return w.a.ref;
          case 2: return w.a.s1;
          case 3: return w.a.s2;
          case 4: return w.b.n;
          case 5: return w.b.ref;
          case 6: return w.b.s1;
          case 7: return w.b.s2;
          case 8: return w.dot;
          default: return w.uu;
        }
      });
    }
  }
  return v;
}

// Step 2's move of every lane's moments to the chunk's references, lane 0's
// first values (lane 0 holds the chunk's first element). Every thread reads
// the broadcast before the first barrier of the fold that follows, so the
// next chunk's broadcast cannot overwrite it early.
__device__ void to_chunk_reference(Partial& p, LaneRecords& shared, const Fields& f) {
  if (threadIdx.x == 0) {
    shared.reference[0] = p.a.ref;
    shared.reference[1] = p.b.ref;
  }
  __syncthreads();
  if (f.a) p.a = cfg::recentered(p.a, shared.reference[0]);
  if (f.b) p.b = cfg::recentered(p.b, shared.reference[1]);
}

// A chunk partial: written by thread 0 of its block (count and references
// set: the chunk's), read by the last block through L2 (not this SM's L1).
__device__ void store_partial(double* record, Partial p, const Fields& f, double count) {
  p.a.n = count;
  p.b.n = count;
  for_fields<true>(f, p, [&](int k, double& x) { record[k] = x; });
}

// The end of a statistics pass: every block has written its chunk partials;
// the last block to finish merges them per sample (step 4) and runs the last
// step. The ticket only elects that block; what is merged, and in which
// order, does not depend on it.
template <typename E>
__device__ void finish_pass(const Pass& a, LaneRecords& shared) {
  __shared__ bool last;
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();  // this block's partials before its ticket
    // The last block's increment wraps the counter back to zero, ready for
    // the next pass that uses it: no call has to zero it.
    last = atomicInc(a.ticket, gridDim.x - 1) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();  // every other block's partials, fenced before their tickets, after ours
  for (int64_t b = 0; b < a.batch; ++b) {
    const double* sample = a.finish.scalars.partials + b * a.chunks * kCfgPartialDoubles;
    Partial p = cfg::empty_partial();  // lane l merges partials l, l + lanes, ... in turn
#pragma unroll 4  // the loads of later partials may start before the earlier merges end
    for (int64_t c = threadIdx.x; c < a.chunks; c += kThreads) {
      const double* record = sample + c * kCfgPartialDoubles;
      step_fields<true>(p, a.fields, [&](int k) { return __ldcg(record + k); });
    }
    p = fold_lanes<true>(p, shared, a.fields);
    if (threadIdx.x == 0) cfg::finish_sample<E>(a.finish, b, p);
  }
  if (threadIdx.x == 0) cfg::finish_all<E>(a.finish);
}

// Runs lane(b, c) -> Partial (moments about each lane's first value) for the
// (sample, chunk) items of this block; with statistics, sums each chunk's
// lanes into its partial, and the last block finishes the pass.
template <typename E, bool kStatistics = true, typename LaneFn>
__device__ void run_pass(const Pass& a, LaneFn lane) {
  const int64_t items = a.batch * a.chunks;
  if constexpr (!kStatistics) {
    for (int64_t w = blockIdx.x; w < items; w += gridDim.x) lane(w / a.chunks, w % a.chunks);
  } else {
    __shared__ LaneRecords shared;
    const bool statistics = a.finish.kind != Finish::kNone;
    for (int64_t w = blockIdx.x; w < items; w += gridDim.x) {
      const int64_t b = w / a.chunks, c = w % a.chunks;
      Partial mine = lane(b, c);
      if (!statistics) continue;
      to_chunk_reference(mine, shared, a.fields);
      const Partial chunk = fold_lanes<false>(mine, shared, a.fields);
      if (threadIdx.x == 0)
        store_partial(a.finish.scalars.partials + w * kCfgPartialDoubles, chunk, a.fields,
                      static_cast<double>(cfg::chunk_elements(a.n, c)));
    }
    if (statistics) finish_pass<E>(a, shared);
  }
}

// ---- the passes ----------------------------------------------------------------------------

// Pass 1: moments of in[0] (slot a) and the CFG-zero* sums of in[0], in[1].
template <typename E>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm) input_stats_kernel(const Pass a) {
  run_pass<E>(a, [&](int64_t b, int64_t c) {
    LaneData<E> cv, uv{};
    load_lane<E>(a.in[0], a, b, c, cv);
    if (a.products) load_lane<E>(a.in[1], a, b, c, uv);
    const int count = lane_count<E>(a.n, c);
    Partial p = cfg::empty_partial();
    if (a.cond >= 0) p.a = cfg::lane_moments<typename E::Acc>(cv, count);
    if (a.products) cfg::lane_products(cv, uv, count, &p.dot, &p.uu);
    return p;
  });
}

// A value x of input i in the SERIAL / TORCH chain, CFG-zero*-scaled by s
// where it applies.
template <typename E, CfgOrder O>
__device__ float chain_value(const Pass& a, int i, float s, float x) {
  if (i != a.scaled) return x;
  return O == CfgOrder::kTorch ? cfg::torch_scaled<E>(s, x) : cfg::serial_scaled(s, x);
}

// Pass 2: the guidance formula, with the moments of in[cond] (slot a) and of
// the output (slot b) on the way.
template <typename E, CfgOrder O>
__global__ void __launch_bounds__(kThreads, kBlocksPerSm) combine_kernel(const Pass a) {
  run_pass<E>(a, [&](int64_t b, int64_t c) {
    float s = 0.0f;  // PARALLEL: the scaled input's weight; else the sample's scale
    if (a.scaled >= 0) {
      const double zs = a.finish.scalars.zero_star[b];
      s = O == CfgOrder::kParallel ? cfg::parallel_scaled_weight(a.scaled_weight, zs) : cfg::f32(zs);
    }
    const int count = lane_count<E>(a.n, c);
    Partial p = cfg::empty_partial();
    float acc[kLane];
    if (O == CfgOrder::kParallel) {
      // The first two inputs (standard CFG's cond and uncond) are loaded
      // together, so that both are in flight at once; cond's moments come
      // from the values loaded for the sum (before out, which may alias an
      // input, is written).
      LaneData<E> first, second{};
      load_lane<E>(a.in[0], a, b, c, first);
      if (a.count > 1) load_lane<E>(a.in[1], a, b, c, second);
      if (a.cond == 0 || a.cond == 1) {
        LaneData<E> cond;  // selected vector by vector: both stay in registers
#pragma unroll
        for (int v = 0; v < LaneData<E>::kVectors; ++v)
          cond.v[v] = a.cond == 0 ? first.v[v] : second.v[v];
        p.a = cfg::lane_moments<typename E::Acc>(cond, count);
      }
      const float w0 = a.scaled == 0 ? s : a.weight[0];
#pragma unroll
      for (int k = 0; k < kLane; ++k) acc[k] = cfg::parallel_first<E>(w0, first[k]);
      if (a.count > 1) {
        const float w1 = a.scaled == 1 ? s : a.weight[1];
#pragma unroll
        for (int k = 0; k < kLane; ++k) acc[k] = cfg::parallel_next<E>(acc[k], w1, second[k]);
      }
      for (int i = 2; i < a.count; ++i) {
        LaneData<E> x;
        load_lane<E>(a.in[i], a, b, c, x);
        if (a.cond == i) p.a = cfg::lane_moments<typename E::Acc>(x, count);
        const float w = i == a.scaled ? s : a.weight[i];
#pragma unroll
        for (int k = 0; k < kLane; ++k) acc[k] = cfg::parallel_next<E>(acc[k], w, x[k]);
      }
    } else {
      if (a.cond >= 0) {  // before out, which may alias it, is written
        LaneData<E> x;
        load_lane<E>(a.in[a.cond], a, b, c, x);
        p.a = cfg::lane_moments<typename E::Acc>(x, count);
      }
      {
        LaneData<E> x;
        load_lane<E>(a.in[a.base], a, b, c, x);
#pragma unroll
        for (int k = 0; k < kLane; ++k) acc[k] = chain_value<E, O>(a, a.base, s, x[k]);
      }
      for (int t = 0; t < a.num_terms; ++t) {
        LaneData<E> plus, minus;
        load_lane<E>(a.in[a.plus[t]], a, b, c, plus);
        load_lane<E>(a.in[a.minus[t]], a, b, c, minus);
#pragma unroll
        for (int k = 0; k < kLane; ++k) {
          const float x = chain_value<E, O>(a, a.plus[t], s, plus[k]);
          const float y = chain_value<E, O>(a, a.minus[t], s, minus[k]);
          acc[k] = O == CfgOrder::kTorch ? cfg::torch_term<E>(acc[k], a.scale[t], x, y)
                                         : cfg::serial_term(acc[k], a.scale[t], x, y);
        }
      }
    }
    store_lane<E>(a.out, a, b, c, acc);
    if (a.out_moments) p.b = cfg::lane_moments<typename E::Acc>(acc, count);
    return p;
  });
}

// Pass 2' and 3: reads out; post-processes it in place (post_mode, when
// `write`); moments of the result into slot b (out_moments).
template <typename E, bool kStatistics>
__global__ void __launch_bounds__(kThreads, kStatistics ? kBlocksPerSm : kPlainBlocksPerSm)
    output_kernel(const Pass a, bool write) {
  run_pass<E, kStatistics>(a, [&](int64_t b, int64_t c) {
    const double* params = a.finish.scalars.post + b * kCfgPostColumns;
    // Factors of 1 change nothing: such samples are not rewritten.
    const bool rewrite =
        write && (a.post_mode == PostMode::kRescale || params[kCfgPostFactor] != 1.0);
    Partial p = cfg::empty_partial();
    if (!rewrite && !kStatistics) return p;
    LaneData<E> raw;
    load_lane<E>(a.out, a, b, c, raw);
    float x[kLane];
    if (rewrite) {
      const float factor = cfg::f32(params[kCfgPostFactor]);
      const float ratio = cfg::f32(params[kCfgPostRescale]);
#pragma unroll
      for (int k = 0; k < kLane; ++k)
        x[k] = a.post_mode == PostMode::kRescale
                   ? cfg::torch_rescale<E>(raw[k], ratio, a.phi, a.one_minus_phi)
                   : cfg::apply_factor<E>(raw[k], factor);
      store_lane<E>(a.out, a, b, c, x);
    } else {
#pragma unroll
      for (int k = 0; k < kLane; ++k) x[k] = raw[k];
    }
    if (kStatistics) p.b = cfg::lane_moments<typename E::Acc>(x, lane_count<E>(a.n, c));
    return p;
  });
}

// Pass 3 without statistics on aligned whole vectors (a.vec): nothing is
// summed, so the walk need not follow the reduction order: a flat grid
// stride over the 16-byte vectors of out, kRewriteVectors loads in flight per
// thread, one wave of blocks. (run_pass's items are one 16-element lane per
// thread: for this pass alone, its one wave is short of loads in flight, and
// its last items leave most of the GPU idle.) Each element gets the formula
// output_kernel applies, so the results are bitwise the same.
template <typename E>
__global__ void __launch_bounds__(kThreads) rewrite_kernel(const Pass a) {
  using S = typename E::S;
  constexpr int V = E::kVector;
  const int64_t per_sample = a.n / V, vectors = a.batch * per_sample;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  uint4* out = static_cast<uint4*>(a.out);
  for (int64_t v0 = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; v0 < vectors;
       v0 += stride * kRewriteVectors) {
    uint4 q[kRewriteVectors];
#pragma unroll
    for (int u = 0; u < kRewriteVectors; ++u)
      if (v0 + u * stride < vectors) q[u] = out[v0 + u * stride];
#pragma unroll
    for (int u = 0; u < kRewriteVectors; ++u) {
      const int64_t v = v0 + u * stride;
      if (v >= vectors) break;
      const double* params = a.finish.scalars.post + (v / per_sample) * kCfgPostColumns;
      if (a.post_mode != PostMode::kRescale && params[kCfgPostFactor] == 1.0) continue;
      const float factor = cfg::f32(params[kCfgPostFactor]);
      const float ratio = cfg::f32(params[kCfgPostRescale]);
      S y[V];
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const float x = vector_element<E>(q[u], k);
        y[k] = E::store(a.post_mode == PostMode::kRescale
                            ? cfg::torch_rescale<E>(x, ratio, a.phi, a.one_minus_phi)
                            : cfg::apply_factor<E>(x, factor));
      }
      uint4 w;
      memcpy(&w, y, sizeof w);
      out[v] = w;
    }
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

  void begin(const CfgScalars& scalars, void* stream) const override {
    DeviceGuard guard(device_);
    DIFFCOLL_CUDA_CHECK(cudaMemsetAsync(scalars.tickets, 0, kCfgTickets * sizeof(uint32_t),
                                        as_stream(stream)));
  }

  void input_stats(DType dtype, const void* cond, const void* uncond, bool moments,
                   CfgOrder order, CfgExtent extent, const CfgScalars& scalars,
                   void* stream) const override {
    if (extent.numel() == 0) return;
    Pass a = make_pass(extent, scalars, CfgPass::kInputs);
    a.in[0] = cond;
    a.in[1] = uncond;
    a.cond = moments ? 0 : -1;
    a.products = uncond != nullptr;
    a.finish.kind = Finish::kInputs;
    a.finish.order = order;
    a.finish.cond_moments = moments;
    a.finish.zero_star = a.products;
    a.fields.a = moments;
    a.fields.products = a.products;
    DeviceGuard guard(device_);
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      a.vec = vectorizable<E>(a, a.in, a.products ? 2 : 1);
      input_stats_kernel<E>
          <<<pass_grid(a, device_, kBlocksPerSm), kThreads, 0, as_stream(stream)>>>(a);
    });
    check_launch("the CFG input statistics");
  }

  void combine(DType dtype, const CfgCombine& c, CfgExtent extent, void* out,
               const CfgScalars& scalars, void* stream) const override {
    if (extent.numel() == 0) return;
    if (c.count == 0) {
      fill_zero(dtype, out, extent.numel(), true, stream);
      return;
    }
    DIFFCOLL_REQUIRE(c.count <= kCfgCudaMaxInputs, Status::kUnsupported,
                     "the CFG combine on CUDA tensors takes at most ", kCfgCudaMaxInputs,
                     " predictions on one rank, this one holds ", c.count);
    DIFFCOLL_REQUIRE(c.num_terms <= kCfgCudaMaxTerms, Status::kUnsupported,
                     "the CFG combine on CUDA tensors takes at most ", kCfgCudaMaxTerms,
                     " guidance terms, the policy has ", c.num_terms);
    Pass a = make_pass(extent, scalars, CfgPass::kCombine);
    for (int i = 0; i < c.count; ++i) {
      a.in[i] = c.inputs[i];
      if (c.order == CfgOrder::kParallel) a.weight[i] = cfg::f32(c.weights[i]);
    }
    for (int k = 0; k < c.num_terms; ++k) {
      a.scale[k] = cfg::f32(c.terms[k].scale);
      a.plus[k] = static_cast<int8_t>(c.terms[k].plus);
      a.minus[k] = static_cast<int8_t>(c.terms[k].minus);
    }
    a.count = c.count;
    a.num_terms = c.num_terms;
    a.base = c.base;
    a.scaled = c.scaled;
    if (c.scaled >= 0 && c.order == CfgOrder::kParallel) a.scaled_weight = c.weights[c.scaled];
    a.cond = c.cond;
    a.out_moments = c.final_output && c.post.any();
    a.out = out;
    a.finish.order = c.order;
    a.finish.post = c.post;
    a.finish.cond_moments = c.cond >= 0;
    a.finish.kind = a.out_moments ? Finish::kOutput : c.cond >= 0 ? Finish::kCondOnly : Finish::kNone;
    a.fields.a = c.cond >= 0;
    a.fields.b = a.out_moments;
    const void* pointers[kCfgCudaMaxInputs + 1];
    for (int i = 0; i < c.count; ++i) pointers[i] = c.inputs[i];
    pointers[c.count] = out;
    DeviceGuard guard(device_);
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      a.vec = vectorizable<E>(a, pointers, c.count + 1);
      const unsigned grid = pass_grid(a, device_, kBlocksPerSm);
      auto stream_ = as_stream(stream);
      switch (c.order) {
        case CfgOrder::kParallel:
          combine_kernel<E, CfgOrder::kParallel><<<grid, kThreads, 0, stream_>>>(a);
          break;
        case CfgOrder::kSerial:
          combine_kernel<E, CfgOrder::kSerial><<<grid, kThreads, 0, stream_>>>(a);
          break;
        case CfgOrder::kTorch:
          combine_kernel<E, CfgOrder::kTorch><<<grid, kThreads, 0, stream_>>>(a);
          break;
      }
    });
    check_launch("the CFG combine");
  }

  void output_stats(DType dtype, const void* out, CfgOrder order, const CfgPost& post,
                    CfgExtent extent, const CfgScalars& scalars, void* stream) const override {
    if (extent.numel() == 0) return;
    Pass a = make_pass(extent, scalars, CfgPass::kOutput);
    a.out = const_cast<void*>(out);
    a.out_moments = true;
    a.finish.kind = Finish::kOutput;
    a.finish.order = order;
    a.finish.post = post;
    a.fields.b = true;
    launch_output(dtype, a, false, stream, "the CFG output statistics");
  }

  void post_process(DType dtype, void* out, CfgOrder order, const CfgPost& post,
                    CfgExtent extent, const CfgScalars& scalars, void* stream) const override {
    if (!post.any() || extent.numel() == 0) return;
    const bool torch = order == CfgOrder::kTorch;
    Pass a = make_pass(extent, scalars, CfgPass::kNormalize);
    a.out = out;
    a.phi = cfg::f32(post.rescale_phi);
    a.one_minus_phi = cfg::f32(1.0 - post.rescale_phi);
    if (!torch || post.rescale_phi == 0) {  // one pass of factors
      a.post_mode = PostMode::kFactor;
      launch_output(dtype, a, true, stream, "the CFG post-processing");
      return;
    }
    if (post.norm_k != 0) {  // TORCH normalization, then rescale on its result
      a.post_mode = PostMode::kNormalize;
      a.out_moments = true;
      a.finish.kind = Finish::kNormalized;
      a.finish.order = order;
      a.finish.post = post;
      a.fields.b = true;  // the rescale ratio needs the normalized output's std only
      launch_output(dtype, a, true, stream, "the CFG normalization");
    }
    a.post_mode = PostMode::kRescale;
    a.out_moments = false;
    a.finish.kind = Finish::kNone;
    launch_output(dtype, a, true, stream, "the CFG guidance rescale");
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
    const unsigned blocks =
        static_cast<unsigned>(std::min<int64_t>((count + kThreads - 1) / kThreads, 4096));
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
    const int devices = device_count();
    DIFFCOLL_REQUIRE(device_ < devices, Status::kUnsupported, what, " ", view.describe(),
                     " is on CUDA device ", device_, " but this process sees ", devices,
                     " CUDA device(s)");
    if (view.numel() == 0) return;
    RelaxedCaptureScope relaxed;  // a pure query, legal inside the caller's capture
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
  void launch_output(DType dtype, Pass& a, bool write, void* stream, const char* what) const {
    DeviceGuard guard(device_);
    dispatch(dtype, [&](auto e) {
      using E = decltype(e);
      const void* pointers[1] = {a.out};
      a.vec = vectorizable<E>(a, pointers, 1);
      if (a.out_moments)
        output_kernel<E, true>
            <<<pass_grid(a, device_, kBlocksPerSm), kThreads, 0, as_stream(stream)>>>(a, write);
      else if (a.vec && write)
        rewrite_kernel<E><<<rewrite_grid<E>(a, device_), kThreads, 0, as_stream(stream)>>>(a);
      else
        output_kernel<E, false><<<pass_grid(a, device_, kPlainBlocksPerSm), kThreads, 0,
                                  as_stream(stream)>>>(a, write);
    });
    check_launch(what);
  }

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
