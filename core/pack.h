// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Host packing: copy a strided tensor's elements, in row-major logical order,
// into a dense buffer, and back. This is the only place the host path copies.
#pragma once

#include "tensor.h"

namespace diffcoll {

// dst receives src.numel() elements in row-major order of src's shape.
void pack_host(const TensorView& src, void* dst);
// dst's elements, in row-major order of dst's shape, are read from src.
void unpack_host(const void* src, const TensorView& dst);

}  // namespace diffcoll
