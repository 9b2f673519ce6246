// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The NCCL path's second half: one residual + RMSNorm kernel over rows that
// an NCCL all-reduce has summed into y.
#pragma once

#include "../ops/fused_norm.h"

namespace diffcoll {

// Reads allreduce(x) from call.y and overwrites it with the normalised rows;
// writes call.residual_out (if any). One CTA per row (grid-stride beyond the
// launch limit), stream-ordered on `stream` (a cudaStream_t), capturable.
void launch_fused_norm_epilogue(const ops::FusedNormCall& call, void* stream);

// 16 / element size when every pointer of `call` is 16-byte aligned and rows
// are whole 16-byte units, else 1: the elements one access moves.
int fused_norm_vector_width(const ops::FusedNormCall& call);

}  // namespace diffcoll
