// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// The cost of one small all-reduce from the caller's thread: host time to
// issue a call (calls back to back, no waiting) and device time per call back
// to back, on P ranks (processes; rank r on GPU r % gpus), for
//   raw NCCL, blocking communicator       (the limit),
//   raw NCCL, non-blocking communicator   (ncclInProgress polled to success),
//   diffcoll on its own communicator,
//   diffcoll wrapping the blocking raw communicator (diffcoll_comm_wrap_nccl),
// each with the ratio to the blocking raw one. One rank measures what NCCL does
// without peers (an in-place one-rank all-reduce is a no-op there): diffcoll's
// own cost. From two ranks NCCL launches work; with more ranks than GPUs the
// ranks share them over sockets (each its own NCCL host): host times still
// count, device times do not.
//   host_path_bench [--ranks P] [--iters N] [--json FILE]
#include <diffcoll/diffcoll.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"

namespace {

constexpr size_t kCount = 512;  // bf16: 1 KiB

// Rank 0's NCCL unique id `index` of this run, shared through a file in `dir`.
ncclUniqueId shared_id(const std::string& dir, int index, int rank) {
  ncclUniqueId id;
  const std::string path = dir + "/id" + std::to_string(index);
  if (rank == 0) {
    NCCL(ncclGetUniqueId(&id));
    std::ofstream(path + ".tmp", std::ios::binary).write(id.internal, sizeof id.internal);
    std::rename((path + ".tmp").c_str(), path.c_str());
    return id;
  }
  for (;;) {
    std::ifstream in(path, std::ios::binary);
    if (in.read(id.internal, sizeof id.internal)) return id;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

ncclComm_t raw_comm(bool blocking, const ncclUniqueId& id, int rank, int ranks) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = blocking ? 1 : 0;
  ncclComm_t comm = nullptr;
  ncclResult_t r = ncclCommInitRankConfig(&comm, ranks, id, rank, &config);
  while (r == ncclInProgress) ncclCommGetAsyncError(comm, &r);
  NCCL(r);
  return comm;
}

// Issues one call and returns when NCCL has taken it (polling a non-blocking
// communicator as diffcoll does).
void nccl_all_reduce(ncclComm_t comm, void* buffer, cudaStream_t stream) {
  ncclResult_t r = ncclAllReduce(buffer, buffer, kCount, ncclBfloat16, ncclSum, comm, stream);
  while (r == ncclInProgress) ncclCommGetAsyncError(comm, &r);
  NCCL(r);
}

struct Timing {
  double host_us, device_us;
};

// Median over 7 repetitions of `iters` back-to-back calls: host time to issue
// them, and device time per call between events around them.
Timing measure(const std::function<void()>& call, int iters, cudaStream_t stream) {
  for (int i = 0; i < 50; ++i) call();
  CUDA(cudaStreamSynchronize(stream));
  cudaEvent_t start, end;
  CUDA(cudaEventCreate(&start));
  CUDA(cudaEventCreate(&end));
  std::vector<double> host, device;
  for (int rep = 0; rep < 7; ++rep) {
    CUDA(cudaEventRecord(start, stream));
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) call();
    const auto t1 = std::chrono::steady_clock::now();
    CUDA(cudaEventRecord(end, stream));
    CUDA(cudaEventSynchronize(end));
    float ms = 0;
    CUDA(cudaEventElapsedTime(&ms, start, end));
    host.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / iters);
    device.push_back(ms * 1e3 / iters);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(end);
  std::sort(host.begin(), host.end());
  std::sort(device.begin(), device.end());
  return {host[3], device[3]};
}


// One rank of the run; rank 0 prints the table and writes the JSON.
int run_rank(int rank, const BenchArgs& args, int gpus, const std::string& dir) {
  const int device = rank % gpus;
  if (args.ranks > gpus) {  // NCCL refuses two ranks of one communicator on one GPU of one host
    setenv("NCCL_HOSTID", ("diffcoll-bench-rank-" + std::to_string(rank)).c_str(), 1);
    setenv("NCCL_SOCKET_IFNAME", "lo", 1);
    setenv("NCCL_IB_DISABLE", "1", 1);
  }
  CUDA(cudaSetDevice(device));
  cudaStream_t stream;
  CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  void* buffer = nullptr;
  CUDA(cudaMalloc(&buffer, kCount * 2));
  CUDA(cudaMemset(buffer, 0, kCount * 2));
  diffcoll_tensor_t t{};
  t.data = buffer;
  t.dtype = DIFFCOLL_BFLOAT16;
  t.device_type = DIFFCOLL_DEVICE_CUDA;
  t.device_id = device;
  t.ndim = 1;
  t.shape[0] = kCount;
  t.strides[0] = 1;

  ncclComm_t blocking = raw_comm(true, shared_id(dir, 0, rank), rank, args.ranks);
  ncclComm_t non_blocking = raw_comm(false, shared_id(dir, 1, rank), rank, args.ranks);
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  config.device_id = device;
  diffcoll_comm_t *own = nullptr, *wrapped = nullptr;
  const std::string store = "file://" + dir;
  CHECK(diffcoll_comm_create(store.c_str(), rank, args.ranks, &config, &own));
  CHECK(diffcoll_comm_wrap_nccl(blocking, (store + "/wrapped").c_str(), nullptr, &wrapped));

  struct Row {
    const char* name;
    std::function<void()> call;
    Timing t{};
  };
  std::vector<Row> rows = {
      {"raw NCCL, blocking", [&] { nccl_all_reduce(blocking, buffer, stream); }},
      {"raw NCCL, non-blocking", [&] { nccl_all_reduce(non_blocking, buffer, stream); }},
      {"diffcoll (own communicator)",
       [&] { CHECK(diffcoll_all_reduce(own, &t, DIFFCOLL_SUM, 1.0, stream)); }},
      {"diffcoll (wrapping blocking)",
       [&] { CHECK(diffcoll_all_reduce(wrapped, &t, DIFFCOLL_SUM, 1.0, stream)); }},
  };
  for (Row& r : rows) r.t = measure(r.call, args.iters, stream);

  if (rank == 0) {
    std::printf("1 KiB bf16 all-reduce, %d rank(s) on %d GPU(s)%s, %d calls back to back "
                "(median of 7)\n",
                args.ranks, gpus,
                args.ranks > gpus ? " sharing them over sockets: device times NOT meaningful" : "",
                args.iters);
    std::printf("%-30s %10s %8s %12s %8s\n", "path", "host us", "x raw", "device us", "x raw");
    const Timing& limit = rows[0].t;
    std::string json = "{\"bench\": \"host_path\", \"bytes\": 1024, \"ranks\": " +
                       std::to_string(args.ranks) + ", \"gpus\": " + std::to_string(gpus) +
                       ", \"rows\": [";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::printf("%-30s %10.2f %8.2f %12.2f %8.2f\n", r.name, r.t.host_us,
                  r.t.host_us / limit.host_us, r.t.device_us, r.t.device_us / limit.device_us);
      json += std::string(i ? ", " : "") + "{\"path\": \"" + r.name +
              "\", \"host_us\": " + std::to_string(r.t.host_us) +
              ", \"device_us\": " + std::to_string(r.t.device_us) + "}";
    }
    json += "]}\n";
    if (!args.json.empty()) std::ofstream(args.json) << json;
  }
  CHECK(diffcoll_comm_destroy(wrapped));
  CHECK(diffcoll_comm_destroy(own));
  NCCL(ncclCommDestroy(blocking));
  NCCL(ncclCommDestroy(non_blocking));
  cudaFree(buffer);
  cudaStreamDestroy(stream);
  return 0;
}

// The number of GPUs, from nvidia-smi: the parent must not initialise CUDA
// before forking its ranks.
int gpu_count() {
  FILE* p = popen("nvidia-smi -L 2>/dev/null | grep -c '^GPU'", "r");
  int n = 0;
  if (!p || std::fscanf(p, "%d", &n) != 1) n = 0;
  if (p) pclose(p);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  BenchArgs args;
  args.ranks = 1;
  args.iters = 2000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--ranks" && i + 1 < argc) args.ranks = std::atoi(argv[++i]);
    else if (a == "--iters" && i + 1 < argc) args.iters = std::atoi(argv[++i]);
    else if (a == "--json" && i + 1 < argc) args.json = argv[++i];
    else args.ranks = 0;
  }
  if (args.ranks < 1 || args.iters < 10) {
    std::fprintf(stderr, "usage: %s [--ranks P] [--iters N >= 10] [--json FILE]\n", argv[0]);
    return 2;
  }
  const int gpus = gpu_count();
  if (gpus < 1) {
    std::fprintf(stderr, "host_path_bench: no CUDA device\n");
    return 0;
  }
  char dir[] = "/tmp/diffcoll-host-path-XXXXXX";
  if (!mkdtemp(dir) || mkdir((std::string(dir) + "/wrapped").c_str(), 0700) != 0) return 1;
  std::fflush(stdout);
  std::vector<pid_t> children;
  for (int r = 0; r < args.ranks; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      const int code = run_rank(r, args, gpus, dir);
      std::fflush(stdout);
      _exit(code);
    }
    children.push_back(pid);
  }
  int failures = 0;
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    failures += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  return failures ? 1 : 0;
}
