// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// CUDA twin of fp8_pack_host / fp8_unpack_host (fp8_wire.h): quantise views
// into FP8 wire buffers and dequantise them back, several pieces per kernel
// launch, stream-ordered and CUDA-graph capturable, with the host's
// arithmetic (the results equal the host's bit for bit).
#pragma once

#include "../fp8_wire.h"

namespace diffcoll {

// Quantises each piece's view (a wire view in device memory) into its wire
// buffer on `stream` (a cudaStream_t; launches go to the current device).
// Pieces with no elements are skipped. Never synchronises the host and
// allocates nothing. Throws Error(kInvalidArgument) for an unsupported dtype
// or a piece too large for 32-bit group indices, Error(kCuda) on a CUDA
// failure.
void fp8_pack_cuda(const Fp8Piece* pieces, int count, const Fp8Wire& wire, void* stream);
// Dequantises each piece's wire buffer into its view, as fp8_pack_cuda.
void fp8_unpack_cuda(const Fp8Piece* pieces, int count, const Fp8Wire& wire, void* stream);

}  // namespace diffcoll
