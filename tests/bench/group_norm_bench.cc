// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// diffcoll side of the GroupNorm benchmark of issue 11: microseconds per
// distributed GroupNorm on CUDA tensors, one rank per GPU (ranks as threads
// of this process). The whole activation is bf16 [1,512,90,160] with 32
// groups, split along H (uneven when P does not divide 90); each rank
// normalises its slab in place, contiguous and channels-last, with an f32
// affine. Prints a table and one JSON object per layout and mode (eager
// calls, and the same calls replayed from a CUDA graph) to --json FILE.
//
//   group_norm_bench [--ranks P] [--iters N] [--json FILE]
//
// The baseline engines use today (all_gather the slabs, GroupNorm on the
// whole tensor) is tests/bench/group_norm_torch.py, run under torchrun on
// the same machine; the target is diffcoll <= 0.3x its time.
#include <cuda_runtime.h>
#include <diffcoll/diffcoll.h>

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

constexpr int64_t kN = 1, kC = 512, kH = 90, kW = 160;
constexpr int kGroups = 32;

// A bf16 slab [1, 512, rows, 160], contiguous or channels-last.
diffcoll_tensor_t slab_desc(void* data, int64_t rows, bool channels_last, int device) {
  diffcoll_tensor_t d;
  std::memset(&d, 0, sizeof d);
  d.data = data;
  d.dtype = DIFFCOLL_BFLOAT16;
  d.device_type = DIFFCOLL_DEVICE_CUDA;
  d.device_id = device;
  d.ndim = 4;
  const int64_t shape[4] = {kN, kC, rows, kW};
  const int64_t contiguous[4] = {kC * rows * kW, rows * kW, kW, 1};
  const int64_t nhwc[4] = {kC * rows * kW, 1, kW * kC, kC};
  for (int i = 0; i < 4; ++i) {
    d.shape[i] = shape[i];
    d.strides[i] = channels_last ? nhwc[i] : contiguous[i];
  }
  return d;
}

struct Result {
  const char* layout;
  double eager_us, graph_us;
};

}  // namespace

int main(int argc, char** argv) {
  BenchArgs args;
  args.iters = 200;
  args.json = "";
  if (int status = parse_bench_args(argc, argv, "group_norm_bench", &args); status >= 0) return status;
  const int ranks = args.ranks, iters = args.iters;
  const std::string json = args.json;
  std::vector<Result> results;
  const std::string rendezvous = "local://group-norm-bench";
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      CUDA(cudaSetDevice(r));
      diffcoll_config_t cfg = DIFFCOLL_CONFIG_INIT;
      cfg.device_id = r;
      diffcoll_comm_t* comm;
      CHECK(diffcoll_comm_create(rendezvous.c_str(), r, ranks, &cfg, &comm));
      CHECK(diffcoll_comm_reserve(comm, 1 << 20));
      cudaStream_t stream;
      CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
      int64_t start, rows;
      CHECK(diffcoll_split_extent(kH, ranks, r, &start, &rows));
      const size_t bytes = kN * kC * rows * kW * 2;
      void* data;
      CUDA(cudaMalloc(&data, bytes));
      std::vector<uint16_t> host(bytes / 2);
      for (size_t i = 0; i < host.size(); ++i)
        host[i] = to_bf16(static_cast<float>((i * 2654435761u) % 1000) / 250.f - 2.f);
      CUDA(cudaMemcpy(data, host.data(), bytes, cudaMemcpyHostToDevice));
      std::vector<float> params(2 * kC, 1.f);
      for (int64_t c = 0; c < kC; ++c) params[kC + c] = 0.f;
      float* dparams;
      CUDA(cudaMalloc(&dparams, params.size() * sizeof(float)));
      CUDA(cudaMemcpy(dparams, params.data(), params.size() * sizeof(float),
                      cudaMemcpyHostToDevice));
      diffcoll_tensor_t w;
      std::memset(&w, 0, sizeof w);
      w.data = dparams;
      w.dtype = DIFFCOLL_FLOAT32;
      w.device_type = DIFFCOLL_DEVICE_CUDA;
      w.device_id = r;
      w.ndim = 1;
      w.shape[0] = kC;
      w.strides[0] = 1;
      diffcoll_tensor_t b = w;
      b.data = dparams + kC;
      cudaEvent_t t0, t1;
      CUDA(cudaEventCreate(&t0));
      CUDA(cudaEventCreate(&t1));
      for (bool channels_last : {false, true}) {
        diffcoll_tensor_t t = slab_desc(data, rows, channels_last, r);
        auto call = [&] { CHECK(diffcoll_group_norm(comm, &t, nullptr, &w, &b, kGroups, 1e-6, stream)); };
        for (int i = 0; i < 20; ++i) call();
        CUDA(cudaStreamSynchronize(stream));
        CHECK(diffcoll_barrier(comm, nullptr));
        CUDA(cudaEventRecord(t0, stream));
        for (int i = 0; i < iters; ++i) call();
        CUDA(cudaEventRecord(t1, stream));
        CUDA(cudaEventSynchronize(t1));
        float eager_ms = 0;
        CUDA(cudaEventElapsedTime(&eager_ms, t0, t1));
        // Graph: 10 calls captured once, replayed.
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        for (int i = 0; i < 10; ++i) call();
        CUDA(cudaStreamEndCapture(stream, &graph));
        CUDA(cudaGraphInstantiate(&exec, graph, 0));
        CUDA(cudaGraphLaunch(exec, stream));
        CUDA(cudaStreamSynchronize(stream));
        CHECK(diffcoll_barrier(comm, nullptr));
        CUDA(cudaEventRecord(t0, stream));
        for (int i = 0; i < iters / 10; ++i) CUDA(cudaGraphLaunch(exec, stream));
        CUDA(cudaEventRecord(t1, stream));
        CUDA(cudaEventSynchronize(t1));
        float graph_ms = 0;
        CUDA(cudaEventElapsedTime(&graph_ms, t0, t1));
        if (r == 0)
          results.push_back({channels_last ? "channels_last" : "contiguous",
                             1000.0 * eager_ms / iters, 1000.0 * graph_ms / (iters / 10 * 10)});
        CUDA(cudaGraphExecDestroy(exec));
        CUDA(cudaGraphDestroy(graph));
      }
      CUDA(cudaFree(data));
      CUDA(cudaFree(dparams));
      CHECK(diffcoll_barrier(comm, nullptr));
      CHECK(diffcoll_comm_destroy(comm));
    });
  for (auto& t : threads) t.join();

  std::printf("distributed GroupNorm, bf16 [%lld,%lld,%lld,%lld] split along H over %d GPUs, "
              "%d groups, in place, f32 affine (rank 0's CUDA-event time)\n",
              (long long)kN, (long long)kC, (long long)kH, (long long)kW, ranks, kGroups);
  std::printf("%-14s %10s %10s\n", "layout", "eager us", "graph us");
  for (const Result& res : results)
    std::printf("%-14s %10.2f %10.2f\n", res.layout, res.eager_us, res.graph_us);
  if (!json.empty()) {
    FILE* f = std::fopen(json.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "group_norm_bench: cannot write %s\n", json.c_str());
      return 1;
    }
    std::fprintf(f, "[\n");
    for (size_t i = 0; i < results.size(); ++i)
      std::fprintf(f,
                   "  {\"op\": \"group_norm\", \"impl\": \"diffcoll\", \"ranks\": %d, \"whole\": "
                   "[%lld,%lld,%lld,%lld], \"groups\": %d, \"dtype\": \"bf16\", \"split\": \"H\", "
                   "\"layout\": \"%s\", \"eager_us\": %.2f, \"graph_us\": %.2f}%s\n",
                   ranks, (long long)kN, (long long)kC, (long long)kH, (long long)kW, kGroups,
                   results[i].layout, results[i].eager_us, results[i].graph_us,
                   i + 1 < results.size() ? "," : "");
    std::fprintf(f, "]\n");
    std::fclose(f);
  }
  return 0;
}
