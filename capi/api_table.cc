// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// diffcoll_get_api: the versioned table of every entry point, for programs
// that dlopen() the library and want a single dlsym().
//
// Fields are set by name. A function added to the public header gets its
// pointer appended to diffcoll_api_t there and one line here; the table
// version stays DIFFCOLL_API_VERSION_1 for as long as the soname is
// libdiffcoll.so.0 (tests/packaging checks that the table lists every
// exported function in header order).
#include <cstring>

#include "handles.h"

using diffcoll::Status;
using namespace diffcoll::capi;

namespace {

diffcoll_api_t make_api_v1() {
  diffcoll_api_t t;
  std::memset(&t, 0, sizeof t);
  t.struct_size = sizeof t;
  t.version = DIFFCOLL_API_VERSION_1;
  t.diffcoll_version = &diffcoll_version;
  t.diffcoll_status_string = &diffcoll_status_string;
  t.diffcoll_last_error = &diffcoll_last_error;
  t.diffcoll_comm_create = &diffcoll_comm_create;
  t.diffcoll_comm_create_from_env = &diffcoll_comm_create_from_env;
  t.diffcoll_comm_split = &diffcoll_comm_split;
  t.diffcoll_comm_create_group = &diffcoll_comm_create_group;
  t.diffcoll_comm_wrap_nccl = &diffcoll_comm_wrap_nccl;
  t.diffcoll_comm_destroy = &diffcoll_comm_destroy;
  t.diffcoll_comm_size = &diffcoll_comm_size;
  t.diffcoll_comm_rank = &diffcoll_comm_rank;
  t.diffcoll_comm_global_rank = &diffcoll_comm_global_rank;
  t.diffcoll_comm_reserve = &diffcoll_comm_reserve;
  t.diffcoll_comm_get_stats = &diffcoll_comm_get_stats;
  t.diffcoll_comm_reset_stats = &diffcoll_comm_reset_stats;
  t.diffcoll_all_reduce = &diffcoll_all_reduce;
  t.diffcoll_broadcast = &diffcoll_broadcast;
  t.diffcoll_reduce = &diffcoll_reduce;
  t.diffcoll_all_gather = &diffcoll_all_gather;
  t.diffcoll_reduce_scatter = &diffcoll_reduce_scatter;
  t.diffcoll_all_to_all = &diffcoll_all_to_all;
  t.diffcoll_gather = &diffcoll_gather;
  t.diffcoll_scatter = &diffcoll_scatter;
  t.diffcoll_send = &diffcoll_send;
  t.diffcoll_recv = &diffcoll_recv;
  t.diffcoll_group_start = &diffcoll_group_start;
  t.diffcoll_group_end = &diffcoll_group_end;
  t.diffcoll_barrier = &diffcoll_barrier;
  t.diffcoll_cfg_policy_create = &diffcoll_cfg_policy_create;
  t.diffcoll_cfg_policy_destroy = &diffcoll_cfg_policy_destroy;
  t.diffcoll_cfg_policy_num_branches = &diffcoll_cfg_policy_num_branches;
  t.diffcoll_cfg_policy_branch = &diffcoll_cfg_policy_branch;
  t.diffcoll_cfg_policy_find_branch = &diffcoll_cfg_policy_find_branch;
  t.diffcoll_cfg_policy_weights = &diffcoll_cfg_policy_weights;
  t.diffcoll_cfg_policy_get_options = &diffcoll_cfg_policy_get_options;
  t.diffcoll_cfg_dispatch = &diffcoll_cfg_dispatch;
  t.diffcoll_cfg_combine_serial = &diffcoll_cfg_combine_serial;
  t.diffcoll_cfg_combine_parallel = &diffcoll_cfg_combine_parallel;
  t.diffcoll_halo_plan_create = &diffcoll_halo_plan_create;
  t.diffcoll_halo_plan_destroy = &diffcoll_halo_plan_destroy;
  t.diffcoll_halo_exchange = &diffcoll_halo_exchange;
  t.diffcoll_halo_exchange_into = &diffcoll_halo_exchange_into;
  t.diffcoll_split_extent = &diffcoll_split_extent;
  t.diffcoll_gather_slabs = &diffcoll_gather_slabs;
  t.diffcoll_group_norm = &diffcoll_group_norm;
  t.diffcoll_fused_norm_workspace_create = &diffcoll_fused_norm_workspace_create;
  t.diffcoll_fused_norm_workspace_destroy = &diffcoll_fused_norm_workspace_destroy;
  t.diffcoll_fused_norm = &diffcoll_fused_norm;
  t.diffcoll_ulysses_all_to_all = &diffcoll_ulysses_all_to_all;
  t.diffcoll_usp_mesh_create = &diffcoll_usp_mesh_create;
  t.diffcoll_usp_mesh_destroy = &diffcoll_usp_mesh_destroy;
  t.diffcoll_ring_create = &diffcoll_ring_create;
  t.diffcoll_ring_destroy = &diffcoll_ring_destroy;
  t.diffcoll_ring_start = &diffcoll_ring_start;
  t.diffcoll_ring_wait = &diffcoll_ring_wait;
  t.diffcoll_ulysses_all_to_all_ex = &diffcoll_ulysses_all_to_all_ex;
  t.diffcoll_ulysses_kv_heads = &diffcoll_ulysses_kv_heads;
  t.diffcoll_all_gather_ex = &diffcoll_all_gather_ex;
  return t;
}

}  // namespace

extern "C" {

diffcoll_status_t diffcoll_get_api(uint32_t version, const diffcoll_api_t** table) {
  return guarded([&] {
    require_out(table, "table");
    *table = nullptr;
    DIFFCOLL_REQUIRE(version == DIFFCOLL_API_VERSION_1, Status::kVersion,
                     "diffcoll_get_api: unknown function table version ", version,
                     "; this library (diffcoll ", DIFFCOLL_VERSION_MAJOR, ".",
                     DIFFCOLL_VERSION_MINOR, ".", DIFFCOLL_VERSION_PATCH,
                     ") provides version ", DIFFCOLL_API_VERSION_1,
                     " (DIFFCOLL_API_VERSION_1)");
    static const diffcoll_api_t api_v1 = make_api_v1();  // thread-safe init
    *table = &api_v1;
  });
}

}  // extern "C"
