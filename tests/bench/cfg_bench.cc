// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The CFG-parallel combine benchmark of issues 4 and 16: a bf16 video latent
// [1, 16, 21, 90, 160], standard CFG (g = 5, cond and uncond) with guidance
// rescale (phi = 0.7), one process per rank, every rank ending with the
// combined, rescaled prediction. Procedures timed in the same run:
//  - diffcoll: diffcoll_cfg_combine_parallel (PARALLEL order), eager and
//    replayed from a CUDA graph;
//  - gather: what PyTorch engines do with all_gather: ncclAllGather of the
//    branches, a combine kernel, then the rescale (a moments kernel for the
//    std of cond and of the output, a scale kernel);
//  - reduce: the weighted all-reduce done the PyTorch way: each rank scales
//    its branch, ncclAllReduce, and for the rescale the cond rank's moments
//    shared by a second ncclAllReduce, the output's moments, a scale kernel;
//    eager and replayed from a CUDA graph, and without the rescale (the
//    procedure PyTorch's 96 us anchor times).
// The baselines use raw NCCL and simple fused kernels (one kernel where eager
// PyTorch launches several), so they are if anything faster than PyTorch.
// Times: median over iterations of CUDA events around one call, as
// /work/shared/baselines/torch_anchor.py measures (tests/bench/cfg_bench_torch.py
// runs its procedures). Next to each time the table gives its ratio to the
// best eager raw-NCCL procedure (issue 16 wants diffcoll <= 1.05x, eager and
// in a graph) and the fraction of the copy floor: the compulsory local memory
// traffic (reading this rank's branches once, writing out once) at the
// device-to-device copy bandwidth measured in the same run (cudaMemcpy of
// 1 GiB, bytes read plus written); communication is not in the floor.
// Afterwards every procedure's result is checked against a double-precision
// reference on rank 0 (within bf16 rounding). Rank 0 prints the table and
// writes JSON.
//
//   cfg_bench [--ranks D] [--iters N] [--json PATH]
//
// Runs D ranks through bench_support.h's bench_main: threads with a GPU each,
// which gives the timings; with more ranks than GPUs, processes sharing them
// (each its own NCCL host over loopback sockets): results are checked,
// timings are not meaningful and the table says so. D = 1 has no
// communication (diffcoll's CFG group of one rank communicates nothing, the
// baselines still call NCCL).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <diffcoll/diffcoll.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench_support.h"
#include "example_support.h"

namespace {

constexpr int64_t kShape[5] = {1, 16, 21, 90, 160};
constexpr double kGuidance = 5.0;
constexpr double kPhi = 0.7;
constexpr int kThreads = 256;
constexpr int kBlocks = 1024;

// ---- the baselines' kernels (batch 1) -------------------------------------------------

// y = w0 * x0 (+ w1 * x1 when x1 is not null).
__global__ void weighted_kernel(const __nv_bfloat16* x0, float w0, const __nv_bfloat16* x1,
                                float w1, __nv_bfloat16* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    float v = w0 * __bfloat162float(x0[i]);
    if (x1) v += w1 * __bfloat162float(x1[i]);
    y[i] = __float2bfloat16(v);
  }
}

// out = u + g * (c - u)
__global__ void combine_kernel(const __nv_bfloat16* c, const __nv_bfloat16* u, __nv_bfloat16* out,
                               float g, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float uv = __bfloat162float(u[i]);
    out[i] = __float2bfloat16(uv + g * (__bfloat162float(c[i]) - uv));
  }
}

// acc[0] += sum x, acc[1] += sum x^2 (acc zeroed by the caller).
__global__ void moments_kernel(const __nv_bfloat16* x, int64_t n, double* acc) {
  __shared__ double s[2][kThreads];
  float sum = 0, sq = 0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float v = __bfloat162float(x[i]);
    sum += v;
    sq += v * v;
  }
  s[0][threadIdx.x] = sum;
  s[1][threadIdx.x] = sq;
  __syncthreads();
  for (int k = kThreads / 2; k > 0; k /= 2) {
    if (threadIdx.x < k) {
      s[0][threadIdx.x] += s[0][threadIdx.x + k];
      s[1][threadIdx.x] += s[1][threadIdx.x + k];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    atomicAdd(&acc[0], s[0][0]);
    atomicAdd(&acc[1], s[1][0]);
  }
}

__device__ double std_of(const double* acc, int64_t n) {
  const double mean = acc[0] / n;
  return sqrt(fmax(acc[1] - n * mean * mean, 0.0) / (n - 1));
}

// out = phi * out * std(cond) / std(out) + (1 - phi) * out
__global__ void rescale_kernel(__nv_bfloat16* out, const double* cond_acc, const double* out_acc,
                               int64_t n, float phi) {
  const float f = phi * static_cast<float>(std_of(cond_acc, n) / std_of(out_acc, n)) + (1 - phi);
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    out[i] = __float2bfloat16(__bfloat162float(out[i]) * f);
}

struct Timing {
  double median_us, mean_us, host_us;
};

// Median of CUDA-event times around one call, the mean of back-to-back calls,
// and the median host time to issue one of those calls (what the caller's
// thread spends in it; an eager call costs at least this much).
Timing time_it(const std::function<void()>& fn, cudaStream_t stream, diffcoll_comm_t* comm,
               int iters) {
  for (int i = 0; i < 5; ++i) fn();
  CUDA(cudaStreamSynchronize(stream));
  CHECK(diffcoll_barrier(comm, nullptr));
  cudaEvent_t start, stop;
  CUDA(cudaEventCreate(&start));
  CUDA(cudaEventCreate(&stop));
  std::vector<float> ms(iters);
  for (int i = 0; i < iters; ++i) {
    CUDA(cudaEventRecord(start, stream));
    fn();
    CUDA(cudaEventRecord(stop, stream));
    CUDA(cudaEventSynchronize(stop));
    CUDA(cudaEventElapsedTime(&ms[i], start, stop));
  }
  CHECK(diffcoll_barrier(comm, nullptr));
  std::vector<double> host(iters);
  CUDA(cudaEventRecord(start, stream));
  for (int i = 0; i < iters; ++i) {
    const auto issue = std::chrono::steady_clock::now();
    fn();
    host[i] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - issue)
                  .count();
  }
  CUDA(cudaEventRecord(stop, stream));
  CUDA(cudaEventSynchronize(stop));
  float total = 0;
  CUDA(cudaEventElapsedTime(&total, start, stop));
  std::sort(ms.begin(), ms.end());
  std::sort(host.begin(), host.end());
  CUDA(cudaEventDestroy(start));
  CUDA(cudaEventDestroy(stop));
  return {1000.0 * ms[iters / 2], 1000.0 * total / iters, host[iters / 2]};
}

// A procedure captured once into a CUDA graph, replayed by launch().
class Graph {
 public:
  Graph(const std::function<void()>& fn, cudaStream_t stream) : stream_(stream) {
    cudaGraph_t graph;
    CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    fn();
    CUDA(cudaStreamEndCapture(stream, &graph));
    CUDA(cudaGraphInstantiate(&exec_, graph, 0));
    CUDA(cudaGraphDestroy(graph));
  }
  ~Graph() { cudaGraphExecDestroy(exec_); }
  void launch() const { CUDA(cudaGraphLaunch(exec_, stream_)); }

 private:
  cudaStream_t stream_;
  cudaGraphExec_t exec_ = nullptr;
};

// The bf16 inputs: rank r's local block (its branches side by side), the
// same formula on every run, so that rank 0 can rebuild every rank's.
std::vector<uint16_t> local_block(int rank, int64_t count) {
  std::vector<uint16_t> host(count);
  for (int64_t i = 0; i < count; ++i)
    host[i] = to_bf16(static_cast<float>(((i * 7919 + rank * 104729) % 2001) - 1000) / 500.0f);
  return host;
}

// Checks `got` (the combined, rescaled bf16 prediction) against the
// double-precision combine of cond and uncond: every element within a few
// bf16 roundings of the terms g * cond and (1 - g) * uncond, scaled by the
// rescale factor. Returns the largest error in units of that bound (<= 1: pass).
double check_result(const std::vector<uint16_t>& got, const std::vector<uint16_t>& cond,
                    const std::vector<uint16_t>& uncond) {
  const int64_t n = static_cast<int64_t>(got.size());
  std::vector<double> out(n);
  auto stdev = [n](const std::function<double(int64_t)>& x) {
    double mean = 0, m2 = 0;
    for (int64_t i = 0; i < n; ++i) mean += x(i);
    mean /= n;
    for (int64_t i = 0; i < n; ++i) m2 += (x(i) - mean) * (x(i) - mean);
    return std::sqrt(m2 / (n - 1));
  };
  for (int64_t i = 0; i < n; ++i) {
    const double c = from_bf16(cond[i]), u = from_bf16(uncond[i]);
    out[i] = u + kGuidance * (c - u);
  }
  const double factor =
      kPhi * stdev([&](int64_t i) { return from_bf16(cond[i]); }) /
          stdev([&](int64_t i) { return out[i]; }) +
      (1 - kPhi);
  const double unit = std::ldexp(1.0, -8);  // bf16's unit roundoff
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double c = from_bf16(cond[i]), u = from_bf16(uncond[i]);
    const double magnitude =
        (std::fabs(kGuidance * c) + std::fabs((1 - kGuidance) * u)) * factor + std::fabs(out[i] * factor);
    const double bound = 6 * unit * magnitude + 1e-6;
    worst = std::max(worst, std::fabs(from_bf16(got[i]) - out[i] * factor) / bound);
  }
  return worst;
}

int run_rank(const BenchRank& me, const BenchArgs& args) {
  const int rank = me.rank, ranks = me.ranks, device = me.device, gpus = args.gpus;
  const int iters = args.iters;
  const bool shared = me.shared;
  const std::string& json = args.json;
  diffcoll_comm_t* comm = bench_comm(me);
  ncclComm_t nccl = raw_nccl_comm(comm, me);
  cudaStream_t stream;
  CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  // The policy: standard CFG with guidance rescale, PARALLEL order.
  const diffcoll_cfg_branch_t branches[2] = {{"cond", DIFFCOLL_CFG_COND},
                                              {"uncond", DIFFCOLL_CFG_UNCOND}};
  const diffcoll_cfg_term_t term = {kGuidance, 0, 1};
  diffcoll_cfg_options_t options = DIFFCOLL_CFG_OPTIONS_INIT;
  options.order = DIFFCOLL_CFG_ORDER_PARALLEL;
  options.rescale_phi = kPhi;
  diffcoll_cfg_policy_t* policy;
  CHECK(diffcoll_cfg_policy_create(branches, 2, 1, &term, 1, &options, &policy));
  int32_t mine[2], count = 0;
  CHECK(diffcoll_cfg_dispatch(policy, ranks, rank, mine, 2, &count));
  std::vector<int32_t> owner(2);
  for (int r = 0; r < ranks; ++r) {
    int32_t theirs[2], c = 0;
    CHECK(diffcoll_cfg_dispatch(policy, ranks, r, theirs, 2, &c));
    for (int k = 0; k < c; ++k) owner[theirs[k]] = r;
  }
  const int slots = ranks == 1 ? 2 : 1;  // branches per rank in the gathered layout

  int64_t n = 1;
  for (int64_t d : kShape) n *= d;
  const size_t bytes = n * sizeof(__nv_bfloat16);
  // The local branches, side by side (the block the gather baseline sends).
  __nv_bfloat16 *local, *out, *partial, *gathered;
  double* acc;  // cond moments, output moments
  CUDA(cudaMalloc(&local, slots * bytes));
  CUDA(cudaMalloc(&out, bytes));
  CUDA(cudaMalloc(&partial, bytes));
  CUDA(cudaMalloc(&gathered, ranks * slots * bytes));
  CUDA(cudaMalloc(&acc, 4 * sizeof(double)));
  CUDA(cudaMemcpy(local, local_block(rank, slots * n).data(), slots * bytes,
                  cudaMemcpyHostToDevice));
  auto tensor = [&](void* data) {
    diffcoll_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = DIFFCOLL_BFLOAT16;
    t.device_type = DIFFCOLL_DEVICE_CUDA;
    t.device_id = device;
    t.ndim = 5;
    int64_t stride = 1;
    for (int d = 4; d >= 0; --d) {
      t.shape[d] = kShape[d];
      t.strides[d] = stride;
      stride *= kShape[d];
    }
    return t;
  };
  std::vector<diffcoll_tensor_t> local_t;
  for (int k = 0; k < count; ++k) local_t.push_back(tensor(local + k * n));
  const diffcoll_tensor_t out_t = tensor(out);
  CHECK(diffcoll_comm_reserve(comm, 4 * bytes));

  auto diffcoll = [&] {
    CHECK(diffcoll_cfg_combine_parallel(comm, policy, local_t.empty() ? nullptr : local_t.data(),
                                        count, &out_t, 0, stream));
  };
  const int blocks = kBlocks;
  const double weight[2] = {kGuidance, 1 - kGuidance};
  const __nv_bfloat16* cond_local = nullptr;
  for (int k = 0; k < count; ++k)
    if (mine[k] == 0) cond_local = local + k * n;
  auto rescale_after_reduce = [&] {
    // Cond moments from the rank holding cond (zeros elsewhere), shared.
    CUDA(cudaMemsetAsync(acc, 0, 4 * sizeof(double), stream));
    if (cond_local) moments_kernel<<<blocks, kThreads, 0, stream>>>(cond_local, n, acc);
    NCCL(ncclAllReduce(acc, acc, 2, ncclDouble, ncclSum, nccl, stream));
    moments_kernel<<<blocks, kThreads, 0, stream>>>(partial, n, acc + 2);
    rescale_kernel<<<blocks, kThreads, 0, stream>>>(partial, acc, acc + 2, n, kPhi);
  };
  auto weighted_reduce = [&] {
    const __nv_bfloat16* x0 = count > 0 ? local : nullptr;
    if (x0)
      weighted_kernel<<<blocks, kThreads, 0, stream>>>(
          x0, weight[mine[0]], count > 1 ? local + n : nullptr,
          count > 1 ? weight[mine[1]] : 0.0f, partial, n);
    else
      CUDA(cudaMemsetAsync(partial, 0, bytes, stream));
    NCCL(ncclAllReduce(partial, partial, n, ncclBfloat16, ncclSum, nccl, stream));
  };
  auto reduce_rescale = [&] {
    weighted_reduce();
    rescale_after_reduce();
  };
  auto gather_rescale = [&] {
    NCCL(ncclAllGather(local, gathered, slots * n, ncclBfloat16, nccl, stream));
    // One rank: its block holds both branches in branch order; more: one each.
    const __nv_bfloat16* c = gathered + static_cast<int64_t>(owner[0]) * slots * n;
    const __nv_bfloat16* u = gathered + (static_cast<int64_t>(owner[1]) * slots + slots - 1) * n;
    combine_kernel<<<blocks, kThreads, 0, stream>>>(c, u, out, kGuidance, n);
    CUDA(cudaMemsetAsync(acc, 0, 4 * sizeof(double), stream));
    moments_kernel<<<blocks, kThreads, 0, stream>>>(c, n, acc);
    moments_kernel<<<blocks, kThreads, 0, stream>>>(out, n, acc + 2);
    rescale_kernel<<<blocks, kThreads, 0, stream>>>(out, acc, acc + 2, n, kPhi);
  };

  // The limit: copy bandwidth of this GPU (1 GiB buffers, well above its L2).
  const double copy_bytes_per_s = copy_bandwidth(size_t{1} << 30, stream, 20);
  const double floor_us = 1e6 * static_cast<double>(slots + 1) * bytes / copy_bytes_per_s;

  const Timing d_eager = time_it(diffcoll, stream, comm, iters);
  auto d_graph_exec = std::make_unique<Graph>(diffcoll, stream);
  const Timing d_graph = time_it([&] { d_graph_exec->launch(); }, stream, comm, iters);
  const Timing gather = time_it(gather_rescale, stream, comm, iters);
  const Timing reduce = time_it(reduce_rescale, stream, comm, iters);
  auto reduce_graph_exec = std::make_unique<Graph>(reduce_rescale, stream);
  const Timing reduce_graph = time_it([&] { reduce_graph_exec->launch(); }, stream, comm, iters);
  const Timing reduce_plain = time_it(weighted_reduce, stream, comm, iters);

  // Results: one more call of each, checked on rank 0.
  std::vector<uint16_t> cond_host, uncond_host;
  if (rank == 0) {
    auto branch = [&](int b) {  // branch b's values, rebuilt from its owner's block
      const std::vector<uint16_t> block = local_block(owner[b], slots * n);
      const int64_t at = ranks == 1 ? b * n : 0;
      return std::vector<uint16_t>(block.begin() + at, block.begin() + at + n);
    };
    cond_host = branch(0);
    uncond_host = branch(1);
  }
  auto result_error = [&](const std::function<void()>& fn, const __nv_bfloat16* result) {
    fn();
    CUDA(cudaStreamSynchronize(stream));
    CHECK(diffcoll_barrier(comm, nullptr));
    if (rank != 0) return 0.0;
    std::vector<uint16_t> got(n);
    CUDA(cudaMemcpy(got.data(), result, bytes, cudaMemcpyDeviceToHost));
    return check_result(got, cond_host, uncond_host);
  };
  const double diffcoll_error = result_error(diffcoll, out);
  const double diffcoll_graph_error = result_error([&] { d_graph_exec->launch(); }, out);
  const double gather_error = result_error(gather_rescale, out);
  const double reduce_error = result_error(reduce_rescale, partial);
  const double worst =
      std::max({diffcoll_error, diffcoll_graph_error, gather_error, reduce_error});

  if (rank == 0) {
    const double best = std::min(gather.median_us, reduce.median_us);
    std::printf("CFG-parallel combine, bf16 [1,16,21,90,160] (%.1f MB), g=%.1f, rescale phi=%.1f, "
                "%d rank(s) on %d GPU(s), %d iterations\n",
                bytes / 1e6, kGuidance, kPhi, ranks, std::min(ranks, gpus), iters);
    if (shared)
      std::printf("%d ranks share %d GPU(s) over NCCL's socket transport: results are checked, "
                  "timings are NOT meaningful\n",
                  ranks, gpus);
    std::printf("copy bandwidth %.0f GB/s (cudaMemcpy device to device, read + write); copy floor "
                "%.1f us = reading %d branch(es) and writing out once, communication excluded\n",
                copy_bytes_per_s / 1e9, floor_us, slots);
    std::printf("%-46s %10s %10s %12s %12s %10s\n", "procedure", "median us", "mean us",
                "vs best raw", "copy floor", "host us");
    auto row = [&](const char* name, const Timing& t) {
      std::printf("%-46s %10.1f %10.1f %11.2fx %11.0f%% %10.1f\n", name, t.median_us, t.mean_us,
                  t.median_us / best, 100.0 * floor_us / t.median_us, t.host_us);
    };
    row("diffcoll cfg_combine_parallel (eager)", d_eager);
    row("diffcoll cfg_combine_parallel (CUDA graph)", d_graph);
    row("all_gather + combine + rescale (raw NCCL)", gather);
    row("weighted all_reduce + rescale (raw NCCL)", reduce);
    row("weighted all_reduce + rescale (raw NCCL, graph)", reduce_graph);
    row("weighted all_reduce, no rescale (raw NCCL)", reduce_plain);
    std::printf("results against the double-precision combine (largest error / bf16 bound, "
                "<= 1 passes): diffcoll %.2f, graph %.2f, gather %.2f, reduce %.2f: %s\n",
                diffcoll_error, diffcoll_graph_error, gather_error, reduce_error,
                worst <= 1 ? "ok" : "FAILED");
    std::FILE* f = json.empty() ? nullptr : std::fopen(json.c_str(), "w");
    if (f) {
      std::fprintf(f,
                   "{\"op\": \"cfg_combine_parallel\", \"ranks\": %d, \"gpus\": %d, "
                   "\"shared_gpus\": %s, \"shape\": [1,16,21,90,160], \"dtype\": \"bf16\", "
                   "\"guidance\": %.1f, \"rescale_phi\": %.1f, \"iters\": %d, \"bytes\": %zu,\n"
                   " \"copy_bandwidth_gbs\": %.1f, \"copy_floor_us\": %.2f,\n"
                   " \"median_us\": {\"diffcoll_eager\": %.2f, \"diffcoll_graph\": %.2f, "
                   "\"gather_combine_rescale\": %.2f, \"weighted_allreduce_rescale\": %.2f, "
                   "\"weighted_allreduce_rescale_graph\": %.2f, \"weighted_allreduce\": %.2f},\n"
                   " \"mean_us\": {\"diffcoll_eager\": %.2f, \"diffcoll_graph\": %.2f, "
                   "\"gather_combine_rescale\": %.2f, \"weighted_allreduce_rescale\": %.2f, "
                   "\"weighted_allreduce_rescale_graph\": %.2f, \"weighted_allreduce\": %.2f},\n"
                   " \"host_us\": {\"diffcoll_eager\": %.2f, \"diffcoll_graph\": %.2f, "
                   "\"gather_combine_rescale\": %.2f, \"weighted_allreduce_rescale\": %.2f, "
                   "\"weighted_allreduce_rescale_graph\": %.2f, \"weighted_allreduce\": %.2f},\n"
                   " \"diffcoll_eager_vs_best_baseline\": %.3f, "
                   "\"diffcoll_graph_vs_best_baseline\": %.3f,\n"
                   " \"result_error_over_bound\": {\"diffcoll_eager\": %.3f, "
                   "\"diffcoll_graph\": %.3f, \"gather\": %.3f, \"reduce\": %.3f}, "
                   "\"results_ok\": %s}\n",
                   ranks, gpus, shared ? "true" : "false", kGuidance, kPhi, iters, bytes,
                   copy_bytes_per_s / 1e9, floor_us, d_eager.median_us, d_graph.median_us,
                   gather.median_us, reduce.median_us, reduce_graph.median_us,
                   reduce_plain.median_us, d_eager.mean_us, d_graph.mean_us, gather.mean_us,
                   reduce.mean_us, reduce_graph.mean_us, reduce_plain.mean_us, d_eager.host_us,
                   d_graph.host_us, gather.host_us, reduce.host_us, reduce_graph.host_us,
                   reduce_plain.host_us, d_eager.median_us / best, d_graph.median_us / best, diffcoll_error,
                   diffcoll_graph_error, gather_error, reduce_error, worst <= 1 ? "true" : "false");
      std::fclose(f);
      std::printf("wrote %s\n", json.c_str());
    }
  }
  d_graph_exec.reset();  // before the communicators their nodes use
  reduce_graph_exec.reset();
  CHECK(diffcoll_barrier(comm, nullptr));
  NCCL(ncclCommDestroy(nccl));
  CHECK(diffcoll_cfg_policy_destroy(policy));
  CHECK(diffcoll_comm_destroy(comm));
  for (void* p : {static_cast<void*>(local), static_cast<void*>(out), static_cast<void*>(partial),
                  static_cast<void*>(gathered), static_cast<void*>(acc)})
    CUDA(cudaFree(p));
  return rank == 0 && worst > 1 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  return bench_main(argc, argv, "cfg_bench", 100, "cfg_bench.json", run_rank);
}
