// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The one-kernel fused-norm paths, built on NCCL's own machinery: a buffer
// from ncclMemAlloc registered as a symmetric window (ncclCommWindowRegister)
// and an NCCL device communicator (ncclDevCommCreate) whose LSA team gives
// load/store pointers into every peer's window and LSA barriers. Both live on
// the backend's non-blocking set-up communicator, whose calls settle() bounds.
//
// The window holds three regions of region_bytes each: x (every rank copies
// its x there), y and residual_out (two-shot's per-rank results, which the
// other ranks gather). Set-up is stepwise so that the caller can make every
// rank agree after each collective step (over the control plane).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "../ops/fused_norm.h"
#include "nccl_backend.h"

namespace diffcoll {

class SymmetricNorm {
 public:
  explicit SymmetricNorm(NcclBackend& nccl);
  // Waits for the device, then destroys the device communicator and
  // deregisters the window (collective, as NCCL requires) and frees it.
  ~SymmetricNorm();
  SymmetricNorm(const SymmetricNorm&) = delete;
  SymmetricNorm& operator=(const SymmetricNorm&) = delete;

  // Each step returns "" on success or why it could not be done here.
  // Local: ncclMemAlloc of 3 regions of region_bytes (rounded up to 4 KiB).
  std::string allocate(size_t region_bytes);
  // Collective over the NCCL communicator.
  std::string register_window();
  // Collective; also refuses a group that the LSA team does not cover.
  std::string create_device_comm();

  size_t region_bytes() const { return region_bytes_; }

  // One kernel each, stream-ordered on `stream` (a cudaStream_t), capturable:
  // call.tokens * call.hidden elements must fit in region_bytes.
  void one_shot(const ops::FusedNormCall& call, void* stream);
  void two_shot(const ops::FusedNormCall& call, void* stream);

  // CTAs per kernel at most (one LSA barrier each): one row per CTA up to
  // 512 rows, about four CTAs of 256 threads per SM of an H100/H200. (128
  // made a 1K-token call loop eight rows deep per CTA, one row's latency
  // after another.)
  static constexpr int kMaxCtas = 512;

 private:
  void launch_kernel(const ops::FusedNormCall& call, bool two_shot, unsigned grid, void* stream);

  struct Resources;  // holds NCCL device-API types, which only nvcc compiles
  NcclBackend& nccl_;
  size_t region_bytes_ = 0;
  std::unique_ptr<Resources> resources_;
};

}  // namespace diffcoll
