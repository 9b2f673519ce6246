// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The Ulysses all-to-all on CUDA tensors: the host tests' calls
// (ulysses_cases.h) through device memory on a CUDA stream, ranks as
// processes (one per GPU, or sharing GPUs: halo_gpu_support.h): degree 1
// (pack and unpack kernels only), degrees 2, 3, 4 and 8, and a CUDA graph
// capture; the ring exchange on device buffers, stepped and captured. Every
// test skips without a GPU.
#define HALO_TEST_CUDA 1

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "../halo/halo_gpu_support.h"
#include "ulysses_cases.h"

namespace {

using halo_test::rank_device;
using halo_test::run_gpu_ranks;
using namespace ulysses_test;
using halo_test::Mirror;

void run_degree(int p) {
  const std::vector<Call> calls = standard_calls(p);
  run_gpu_ranks(p, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
    const Where where{rank_device(r), stream};
    uint64_t salt = 0;
    for (const Call& c : calls) run_call(c, r, p, comm, ++salt, &where);
  });
}

TEST(GpuUlysses, DegreeOneMatchesTheHostReference) {
  SKIP_WITHOUT_GPUS(1);
  run_degree(1);
}

TEST(GpuUlysses, TwoRanks) {
  SKIP_WITHOUT_GPUS(1);
  run_degree(2);
}

TEST(GpuUlysses, ThreeRanks) {
  SKIP_WITHOUT_GPUS(1);
  run_degree(3);
}

TEST(GpuUlysses, FourRanks) {
  SKIP_WITHOUT_GPUS(1);
  run_degree(4);
}

TEST(GpuUlysses, EightRanks) {
  SKIP_WITHOUT_GPUS(1);
  run_degree(8);
}

// q, k, v (uneven) captured into a CUDA graph after reserving staging, then
// replayed: the graph's result matches the whole tensor sliced.
TEST(GpuUlysses, CapturedIntoACudaGraph) {
  SKIP_WITHOUT_GPUS(1);
  const int p = 2;
  const Call call = standard_calls(p)[8];
  run_gpu_ranks(p, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
    std::vector<Tensor> in, out;
    std::vector<int64_t> head_start;
    for (size_t t = 0; t < call.tensors.size(); ++t) {
      int64_t s0, h0;
      const Shape& whole = call.tensors[t].whole;
      in.emplace_back(call.dtype, shard(whole, 1, p, r, &s0), Layout::kContiguous);
      in.back().fill([&](const Index& idx) {
        Index g = idx;
        g[1] += s0;
        return whole_value(call.dtype, 5, static_cast<int>(t), g);
      });
      out.emplace_back(call.dtype, shard(whole, 2, p, r, &h0), Layout::kContiguous);
      head_start.push_back(h0);
    }
    std::vector<std::unique_ptr<Mirror>> mi, mo;
    std::vector<diffcoll_tensor_t> di, dout;
    for (size_t t = 0; t < in.size(); ++t) {
      mi.emplace_back(new Mirror(in[t], rank_device(r)));
      mo.emplace_back(new Mirror(out[t], rank_device(r)));
      di.push_back(mi.back()->desc(rank_device(r)));
      dout.push_back(mo.back()->desc(rank_device(r)));
    }
    ASSERT_EQ(diffcoll_comm_reserve(comm, size_t{1} << 20), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    // One eager call first, as an engine warms up before capturing.
    ASSERT_EQ(diffcoll_ulysses_all_to_all(comm, di.data(), dout.data(), 3, 1, 2,
                                          DIFFCOLL_ULYSSES_SEQ_TO_HEAD, stream),
              DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    for (size_t t = 0; t < mo.size(); ++t)  // so that only the graph can write the result
      ASSERT_EQ(cudaMemsetAsync(mo[t]->device, 0, out[t].parent_bytes(), stream), cudaSuccess);
    cudaGraph_t graph;
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    const diffcoll_status_t st = diffcoll_ulysses_all_to_all(
        comm, di.data(), dout.data(), 3, 1, 2, DIFFCOLL_ULYSSES_SEQ_TO_HEAD, stream);
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    ASSERT_EQ(st, DIFFCOLL_SUCCESS) << diffcoll_last_error();
    cudaGraphExec_t exec;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    for (size_t t = 0; t < out.size(); ++t) {
      mo[t]->download();
      int64_t wrong = 0;
      for (int64_t i = 0; i < halo_test::numel(out[t].shape()); ++i) {
        const Index idx = halo_test::unflatten(i, out[t].shape());
        Index g = idx;
        g[2] += head_start[t];
        if (out[t].get(idx) != whole_value(call.dtype, 5, static_cast<int>(t), g)) ++wrong;
      }
      EXPECT_EQ(wrong, 0) << "tensor " << t << " after the graph ran";
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  });
}

// Rank `origin`'s block for the ring tests: 2 tensors of `n` floats.
float ring_value(int origin, int t, int64_t i) { return origin * 10000.0f + t * 1000.0f + i; }

// A double buffer of two [n] float tensors in device memory.
struct DeviceRing {
  static constexpr int64_t n = 4096;
  float* mem = nullptr;  // halves x tensors x n
  diffcoll_tensor_t desc[2][2];
  explicit DeviceRing(int device, int origin) {
    EXPECT_EQ(cudaSetDevice(device), cudaSuccess);
    EXPECT_EQ(cudaMalloc(&mem, 4 * n * sizeof(float)), cudaSuccess);
    std::vector<float> init(2 * n);
    for (int t = 0; t < 2; ++t)
      for (int64_t i = 0; i < n; ++i) init[t * n + i] = ring_value(origin, t, i);
    EXPECT_EQ(cudaMemcpy(mem, init.data(), 2 * n * sizeof(float), cudaMemcpyHostToDevice),
              cudaSuccess);
    for (int h = 0; h < 2; ++h)
      for (int t = 0; t < 2; ++t) {
        diffcoll_tensor_t& d = desc[h][t];
        std::memset(&d, 0, sizeof d);
        d.data = mem + (h * 2 + t) * n;
        d.dtype = DIFFCOLL_FLOAT32;
        d.device_type = DIFFCOLL_DEVICE_CUDA;
        d.device_id = device;
        d.ndim = 1;
        d.shape[0] = n;
        d.strides[0] = 1;
      }
  }
  ~DeviceRing() { cudaFree(mem); }
  // Half h holds rank `origin`'s block (the stream must be idle).
  bool holds(int h, int origin) const {
    std::vector<float> got(2 * n);
    EXPECT_EQ(cudaMemcpy(got.data(), mem + h * 2 * n, 2 * n * sizeof(float),
                         cudaMemcpyDeviceToHost),
              cudaSuccess);
    for (int t = 0; t < 2; ++t)
      for (int64_t i = 0; i < n; ++i)
        if (got[t * n + i] != ring_value(origin, t, i)) return false;
    return true;
  }
};

TEST(GpuRing, EveryGpuSeesEveryBlockOnce) {
  SKIP_WITHOUT_GPUS(1);
  const int p = 4;
  run_gpu_ranks(p, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
    DeviceRing buf(rank_device(r), r);
    diffcoll_ring_t* ring = nullptr;
    ASSERT_EQ(diffcoll_ring_create(comm, buf.desc[0], buf.desc[1], 2, &ring), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    int32_t current = 0;
    // One step more than a ring needs: the last brings back the own block.
    for (int step = 0; step <= p; ++step) {
      ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
      EXPECT_TRUE(buf.holds(current, ((r - step) % p + p) % p)) << "step " << step;
      if (step == p) break;
      ASSERT_EQ(diffcoll_ring_start(ring, stream), DIFFCOLL_SUCCESS) << diffcoll_last_error();
      ASSERT_EQ(diffcoll_ring_wait(ring, stream, &current), DIFFCOLL_SUCCESS)
          << diffcoll_last_error();
    }
    EXPECT_EQ(diffcoll_ring_destroy(ring), DIFFCOLL_SUCCESS);
  });
}

TEST(GpuRing, StepCapturedIntoACudaGraph) {
  SKIP_WITHOUT_GPUS(1);
  const int p = 2;
  run_gpu_ranks(p, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
    DeviceRing buf(rank_device(r), r);
    diffcoll_ring_t* ring = nullptr;
    ASSERT_EQ(diffcoll_ring_create(comm, buf.desc[0], buf.desc[1], 2, &ring), DIFFCOLL_SUCCESS);
    // One eager step first (half 1 then holds rank r - 1's block), then the
    // captured step sends half 1 on and receives rank r - 2's into half 0.
    ASSERT_EQ(diffcoll_ring_start(ring, stream), DIFFCOLL_SUCCESS) << diffcoll_last_error();
    ASSERT_EQ(diffcoll_ring_wait(ring, stream, nullptr), DIFFCOLL_SUCCESS);
    cudaGraph_t graph;
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    const diffcoll_status_t started = diffcoll_ring_start(ring, stream);
    const diffcoll_status_t waited = diffcoll_ring_wait(ring, stream, nullptr);
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    ASSERT_EQ(started, DIFFCOLL_SUCCESS);
    ASSERT_EQ(waited, DIFFCOLL_SUCCESS);
    cudaGraphExec_t exec;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_TRUE(buf.holds(0, ((r - 2) % p + p) % p));
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    EXPECT_EQ(diffcoll_ring_destroy(ring), DIFFCOLL_SUCCESS);
  });
}

}  // namespace
