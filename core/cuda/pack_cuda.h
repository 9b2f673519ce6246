// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// CUDA packing: the GPU twin of pack.h. Gathers strided views into dense
// buffers (elements in row-major logical order of the view's shape) and
// scatters them back, several pieces per kernel launch, stream-ordered and
// CUDA-graph capturable.
#pragma once

#include "../tensor.h"

namespace diffcoll {

// One piece of a batched transfer: a strided view and its dense buffer of
// view.numel() elements. Both live in memory the current device can access.
struct PackPiece {
  TensorView view;
  void* dense = nullptr;
};

// Pieces moved by one kernel launch; longer batches take several launches.
constexpr int kPackCudaMaxPieces = 8;

// Gathers each piece's view into its dense buffer on `stream` (a
// cudaStream_t; launches go to the current device, which must own it).
// Pieces with no elements are skipped and count == 0 does nothing. Never
// synchronises the host, allocates nothing and copies no host memory, so it
// may be captured into a CUDA graph. Throws Error(kInvalidArgument) for a
// malformed piece, Error(kCuda) when CUDA reports a failure. Views written
// by unpack_cuda must not overlap (two elements at one address) and no two
// pieces of one call may write the same bytes: pieces run concurrently.
void pack_cuda(const PackPiece* pieces, int count, void* stream);
// Scatters each piece's dense buffer into its view, as pack_cuda.
void unpack_cuda(const PackPiece* pieces, int count, void* stream);

}  // namespace diffcoll
