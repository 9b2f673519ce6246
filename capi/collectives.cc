// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Collective and point-to-point entry points.
#include "../core/ops/collectives.h"

#include <cstddef>

#include "extensible.h"
#include "handles.h"
#include "tensor.h"
#include "wire_format.h"

using diffcoll::Comm;
using diffcoll::Fp8Wire;
using diffcoll::Reduction;
using diffcoll::RedOp;
using diffcoll::Status;
using diffcoll::TensorView;
using namespace diffcoll::capi;
namespace ops = diffcoll::ops;

namespace {

Reduction to_reduction(int32_t op, double scalar) {
  DIFFCOLL_REQUIRE(diffcoll::red_op_valid(op), Status::kInvalidArgument, "op ", op,
                   " is not a diffcoll_red_op_t");
  return Reduction{static_cast<RedOp>(op), scalar};
}

}  // namespace

extern "C" {

diffcoll_status_t diffcoll_all_reduce(diffcoll_comm_t* comm, const diffcoll_tensor_t* tensor,
                                      int32_t op, double scalar, void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    ops::all_reduce(c, to_view(tensor, "tensor"), to_reduction(op, scalar), stream);
  });
}

diffcoll_status_t diffcoll_broadcast(diffcoll_comm_t* comm, const diffcoll_tensor_t* tensor,
                                     int32_t root, void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    ops::broadcast(c, to_view(tensor, "tensor"), root, stream);
  });
}

diffcoll_status_t diffcoll_reduce(diffcoll_comm_t* comm, const diffcoll_tensor_t* tensor,
                                  int32_t op, double scalar, int32_t root, void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    ops::reduce(c, to_view(tensor, "tensor"), to_reduction(op, scalar), root, stream);
  });
}

diffcoll_status_t diffcoll_all_gather(diffcoll_comm_t* comm, const diffcoll_tensor_t* input,
                                      const diffcoll_tensor_t* output, int32_t axis,
                                      void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    ops::all_gather(c, to_view(input, "input"), to_view(output, "output"), axis, stream);
  });
}

diffcoll_status_t diffcoll_all_gather_ex(diffcoll_comm_t* comm, const diffcoll_tensor_t* input,
                                         const diffcoll_tensor_t* output, int32_t axis,
                                         const diffcoll_all_gather_options_t* options,
                                         void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    diffcoll_all_gather_options_t o = DIFFCOLL_ALL_GATHER_OPTIONS_INIT;
    if (options) {
      using T = diffcoll_all_gather_options_t;
      DIFFCOLL_REQUIRE(options->struct_size >= offsetof(T, scale_block) + sizeof(int32_t),
                       Status::kVersion, "options->struct_size ", options->struct_size,
                       " is too small: initialise the options with "
                       "DIFFCOLL_ALL_GATHER_OPTIONS_INIT");
      o = read_extensible(*options, o, &T::wire_format, &T::scale_block);
    }
    Fp8Wire fp8;
    const bool use_fp8 = read_wire_format(o.wire_format, o.scale_block, "options", &fp8);
    ops::all_gather(c, to_view(input, "input"), to_view(output, "output"), axis, stream,
                    use_fp8 ? &fp8 : nullptr);
  });
}

diffcoll_status_t diffcoll_reduce_scatter(diffcoll_comm_t* comm, const diffcoll_tensor_t* input,
                                          const diffcoll_tensor_t* output, int32_t axis,
                                          int32_t op, double scalar, void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    ops::reduce_scatter(c, to_view(input, "input"), to_view(output, "output"), axis,
                        to_reduction(op, scalar), stream);
  });
}

diffcoll_status_t diffcoll_all_to_all(diffcoll_comm_t* comm, const diffcoll_tensor_t* input,
                                      const diffcoll_tensor_t* output, int32_t scatter_axis,
                                      int32_t gather_axis, void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    ops::all_to_all(c, to_view(input, "input"), to_view(output, "output"), scatter_axis,
                    gather_axis, stream);
  });
}

diffcoll_status_t diffcoll_gather(diffcoll_comm_t* comm, const diffcoll_tensor_t* input,
                                  const diffcoll_tensor_t* output, int32_t axis, int32_t root,
                                  void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    TensorView in = to_view(input, "input");
    if (c.rank() == root) {
      TensorView out = to_view(output, "output");
      ops::gather(c, in, &out, axis, root, stream);
    } else {
      ops::gather(c, in, nullptr, axis, root, stream);
    }
  });
}

diffcoll_status_t diffcoll_scatter(diffcoll_comm_t* comm, const diffcoll_tensor_t* input,
                                   const diffcoll_tensor_t* output, int32_t axis, int32_t root,
                                   void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    TensorView out = to_view(output, "output");
    if (c.rank() == root) {
      TensorView in = to_view(input, "input");
      ops::scatter(c, &in, out, axis, root, stream);
    } else {
      ops::scatter(c, nullptr, out, axis, root, stream);
    }
  });
}

diffcoll_status_t diffcoll_send(diffcoll_comm_t* comm, const diffcoll_tensor_t* tensor,
                                int32_t peer, void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    ops::send(c, to_view(tensor, "tensor"), peer, stream);
  });
}

diffcoll_status_t diffcoll_recv(diffcoll_comm_t* comm, const diffcoll_tensor_t* tensor,
                                int32_t peer, void* stream) {
  return guarded([&] {
    Comm& c = live_comm(comm, "comm");
    ops::recv(c, to_view(tensor, "tensor"), peer, stream);
  });
}

diffcoll_status_t diffcoll_group_start(diffcoll_comm_t* comm) {
  return guarded([&] { ops::group_start(live_comm(comm, "comm")); });
}

diffcoll_status_t diffcoll_group_end(diffcoll_comm_t* comm) {
  return guarded([&] { ops::group_end(live_comm(comm, "comm")); });
}

diffcoll_status_t diffcoll_barrier(diffcoll_comm_t* comm, void* stream) {
  return guarded([&] { ops::barrier(live_comm(comm, "comm"), stream); });
}

}  // extern "C"
