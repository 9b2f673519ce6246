// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Distributed GroupNorm on CUDA tensors: the host tests' cases
// (group_norm_cases.h) through device memory on a CUDA stream, checked
// against whole-tensor GroupNorm and against the host path on the same data;
// a case large enough for split blocks and 16-byte vectors; CUDA graph
// capture; and chains of 2-4 ranks and a 2x2 grid (ranks as processes, one
// per GPU or sharing GPUs). Every test skips without a GPU.
#define GN_TEST_CUDA 1

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "group_norm_cases.h"
#include "halo_gpu_support.h"

namespace {

using halo_test::run_gpu_ranks;
using namespace gn_test;

std::vector<Case> big_cases() {
  std::vector<Case> out;
  for (int dt : {DIFFCOLL_BFLOAT16, DIFFCOLL_FLOAT32})
    for (Layout l : {Layout::kContiguous, Layout::kChannelsLast}) {
      Case c;
      c.whole = {1, 128, 64, 64};  // 65536 elements per (sample, group): split blocks
      c.groups = 8;
      c.dtype = dt;
      c.in_layout = l;
      c.affine = true;
      c.offset = 2;
      out.push_back(c);
    }
  return out;
}

// One GPU: the device result equals whole-tensor GroupNorm and the host
// path's result on the same slab.
TEST(GpuGroupNorm, OneGpuMatchesWholeTensorAndHostPath) {
  SKIP_WITHOUT_GPUS(1);
  std::vector<Case> cases = cases_for_grid(1, 1);
  for (const Case& c : big_cases()) cases.push_back(c);
  run_gpu_ranks(1, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
    for (size_t i = 0; i < cases.size(); ++i) {
      const Reference ref(cases[i], 40 + i);
      const std::vector<double> device = run_case(cases[i], ref, r, comm, Where{halo_test::rank_device(r), stream});
      const std::vector<double> host = run_case(cases[i], ref, r, comm);
      ASSERT_EQ(device.size(), host.size()) << cases[i].name();
      int bad = 0;
      for (size_t k = 0; k < host.size(); ++k)
        if (!(std::fabs(device[k] - host[k]) <= 2 * tolerance(cases[i].dtype, host[k])) &&
            bad++ < 3)
          ADD_FAILURE() << cases[i].name() << " element " << k << ": device " << device[k]
                        << ", host " << host[k];
    }
  });
}

// float16 (the __half kernels) and a W-flipped view (negative strides: the
// strided kernels) on device memory.
TEST(GpuGroupNorm, Float16AndFlippedViews) {
  SKIP_WITHOUT_GPUS(1);
  for (int dtype : {DIFFCOLL_FLOAT16, DIFFCOLL_FLOAT32})
    run_gpu_ranks(1, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
      run_flipped_case(dtype, r, 1, comm, Where{halo_test::rank_device(r), stream});
    });
}

// Captured into a CUDA graph after reserving staging, then replayed.
TEST(GpuGroupNorm, CapturesIntoACudaGraph) {
  SKIP_WITHOUT_GPUS(1);
  run_gpu_ranks(1, [&](int, diffcoll_comm_t* comm, cudaStream_t stream) {
    const int64_t N = 2, C = 32, H = 20, W = 24, n = N * C * H * W;
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(noise(i, 3));
    float *in, *out;
    ASSERT_EQ(cudaMalloc(&in, n * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&out, n * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(in, x.data(), n * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    diffcoll_tensor_t tin{};
    tin.data = in;
    tin.dtype = DIFFCOLL_FLOAT32;
    tin.device_type = DIFFCOLL_DEVICE_CUDA;
    tin.ndim = 4;
    const int64_t shape[4] = {N, C, H, W}, strides[4] = {C * H * W, H * W, W, 1};
    for (int d = 0; d < 4; ++d) {
      tin.shape[d] = shape[d];
      tin.strides[d] = strides[d];
    }
    diffcoll_tensor_t tout = tin;
    tout.data = out;
    ASSERT_EQ(diffcoll_comm_reserve(comm, 1 << 20), DIFFCOLL_SUCCESS) << diffcoll_last_error();
    // One eager call first (NCCL connects lazily), then the capture.
    ASSERT_EQ(diffcoll_group_norm(comm, &tin, &tout, nullptr, nullptr, 4, 1e-6, stream),
              DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    ASSERT_EQ(cudaMemsetAsync(out, 0, n * sizeof(float), stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    cudaGraph_t graph;
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    const diffcoll_status_t st =
        diffcoll_group_norm(comm, &tin, &tout, nullptr, nullptr, 4, 1e-6, stream);
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    ASSERT_EQ(st, DIFFCOLL_SUCCESS) << diffcoll_last_error();
    cudaGraphExec_t exec;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    std::vector<float> y(n);
    ASSERT_EQ(cudaMemcpy(y.data(), out, n * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    const int64_t per_group = (C / 4) * H * W;
    for (int64_t g = 0; g < N * 4; ++g) {
      double sum = 0, sq = 0;
      for (int64_t i = g * per_group; i < (g + 1) * per_group; ++i) sum += x[i];
      const double mean = sum / per_group;
      for (int64_t i = g * per_group; i < (g + 1) * per_group; ++i)
        sq += (x[i] - mean) * (x[i] - mean);
      const double rstd = 1 / std::sqrt(sq / per_group + 1e-6);
      for (int64_t i = g * per_group; i < (g + 1) * per_group; ++i)
        ASSERT_NEAR(y[i], (x[i] - mean) * rstd, 1e-4) << "element " << i;
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaFree(in);
    cudaFree(out);
  });
}

// Several ranks: 1-D chains of 2..4 ranks and a 2x2 grid.
TEST(MultiGpuGroupNorm, ChainMatchesWholeTensorGroupNorm) {
  SKIP_WITHOUT_GPUS(1);
  for (int p = 2; p <= 4; ++p) {
    std::vector<Case> cases = cases_for_grid(p, 1);
    for (Case c : big_cases()) {
      c.grid[0] = p;
      cases.push_back(c);
    }
    std::vector<Reference> refs;
    for (size_t i = 0; i < cases.size(); ++i) refs.emplace_back(cases[i], 60 + i);
    run_gpu_ranks(p, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
      for (size_t i = 0; i < cases.size(); ++i) run_case(cases[i], refs[i], r, comm, Where{halo_test::rank_device(r), stream});
    });
  }
}

TEST(MultiGpuGroupNorm, GridMatchesWholeTensorGroupNorm) {
  SKIP_WITHOUT_GPUS(1);
  const std::vector<Case> cases = cases_for_grid(2, 2);
  std::vector<Reference> refs;
  for (size_t i = 0; i < cases.size(); ++i) refs.emplace_back(cases[i], 80 + i);
  run_gpu_ranks(4, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
    for (size_t i = 0; i < cases.size(); ++i) run_case(cases[i], refs[i], r, comm, Where{halo_test::rank_device(r), stream});
  });
}

}  // namespace
