// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "spin_kernel.h"

namespace {
__global__ void spin_until(volatile int* flag) {
  while (*flag == 0) {
  }
}

__device__ unsigned long long global_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__global__ void spin_for(unsigned long long ns) {
  const unsigned long long start = global_ns();
  while (global_ns() - start < ns) {
  }
}
}  // namespace

void launch_spin_for(std::chrono::milliseconds duration, cudaStream_t stream) {
  spin_for<<<1, 1, 0, stream>>>(static_cast<unsigned long long>(duration.count()) * 1000000ull);
}

void launch_spin_until(volatile int* flag, cudaStream_t stream) {
  spin_until<<<1, 1, 0, stream>>>(flag);
}
