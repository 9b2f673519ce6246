// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The device half of a fused-norm workspace in a build without CUDA: never
// asked for (a communicator has no device side there), refused if it were.
#include "../error.h"
#include "fused_norm.h"

namespace diffcoll {
namespace ops {

std::unique_ptr<FusedNormDevice> make_fused_norm_device(Comm&, const FusedNormLimits&) {
  fail(Status::kUnsupported,
       "a fused-norm workspace on CUDA tensors needs a diffcoll built with CUDA");
}

}  // namespace ops
}  // namespace diffcoll
