// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The fused-norm benchmark of issue 7: microseconds per call for hidden 5120
// bf16 at 1, 16, 128, 1024 and 8192 tokens, one rank per GPU (ranks as
// threads of this process), in one run:
//   - raw NCCL all-reduce alone (ncclAllReduce on communicators from
//     ncclCommInitAll, out of place), the floor the issue compares with;
//   - diffcoll_fused_norm (all-reduce + residual add + RMSNorm, residual in
//     place) by each path: auto, one-shot, two-shot, NCCL + kernel (a path
//     the workspace cannot run is reported as null), eager calls;
//   - auto again, 10 calls captured in a CUDA graph and replayed.
// Prints a table and writes the figures as JSON (--json FILE).
//
//   fused_norm_bench [--ranks P] [--iters N] [--json FILE]
//
// PyTorch eager (NCCL all-reduce, then the add and the norm as separate
// kernels) runs in a separate script; compare on the same machine.
#include <cuda_runtime.h>
#include <diffcoll/diffcoll.h>
#include <nccl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "example_support.h"

namespace {

constexpr int64_t kHidden = 5120;
const int64_t kTokens[] = {1, 16, 128, 1024, 8192};
const int kPaths[] = {DIFFCOLL_FUSED_NORM_AUTO, DIFFCOLL_FUSED_NORM_ONE_SHOT,
                      DIFFCOLL_FUSED_NORM_TWO_SHOT, DIFFCOLL_FUSED_NORM_NCCL};
const char* const kPathNames[] = {"auto", "one_shot", "two_shot", "nccl_kernel"};
constexpr int kNumTokens = sizeof kTokens / sizeof kTokens[0];
constexpr int kNumPaths = sizeof kPaths / sizeof kPaths[0];

// Rank 0's figures for one token count; < 0: not available.
struct Result {
  double nccl_us = -1;
  double path_us[kNumPaths] = {-1, -1, -1, -1};
  double graph_us = -1;
};

diffcoll_tensor_t rows(void* data, int64_t tokens, int device) {
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = DIFFCOLL_BFLOAT16;
  t.device_type = DIFFCOLL_DEVICE_CUDA;
  t.device_id = device;
  t.ndim = 2;
  t.shape[0] = tokens;
  t.shape[1] = kHidden;
  t.strides[0] = kHidden;
  t.strides[1] = 1;
  return t;
}

void print_us(FILE* f, double us) {
  if (us < 0)
    std::fprintf(f, "null");
  else
    std::fprintf(f, "%.2f", us);
}

}  // namespace

int main(int argc, char** argv) {
  BenchArgs args;
  args.iters = 100;
  args.json = "fused_norm_bench.json";
  if (int status = parse_bench_args(argc, argv, "fused_norm_bench", &args); status >= 0) return status;
  const int ranks = args.ranks, iters = args.iters;
  const std::string json = args.json;
  std::vector<ncclComm_t> raw(ranks);
  if (ncclCommInitAll(raw.data(), ranks, nullptr) != ncclSuccess) {
    std::fprintf(stderr, "fused_norm_bench: ncclCommInitAll failed\n");
    return 1;
  }
  const int64_t max_tokens = kTokens[kNumTokens - 1];
  const size_t max_bytes = static_cast<size_t>(max_tokens * kHidden) * 2;
  std::vector<Result> results(kNumTokens);
  const std::string rendezvous = "local://fused-norm-bench";
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      CUDA(cudaSetDevice(r));
      diffcoll_config_t cfg = DIFFCOLL_CONFIG_INIT;
      cfg.device_id = r;
      diffcoll_comm_t* comm;
      CHECK(diffcoll_comm_create(rendezvous.c_str(), r, ranks, &cfg, &comm));
      cudaStream_t stream;
      CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
      diffcoll_fused_norm_workspace_t* ws;
      CHECK(diffcoll_fused_norm_workspace_create(comm, max_tokens, kHidden, DIFFCOLL_BFLOAT16,
                                                 &ws));
      void *x, *residual, *weight, *y;
      for (void** p : {&x, &residual, &y}) {
        CUDA(cudaMalloc(p, max_bytes));
        CUDA(cudaMemset(*p, 0x3c, max_bytes));  // bf16 0x3c3c, about 0.0115
      }
      CUDA(cudaMalloc(&weight, kHidden * 2));
      CUDA(cudaMemset(weight, 0x3f, kHidden * 2));  // bf16 0x3f3f, about 0.75
      cudaEvent_t start, stop;
      CUDA(cudaEventCreate(&start));
      CUDA(cudaEventCreate(&stop));
      // Microseconds per call of fn() over `calls` calls of which `launches`
      // are issued (a graph of 10 calls: launches = calls / 10), all ranks
      // starting together.
      auto time_us = [&](auto fn, int launches, int calls) {
        for (int i = 0; i < 5; ++i) fn();
        CUDA(cudaStreamSynchronize(stream));
        CHECK(diffcoll_barrier(comm, nullptr));
        CUDA(cudaEventRecord(start, stream));
        for (int i = 0; i < launches; ++i) fn();
        CUDA(cudaEventRecord(stop, stream));
        CUDA(cudaEventSynchronize(stop));
        float ms = 0;
        CUDA(cudaEventElapsedTime(&ms, start, stop));
        return 1000.0 * ms / calls;
      };
      for (int k = 0; k < kNumTokens; ++k) {
        const int64_t tokens = kTokens[k];
        Result mine;
        mine.nccl_us = time_us(
            [&] {
              if (ncclAllReduce(x, y, static_cast<size_t>(tokens * kHidden), ncclBfloat16, ncclSum,
                                raw[r], stream) != ncclSuccess)
                std::exit(1);
            },
            iters, iters);
        diffcoll_tensor_t xd = rows(x, tokens, r), rd = rows(residual, tokens, r);
        diffcoll_tensor_t yd = rows(y, tokens, r), wd = rows(weight, 1, r);
        wd.ndim = 1;
        wd.shape[0] = kHidden;
        wd.strides[0] = 1;
        for (int p = 0; p < kNumPaths; ++p) {
          diffcoll_fused_norm_options_t options = DIFFCOLL_FUSED_NORM_OPTIONS_INIT;
          options.path = kPaths[p];
          auto call = [&] {
            return diffcoll_fused_norm(ws, &xd, &rd, &wd, 1e-6f, &yd, &rd, &options, stream);
          };
          // Availability depends only on what every rank agreed at creation.
          const diffcoll_status_t probe = call();
          if (probe == DIFFCOLL_ERR_UNSUPPORTED) continue;
          CHECK(probe);
          mine.path_us[p] = time_us([&] { CHECK(call()); }, iters, iters);
        }
        // Auto, captured: 10 calls per graph.
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        for (int i = 0; i < 10; ++i)
          CHECK(diffcoll_fused_norm(ws, &xd, &rd, &wd, 1e-6f, &yd, &rd, nullptr, stream));
        CUDA(cudaStreamEndCapture(stream, &graph));
        CUDA(cudaGraphInstantiate(&exec, graph, 0));
        mine.graph_us =
            time_us([&] { CUDA(cudaGraphLaunch(exec, stream)); }, iters / 10, iters / 10 * 10);
        CUDA(cudaGraphExecDestroy(exec));
        CUDA(cudaGraphDestroy(graph));
        if (r == 0) results[k] = mine;
      }
      CUDA(cudaStreamSynchronize(stream));
      CHECK(diffcoll_fused_norm_workspace_destroy(ws));
      for (void* p : {x, residual, y, weight}) CUDA(cudaFree(p));
      CHECK(diffcoll_barrier(comm, nullptr));
      CHECK(diffcoll_comm_destroy(comm));
      cudaStreamDestroy(stream);
    });
  for (auto& t : threads) t.join();
  for (ncclComm_t c : raw) ncclCommDestroy(c);

  cudaDeviceProp prop;
  CUDA(cudaGetDeviceProperties(&prop, 0));
  std::printf("fused all-reduce + residual + RMSNorm, hidden %lld bf16, %d x %s, "
              "us per call (rank 0)\n",
              static_cast<long long>(kHidden), ranks, prop.name);
  std::printf("%7s %10s %11s %9s %9s %9s %12s %10s %14s\n", "tokens", "bytes", "nccl_ar", "auto",
              "one_shot", "two_shot", "nccl_kernel", "auto_graph", "auto/nccl_ar");
  FILE* f = std::fopen(json.c_str(), "w");
  if (f) std::fprintf(f, "[\n");
  for (int k = 0; k < kNumTokens; ++k) {
    const Result& res = results[k];
    const long long bytes = static_cast<long long>(kTokens[k] * kHidden * 2);
    std::printf("%7lld %10lld %11.2f", static_cast<long long>(kTokens[k]), bytes, res.nccl_us);
    for (double us : res.path_us) {
      if (us < 0)
        std::printf(" %9s", "-");
      else
        std::printf(" %9.2f", us);
    }
    std::printf(" %10.2f %14.2f\n", res.graph_us, res.path_us[0] / res.nccl_us);
    if (!f) continue;
    std::fprintf(f,
                 "  {\"op\": \"fused_norm\", \"ranks\": %d, \"gpu\": \"%s\", \"tokens\": %lld, "
                 "\"hidden\": %lld, \"dtype\": \"bf16\", \"bytes\": %lld, \"nccl_allreduce_us\": ",
                 ranks, prop.name, static_cast<long long>(kTokens[k]),
                 static_cast<long long>(kHidden), bytes);
    print_us(f, res.nccl_us);
    for (int p = 0; p < kNumPaths; ++p) {
      std::fprintf(f, ", \"%s_us\": ", kPathNames[p]);
      print_us(f, res.path_us[p]);
    }
    std::fprintf(f, ", \"auto_graph_us\": ");
    print_us(f, res.graph_us);
    std::fprintf(f, "}%s\n", k + 1 < kNumTokens ? "," : "");
  }
  if (f) {
    std::fprintf(f, "]\n");
    std::fclose(f);
    std::printf("wrote %s\n", json.c_str());
  }
  return 0;
}
