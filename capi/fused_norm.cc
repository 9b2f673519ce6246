// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Fused all-reduce + residual add + RMSNorm: workspaces and the operation.
#include "../core/ops/fused_norm.h"

#include <cstddef>
#include <memory>

#include "extensible.h"
#include "handles.h"
#include "tensor.h"

using diffcoll::Comm;
using diffcoll::DType;
using diffcoll::Status;
using diffcoll::TensorView;
using diffcoll::ops::FusedNormArgs;
using diffcoll::ops::FusedNormLimits;
using diffcoll::ops::FusedNormPath;
using diffcoll::ops::FusedNormWorkspace;
using namespace diffcoll::capi;
namespace ops = diffcoll::ops;

// The opaque diffcoll_fused_norm_workspace_t: the core workspace and the
// communicator handle it runs on (checked to be live on every call).
struct diffcoll_fused_norm_workspace {
  diffcoll_comm_t* comm;
  std::unique_ptr<FusedNormWorkspace> workspace;
};

namespace {

// Workspaces have their own registry, so that one is never taken for a
// communicator or a plan.
HandleRegistry& workspaces() {
  static HandleRegistry* registry = new HandleRegistry;  // never destroyed: used at exit
  return *registry;
}

diffcoll_fused_norm_workspace& live_workspace(const diffcoll_fused_norm_workspace_t* handle) {
  DIFFCOLL_REQUIRE(handle != nullptr, Status::kInvalidHandle, "workspace is NULL");
  DIFFCOLL_REQUIRE(workspaces().contains(handle), Status::kInvalidHandle,
                   "workspace is not a live diffcoll fused-norm workspace (already destroyed?)");
  return *const_cast<diffcoll_fused_norm_workspace_t*>(handle);
}

Comm& workspace_comm(const diffcoll_fused_norm_workspace& ws) {
  DIFFCOLL_REQUIRE(handles().contains(ws.comm), Status::kInvalidHandle,
                   "the workspace's communicator was destroyed; destroy the workspace first");
  return live_comm(ws.comm, "the workspace's communicator");
}

// Reads the fields the caller's struct_size covers, defaults for the rest.
FusedNormPath read_path(const diffcoll_fused_norm_options_t* options) {
  diffcoll_fused_norm_options_t o = DIFFCOLL_FUSED_NORM_OPTIONS_INIT;
  if (options) {
    DIFFCOLL_REQUIRE(
        options->struct_size >= offsetof(diffcoll_fused_norm_options_t, path) + sizeof(int32_t),
        Status::kVersion, "options->struct_size ", options->struct_size,
        " is too small: initialise the options with DIFFCOLL_FUSED_NORM_OPTIONS_INIT");
    o = read_extensible(*options, o, &diffcoll_fused_norm_options_t::path);
  }
  DIFFCOLL_REQUIRE(ops::fused_norm_path_valid(o.path), Status::kInvalidArgument, "options->path ",
                   o.path, " is not a diffcoll_fused_norm_path_t");
  return static_cast<FusedNormPath>(o.path);
}

}  // namespace

extern "C" {

diffcoll_status_t diffcoll_fused_norm_workspace_create(diffcoll_comm_t* comm, int64_t max_tokens,
                                                       int64_t max_hidden, int32_t dtype,
                                                       diffcoll_fused_norm_workspace_t** out) {
  if (out) *out = nullptr;
  return guarded([&] {
    require_out(out, "out");
    Comm& c = live_comm(comm, "comm");
    DIFFCOLL_REQUIRE(dtype == DIFFCOLL_FLOAT16 || dtype == DIFFCOLL_BFLOAT16 ||
                         dtype == DIFFCOLL_FLOAT32,
                     Status::kInvalidArgument, "dtype ", dtype,
                     " must be DIFFCOLL_FLOAT16, DIFFCOLL_BFLOAT16 or DIFFCOLL_FLOAT32");
    FusedNormLimits limits;
    limits.max_tokens = max_tokens;
    limits.max_hidden = max_hidden;
    limits.dtype = static_cast<DType>(dtype);
    std::unique_ptr<diffcoll_fused_norm_workspace> ws(
        new diffcoll_fused_norm_workspace{comm, nullptr});
    ws->workspace.reset(new FusedNormWorkspace(c, limits));
    workspaces().add(ws.get());
    *out = ws.release();
  });
}

diffcoll_status_t diffcoll_fused_norm_workspace_destroy(
    diffcoll_fused_norm_workspace_t* workspace) {
  return guarded([&] {
    if (workspace == nullptr) return;
    diffcoll_fused_norm_workspace* ws = &live_workspace(workspace);
    workspaces().remove(workspace);
    delete ws;
  });
}

diffcoll_status_t diffcoll_fused_norm(diffcoll_fused_norm_workspace_t* workspace,
                                      const diffcoll_tensor_t* x,
                                      const diffcoll_tensor_t* residual,
                                      const diffcoll_tensor_t* weight, float eps,
                                      const diffcoll_tensor_t* y,
                                      const diffcoll_tensor_t* residual_out,
                                      const diffcoll_fused_norm_options_t* options, void* stream) {
  return guarded([&] {
    diffcoll_fused_norm_workspace& ws = live_workspace(workspace);
    Comm& c = workspace_comm(ws);
    FusedNormArgs args;
    args.x = to_view(x, "x");
    args.y = to_view(y, "y");
    TensorView residual_view, weight_view, residual_out_view;
    if (residual) {
      residual_view = to_view(residual, "residual");
      args.residual = &residual_view;
    }
    if (weight) {
      weight_view = to_view(weight, "weight");
      args.weight = &weight_view;
    }
    if (residual_out) {
      residual_out_view = to_view(residual_out, "residual_out");
      args.residual_out = &residual_out_view;
    }
    args.eps = eps;
    args.path = read_path(options);
    ws.workspace->run(c, args, stream);
  });
}

}  // extern "C"
