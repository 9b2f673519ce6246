// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Reduction operators and their host arithmetic (the Gloo path and the
// reference for every other path).
#pragma once

#include <cstddef>
#include <cstdint>

#include "dtype.h"

namespace diffcoll {

// Values equal diffcoll_red_op_t.
enum class RedOp : int32_t { kSum = 0, kProd = 1, kMin = 2, kMax = 3, kAvg = 4, kPreMulSum = 5 };

bool red_op_valid(int32_t value);
const char* red_op_name(RedOp op);

struct Reduction {
  RedOp op = RedOp::kSum;
  double scalar = 1.0;  // this rank's factor for kPreMulSum
};

// out[i] = a[i] (op) b[i] for the combining part of `op` (sum for avg and
// pre-multiplied sum). out may equal a or b. 16-bit floats are combined in
// float and rounded once per combine, as NCCL does.
void reduce_host(DType dtype, RedOp op, void* out, const void* a, const void* b, size_t n);

// What a rank does to its own input before combining: multiply by its scalar
// (kPreMulSum) or by 1/group_size (kAvg on floats). No-op otherwise.
void prescale_host(DType dtype, Reduction red, int group_size, void* buf, size_t n);

// What is done to the combined result: integer division by the group size
// for kAvg on integer dtypes. No-op otherwise.
void finalize_host(DType dtype, Reduction red, int group_size, void* buf, size_t n);

}  // namespace diffcoll
