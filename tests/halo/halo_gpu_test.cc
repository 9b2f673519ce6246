// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The halo exchange on CUDA tensors: the host tests' cases (halo_cases.h) run
// through device memory on a CUDA stream, ranks as processes (one per GPU, or
// sharing GPUs: halo_gpu_support.h), chains of 1-4 ranks (one rank covers
// every local fill: CIRCULAR, REPLICATE, REFLECT, ZEROS) and grids up to 2x3.
// Plus the pack counters, CUDA graph capture, exchange_into and gather_slabs
// on device memory. Every test skips without a GPU.
#define HALO_TEST_CUDA 1

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "halo_cases.h"
#include "halo_gpu_support.h"

namespace {

using namespace halo_test;

TEST(GpuHalo, ChainMatchesWholeTensorPadding) {
  SKIP_WITHOUT_GPUS(1);
  for (int p = 1; p <= 4; ++p) {
    const std::vector<Case> cases = chain_cases(p);
    run_gpu_ranks(p, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
      uint64_t salt = 0;
      for (const Case& c : cases)
        run_case(c, r, comm, ++salt, false, Where{rank_device(r), stream});
    });
  }
}

TEST(GpuHalo, GridMatchesWholeTensorPadding) {
  SKIP_WITHOUT_GPUS(1);
  const std::array<int, 2> grids[] = {{1, 1}, {1, 2}, {2, 2}, {2, 3}};
  for (const auto& g : grids) {
    const std::vector<Case> cases = grid_cases(g[0], g[1]);
    run_gpu_ranks(g[0] * g[1], [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
      uint64_t salt = 100;
      for (const Case& c : cases) run_case(c, r, comm, ++salt, false, Where{rank_device(r), stream});
    });
  }
}

TEST(GpuHalo, IntoCopiesTheSlabThenExchanges) {
  SKIP_WITHOUT_GPUS(1);
  const int p = 3;
  run_gpu_ranks(p, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
    uint64_t salt = 500;
    for (Layout layout : {Layout::kContiguous, Layout::kChannelsLast, Layout::kGapped})
      for (int mode : {Z, REP, REF, CIRC, U}) {
        Case c;
        c.grid[0] = p;
        c.whole = {1, 2, 5 * p + 1, 5};
        c.layout = layout;
        c.dim[0] = 2;
        c.before[0] = 2;
        c.after[0] = 1;
        c.mode_before[0] = c.mode_after[0] = mode;
        run_case(c, r, comm, ++salt, /*into=*/true, Where{rank_device(r), stream});
      }
  });
}

TEST(GpuHalo, DenseSlabsMoveWithoutPacking) {
  SKIP_WITHOUT_GPUS(1);
  const int p = 4;
  run_gpu_ranks(p, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
    uint64_t salt = 1000;
    for (int mode : {Z, REP, REF, CIRC, U}) {
      Case c;
      c.grid[0] = p;
      c.whole = {1, 4, 4 * p + 2, 6};
      c.layout = Layout::kChannelsLast;
      c.dtype = DIFFCOLL_BFLOAT16;
      c.dim[0] = 2;
      c.before[0] = 2;
      c.after[0] = 1;
      c.mode_before[0] = c.mode_after[0] = mode;
      const diffcoll_stats_t s = run_case(c, r, comm, ++salt, false, Where{rank_device(r), stream});
      EXPECT_EQ(s.bytes_packed, 0u) << "rank " << r << " " << c.name();
      EXPECT_EQ(s.bytes_unpacked, 0u) << "rank " << r << " " << c.name();
    }
  });
}

// The exchange is captured into a CUDA graph (after reserving staging) and
// replayed on fresh data.
TEST(GpuHalo, CapturesIntoACudaGraph) {
  SKIP_WITHOUT_GPUS(1);
  const int p = 4;
  run_gpu_ranks(p, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
    // NCHW with C > 1: blocks are packed, so staging and pack kernels are in the graph.
    const int64_t rows = 5, h = rows + 2, w = 6, ch = 3;
    std::vector<float> host(ch * h * w, -1.f);
    auto at = [&](int64_t c, int64_t y, int64_t x) -> float& { return host[(c * h + y) * w + x]; };
    float* dev = nullptr;
    ASSERT_EQ(cudaMalloc(&dev, host.size() * sizeof(float)), cudaSuccess);
    diffcoll_tensor_t t;
    std::memset(&t, 0, sizeof t);
    t.data = dev;
    t.dtype = DIFFCOLL_FLOAT32;
    t.device_type = DIFFCOLL_DEVICE_CUDA;
    t.device_id = rank_device(r);
    t.ndim = 4;
    const int64_t shape[4] = {1, ch, h, w}, strides[4] = {ch * h * w, h * w, w, 1};
    for (int d = 0; d < 4; ++d) {
      t.shape[d] = shape[d];
      t.strides[d] = strides[d];
    }
    diffcoll_halo_config_t cfg = DIFFCOLL_HALO_CONFIG_INIT;
    cfg.row_boundary_before = cfg.row_boundary_after = DIFFCOLL_HALO_REFLECT;
    diffcoll_halo_plan_t* plan = nullptr;
    HALO_ASSERT_OK(diffcoll_halo_plan_create(comm, &cfg, &plan));
    HALO_ASSERT_OK(diffcoll_comm_reserve(comm, 1 << 20));
    ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    const diffcoll_status_t st = diffcoll_halo_exchange(plan, &t, stream);
    cudaGraph_t graph = nullptr;
    ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
    ASSERT_EQ(st, DIFFCOLL_SUCCESS) << diffcoll_last_error();
    cudaGraphExec_t exec = nullptr;
    ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
    for (int round = 0; round < 2; ++round) {
      auto value = [&](int rank, int64_t c, int64_t y, int64_t x) {
        return static_cast<float>(1000 * round + 100 * rank + 10 * c + y) + 0.01f * x;
      };
      for (int64_t c = 0; c < ch; ++c)
        for (int64_t y = 0; y < h; ++y)
          for (int64_t x = 0; x < w; ++x)
            at(c, y, x) = y >= 1 && y <= rows ? value(r, c, y - 1, x) : -1.f;
      ASSERT_EQ(cudaMemcpyAsync(dev, host.data(), host.size() * 4, cudaMemcpyHostToDevice, stream),
                cudaSuccess);
      ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
      ASSERT_EQ(cudaMemcpyAsync(host.data(), dev, host.size() * 4, cudaMemcpyDeviceToHost, stream),
                cudaSuccess);
      ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
      for (int64_t c = 0; c < ch; ++c)
        for (int64_t x = 0; x < w; ++x) {
          // Above: the previous rank's last row, or (rank 0) row 1 reflected.
          EXPECT_EQ(at(c, 0, x), r > 0 ? value(r - 1, c, rows - 1, x) : value(r, c, 1, x));
          EXPECT_EQ(at(c, h - 1, x), r < p - 1 ? value(r + 1, c, 0, x) : value(r, c, rows - 2, x));
        }
    }
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    HALO_EXPECT_OK(diffcoll_halo_plan_destroy(plan));
    cudaFree(dev);
  });
}

TEST(GpuHalo, GatherSlabsOnDeviceMemory) {
  SKIP_WITHOUT_GPUS(1);
  const int p = 4;
  run_gpu_ranks(p, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
    for (Layout layout : {Layout::kContiguous, Layout::kChannelsLast})
      for (int root : {-1, 0}) {
        const Shape whole_shape = {1, 3, 3 * p + 1, 5};
        int64_t start = 0, length = 0;
        HALO_ASSERT_OK(diffcoll_split_extent(whole_shape[2], p, r, &start, &length));
        Shape slab_shape = whole_shape;
        slab_shape[2] = length;
        Tensor slab(DIFFCOLL_FLOAT32, slab_shape, layout),
            whole(DIFFCOLL_FLOAT32, whole_shape, layout);
        auto value = [](const Index& i) {
          return static_cast<double>(i[1] * 100 + i[2] * 10 + i[3]);
        };
        slab.fill([&](Index i) {
          i[2] += start;
          return value(i);
        });
        whole.fill([](const Index&) { return -1.0; });
        Mirror ds(slab, rank_device(r)), dw(whole, rank_device(r));
        diffcoll_tensor_t sd = ds.desc(rank_device(r)), wd = dw.desc(rank_device(r));
        const bool receives = root == -1 || r == root;
        HALO_EXPECT_OK(diffcoll_gather_slabs(comm, &sd, receives ? &wd : nullptr, 2, root, stream));
        ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
        dw.download();
        for (int64_t f = 0; f < numel(whole_shape); ++f) {
          const Index i = unflatten(f, whole_shape);
          ASSERT_EQ(whole.get(i), receives ? value(i) : -1.0) << "rank " << r << " " << str(i);
        }
        EXPECT_EQ(whole.gap_bytes_changed(), 0u);
      }
  });
}

}  // namespace
