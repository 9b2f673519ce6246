// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Halo exchange plans and the slab helpers.
#include "../core/ops/halo.h"

#include <cstddef>
#include <memory>

#include "../core/ops/slabs.h"
#include "extensible.h"
#include "handles.h"
#include "tensor.h"

using diffcoll::Comm;
using diffcoll::Status;
using diffcoll::TensorView;
using diffcoll::ops::HaloBoundary;
using diffcoll::ops::HaloConfig;
using diffcoll::ops::HaloPlan;
using namespace diffcoll::capi;
namespace ops = diffcoll::ops;

// The opaque diffcoll_halo_plan_t: the core plan and the communicator handle
// it runs on (checked to be live on every call).
struct diffcoll_halo_plan {
  diffcoll_comm_t* comm;
  std::unique_ptr<HaloPlan> plan;
};

namespace {

// Plans have their own registry, so that a plan is never taken for a
// communicator or the other way round.
HandleRegistry& plans() {
  static HandleRegistry* registry = new HandleRegistry;  // never destroyed: used at exit
  return *registry;
}

diffcoll_halo_plan& live_plan(const diffcoll_halo_plan_t* handle) {
  DIFFCOLL_REQUIRE(handle != nullptr, Status::kInvalidHandle, "plan is NULL");
  DIFFCOLL_REQUIRE(plans().contains(handle), Status::kInvalidHandle,
                   "plan is not a live diffcoll halo plan (already destroyed?)");
  return *const_cast<diffcoll_halo_plan_t*>(handle);
}

Comm& plan_comm(const diffcoll_halo_plan& plan) {
  DIFFCOLL_REQUIRE(handles().contains(plan.comm), Status::kInvalidHandle,
                   "the plan's communicator was destroyed; destroy the plan first");
  return live_comm(plan.comm, "the plan's communicator");
}

HaloBoundary boundary(int32_t value, const char* what) {
  DIFFCOLL_REQUIRE(ops::halo_boundary_valid(value), Status::kInvalidArgument, "config->", what, " ",
                   value, " is not a diffcoll_halo_boundary_t");
  return static_cast<HaloBoundary>(value);
}

// Reads the fields the caller's struct_size covers, defaults for the rest.
HaloConfig read_config(const diffcoll_halo_config_t* config) {
  diffcoll_halo_config_t c = DIFFCOLL_HALO_CONFIG_INIT;
  if (config) {
    DIFFCOLL_REQUIRE(
        config->struct_size >= offsetof(diffcoll_halo_config_t, exchange_corners) + sizeof(int32_t),
        Status::kVersion, "config->struct_size ", config->struct_size,
        " is too small: initialise the config with DIFFCOLL_HALO_CONFIG_INIT");
    using C = diffcoll_halo_config_t;
    c = read_extensible(*config, c, &C::grid_rows, &C::grid_cols, &C::row_axis, &C::col_axis,
                        &C::row_before, &C::row_after, &C::col_before, &C::col_after,
                        &C::row_boundary_before, &C::row_boundary_after,
                        &C::col_boundary_before, &C::col_boundary_after, &C::exchange_corners);
  }
  HaloConfig h;
  h.grid[0] = c.grid_rows;
  h.grid[1] = c.grid_cols;
  DIFFCOLL_REQUIRE(c.grid_rows >= 0, Status::kInvalidArgument, "config->grid_rows ", c.grid_rows,
                   " must be >= 1 (or 0 for the communicator's size)");
  h.axis[0] = c.row_axis;
  h.axis[1] = c.col_axis;
  h.before[0] = c.row_before;
  h.after[0] = c.row_after;
  h.before[1] = c.col_before;
  h.after[1] = c.col_after;
  h.boundary_before[0] = boundary(c.row_boundary_before, "row_boundary_before");
  h.boundary_after[0] = boundary(c.row_boundary_after, "row_boundary_after");
  h.boundary_before[1] = boundary(c.col_boundary_before, "col_boundary_before");
  h.boundary_after[1] = boundary(c.col_boundary_after, "col_boundary_after");
  DIFFCOLL_REQUIRE(c.exchange_corners == 0 || c.exchange_corners == 1, Status::kInvalidArgument,
                   "config->exchange_corners ", c.exchange_corners, " must be 0 or 1");
  h.corners = c.exchange_corners != 0;
  return h;
}

}  // namespace

extern "C" {

diffcoll_status_t diffcoll_halo_plan_create(diffcoll_comm_t* comm,
                                            const diffcoll_halo_config_t* config,
                                            diffcoll_halo_plan_t** out) {
  if (out) *out = nullptr;
  return guarded([&] {
    require_out(out, "out");
    Comm& c = live_comm(comm, "comm");
    std::unique_ptr<diffcoll_halo_plan> plan(new diffcoll_halo_plan{comm, nullptr});
    plan->plan.reset(new HaloPlan(c, read_config(config)));
    plans().add(plan.get());
    *out = plan.release();
  });
}

diffcoll_status_t diffcoll_halo_plan_destroy(diffcoll_halo_plan_t* plan) {
  return guarded([&] {
    if (plan == nullptr) return;
    diffcoll_halo_plan* p = &live_plan(plan);
    plans().remove(plan);
    delete p;
  });
}

diffcoll_status_t diffcoll_halo_exchange(diffcoll_halo_plan_t* plan,
                                         const diffcoll_tensor_t* padded, void* stream) {
  return guarded([&] {
    diffcoll_halo_plan& p = live_plan(plan);
    Comm& c = plan_comm(p);
    p.plan->exchange(c, to_view(padded, "padded"), stream);
  });
}

diffcoll_status_t diffcoll_halo_exchange_into(diffcoll_halo_plan_t* plan,
                                              const diffcoll_tensor_t* input,
                                              const diffcoll_tensor_t* padded_output,
                                              void* stream) {
  return guarded([&] {
    diffcoll_halo_plan& p = live_plan(plan);
    Comm& c = plan_comm(p);
    p.plan->exchange_into(c, to_view(input, "input"), to_view(padded_output, "padded_output"),
                          stream);
  });
}

diffcoll_status_t diffcoll_split_extent(int64_t extent, int32_t parts, int32_t index,
                                        int64_t* start, int64_t* length) {
  return guarded([&] {
    require_out(start, "start");
    require_out(length, "length");
    ops::split_extent(extent, parts, index, start, length);
  });
}

diffcoll_status_t diffcoll_gather_slabs(diffcoll_comm_t* comm, const diffcoll_tensor_t* slab,
                                        const diffcoll_tensor_t* whole, int32_t axis, int32_t root,
                                        void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    TensorView in = to_view(slab, "slab");
    if (root == -1 || c.rank() == root) {
      TensorView out = to_view(whole, "whole");
      ops::gather_slabs(c, in, &out, axis, root, stream);
    } else {
      ops::gather_slabs(c, in, nullptr, axis, root, stream);
    }
  });
}

}  // extern "C"
