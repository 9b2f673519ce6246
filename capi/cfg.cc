// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// CFG policy entry points: policies, dispatch, serial and parallel combines.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "../core/ops/cfg.h"
#include "extensible.h"
#include "handles.h"
#include "tensor.h"

namespace diffcoll {
namespace capi {
namespace {

using ops::CfgPolicy;

// Policies have a registry of their own: a policy handle passed where a
// communicator is expected (or the reverse) is then reported as not live
// instead of being reinterpreted as the other type.
HandleRegistry& policies() {
  static HandleRegistry* registry = new HandleRegistry;  // never destroyed: used at exit
  return *registry;
}

const CfgPolicy& live_policy(const diffcoll_cfg_policy_t* handle, const char* what) {
  DIFFCOLL_REQUIRE(handle != nullptr, Status::kInvalidHandle, what, " is NULL");
  DIFFCOLL_REQUIRE(policies().contains(handle), Status::kInvalidHandle, what,
                   " is not a live CFG policy (already destroyed, or another kind of handle?)");
  return *reinterpret_cast<const CfgPolicy*>(handle);
}

// Reads the fields the caller's struct_size covers, defaults for the rest.
ops::CfgOptions read_options(const diffcoll_cfg_options_t* options) {
  diffcoll_cfg_options_t c = DIFFCOLL_CFG_OPTIONS_INIT;
  if (options) {
    DIFFCOLL_REQUIRE(options->struct_size >= offsetof(diffcoll_cfg_options_t, order) + sizeof(int32_t),
                     Status::kVersion, "options->struct_size ", options->struct_size,
                     " is too small: initialise the options with DIFFCOLL_CFG_OPTIONS_INIT");
    using O = diffcoll_cfg_options_t;
    c = read_extensible(*options, c, &O::order, &O::zero_star, &O::rescale_phi, &O::norm_k,
                        &O::norm_per_sample, &O::zero_init_steps);
  }
  DIFFCOLL_REQUIRE(c.order == DIFFCOLL_CFG_ORDER_SERIAL || c.order == DIFFCOLL_CFG_ORDER_PARALLEL ||
                       c.order == DIFFCOLL_CFG_ORDER_TORCH,
                   Status::kInvalidArgument, "options->order ", c.order,
                   " is not a diffcoll_cfg_order_t");
  ops::CfgOptions o;
  o.order = static_cast<ops::CfgOrder>(c.order);
  o.zero_star = c.zero_star != 0;
  o.rescale_phi = c.rescale_phi;
  o.norm_k = c.norm_k;
  o.norm_per_sample = c.norm_per_sample != 0;
  o.zero_init_steps = c.zero_init_steps;
  return o;
}

std::vector<TensorView> to_views(const diffcoll_tensor_t* tensors, int32_t count,
                                 const char* what) {
  DIFFCOLL_REQUIRE(count >= 0, Status::kInvalidArgument, what, " count ", count,
                   " is negative");
  DIFFCOLL_REQUIRE(count == 0 || tensors != nullptr, Status::kInvalidArgument, what,
                   " is NULL but its count is ", count);
  std::vector<TensorView> views;
  views.reserve(count);
  for (int32_t i = 0; i < count; ++i) {
    const std::string name = std::string(what) + "[" + std::to_string(i) + "]";
    views.push_back(to_view(&tensors[i], name.c_str()));
  }
  return views;
}

}  // namespace
}  // namespace capi
}  // namespace diffcoll

using diffcoll::Status;
using diffcoll::ops::CfgPolicy;
using namespace diffcoll::capi;
namespace ops = diffcoll::ops;

extern "C" {

diffcoll_status_t diffcoll_cfg_policy_create(const diffcoll_cfg_branch_t* branches,
                                             int32_t num_branches, int32_t base,
                                             const diffcoll_cfg_term_t* terms,
                                             int32_t num_terms,
                                             const diffcoll_cfg_options_t* options,
                                             diffcoll_cfg_policy_t** out) {
  return guarded([&] {
    require_out(out, "out");
    *out = nullptr;
    DIFFCOLL_REQUIRE(num_branches >= 1, Status::kInvalidArgument, "num_branches ",
                     num_branches, " must be >= 1");
    DIFFCOLL_REQUIRE(branches != nullptr, Status::kInvalidArgument, "branches is NULL");
    DIFFCOLL_REQUIRE(num_terms >= 0, Status::kInvalidArgument, "num_terms ", num_terms,
                     " is negative");
    DIFFCOLL_REQUIRE(num_terms == 0 || terms != nullptr, Status::kInvalidArgument,
                     "terms is NULL but num_terms is ", num_terms);
    std::vector<ops::CfgBranch> bs(num_branches);
    for (int32_t i = 0; i < num_branches; ++i) {
      DIFFCOLL_REQUIRE(branches[i].name != nullptr, Status::kInvalidArgument, "branch ", i,
                       ": name is NULL");
      DIFFCOLL_REQUIRE(ops::cfg_role_valid(branches[i].role), Status::kInvalidArgument,
                       "branch ", i, " ('", branches[i].name, "'): role ", branches[i].role,
                       " is not a diffcoll_cfg_role_t");
      bs[i].name = branches[i].name;
      bs[i].role = static_cast<ops::CfgRole>(branches[i].role);
    }
    std::vector<ops::CfgTerm> ts(num_terms);
    for (int32_t k = 0; k < num_terms; ++k) ts[k] = {terms[k].scale, terms[k].plus, terms[k].minus};
    auto* policy = new CfgPolicy(std::move(bs), base, std::move(ts), read_options(options));
    diffcoll_cfg_policy_t* handle = reinterpret_cast<diffcoll_cfg_policy_t*>(policy);
    policies().add(handle);
    *out = handle;
  });
}

diffcoll_status_t diffcoll_cfg_policy_destroy(diffcoll_cfg_policy_t* policy) {
  return guarded([&] {
    if (policy == nullptr) return;
    const CfgPolicy* p = &live_policy(policy, "policy");
    policies().remove(policy);
    delete p;
  });
}

diffcoll_status_t diffcoll_cfg_policy_num_branches(const diffcoll_cfg_policy_t* policy,
                                                   int32_t* num_branches) {
  return guarded([&] {
    require_out(num_branches, "num_branches");
    *num_branches = live_policy(policy, "policy").num_branches();
  });
}

diffcoll_status_t diffcoll_cfg_policy_branch(const diffcoll_cfg_policy_t* policy, int32_t index,
                                             const char** name, int32_t* role) {
  return guarded([&] {
    const ops::CfgBranch& b = live_policy(policy, "policy").branch(index);
    if (name) *name = b.name.c_str();
    if (role) *role = static_cast<int32_t>(b.role);
  });
}

diffcoll_status_t diffcoll_cfg_policy_find_branch(const diffcoll_cfg_policy_t* policy,
                                                  const char* name, int32_t* index) {
  return guarded([&] {
    require_out(index, "index");
    *index = -1;
    const CfgPolicy& p = live_policy(policy, "policy");
    DIFFCOLL_REQUIRE(name != nullptr, Status::kInvalidArgument, "name is NULL");
    *index = p.find(name);
  });
}

diffcoll_status_t diffcoll_cfg_policy_weights(const diffcoll_cfg_policy_t* policy,
                                              double* weights, int32_t count) {
  return guarded([&] {
    const CfgPolicy& p = live_policy(policy, "policy");
    require_out(weights, "weights");
    DIFFCOLL_REQUIRE(count == p.num_branches(), Status::kInvalidArgument, "weights count ",
                     count, " does not match the policy's ", p.num_branches(), " branches");
    std::copy(p.weights().begin(), p.weights().end(), weights);
  });
}

diffcoll_status_t diffcoll_cfg_policy_get_options(const diffcoll_cfg_policy_t* policy,
                                                  diffcoll_cfg_options_t* options) {
  return guarded([&] {
    const CfgPolicy& p = live_policy(policy, "policy");
    require_out(options, "options");
    DIFFCOLL_REQUIRE(options->struct_size >= offsetof(diffcoll_cfg_options_t, order) + sizeof(int32_t),
                     Status::kVersion, "options->struct_size ", options->struct_size,
                     " is too small: initialise the options with DIFFCOLL_CFG_OPTIONS_INIT");
    const ops::CfgOptions& o = p.options();
    diffcoll_cfg_options_t c = DIFFCOLL_CFG_OPTIONS_INIT;
    c.order = static_cast<int32_t>(o.order);
    c.zero_star = o.zero_star ? 1 : 0;
    c.rescale_phi = o.rescale_phi;
    c.norm_k = o.norm_k;
    c.norm_per_sample = o.norm_per_sample ? 1 : 0;
    c.zero_init_steps = o.zero_init_steps;
    const size_t caller = options->struct_size;
    std::memcpy(options, &c, std::min(caller, sizeof c));
    options->struct_size = caller;
  });
}

diffcoll_status_t diffcoll_cfg_dispatch(const diffcoll_cfg_policy_t* policy, int32_t degree,
                                        int32_t cfg_rank, int32_t* branches, int32_t capacity,
                                        int32_t* count) {
  return guarded([&] {
    require_out(count, "count");
    *count = 0;
    const CfgPolicy& p = live_policy(policy, "policy");
    DIFFCOLL_REQUIRE(capacity >= 0, Status::kInvalidArgument, "capacity ", capacity,
                     " is negative");
    DIFFCOLL_REQUIRE(capacity == 0 || branches != nullptr, Status::kInvalidArgument,
                     "branches is NULL but capacity is ", capacity);
    const std::vector<int> mine = p.dispatch(degree, cfg_rank);
    *count = static_cast<int32_t>(mine.size());
    if (branches == nullptr) return;  // asking for the count only
    DIFFCOLL_REQUIRE(static_cast<size_t>(capacity) >= mine.size(), Status::kInvalidArgument,
                     "capacity ", capacity, " is too small: CFG rank ", cfg_rank, " of ", degree,
                     " runs ", mine.size(), " branches");
    std::copy(mine.begin(), mine.end(), branches);
  });
}

diffcoll_status_t diffcoll_cfg_combine_serial(const diffcoll_cfg_policy_t* policy,
                                              const diffcoll_tensor_t* preds, int32_t num_preds,
                                              const diffcoll_tensor_t* out, int32_t step,
                                              void* stream) {
  return guarded([&] {
    const CfgPolicy& p = live_policy(policy, "policy");
    std::vector<diffcoll::TensorView> views = to_views(preds, num_preds, "preds");
    ops::cfg_combine_serial(p, views, to_view(out, "out"), step, stream);
  });
}

diffcoll_status_t diffcoll_cfg_combine_parallel(diffcoll_comm_t* comm,
                                                const diffcoll_cfg_policy_t* policy,
                                                const diffcoll_tensor_t* local_preds,
                                                int32_t local_count,
                                                const diffcoll_tensor_t* out, int32_t step,
                                                void* stream) {
  return guarded([&] {
    diffcoll::Comm& c = live_comm(comm, "comm");
    const CfgPolicy& p = live_policy(policy, "policy");
    std::vector<diffcoll::TensorView> views = to_views(local_preds, local_count, "local_preds");
    ops::cfg_combine_parallel(c, p, views, to_view(out, "out"), step, stream);
  });
}

}  // extern "C"
