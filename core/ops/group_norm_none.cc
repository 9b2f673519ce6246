// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// GroupNorm on CUDA tensors in a build without CUDA: an error that says so.
// (Replaced by core/cuda/group_norm_cuda.cu when CUDA is on; see CMakeLists.txt.)
#include "../error.h"
#include "group_norm_math.h"

namespace diffcoll {
namespace ops {

const GroupNormMath& cuda_group_norm_math() {
  fail(Status::kUnsupported,
       "group_norm on CUDA tensors needs a diffcoll built with CUDA (-DDIFFCOLL_CUDA=ON)");
}

}  // namespace ops
}  // namespace diffcoll
