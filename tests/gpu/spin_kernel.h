// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Kernels that hold a stream: until the host sets a flag (stands in for a
// collective whose peer never arrives), or for a while (work in flight).
#pragma once

#include <cuda_runtime.h>

#include <chrono>

void launch_spin_until(volatile int* flag, cudaStream_t stream);
void launch_spin_for(std::chrono::milliseconds duration, cudaStream_t stream);
