// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// The cost of one small all-reduce from the caller's thread: host time to
// issue a call (calls back to back, no waiting) and device time per call back
// to back, on P ranks (bench_support.h's run_bench_ranks), for
//   raw NCCL, blocking communicator       (the limit),
//   raw NCCL, non-blocking communicator   (ncclInProgress polled to success),
//   diffcoll on its own communicator,
//   diffcoll wrapping the blocking raw communicator (diffcoll_comm_wrap_nccl),
// each with the ratio to the blocking raw one. One rank measures what NCCL does
// without peers (an in-place one-rank all-reduce is a no-op there): diffcoll's
// own cost. From two ranks NCCL launches work; with more ranks than GPUs the
// ranks share them over sockets (each its own NCCL host) and the timings mean
// nothing.
//   host_path_bench [--ranks P] [--iters N] [--json FILE]
#include <diffcoll/diffcoll.h>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "bench_support.h"

namespace {

constexpr size_t kCount = 512;  // bf16: 1 KiB

// Where the host side of the communicator wrapping the rank's raw NCCL one
// meets: beside the rank's own rendezvous (a file store needs its folder).
std::string wrapped_rendezvous(const BenchRank& me) {
  const std::string file = "file://";
  if (me.rendezvous.compare(0, file.size(), file) != 0) return me.rendezvous + "-wrapped";
  const std::string dir = me.rendezvous.substr(file.size()) + "/wrapped";
  mkdir(dir.c_str(), 0700);  // every rank tries; the first one makes it
  return file + dir;
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
int run_rank(const BenchRank& me, const BenchArgs& args) {
  diffcoll_comm_t* own = bench_comm(me);
  cudaStream_t stream;
  CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  void* buffer = nullptr;
  CUDA(cudaMalloc(&buffer, kCount * 2));
  CUDA(cudaMemset(buffer, 0, kCount * 2));
  diffcoll_tensor_t t{};
  t.data = buffer;
  t.dtype = DIFFCOLL_BFLOAT16;
  t.device_type = DIFFCOLL_DEVICE_CUDA;
  t.device_id = me.device;
  t.ndim = 1;
  t.shape[0] = kCount;
  t.strides[0] = 1;

  ncclComm_t blocking = raw_nccl_comm(own, me, true);
  ncclComm_t non_blocking = raw_nccl_comm(own, me, false);
  diffcoll_comm_t* wrapped = nullptr;
  CHECK(diffcoll_comm_wrap_nccl(blocking, wrapped_rendezvous(me).c_str(), nullptr, &wrapped));

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

  if (me.rank == 0) {
    print_shared_note(me, args.gpus);
    std::printf("1 KiB bf16 all-reduce, %d rank(s) on %d GPU(s), %d calls back to back "
                "(median of 7)\n",
                args.ranks, args.gpus, args.iters);
    std::printf("%-30s %10s %8s %12s %8s\n", "path", "host us", "x raw", "device us", "x raw");
    const Timing& limit = rows[0].t;
    std::string json = "{\"bench\": \"host_path\", \"bytes\": 1024, \"ranks\": " +
                       std::to_string(args.ranks) + ", \"gpus\": " + std::to_string(args.gpus) +
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

}  // namespace

int main(int argc, char** argv) {
  return bench_main(argc, argv, "host_path_bench", 2000, "", run_rank);
}
