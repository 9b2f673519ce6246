// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// What the compiled benchmarks share: stopping on a failed CUDA call
// (example_support.h's check) or NCCL call, the command line every one of
// them takes,
//   NAME [--ranks P] [--iters N] [--json FILE]
// with one rank per GPU (or, for a benchmark that allows it, more ranks than
// GPUs sharing them), and the device-to-device copy bandwidth that kernel
// timings are compared with.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "example_support.h"

#define NCCL(call)                                                            \
  do {                                                                        \
    ncclResult_t r_ = (call);                                                 \
    if (r_ != ncclSuccess) {                                                  \
      std::fprintf(stderr, "%s failed: %s\n", #call, ncclGetErrorString(r_)); \
      std::exit(1);                                                           \
    }                                                                         \
  } while (0)

struct BenchArgs {
  int ranks = 0;      // default: min(visible GPUs, 2)
  int iters = 0;
  std::string json;   // where the JSON goes; empty: none
  int gpus = 0;       // visible GPUs (set by parse_bench_args)
  bool share_gpus = false;  // set before parsing to accept more ranks than GPUs
};

// Parses the command line into `args` (whose iters and json are the
// defaults). Returns -1 to go on, else the exit status: 0 with no GPU (a
// benchmark has nothing to measure; it says so), 2 for a bad command line, 1
// for more ranks than GPUs (unless args->share_gpus) or fewer than 10 iterations.
inline int parse_bench_args(int argc, char** argv, const char* name, BenchArgs* args) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 1) {
    std::fprintf(stderr, "%s: no CUDA device\n", name);
    return 0;
  }
  args->gpus = devices;
  args->ranks = std::min(devices, 2);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--ranks" && i + 1 < argc)
      args->ranks = std::atoi(argv[++i]);
    else if (a == "--iters" && i + 1 < argc)
      args->iters = std::atoi(argv[++i]);
    else if (a == "--json" && i + 1 < argc)
      args->json = argv[++i];
    else {
      std::fprintf(stderr, "usage: %s [--ranks P] [--iters N] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  if (args->ranks < 1 || (args->ranks > devices && !args->share_gpus) || args->iters < 10) {
    std::fprintf(stderr, "%s: %d ranks need as many GPUs (found %d), and iters must be >= 10\n",
                 name, args->ranks, devices);
    return 1;
  }
  return -1;
}

// Extra environment of rank `rank` of `ranks` on `gpus` GPUs (rank r runs on
// GPU r % gpus): none with a GPU per rank; with fewer GPUs NCCL would refuse
// two ranks of one communicator on one GPU of one host, so every rank becomes
// its own NCCL host, joined to the others over loopback sockets. Results stay
// checkable there; timings mean nothing.
inline std::vector<std::string> shared_gpu_environment(int rank, int ranks, int gpus) {
  if (ranks <= gpus) return {};
  return {"NCCL_HOSTID=diffcoll-bench-rank-" + std::to_string(rank), "NCCL_SOCKET_IFNAME=lo",
          "NCCL_IB_DISABLE=1"};
}

// Device-to-device copy bandwidth of the current device in bytes per second,
// counting bytes read plus bytes written: the median of `iters` timed
// cudaMemcpyAsync of `bytes` (choose it well above the L2 size to measure
// memory, not cache).
inline double copy_bandwidth(size_t bytes, cudaStream_t stream, int iters) {
  void *src = nullptr, *dst = nullptr;
  CUDA(cudaMalloc(&src, bytes));
  CUDA(cudaMalloc(&dst, bytes));
  CUDA(cudaMemsetAsync(src, 1, bytes, stream));
  cudaEvent_t start, stop;
  CUDA(cudaEventCreate(&start));
  CUDA(cudaEventCreate(&stop));
  std::vector<float> ms(iters);
  for (int i = -3; i < iters; ++i) {  // three warm-up copies
    CUDA(cudaEventRecord(start, stream));
    CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
    CUDA(cudaEventRecord(stop, stream));
    CUDA(cudaEventSynchronize(stop));
    if (i >= 0) CUDA(cudaEventElapsedTime(&ms[i], start, stop));
  }
  std::sort(ms.begin(), ms.end());
  CUDA(cudaEventDestroy(start));
  CUDA(cudaEventDestroy(stop));
  CUDA(cudaFree(src));
  CUDA(cudaFree(dst));
  return 2.0 * static_cast<double>(bytes) / (1e-3 * ms[iters / 2]);
}
