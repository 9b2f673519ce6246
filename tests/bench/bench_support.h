// What the compiled benchmarks share: stopping on a failed CUDA call
// (example_support.h's check) or NCCL call, and the command line every one of
// them takes,
//   NAME [--ranks P] [--iters N] [--json FILE]
// with one rank per GPU.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

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
};

// Parses the command line into `args` (whose iters and json are the
// defaults). Returns -1 to go on, else the exit status: 0 with no GPU (a
// benchmark has nothing to measure; it says so), 2 for a bad command line, 1
// for more ranks than GPUs or fewer than 10 iterations.
inline int parse_bench_args(int argc, char** argv, const char* name, BenchArgs* args) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 1) {
    std::fprintf(stderr, "%s: no CUDA device\n", name);
    return 0;
  }
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
  if (args->ranks < 1 || args->ranks > devices || args->iters < 10) {
    std::fprintf(stderr, "%s: %d ranks need as many GPUs (found %d), and iters must be >= 10\n",
                 name, args->ranks, devices);
    return 1;
  }
  return -1;
}
