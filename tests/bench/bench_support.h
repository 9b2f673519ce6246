// What the compiled benchmarks share: stopping on a failed CUDA call
// (example_support.h's check) or NCCL call, and the command line every one of
// them takes,
//   NAME [--ranks P] [--iters N] [--json FILE]
// with one rank per GPU; for benchmarks that allow it, more ranks than GPUs
// (run_bench_ranks: the ranks then share the GPUs); a raw NCCL communicator
// over a diffcoll one's ranks; and the copy bandwidth that kernels are
// measured against.
#pragma once

#include <cuda_runtime.h>
#include <diffcoll/diffcoll.h>
#include <nccl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "example_support.h"

extern char** environ;

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
  bool shared_gpus_allowed = false;  // set by benchmarks that run_bench_ranks
};

// Parses the command line into `args` (whose iters and json are the
// defaults). Returns -1 to go on, else the exit status: 0 with no GPU (a
// benchmark has nothing to measure; it says so), 2 for a bad command line, 1
// for more ranks than GPUs (unless shared_gpus_allowed) or fewer than 10
// iterations.
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
  if (args->ranks < 1 || (args->ranks > devices && !args->shared_gpus_allowed) ||
      args->iters < 10) {
    std::fprintf(stderr, "%s: %d ranks need as many GPUs (found %d), and iters must be >= 10\n",
                 name, args->ranks, devices);
    return 1;
  }
  return -1;
}

// ---------------------------------------------------------------------------
// More ranks than GPUs.

// One rank of a benchmark.
struct BenchRank {
  int rank = 0, ranks = 1, device = 0;
  bool shared = false;     // ranks share GPUs: timings are not meaningful
  std::string rendezvous;  // for diffcoll_comm_create
};

// What a benchmark whose ranks share GPUs prints before its table.
inline void print_shared_note(const BenchRank& me, int gpus) {
  if (me.shared)
    std::printf("NOTE: %d ranks share %d GPU(s) through NCCL's socket transport: the timings "
                "below are not meaningful; the results were checked\n",
                me.ranks, gpus);
}

// Runs body(rank) for every rank; returns the exit status (0 if every body
// returned 0). With at least as many GPUs as ranks, the ranks are threads of
// this process, rank r on GPU r. With more ranks, they are processes (this
// program again, with `argv`) sharing the GPUs round-robin (GPU r % GPUs),
// each its own NCCL "host" (NCCL_HOSTID=diffcoll-rank-<r>,
// NCCL_SOCKET_IFNAME=lo, NCCL_IB_DISABLE=1) so that NCCL joins them through
// its socket transport; their diffcoll rendezvous is a fresh file store.
inline int run_bench_ranks(char** argv, const char* name, const BenchArgs& args,
                           const std::function<int(const BenchRank&)>& body) {
  int gpus = 0;
  CUDA(cudaGetDeviceCount(&gpus));
  BenchRank me;
  me.ranks = args.ranks;
  if (const char* rank = std::getenv("DIFFCOLL_BENCH_RANK")) {  // a spawned rank
    me.rank = std::atoi(rank);
    me.device = me.rank % gpus;
    me.shared = true;
    me.rendezvous = std::string("file://") + std::getenv("DIFFCOLL_BENCH_STORE");
    return body(me);
  }
  if (args.ranks <= gpus) {
    std::vector<int> status(args.ranks, 0);
    std::vector<std::thread> threads;
    for (int r = 0; r < args.ranks; ++r)
      threads.emplace_back([&, r] {
        BenchRank mine = me;
        mine.rank = mine.device = r;
        mine.rendezvous = std::string("local://") + name + "-" + std::to_string(getpid());
        status[r] = body(mine);
      });
    for (std::thread& t : threads) t.join();
    for (int st : status)
      if (st != 0) return st;
    return 0;
  }
  char dir[] = "/tmp/diffcoll-bench-XXXXXX";
  if (!mkdtemp(dir)) {
    std::perror("mkdtemp");
    return 1;
  }
  std::vector<pid_t> children;
  for (int r = 0; r < args.ranks; ++r) {
    std::vector<std::string> vars = {"DIFFCOLL_BENCH_RANK=" + std::to_string(r),
                                     "DIFFCOLL_BENCH_STORE=" + std::string(dir),
                                     "NCCL_HOSTID=diffcoll-rank-" + std::to_string(r),
                                     "NCCL_SOCKET_IFNAME=lo", "NCCL_IB_DISABLE=1"};
    auto overridden = [&](const char* entry) {
      for (const std::string& v : vars)
        if (std::strncmp(entry, v.c_str(), v.find('=') + 1) == 0) return true;
      return false;
    };
    std::vector<char*> env;
    for (char** e = environ; *e; ++e)
      if (!overridden(*e)) env.push_back(*e);
    for (std::string& v : vars) env.push_back(v.data());
    env.push_back(nullptr);
    pid_t pid;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, env.data()) != 0) {
      std::perror("posix_spawn");
      return 1;
    }
    children.push_back(pid);
  }
  int failed = 0;
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  if (failed) std::fprintf(stderr, "%s: %d of %d ranks failed\n", name, failed, args.ranks);
  return failed ? 1 : 0;
}

// A raw NCCL communicator over the ranks of `comm` (collective): rank 0's
// unique id travels over diffcoll's host side.
inline ncclComm_t raw_nccl_comm(diffcoll_comm_t* comm, const BenchRank& me) {
  ncclUniqueId id;
  if (me.rank == 0) NCCL(ncclGetUniqueId(&id));
  diffcoll_tensor_t t = host_tensor_1d(id.internal, DIFFCOLL_UINT8, sizeof id.internal);
  CHECK(diffcoll_broadcast(comm, &t, 0, nullptr));
  ncclComm_t nccl;
  NCCL(ncclCommInitRank(&nccl, me.ranks, id, me.rank));
  return nccl;
}

// ---------------------------------------------------------------------------
// The limit of memory-bound kernels.

// Device-to-device copy bandwidth of the current GPU in GB/s, counting bytes
// read plus bytes written: the median of 5 timings of `iters` back-to-back
// cudaMemcpyAsync of `bytes` on `stream`. The default 256 MiB is several
// times the L2 of current GPUs: the HBM rate.
inline double copy_gbps(cudaStream_t stream, size_t bytes = size_t{256} << 20, int iters = 20) {
  void *src, *dst;
  CUDA(cudaMalloc(&src, bytes));
  CUDA(cudaMalloc(&dst, bytes));
  CUDA(cudaMemsetAsync(src, 1, bytes, stream));
  cudaEvent_t start, stop;
  CUDA(cudaEventCreate(&start));
  CUDA(cudaEventCreate(&stop));
  std::vector<float> ms(5);
  for (int i = 0; i < 3; ++i)
    CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
  for (float& m : ms) {
    CUDA(cudaEventRecord(start, stream));
    for (int i = 0; i < iters; ++i)
      CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
    CUDA(cudaEventRecord(stop, stream));
    CUDA(cudaEventSynchronize(stop));
    CUDA(cudaEventElapsedTime(&m, start, stop));
  }
  std::sort(ms.begin(), ms.end());
  CUDA(cudaEventDestroy(start));
  CUDA(cudaEventDestroy(stop));
  CUDA(cudaFree(src));
  CUDA(cudaFree(dst));
  return 2.0 * static_cast<double>(bytes) * iters / (ms[2] * 1e-3) / 1e9;
}
