// diffcoll side of the halo benchmark of issue 6: microseconds per halo
// exchange on CUDA tensors, one rank per GPU (ranks as threads of this
// process), for the bf16 channels-last-3d activations, split along H
// with one halo row per side. Each shape is the per-rank slab; the padded
// buffer has H + 2 rows. Prints one JSON object per shape and mode (eager
// calls, and the same calls replayed from a CUDA graph).
//
//   halo_bench [--ranks P] [--iters N] [--boundary zeros|replicate|reflect|circular]
//
// The PyTorch baseline (edge copies, batch_isend_irecv, torch.cat) runs in a
// separate script; compare on the same machine.
#include <cuda_runtime.h>
#include <diffcoll/diffcoll.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "example_support.h"

namespace {

#define CUDA(call)                                                            \
  do {                                                                        \
    cudaError_t e_ = (call);                                                  \
    if (e_ != cudaSuccess) {                                                  \
      std::fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                           \
    }                                                                         \
  } while (0)

struct Shape {
  int64_t n, c, t, h, w;
};

// A bf16 channels-last-3d tensor [n, c, t, h, w] (memory order n, t, h, w, c).
diffcoll_tensor_t ndhwc(void* data, const Shape& s, int device) {
  diffcoll_tensor_t d;
  std::memset(&d, 0, sizeof d);
  d.data = data;
  d.dtype = DIFFCOLL_BFLOAT16;
  d.device_type = DIFFCOLL_DEVICE_CUDA;
  d.device_id = device;
  d.ndim = 5;
  const int64_t shape[5] = {s.n, s.c, s.t, s.h, s.w};
  const int64_t strides[5] = {s.t * s.h * s.w * s.c, 1, s.h * s.w * s.c, s.w * s.c, s.c};
  for (int i = 0; i < 5; ++i) {
    d.shape[i] = shape[i];
    d.strides[i] = strides[i];
  }
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 1) {
    std::fprintf(stderr, "halo_bench: no CUDA device\n");
    return 0;
  }
  int ranks = std::min(devices, 2), iters = 200;
  int boundary = DIFFCOLL_HALO_ZEROS;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--ranks" && i + 1 < argc)
      ranks = std::atoi(argv[++i]);
    else if (a == "--iters" && i + 1 < argc)
      iters = std::atoi(argv[++i]);
    else if (a == "--boundary" && i + 1 < argc) {
      const std::string b = argv[++i];
      boundary = b == "replicate"  ? DIFFCOLL_HALO_REPLICATE
                 : b == "reflect"  ? DIFFCOLL_HALO_REFLECT
                 : b == "circular" ? DIFFCOLL_HALO_CIRCULAR
                                   : DIFFCOLL_HALO_ZEROS;
    } else {
      std::fprintf(stderr, "usage: %s [--ranks P] [--iters N] [--boundary MODE]\n", argv[0]);
      return 2;
    }
  }
  if (ranks > devices) {
    std::fprintf(stderr, "halo_bench: %d ranks need %d GPUs, found %d\n", ranks, ranks, devices);
    return 1;
  }
  const std::vector<Shape> shapes = {
      {1, 384, 4, 45, 160}, {1, 192, 4, 180, 640}, {1, 96, 4, 360, 1280}};
  const std::string rendezvous = "local://halo-bench";
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
      diffcoll_halo_config_t hc = DIFFCOLL_HALO_CONFIG_INIT;  // H (dim -2), 1 row each side
      hc.row_boundary_before = hc.row_boundary_after = boundary;
      diffcoll_halo_plan_t* plan;
      CHECK(diffcoll_halo_plan_create(comm, &hc, &plan));
      cudaEvent_t start, stop;
      CUDA(cudaEventCreate(&start));
      CUDA(cudaEventCreate(&stop));
      for (const Shape& slab : shapes) {
        Shape padded = slab;
        padded.h += 2;
        const size_t bytes = padded.n * padded.c * padded.t * padded.h * padded.w * 2;
        void* data;
        CUDA(cudaMalloc(&data, bytes));
        CUDA(cudaMemset(data, 0, bytes));
        diffcoll_tensor_t t = ndhwc(data, padded, r);
        CHECK(diffcoll_comm_reserve(comm, 64 << 20));
        for (int i = 0; i < 20; ++i) CHECK(diffcoll_halo_exchange(plan, &t, stream));
        CUDA(cudaStreamSynchronize(stream));
        CHECK(diffcoll_comm_reset_stats(comm));
        // Eager: one call per exchange.
        CHECK(diffcoll_barrier(comm, nullptr));
        CUDA(cudaEventRecord(start, stream));
        for (int i = 0; i < iters; ++i) CHECK(diffcoll_halo_exchange(plan, &t, stream));
        CUDA(cudaEventRecord(stop, stream));
        CUDA(cudaEventSynchronize(stop));
        float eager_ms = 0;
        CUDA(cudaEventElapsedTime(&eager_ms, start, stop));
        diffcoll_stats_t stats = DIFFCOLL_STATS_INIT;
        CHECK(diffcoll_comm_get_stats(comm, &stats));
        // Graph: 10 exchanges captured once, replayed.
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        for (int i = 0; i < 10; ++i) CHECK(diffcoll_halo_exchange(plan, &t, stream));
        CUDA(cudaStreamEndCapture(stream, &graph));
        CUDA(cudaGraphInstantiate(&exec, graph, 0));
        CUDA(cudaGraphLaunch(exec, stream));
        CUDA(cudaStreamSynchronize(stream));
        CHECK(diffcoll_barrier(comm, nullptr));
        CUDA(cudaEventRecord(start, stream));
        for (int i = 0; i < iters / 10; ++i) CUDA(cudaGraphLaunch(exec, stream));
        CUDA(cudaEventRecord(stop, stream));
        CUDA(cudaEventSynchronize(stop));
        float graph_ms = 0;
        CUDA(cudaEventElapsedTime(&graph_ms, start, stop));
        if (r == 0)
          std::printf(
              "{\"op\": \"halo_exchange\", \"ranks\": %d, \"slab\": [%lld,%lld,%lld,%lld,%lld], "
              "\"dtype\": \"bf16\", \"layout\": \"channels_last_3d\", \"split\": \"H\", "
              "\"halo\": 1, \"eager_us\": %.2f, \"graph_us\": %.2f, "
              "\"packed_bytes_per_call\": %llu}\n",
              ranks, (long long)slab.n, (long long)slab.c, (long long)slab.t, (long long)slab.h,
              (long long)slab.w, 1000.0 * eager_ms / iters, 1000.0 * graph_ms / (iters / 10 * 10),
              (unsigned long long)(stats.bytes_packed / iters));
        CUDA(cudaGraphExecDestroy(exec));
        CUDA(cudaGraphDestroy(graph));
        CUDA(cudaFree(data));
      }
      CHECK(diffcoll_halo_plan_destroy(plan));
      CHECK(diffcoll_barrier(comm, nullptr));
      CHECK(diffcoll_comm_destroy(comm));
    });
  for (auto& t : threads) t.join();
  return 0;
}
