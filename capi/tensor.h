// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Turning the ABI's tensor descriptor into the core's TensorView.
#pragma once

#include "../core/tensor.h"
#include "diffcoll/diffcoll.h"

namespace diffcoll {
namespace capi {

// Validates the descriptor's enums and layout; throws kInvalidArgument naming
// `what` on any problem.
TensorView to_view(const diffcoll_tensor_t* tensor, const char* what);

}  // namespace capi
}  // namespace diffcoll
