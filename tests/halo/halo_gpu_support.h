// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// What the GPU tests built on halo_support.h's ranks share: counting the
// GPUs, skipping without one, and running ranks as processes, rank r on GPU
// r % gpus (sharing GPUs where there are fewer than ranks:
// tests/gpu/rank_processes.h), each with its own CUDA stream.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <functional>

#include "../gpu/rank_processes.h"
#include "halo_support.h"

namespace halo_test {

using gpu_ranks::rank_device;

inline int gpus() { return gpu_ranks::gpu_count(); }

#define SKIP_WITHOUT_GPUS(n)                                                   \
  do {                                                                         \
    if (halo_test::gpus() < (n))                                               \
      GTEST_SKIP() << "needs " << (n) << " CUDA device(s), found " << halo_test::gpus(); \
  } while (0)

// Runs fn(rank, comm, stream) in `p` rank processes, rank r on GPU
// rank_device(r), then waits for the stream. The processes are forked: what
// fn reads from the caller was set before; what it writes stays in the rank,
// so fn checks its own results.
inline void run_gpu_ranks(int p,
                          const std::function<void(int, diffcoll_comm_t*, cudaStream_t)>& fn) {
  const std::string rendezvous = "file://" + gpu_ranks::fresh_store_dir();
  gpu_ranks::run_forked_ranks(p, [&](int rank) {
    const int device = rank_device(rank);
    ASSERT_EQ(cudaSetDevice(device), cudaSuccess);
    run_rank(
        rendezvous, rank, p,
        [&](int r, diffcoll_comm_t* comm) {
          // A blocking stream: the tests upload with cudaMemcpy from pageable
          // memory, which may return before the copy reaches the device; work
          // on a blocking stream waits for it, on a non-blocking one it races.
          cudaStream_t stream;
          ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
          fn(r, comm, stream);
          EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
          cudaStreamDestroy(stream);
        },
        60000, 0, true, device);
  });
}

}  // namespace halo_test
