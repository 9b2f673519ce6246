// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The device half of a fused-norm workspace: the NCCL path (NCCL all-reduce
// into y, then one epilogue kernel) and, where the group's GPUs reach each
// other by load/store, the one-kernel paths of SymmetricNorm.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../error.h"
#include "../ops/fused_norm.h"
#include "cuda_error.h"
#include "cuda_side.h"
#include "fused_norm_epilogue.h"
#include "fused_norm_symmetric.h"
#include "load_store_reach.h"

namespace diffcoll {
namespace {

// Every rank shares whether its step worked (over the host side); returns
// the first rank where it did not, or -1 if it worked everywhere.
int first_failure(Comm& comm, bool ok) {
  const int32_t mine = ok ? 1 : 0;
  std::vector<int32_t> all(static_cast<size_t>(comm.size()));
  comm.host_backend().all_gather(&mine, all.data(), sizeof mine, nullptr);
  for (int r = 0; r < comm.size(); ++r)
    if (!all[r]) return r;
  return -1;
}

class CudaFusedNormDevice : public ops::FusedNormDevice {
 public:
  CudaFusedNormDevice(Comm& comm, const ops::FusedNormLimits& limits)
      : nccl_(static_cast<CudaSide&>(*comm.device_side()).nccl()) {
    const size_t max_bytes =
        static_cast<size_t>(limits.max_tokens * limits.max_hidden) * dtype_size(limits.dtype);
    // A failed device-API set-up would leave the NCCL communicator broken, so
    // it is tried only where every GPU can reach the others.
    const std::string reach = load_store_reach(comm, nccl_.device());
    if (!reach.empty()) {
      unavailable_ = "the one-kernel paths need every GPU of the group to reach the others by "
                     "load/store, but " + reach;
      return;
    }
    auto symmetric = std::make_unique<SymmetricNorm>(nccl_);
    // Each step on every rank, then agreement over the control plane, so
    // that all ranks take the same paths (a collective step is only tried
    // where every rank can take part).
    std::string why = symmetric->allocate(std::min(max_bytes, ops::kFusedNormTwoShotMaxBytes));
    if (!agree(comm, why, "allocating the symmetric window")) return;
    why = symmetric->register_window();
    if (!agree(comm, why, "registering the symmetric window")) {
      abandoned_ = std::move(symmetric);  // deregistered collectively at destruction
      return;
    }
    why = symmetric->create_device_comm();
    if (!agree(comm, why, "creating the NCCL device communicator")) {
      abandoned_ = std::move(symmetric);
      return;
    }
    symmetric_ = std::move(symmetric);
  }

  bool fused_available(size_t bytes, std::string* why) const override {
    if (!symmetric_) {
      *why = unavailable_;
      return false;
    }
    if (bytes > symmetric_->region_bytes()) {
      *why = "the call's " + std::to_string(bytes) + " bytes exceed the symmetric window's " +
             std::to_string(symmetric_->region_bytes());
      return false;
    }
    return true;
  }

  void run(const ops::FusedNormCall& call, ops::FusedNormPath path, void* stream) override {
    switch (path) {
      case ops::FusedNormPath::kOneShot:
        symmetric_->one_shot(call, stream);
        return;
      case ops::FusedNormPath::kTwoShot:
        symmetric_->two_shot(call, stream);
        return;
      default:
        run_nccl(call, stream);
    }
  }

 private:
  bool agree(Comm& comm, const std::string& why, const char* step) {
    const int failed = first_failure(comm, why.empty());
    if (failed < 0) return true;
    unavailable_ = std::string(step) + " failed on rank " + std::to_string(failed) +
                   (why.empty() ? std::string() : " (here: " + why + ")");
    return false;
  }

  // NCCL sums x into y (in place when y is x), then one kernel applies the
  // residual and the norm to y's rows.
  void run_nccl(const ops::FusedNormCall& call, void* stream) {
    const size_t count = static_cast<size_t>(call.tokens * call.hidden);
    nccl_.all_reduce_into(call.x, call.y, count, call.dtype, Reduction{}, stream);
    DeviceGuard guard(nccl_.device());
    launch_fused_norm_epilogue(call, stream);
  }

  NcclBackend& nccl_;
  std::unique_ptr<SymmetricNorm> symmetric_;
  std::unique_ptr<SymmetricNorm> abandoned_;  // set up halfway on some rank: kept until the end
  std::string unavailable_;
};

}  // namespace

namespace ops {

std::unique_ptr<FusedNormDevice> make_fused_norm_device(Comm& comm, const FusedNormLimits& limits) {
  return std::make_unique<CudaFusedNormDevice>(comm, limits);
}

}  // namespace ops
}  // namespace diffcoll
