// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// DIFFCOLL_CHECK: before a collective, every rank shares what it was asked to
// do and all of them fail with the first rank that differs from rank 0.
#pragma once

#include <cstdint>

#include "../comm.h"
#include "../tensor.h"

namespace diffcoll {
namespace ops {

// What a rank passed to a collective; compared byte for byte across ranks.
struct CallSignature {
  char operation[24] = {};
  int32_t dtype = 0;
  int32_t ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};
  int64_t arguments[4] = {};  // op, root, axes: whatever the operation takes
};

CallSignature signature(const char* operation, const TensorView& tensor,
                        int64_t a0 = 0, int64_t a1 = 0, int64_t a2 = 0, int64_t a3 = 0);

// No-op unless the communicator checks; throws Error(kMismatch) otherwise.
void verify_agreement(Comm& comm, const CallSignature& mine);

}  // namespace ops
}  // namespace diffcoll
