// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// What the compiled benchmarks share: stopping on a failed CUDA call
// (example_support.h's check) or NCCL call, the command line every one of
// them takes,
//   NAME [--ranks P] [--iters N] [--json FILE]
// with one rank per GPU (or, for a benchmark that allows it, more ranks than
// GPUs sharing them: run_bench_ranks), a raw NCCL communicator over a
// diffcoll one's ranks, and the device-to-device copy bandwidth that kernel
// timings are compared with.
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

// The copy bandwidth above in GB/s, over 256 MiB (several times the L2 of
// current GPUs: the HBM rate, the limit of every memory-bound kernel).
inline double copy_gbps(cudaStream_t stream) {
  return copy_bandwidth(size_t{256} << 20, stream, 20) / 1e9;
}

// ---------------------------------------------------------------------------
// Ranks as threads or as processes sharing GPUs.

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

// Runs body(rank) for every rank of `args` (parsed with share_gpus set);
// returns the exit status (0 if every body returned 0). With a GPU per rank,
// the ranks are threads of this process, rank r on GPU r. With fewer GPUs
// they are processes (this program again, with `argv`), rank r on GPU
// r % gpus with shared_gpu_environment, their diffcoll rendezvous a fresh
// file store.
inline int run_bench_ranks(char** argv, const char* name, const BenchArgs& args,
                           const std::function<int(const BenchRank&)>& body) {
  BenchRank me;
  me.ranks = args.ranks;
  if (const char* rank = std::getenv("DIFFCOLL_BENCH_RANK")) {  // a spawned rank
    me.rank = std::atoi(rank);
    me.device = me.rank % args.gpus;
    me.shared = true;
    me.rendezvous = std::string("file://") + std::getenv("DIFFCOLL_BENCH_STORE");
    return body(me);
  }
  if (args.ranks <= args.gpus) {
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
    int failed = 0;
    for (int r = 0; r < args.ranks; ++r)
      if (status[r] != 0) {
        std::fprintf(stderr, "%s: rank %d failed\n", name, r);
        ++failed;
      }
    return failed ? 1 : 0;
  }
  char dir[] = "/tmp/diffcoll-bench-XXXXXX";
  if (!mkdtemp(dir)) {
    std::perror("mkdtemp");
    return 1;
  }
  std::vector<pid_t> children;
  for (int r = 0; r < args.ranks; ++r) {
    std::vector<std::string> vars = {"DIFFCOLL_BENCH_RANK=" + std::to_string(r),
                                     "DIFFCOLL_BENCH_STORE=" + std::string(dir)};
    for (std::string& v : shared_gpu_environment(r, args.ranks, args.gpus)) vars.push_back(v);
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

// Microseconds per call of fn() over `calls` calls of which `launches` are
// issued (a graph of k calls: launches = calls / k), after 5 warm-up
// launches, all ranks of `comm` starting together: CUDA-event time on
// `stream`.
inline double time_launches_us(diffcoll_comm_t* comm, cudaStream_t stream,
                               const std::function<void()>& fn, int launches, int calls) {
  for (int i = 0; i < 5; ++i) fn();
  CUDA(cudaStreamSynchronize(stream));
  CHECK(diffcoll_barrier(comm, nullptr));
  cudaEvent_t start, stop;
  CUDA(cudaEventCreate(&start));
  CUDA(cudaEventCreate(&stop));
  CUDA(cudaEventRecord(start, stream));
  for (int i = 0; i < launches; ++i) fn();
  CUDA(cudaEventRecord(stop, stream));
  CUDA(cudaEventSynchronize(stop));
  float ms = 0;
  CUDA(cudaEventElapsedTime(&ms, start, stop));
  CUDA(cudaEventDestroy(start));
  CUDA(cudaEventDestroy(stop));
  return 1000.0 * ms / calls;
}

// The main of a benchmark whose ranks run run_rank(rank, args): parses the
// command line (with these defaults, more ranks than GPUs allowed), then
// run_bench_ranks.
inline int bench_main(int argc, char** argv, const char* name, int iters, const char* json,
                      int (*run_rank)(const BenchRank&, const BenchArgs&)) {
  BenchArgs args;
  args.iters = iters;
  args.json = json;
  args.share_gpus = true;
  if (int status = parse_bench_args(argc, argv, name, &args); status >= 0) return status;
  return run_bench_ranks(argv, name, args, [&](const BenchRank& me) { return run_rank(me, args); });
}

// The diffcoll communicator of rank `me`, on its GPU, which becomes current.
inline diffcoll_comm_t* bench_comm(const BenchRank& me) {
  CUDA(cudaSetDevice(me.device));
  diffcoll_config_t cfg = DIFFCOLL_CONFIG_INIT;
  cfg.device_id = me.device;
  diffcoll_comm_t* comm;
  CHECK(diffcoll_comm_create(me.rendezvous.c_str(), me.rank, me.ranks, &cfg, &comm));
  return comm;
}

// A raw NCCL communicator over the ranks of `comm` (collective), blocking
// or not: rank 0's unique id travels over diffcoll's host side.
inline ncclComm_t raw_nccl_comm(diffcoll_comm_t* comm, const BenchRank& me,
                                bool blocking = true) {
  ncclUniqueId id;
  if (me.rank == 0) NCCL(ncclGetUniqueId(&id));
  diffcoll_tensor_t t = host_tensor_1d(id.internal, DIFFCOLL_UINT8, sizeof id.internal);
  CHECK(diffcoll_broadcast(comm, &t, 0, nullptr));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = blocking ? 1 : 0;
  ncclComm_t nccl = nullptr;
  ncclResult_t r = ncclCommInitRankConfig(&nccl, me.ranks, id, me.rank, &config);
  while (r == ncclInProgress) ncclCommGetAsyncError(nccl, &r);
  NCCL(r);
  return nccl;
}
