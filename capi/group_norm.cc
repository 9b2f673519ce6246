// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Distributed GroupNorm.
#include "../core/ops/group_norm.h"

#include "handles.h"
#include "tensor.h"

using diffcoll::Comm;
using diffcoll::Status;
using diffcoll::TensorView;
using namespace diffcoll::capi;
namespace ops = diffcoll::ops;

extern "C" {

diffcoll_status_t diffcoll_group_norm(diffcoll_comm_t* comm, const diffcoll_tensor_t* input,
                                      const diffcoll_tensor_t* output,
                                      const diffcoll_tensor_t* weight,
                                      const diffcoll_tensor_t* bias, int32_t num_groups,
                                      double eps, void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    const TensorView in = to_view(input, "input");
    const TensorView out = output ? to_view(output, "output") : in;
    TensorView w, b;
    ops::GroupNormArgs args;
    args.groups = num_groups;
    args.eps = eps;
    if (weight) {
      w = to_view(weight, "weight");
      args.weight = &w;
    }
    if (bias) {
      b = to_view(bias, "bias");
      args.bias = &b;
    }
    ops::group_norm(c, in, out, args, stream);
  });
}

}  // extern "C"
