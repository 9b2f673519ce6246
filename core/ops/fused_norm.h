// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Fused all-reduce + residual add + RMSNorm, the end of every tensor-parallel
// transformer block:
//   residual_out = allreduce(x) + residual
//   y            = residual_out / sqrt(mean(residual_out^2) + eps) * weight
// on any group of a communicator. A workspace, created collectively before
// any CUDA-graph capture, holds everything the operation needs (on the
// device: an NCCL symmetric window and an NCCL device communicator), so that
// the operation itself allocates and exchanges nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "../comm.h"
#include "../tensor.h"

namespace diffcoll {
namespace ops {

// Values equal diffcoll_fused_norm_path_t.
enum class FusedNormPath : int32_t {
  kAuto = 0,        // chosen by size (see choose_fused_norm_path)
  kOneShot = 1,     // one kernel: every rank reads all peers' rows
  kTwoShot = 2,     // one kernel: reduce-scatter by rows, epilogue, all-gather
  kNcclKernel = 3,  // NCCL all-reduce, then one residual + RMSNorm kernel
};

bool fused_norm_path_valid(int32_t value);
const char* fused_norm_path_name(FusedNormPath path);

// The largest call a workspace serves.
struct FusedNormLimits {
  int64_t max_tokens = 0;
  int64_t max_hidden = 0;
  DType dtype = DType::kBFloat16;  // calls may use any dtype no wider than this
};

// One call on dense row-major buffers of `tokens` rows of `hidden` elements.
// residual, weight and residual_out may be null (the optional forms); y and
// residual_out may alias x or residual.
struct FusedNormCall {
  const void* x = nullptr;
  const void* residual = nullptr;
  const void* weight = nullptr;
  void* y = nullptr;
  void* residual_out = nullptr;
  int64_t tokens = 0;
  int64_t hidden = 0;
  DType dtype = DType::kBFloat16;
  float eps = 1e-6f;
};

// The device half of a workspace (core/cuda; a stand-in refuses without CUDA).
class FusedNormDevice {
 public:
  virtual ~FusedNormDevice() = default;
  // Whether the one-kernel paths can run a call of `bytes` bytes; if not,
  // `why` says why (no NVLink/LSA peers, registration refused, too large).
  virtual bool fused_available(size_t bytes, std::string* why) const = 0;
  // Runs `call` by `path` (never kAuto) on `stream`, stream-ordered.
  virtual void run(const FusedNormCall& call, FusedNormPath path, void* stream) = 0;
};

// Collective over `comm`: allocates and registers the symmetric window and
// creates the NCCL device communicator, the ranks agreeing over the host side
// after each step; where a step fails on any rank, no rank offers the
// one-kernel paths (fused_available says why). Call outside graph capture.
std::unique_ptr<FusedNormDevice> make_fused_norm_device(Comm& comm, const FusedNormLimits& limits);

// Calls up to this size may take the one-kernel paths (the device half's
// symmetric window holds this much per region); larger ones take NCCL.
constexpr size_t kFusedNormTwoShotMaxBytes = size_t{32} << 20;

// kAuto's crossovers, all in this table so that measurements can retune
// them (tests/bench/fused_norm_bench prints every path at every size): for
// groups of up to `max_ranks` ranks, one-shot for calls of up to
// `one_shot_max` bytes of x, two-shot up to `two_shot_max`, NCCL + kernel
// beyond; larger groups take the last row.
//  - One rank: one-shot moves what NCCL's copy and the epilogue move (x in,
//    the window out, the epilogue's four passes) and saves NCCL's launch,
//    which matters while launches dominate; two-shot only adds a gather.
//    Measured on an H200 (fused_norm_bench, hidden 5120 bf16, 2026-12-02):
//    one-shot 4.9 us against NCCL + kernel 10.2 us at 1.3 MB, 17.0 against
//    14.3 us at 10.5 MB; the crossover is taken between, at 4 MiB.
//  - Two or more: first guesses from the shape of published numbers (one
//    rank's reads from every peer against two rounds and a barrier); to be
//    measured on the lent machines with NVLink.
struct FusedNormCrossover {
  int max_ranks;
  size_t one_shot_max;
  size_t two_shot_max;
};
inline constexpr FusedNormCrossover kFusedNormCrossovers[] = {
    {1, size_t{4} << 20, size_t{4} << 20},
    {2, size_t{512} << 10, kFusedNormTwoShotMaxBytes},
    {8, size_t{256} << 10, kFusedNormTwoShotMaxBytes},
};

// kAuto's choice for a call of `bytes` bytes on a group of `ranks`, when the
// one-kernel paths are available (kFusedNormCrossovers).
FusedNormPath choose_fused_norm_path(size_t bytes, int ranks);

// The tensors of one call, as the caller passed them.
struct FusedNormArgs {
  TensorView x;
  const TensorView* residual = nullptr;
  const TensorView* weight = nullptr;
  TensorView y;
  const TensorView* residual_out = nullptr;
  float eps = 1e-6f;
  FusedNormPath path = FusedNormPath::kAuto;
};

class FusedNormWorkspace {
 public:
  // Collective over `comm`: every rank passes the same limits (checked over
  // the host side, kMismatch otherwise). With a device side, also builds the
  // device half (see make_fused_norm_device).
  FusedNormWorkspace(Comm& comm, const FusedNormLimits& limits);
  ~FusedNormWorkspace();

  // Collective over the workspace's communicator, which `comm` must be.
  // Host tensors: Gloo all-reduce and plain loops (the reference). CUDA
  // tensors: the path asked for, or chosen by size.
  void run(Comm& comm, const FusedNormArgs& args, void* stream);

 private:
  // The path a CUDA call of `bytes` bytes takes when it asks for `path`.
  FusedNormPath resolve(FusedNormPath path, size_t bytes) const;
  void run_host(Comm& comm, const FusedNormCall& call);

  Comm* comm_;
  FusedNormLimits limits_;
  std::unique_ptr<FusedNormDevice> device_;
};

}  // namespace ops
}  // namespace diffcoll
