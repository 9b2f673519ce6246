// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Distributed GroupNorm: an activation [N, C, spatial...] split between the
// ranks of a communicator along any spatial axes (each rank holds a slab,
// slabs may be uneven or empty) is normalised with the statistics of the
// whole activation. Each rank reduces its slab to (count, mean, M2) per
// (sample, group); one all-gather of those records (16 bytes each) gives every
// rank every rank's records, which each combines in rank order, so all ranks
// hold bit-identical statistics; then each rank normalises its own slab.
#pragma once

#include <cstdint>

#include "../comm.h"
#include "../tensor.h"
#include "group_norm_math.h"

namespace diffcoll {
namespace ops {

struct GroupNormArgs {
  int64_t groups = 1;
  double eps = 1e-5;
  const TensorView* weight = nullptr;  // [C] or null
  const TensorView* bias = nullptr;    // [C] or null
};

// The kernels' view of input and output (checked by check_group_norm).
GroupNormGeometry group_norm_geometry(const TensorView& input, const TensorView& output,
                                      int64_t groups);

// Validates the arguments for a rank's slab (local, throws kInvalidArgument).
void check_group_norm(const TensorView& input, const TensorView& output,
                      const GroupNormArgs& args);

// Normalises `input` into `output` (which may be `input`: in place).
// Collective over `comm`: every rank passes the same N, C, groups, eps,
// dtype and affine presence; spatial extents and strides may differ.
void group_norm(Comm& comm, const TensorView& input, const TensorView& output,
                const GroupNormArgs& args, void* stream);

}  // namespace ops
}  // namespace diffcoll
