// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The GroupNorm of a rank alone held in shared memory (group_norm_layout.h,
// HeldPlan): where the tensor's layout and the device allow, one kernel of
// thread block clusters reads the tensor once, merges its statistics within
// each cluster and writes it normalised, with no grid-wide barrier.
#pragma once

#include <cuda_runtime.h>

#include "../ops/group_norm_math.h"
#include "group_norm_layout.h"

namespace diffcoll {
namespace ops {

// Launches the whole GroupNorm of `input` into `output` (the same strides),
// whose fused_walk is `walk`, on `stream` of g.device, which must be the
// current device, writing each (sample, group)'s moments to records[pair]:
// true if launched, false (nothing launched) where the tensor is not held
// (layout, size, a device before sm_90 or without room for every cluster
// at once), for the caller's other paths.
bool held_group_norm(const GroupNormGeometry& g, FusedWalk walk, DType dtype, const void* input,
                     void* output, const GroupNormAffine& affine, float eps,
                     GroupMoments* records, cudaStream_t stream);

}  // namespace ops
}  // namespace diffcoll
