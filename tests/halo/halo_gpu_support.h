// What the GPU tests built on halo_support.h's rank threads share: counting
// the GPUs, skipping without enough of them, and running one rank per GPU,
// each with its own CUDA stream.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <functional>

#include "halo_support.h"

namespace halo_test {

inline int gpus() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

#define SKIP_WITHOUT_GPUS(n)                                                   \
  do {                                                                         \
    if (halo_test::gpus() < (n))                                               \
      GTEST_SKIP() << "needs " << (n) << " CUDA device(s), found " << halo_test::gpus(); \
  } while (0)

// Runs fn(rank, comm, stream) with rank r on GPU r, then waits for the stream.
inline void run_gpu_ranks(int p,
                          const std::function<void(int, diffcoll_comm_t*, cudaStream_t)>& fn) {
  run_ranks(
      p,
      [&](int r, diffcoll_comm_t* comm) {
        ASSERT_EQ(cudaSetDevice(r), cudaSuccess);
        cudaStream_t stream;
        ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
        fn(r, comm, stream);
        EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
        cudaStreamDestroy(stream);
      },
      60000, 0, true, /*with_devices=*/true);
}

}  // namespace halo_test
