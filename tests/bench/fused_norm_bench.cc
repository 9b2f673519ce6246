// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The fused-norm benchmark of issue 7: microseconds per call for hidden 5120
// bf16 at 1, 16, 128, 1024 and 8192 tokens, one rank per GPU (ranks as
// threads of this process; with more ranks than GPUs, processes sharing
// them, whose timings mean nothing but whose results are still checked), in
// one run:
//   - raw NCCL all-reduce alone (ncclAllReduce, out of place), the floor the
//     issue compares with;
//   - diffcoll_fused_norm (all-reduce + residual add + RMSNorm, residual in
//     place) by each path: auto, one-shot, two-shot, NCCL + kernel (a path
//     the workspace cannot run is reported as null), eager calls, each path's
//     result first checked against the host path on the same data;
//   - auto again, 10 calls captured in a CUDA graph and replayed.
// Next to the timings: auto over the fastest path (the issue wants <= 1.1),
// and the limit of one GPU's memory: the four passes over the rows (x and
// residual read, residual_out and y written) at the device-to-device copy
// bandwidth measured in the same run. The epilogue kernel alone against the
// copy is in kernels_bench. Prints a table and writes JSON (--json FILE).
//
//   fused_norm_bench [--ranks P] [--iters N] [--json FILE]
//
// PyTorch eager (NCCL all-reduce, then the add and the norm as separate
// kernels) runs in a separate script; compare on the same machine.
#include <cuda_runtime.h>
#include <diffcoll/diffcoll.h>
#include <nccl.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
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

diffcoll_tensor_t rows(void* data, int64_t tokens, int device_type, int device) {
  diffcoll_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = DIFFCOLL_BFLOAT16;
  t.device_type = device_type;
  t.device_id = device;
  t.ndim = 2;
  t.shape[0] = tokens;
  t.shape[1] = kHidden;
  t.strides[0] = kHidden;
  t.strides[1] = 1;
  return t;
}

diffcoll_tensor_t weight_of(diffcoll_tensor_t t) {
  t.ndim = 1;
  t.shape[0] = kHidden;
  t.strides[0] = 1;
  return t;
}

void print_us(FILE* f, double us) {
  if (us < 0)
    std::fprintf(f, "null");
  else
    std::fprintf(f, "%.2f", us);
}

// bf16 inputs of rank r: x, residual, weight.
std::vector<uint16_t> values(size_t n, uint32_t salt, float scale) {
  std::vector<uint16_t> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = to_bf16(scale * (static_cast<float>((i * 2654435761u + salt) % 1000) / 500.f - 1.f));
  return v;
}

int run_rank(const BenchRank& me, const BenchArgs& args) {
  const int r = me.rank, ranks = me.ranks, iters = args.iters;
  diffcoll_comm_t* comm = bench_comm(me);
  const ncclComm_t raw = raw_nccl_comm(comm, me);
  cudaStream_t stream;
  CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const int64_t max_tokens = kTokens[kNumTokens - 1];
  const size_t max_elems = static_cast<size_t>(max_tokens * kHidden);
  const size_t max_bytes = max_elems * 2;
  diffcoll_fused_norm_workspace_t* ws;
  CHECK(diffcoll_fused_norm_workspace_create(comm, max_tokens, kHidden, DIFFCOLL_BFLOAT16, &ws));
  void *x, *residual, *weight, *y;
  for (void** p : {&x, &residual, &y}) CUDA(cudaMalloc(p, max_bytes));
  CUDA(cudaMalloc(&weight, kHidden * 2));
  const std::vector<uint16_t> hx = values(max_elems, 17 + r * 7919u, 0.5f);
  const std::vector<uint16_t> hres = values(max_elems, 3, 1.f);
  const std::vector<uint16_t> hw = values(kHidden, 5, 1.f);
  CUDA(cudaMemcpy(x, hx.data(), max_bytes, cudaMemcpyHostToDevice));
  CUDA(cudaMemcpy(weight, hw.data(), kHidden * 2, cudaMemcpyHostToDevice));
  auto time_us = [&](const std::function<void()>& fn, int launches, int calls) {
    return time_launches_us(comm, stream, fn, launches, calls);
  };
  std::vector<Result> results(kNumTokens);
  int failures = 0;
  std::vector<uint16_t> host_x, host_res, host_y, dev_y, dev_res;
  for (int k = 0; k < kNumTokens; ++k) {
    const int64_t tokens = kTokens[k];
    const size_t n = static_cast<size_t>(tokens * kHidden), bytes = n * 2;
    Result mine;
    mine.nccl_us = time_us(
        [&] { NCCL(ncclAllReduce(x, y, n, ncclBfloat16, ncclSum, raw, stream)); }, iters, iters);
    const diffcoll_tensor_t xd = rows(x, tokens, DIFFCOLL_DEVICE_CUDA, me.device);
    const diffcoll_tensor_t rd = rows(residual, tokens, DIFFCOLL_DEVICE_CUDA, me.device);
    const diffcoll_tensor_t yd = rows(y, tokens, DIFFCOLL_DEVICE_CUDA, me.device);
    const diffcoll_tensor_t wd = weight_of(rows(weight, 1, DIFFCOLL_DEVICE_CUDA, me.device));
    // The host path's result on the same data: the reference of every path.
    host_x.assign(hx.begin(), hx.begin() + n);
    host_res.assign(hres.begin(), hres.begin() + n);
    host_y.assign(n, 0);
    {
      diffcoll_tensor_t hxd = rows(host_x.data(), tokens, DIFFCOLL_DEVICE_CPU, 0);
      diffcoll_tensor_t hrd = rows(host_res.data(), tokens, DIFFCOLL_DEVICE_CPU, 0);
      diffcoll_tensor_t hyd = rows(host_y.data(), tokens, DIFFCOLL_DEVICE_CPU, 0);
      diffcoll_tensor_t hwd = weight_of(rows(const_cast<uint16_t*>(hw.data()), 1,
                                             DIFFCOLL_DEVICE_CPU, 0));
      CHECK(diffcoll_fused_norm(ws, &hxd, &hrd, &hwd, 1e-6f, &hyd, &hrd, nullptr, nullptr));
    }
    for (int p = 0; p < kNumPaths; ++p) {
      diffcoll_fused_norm_options_t options = DIFFCOLL_FUSED_NORM_OPTIONS_INIT;
      options.path = kPaths[p];
      auto call = [&] {
        return diffcoll_fused_norm(ws, &xd, &rd, &wd, 1e-6f, &yd, &rd, &options, stream);
      };
      CUDA(cudaMemcpy(residual, hres.data(), bytes, cudaMemcpyHostToDevice));
      // Availability depends only on what every rank agreed at creation.
      const diffcoll_status_t probe = call();
      if (probe == DIFFCOLL_ERR_UNSUPPORTED) continue;
      CHECK(probe);
      CUDA(cudaStreamSynchronize(stream));
      dev_y.resize(n);
      dev_res.resize(n);
      CUDA(cudaMemcpy(dev_y.data(), y, bytes, cudaMemcpyDeviceToHost));
      CUDA(cudaMemcpy(dev_res.data(), residual, bytes, cudaMemcpyDeviceToHost));
      int bad = 0;
      // bf16 tolerances: the ranks' sum may round in another order than the host's.
      auto close = [](float got, float want) {
        return std::fabs(got - want) <= 1e-2f * std::fabs(want) + 1e-2f;
      };
      for (size_t i = 0; i < n; ++i) {
        const float want_y = from_bf16(host_y[i]), got_y = from_bf16(dev_y[i]);
        if ((!close(got_y, want_y) || !close(from_bf16(dev_res[i]), from_bf16(host_res[i]))) &&
            bad++ < 3)
          std::fprintf(stderr,
                       "fused_norm_bench: rank %d, %lld tokens, %s: element %zu: y %g (host %g), "
                       "residual_out %g (host %g)\n",
                       r, static_cast<long long>(tokens), kPathNames[p], i, got_y, want_y,
                       from_bf16(dev_res[i]), from_bf16(host_res[i]));
      }
      failures += bad > 0;
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
    results[k] = mine;
  }
  CUDA(cudaStreamSynchronize(stream));
  CHECK(diffcoll_barrier(comm, nullptr));
  const double copy = r == 0 ? copy_gbps(stream) : 0;
  CHECK(diffcoll_barrier(comm, nullptr));
  CHECK(diffcoll_fused_norm_workspace_destroy(ws));
  for (void* p : {x, residual, y, weight}) CUDA(cudaFree(p));
  CHECK(diffcoll_barrier(comm, nullptr));
  NCCL(ncclCommDestroy(raw));
  CHECK(diffcoll_comm_destroy(comm));
  cudaStreamDestroy(stream);
  if (failures) return 1;  // what differed is printed above
  if (r != 0) return 0;

  const int gpus = args.gpus;
  cudaDeviceProp prop;
  CUDA(cudaGetDeviceProperties(&prop, me.device));
  print_shared_note(me, gpus);
  std::printf("fused all-reduce + residual + RMSNorm, hidden %lld bf16, %d ranks on %d x %s, "
              "us per call (rank 0), results checked against the host path\n",
              static_cast<long long>(kHidden), ranks, gpus, prop.name);
  std::printf("limit: x and residual read, residual_out and y written, at the copy bandwidth "
              "%.0f GB/s (cudaMemcpy D2D of 256 MiB, read + write)\n",
              copy);
  std::printf("%7s %10s %9s %9s %9s %9s %12s %10s %10s %9s %11s\n", "tokens", "bytes", "nccl_ar",
              "auto", "one_shot", "two_shot", "nccl_kernel", "auto_graph", "limit_us",
              "auto/best", "limit/auto");
  FILE* f = args.json.empty() ? nullptr : std::fopen(args.json.c_str(), "w");
  if (f) std::fprintf(f, "[\n");
  for (int k = 0; k < kNumTokens; ++k) {
    const Result& res = results[k];
    const long long bytes = static_cast<long long>(kTokens[k] * kHidden * 2);
    const double limit_us = 4.0 * static_cast<double>(bytes) / copy / 1e3;
    double best = -1;
    for (int p = 1; p < kNumPaths; ++p)
      if (res.path_us[p] >= 0 && (best < 0 || res.path_us[p] < best)) best = res.path_us[p];
    std::printf("%7lld %10lld %9.2f", static_cast<long long>(kTokens[k]), bytes, res.nccl_us);
    for (double us : res.path_us) {
      if (us < 0)
        std::printf(" %9s", "-");
      else
        std::printf(" %9.2f", us);
    }
    std::printf("   %10.2f %10.2f %9.2f %11.2f\n", res.graph_us, limit_us, res.path_us[0] / best,
                limit_us / res.path_us[0]);
    if (!f) continue;
    std::fprintf(f,
                 "  {\"op\": \"fused_norm\", \"ranks\": %d, \"gpus\": %d, \"shared_gpus\": %s, "
                 "\"gpu\": \"%s\", \"tokens\": %lld, \"hidden\": %lld, \"dtype\": \"bf16\", "
                 "\"bytes\": %lld, \"copy_gbps\": %.1f, \"limit_us\": %.2f, "
                 "\"auto_over_best\": %.3f, \"nccl_allreduce_us\": ",
                 ranks, gpus, me.shared ? "true" : "false", prop.name,
                 static_cast<long long>(kTokens[k]), static_cast<long long>(kHidden), bytes, copy,
                 limit_us, res.path_us[0] / best);
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
    std::printf("wrote %s\n", args.json.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return bench_main(argc, argv, "fused_norm_bench", 100, "fused_norm_bench.json", run_rank);
}
