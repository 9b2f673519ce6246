// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "fused_norm_symmetric.h"

#include <nccl_device.h>

#include <algorithm>

#include "cuda_error.h"
#include "fused_norm_epilogue.h"
#include "fused_norm_row.cuh"

namespace diffcoll {

struct SymmetricNorm::Resources {
  void* buffer = nullptr;
  ncclWindow_t window = nullptr;
  bool has_dev_comm = false;
  ncclDevComm dev{};
};

namespace {

using fused_norm_cuda::kThreads;
using fused_norm_cuda::Pack;
// Resident CTAs per SM asked of the register allocator: the peers' sums of
// a thread's cached vectors (all loads before the first store) take up to
// 128 registers without spills.
constexpr int kLsaCtasPerSm = 2;

struct Params {
  ncclDevComm dev;
  ncclWindow_t window;
  size_t region;  // bytes of each of the window's three regions
  const void* x;
  const void* residual;
  const void* weight;
  void* y;
  void* residual_out;
  int64_t tokens;
  int64_t hidden;
  float eps;
};

enum Region { kX = 0, kY = 1, kResidualOut = 2 };

// Element `element` of region `region` in LSA peer `peer`'s window.
template <typename T>
__device__ __forceinline__ T* in_window(const Params& p, Region region, int peer, int64_t element) {
  return static_cast<T*>(ncclGetLsaPointer(
      p.window, region * p.region + static_cast<size_t>(element) * sizeof(T), peer));
}

// allreduce(x) at elements row_start + e .. + V - 1: every peer's copy of x,
// summed in float in LSA rank order (the same order on every rank, so that
// all ranks get the same bits), rounded to T as an all-reduce returns it.
// All peers' loads issue before the first add.
template <typename T, int V>
__device__ __forceinline__ Pack<T, V> sum_over_peers(const Params& p, int64_t row_start, int64_t e) {
  float v[V];
#pragma unroll
  for (int k = 0; k < V; ++k) v[k] = 0;
  for (int peer = 0; peer < p.dev.lsaSize; ++peer) {
    float t[V];
    elementwise::load<T, V>(in_window<T>(p, kX, peer, row_start + e), t);
#pragma unroll
    for (int k = 0; k < V; ++k) v[k] += t[k];
  }
  Pack<T, V> out;
#pragma unroll
  for (int k = 0; k < V; ++k) out.set(k, elementwise::from_float<T>(v[k]));
  return out;
}

// Normalises `row`, reading x from every peer's window; writes the row's
// residual_out to `residual_out_row` (if not null) and y to `y_row`.
template <typename T, int V>
__device__ __forceinline__ void reduce_row(const Params& p, int64_t row, T* residual_out_row,
                                           T* y_row) {
  const int64_t start = row * p.hidden;
  auto sum_of = [&](int64_t e) { return sum_over_peers<T, V>(p, start, e); };
  const T* residual = p.residual ? static_cast<const T*>(p.residual) + start : nullptr;
  fused_norm_cuda::norm_row<T, V>(sum_of, residual, static_cast<const T*>(p.weight),
                                  residual_out_row, y_row, p.hidden, p.eps);
}

// First row of LSA rank s's share of the rows in two-shot.
__device__ __forceinline__ int64_t share_begin(int64_t tokens, int s, int ranks) {
  return tokens * s / ranks;
}

// Every rank copies x into its window, then normalises every row from all
// peers' copies. CTA b handles rows b, b + grid, ... on every rank and meets
// the peers' CTA b at the barriers; the last barrier keeps a rank from
// overwriting its window while a peer still reads it.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads, kLsaCtasPerSm) one_shot_kernel(Params p) {
  ncclLsaBarrierSession<ncclCoopCta> barrier(ncclCoopCta(), p.dev, ncclTeamTagLsa(), blockIdx.x);
  const T* x = static_cast<const T*>(p.x);
  const int me = p.dev.lsaRank;
  for (int64_t row = blockIdx.x; row < p.tokens; row += gridDim.x)
    fused_norm_cuda::copy_row<T, V>(x + row * p.hidden, in_window<T>(p, kX, me, row * p.hidden),
                                    p.hidden);
  barrier.sync(ncclCoopCta(), cuda::memory_order_acq_rel);
  for (int64_t row = blockIdx.x; row < p.tokens; row += gridDim.x) {
    T* residual_out = p.residual_out ? static_cast<T*>(p.residual_out) + row * p.hidden : nullptr;
    reduce_row<T, V>(p, row, residual_out, static_cast<T*>(p.y) + row * p.hidden);
  }
  barrier.sync(ncclCoopCta(), cuda::memory_order_acq_rel);
}

// Rank s normalises its share of the rows (reduce-scatter + epilogue) into
// its window's y and residual_out regions; then every rank gathers every
// share. CTA b handles local index b, b + grid, ... of every share, so the
// peers' CTA b wrote exactly the rows CTA b reads after each barrier. A
// rank's next kernel starts only after all its CTAs passed the second
// barrier, i.e. after every peer finished reading its x region.
template <typename T, int V>
__global__ void __launch_bounds__(kThreads, kLsaCtasPerSm) two_shot_kernel(Params p) {
  ncclLsaBarrierSession<ncclCoopCta> barrier(ncclCoopCta(), p.dev, ncclTeamTagLsa(), blockIdx.x);
  const T* x = static_cast<const T*>(p.x);
  const int me = p.dev.lsaRank, ranks = p.dev.lsaSize;
  for (int s = 0; s < ranks; ++s) {
    const int64_t end = share_begin(p.tokens, s + 1, ranks);
    for (int64_t row = share_begin(p.tokens, s, ranks) + blockIdx.x; row < end; row += gridDim.x)
      fused_norm_cuda::copy_row<T, V>(x + row * p.hidden, in_window<T>(p, kX, me, row * p.hidden),
                                      p.hidden);
  }
  barrier.sync(ncclCoopCta(), cuda::memory_order_acq_rel);
  const int64_t my_end = share_begin(p.tokens, me + 1, ranks);
  for (int64_t row = share_begin(p.tokens, me, ranks) + blockIdx.x; row < my_end;
       row += gridDim.x) {
    T* residual_out =
        p.residual_out ? in_window<T>(p, kResidualOut, me, row * p.hidden) : nullptr;
    reduce_row<T, V>(p, row, residual_out, in_window<T>(p, kY, me, row * p.hidden));
  }
  barrier.sync(ncclCoopCta(), cuda::memory_order_acq_rel);
  for (int s = 0; s < ranks; ++s) {
    const int64_t end = share_begin(p.tokens, s + 1, ranks);
    for (int64_t row = share_begin(p.tokens, s, ranks) + blockIdx.x; row < end;
         row += gridDim.x) {
      const int64_t start = row * p.hidden;
      fused_norm_cuda::copy_row<T, V>(in_window<T>(p, kY, s, start), static_cast<T*>(p.y) + start,
                                      p.hidden);
      if (p.residual_out)
        fused_norm_cuda::copy_row<T, V>(in_window<T>(p, kResidualOut, s, start),
                                        static_cast<T*>(p.residual_out) + start, p.hidden);
    }
  }
}

template <typename T, int V>
void launch(bool two_shot, unsigned grid, const Params& p, cudaStream_t stream) {
  if (two_shot)
    two_shot_kernel<T, V><<<grid, kThreads, 0, stream>>>(p);
  else
    one_shot_kernel<T, V><<<grid, kThreads, 0, stream>>>(p);
}

template <typename T>
void launch_typed(bool two_shot, unsigned grid, int width, const Params& p, cudaStream_t stream) {
  if (width > 1)
    launch<T, 16 / sizeof(T)>(two_shot, grid, p, stream);
  else
    launch<T, 1>(two_shot, grid, p, stream);
}

// Runs `step`, a settled NCCL call; a refusal (whatever NCCL calls it)
// becomes the returned reason, so that the workspace falls back to the NCCL
// path. A timeout stays an error: the communicator was aborted.
template <typename Step>
std::string attempt(Step&& step) {
  try {
    step();
    return "";
  } catch (const Error& e) {
    if (e.status() == Status::kTimeout) throw;
    return e.what();
  }
}

}  // namespace

SymmetricNorm::SymmetricNorm(NcclBackend& nccl)
    : nccl_(nccl), resources_(std::make_unique<Resources>()) {}

SymmetricNorm::~SymmetricNorm() {
  DeviceGuard guard(nccl_.device());
  cudaDeviceSynchronize();  // no kernel may still use the window
  cudaGetLastError();
  Resources& r = *resources_;
  try {
    if (r.has_dev_comm)
      nccl_.settle(ncclDevCommDestroy(nccl_.setup_comm(), &r.dev), "ncclDevCommDestroy");
    if (r.window)
      nccl_.settle(ncclCommWindowDeregister(nccl_.setup_comm(), r.window),
                   "ncclCommWindowDeregister");
  } catch (const Error&) {
    // A destructor cannot report; the communicator itself reports its state.
  }
  if (r.buffer) ncclMemFree(r.buffer);
}

std::string SymmetricNorm::allocate(size_t region_bytes) {
  region_bytes_ = (region_bytes + 4095) / 4096 * 4096;
  DeviceGuard guard(nccl_.device());
  ncclResult_t result = ncclMemAlloc(&resources_->buffer, 3 * region_bytes_);
  if (result == ncclSuccess) return "";
  resources_->buffer = nullptr;
  return std::string("ncclMemAlloc of ") + std::to_string(3 * region_bytes_) +
         " bytes failed: " + ncclGetErrorString(result);
}

std::string SymmetricNorm::register_window() {
  DeviceGuard guard(nccl_.device());
  return attempt([&] {
    nccl_.settle(ncclCommWindowRegister(nccl_.setup_comm(), resources_->buffer,
                                        3 * region_bytes_, &resources_->window,
                                        NCCL_WIN_COLL_SYMMETRIC),
                 "ncclCommWindowRegister");
  });
}

std::string SymmetricNorm::create_device_comm() {
  DeviceGuard guard(nccl_.device());
  ncclDevCommRequirements requirements{};
  requirements.lsaBarrierCount = kMaxCtas;  // one per CTA of a kernel
  std::string why = attempt([&] {
    nccl_.settle(ncclDevCommCreate(nccl_.setup_comm(), &requirements, &resources_->dev),
                 "ncclDevCommCreate");
  });
  if (!why.empty()) return why;
  resources_->has_dev_comm = true;
  const ncclDevComm& dev = resources_->dev;
  if (dev.lsaSize != dev.nRanks)
    return "only " + std::to_string(dev.lsaSize) + " of the group's " +
           std::to_string(dev.nRanks) +
           " GPUs reach each other by load/store (NVLink or PCIe peer access)";
  return "";
}

void SymmetricNorm::one_shot(const ops::FusedNormCall& call, void* stream) {
  const unsigned grid = static_cast<unsigned>(std::min<int64_t>(call.tokens, kMaxCtas));
  launch_kernel(call, false, grid, stream);
}

void SymmetricNorm::two_shot(const ops::FusedNormCall& call, void* stream) {
  const int64_t share = (call.tokens + resources_->dev.lsaSize - 1) / resources_->dev.lsaSize;
  const unsigned grid =
      static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(share, kMaxCtas)));
  launch_kernel(call, true, grid, stream);
}

void SymmetricNorm::launch_kernel(const ops::FusedNormCall& c, bool two_shot, unsigned grid,
                                  void* stream) {
  DIFFCOLL_REQUIRE(static_cast<size_t>(c.tokens * c.hidden) * dtype_size(c.dtype) <= region_bytes_,
                   Status::kInternal, "fused_norm call larger than the symmetric window");
  DeviceGuard guard(nccl_.device());
  Params p;
  p.dev = resources_->dev;
  p.window = resources_->window;
  p.region = region_bytes_;
  p.x = c.x;
  p.residual = c.residual;
  p.weight = c.weight;
  p.y = c.y;
  p.residual_out = c.residual_out;
  p.tokens = c.tokens;
  p.hidden = c.hidden;
  p.eps = c.eps;
  const int width = fused_norm_vector_width(c);
  auto s = static_cast<cudaStream_t>(stream);
  switch (c.dtype) {
    case DType::kFloat32: launch_typed<float>(two_shot, grid, width, p, s); break;
    case DType::kBFloat16: launch_typed<__nv_bfloat16>(two_shot, grid, width, p, s); break;
    case DType::kFloat16: launch_typed<__half>(two_shot, grid, width, p, s); break;
    default: fail(Status::kInternal, "fused_norm kernel for ", dtype_name(c.dtype));
  }
  DIFFCOLL_CUDA_CHECK(cudaGetLastError());
}

}  // namespace diffcoll
