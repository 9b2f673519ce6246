// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Classifier-free guidance as a first-class object: a policy (branches,
// guidance terms, arithmetic order, post-processing), the dispatch of
// branches to CFG ranks, and the serial and parallel combines.
//
// The combine is out = pred[base] + sum_k scale_k * (pred[plus_k] - pred[minus_k]),
// i.e. the linear form out = sum_i w_i * pred_i with w[base] += 1,
// w[plus_k] += scale_k, w[minus_k] -= scale_k. See docs/CFG.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../comm.h"
#include "../tensor.h"
#include "cfg_math.h"

namespace diffcoll {
namespace ops {

// Values equal diffcoll_cfg_role_t.
enum class CfgRole : int32_t { kCond = 1, kUncond = 2, kPerturbed = 3, kModality = 4, kOther = 5 };
bool cfg_role_valid(int32_t value);
const char* cfg_role_name(CfgRole role);

struct CfgBranch {
  std::string name;
  CfgRole role = CfgRole::kOther;
};

struct CfgOptions {
  CfgOrder order = CfgOrder::kSerial;
  double rescale_phi = 0;  // guidance rescale strength in [0, 1]; 0: off
  double norm_k = 0;       // CFG normalization bound (> 0); 0: off
  bool norm_per_sample = false;
  bool zero_star = false;   // CFG-zero* optimised scale of the unconditional branch
  int zero_init_steps = 0;  // output zeroed while step < zero_init_steps
};

// Immutable after construction, so one policy may serve several threads.
class CfgPolicy {
 public:
  // Validates everything; throws Error(kInvalidArgument) with the reason.
  CfgPolicy(std::vector<CfgBranch> branches, int base, std::vector<CfgTerm> terms,
            CfgOptions options);

  int num_branches() const { return static_cast<int>(branches_.size()); }
  const CfgBranch& branch(int index) const;  // throws on a bad index
  int find(const std::string& name) const;   // throws kInvalidArgument if unknown
  int base() const { return base_; }
  const std::vector<CfgTerm>& terms() const { return terms_; }
  const std::vector<double>& weights() const { return weights_; }
  const CfgOptions& options() const { return options_; }
  CfgPost post() const;
  // The unique branch of role COND / UNCOND, or -1 if there is none or several.
  int cond() const { return cond_; }
  int uncond() const { return uncond_; }
  // Hash of everything that changes the result, for DIFFCOLL_CHECK.
  uint64_t fingerprint() const { return fingerprint_; }

  // The CFG rank that runs each branch for a CFG degree (see docs/CFG.md):
  // contiguous balanced blocks in branch index order, rank r running
  // [floor(r*n/d), floor((r+1)*n/d)); with CFG-zero* on and d < n, the units
  // {cond, uncond}, then every other branch in index order, are split the
  // same way (m = n - 1 units), so cond and uncond share a rank.
  std::vector<int> owners(int degree) const;
  // The branches rank `rank` runs, ascending.
  std::vector<int> dispatch(int degree, int rank) const;

 private:
  std::vector<CfgBranch> branches_;
  int base_;
  std::vector<CfgTerm> terms_;
  CfgOptions options_;
  std::vector<double> weights_;
  int cond_ = -1;
  int uncond_ = -1;
  uint64_t fingerprint_ = 0;
};

// All n predictions on this process, in branch order; out may be one of them.
void cfg_combine_serial(const CfgPolicy& policy, const std::vector<TensorView>& preds,
                        const TensorView& out, int step, void* stream);

// `comm` is the CFG group: its size is the CFG degree and its rank the CFG
// rank. `local` holds this rank's branches in dispatch order (maybe none).
// Collective over the group; every rank passes the same shape, dtype, policy
// and step (strides may differ between ranks).
void cfg_combine_parallel(Comm& comm, const CfgPolicy& policy,
                          const std::vector<TensorView>& local, const TensorView& out,
                          int step, void* stream);

}  // namespace ops
}  // namespace diffcoll
