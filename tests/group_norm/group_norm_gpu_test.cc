// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Distributed GroupNorm on CUDA tensors: the host tests' cases
// (group_norm_cases.h) through device memory on a CUDA stream, checked
// against whole-tensor GroupNorm and against the host path on the same data;
// a case large enough for split blocks and 16-byte vectors; every walk of
// the kernels (layouts, load widths, halo-padded slabs) against the host
// path on the same data; CUDA graph capture; and chains of 2-4 ranks and a
// 2x2 grid (ranks as processes, one per GPU or sharing GPUs). Every test
// skips without a GPU.
#define GN_TEST_CUDA 1

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
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

// A view of a storage buffer: the walks of the CUDA kernels (channel rows
// with 16-byte, 8-byte and element loads; group runs whole, per channel and
// single; the dense apply's three walks and its tail; the strided apply;
// the one-kernel GroupNorm of the common layouts and the two- and
// three-kernel ones of the others, merge_kernel included).
struct View {
  std::string name;
  int dtype;
  std::vector<int64_t> shape, strides;
  int64_t storage;  // elements
  int64_t offset;   // elements from the storage start to element [0, ...]
  int groups;
};

std::vector<int64_t> nchw_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int d = static_cast<int>(shape.size()) - 2; d >= 0; --d) s[d] = s[d + 1] * shape[d + 1];
  return s;
}

// Channels-last strides of `shape` [N, C, spatial...] over storage [N, spatial..., C].
std::vector<int64_t> nhwc_strides(const std::vector<int64_t>& shape) {
  const int nd = static_cast<int>(shape.size());
  std::vector<int64_t> s(nd);
  s[1] = 1;
  int64_t step = shape[1];
  for (int d = nd - 1; d >= 2; --d) {
    s[d] = step;
    step *= shape[d];
  }
  s[0] = step;
  return s;
}

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t e : shape) n *= e;
  return n;
}

View whole(std::string name, int dtype, std::vector<int64_t> shape, bool channels_last,
           int groups, int64_t misalign = 0) {
  const std::vector<int64_t> strides = channels_last ? nhwc_strides(shape) : nchw_strides(shape);
  return {std::move(name), dtype, shape, strides, numel_of(shape) + misalign, misalign, groups};
}

// Rows [2, 2 + rows) of a buffer [N, C, rows + 4, W], NCHW or channels-last:
// a halo-padded slab's interior.
View window(std::string name, int dtype, int64_t N, int64_t C, int64_t rows, int64_t W,
            bool channels_last, int groups) {
  const std::vector<int64_t> parent = {N, C, rows + 4, W};
  const std::vector<int64_t> strides = channels_last ? nhwc_strides(parent) : nchw_strides(parent);
  return {std::move(name), dtype, {N, C, rows, W}, strides, numel_of(parent), 2 * strides[2],
          groups};
}

double load_any(int dtype, const uint8_t* p) {
  if (dtype == DIFFCOLL_FLOAT16) {
    _Float16 h;
    std::memcpy(&h, p, 2);
    return static_cast<double>(h);
  }
  return halo_test::load(dtype, p);
}

void store_any(int dtype, uint8_t* p, double v) {
  if (dtype == DIFFCOLL_FLOAT16) {
    const _Float16 h = static_cast<_Float16>(v);
    std::memcpy(p, &h, 2);
    return;
  }
  halo_test::store(dtype, p, v);
}

// Storage offsets of the view's elements, in logical (row-major) order.
std::vector<int64_t> view_offsets(const View& v) {
  std::vector<int64_t> offsets(numel_of(v.shape));
  for (int64_t i = 0; i < static_cast<int64_t>(offsets.size()); ++i) {
    int64_t rest = i, off = v.offset;
    for (int d = static_cast<int>(v.shape.size()) - 1; d >= 0; --d) {
      off += (rest % v.shape[d]) * v.strides[d];
      rest /= v.shape[d];
    }
    offsets[i] = off;
  }
  return offsets;
}

// The view normalised in place on the device and by the host path on the
// same data (f32 weight and bias): equal within the dtype's tolerance, and
// no byte outside the view changed. Neighbouring groups have their own mean
// and spread, so that a group normalised with another's statistics shows.
void check_view(const View& v, diffcoll_comm_t* comm, int device, cudaStream_t stream) {
  SCOPED_TRACE(v.name);
  const size_t es = v.dtype == DIFFCOLL_FLOAT32 ? 4 : 2;
  const int64_t C = v.shape[1], S = numel_of(v.shape) / (v.shape[0] * C), cpg = C / v.groups;
  const std::vector<int64_t> offsets = view_offsets(v);
  std::vector<uint8_t> storage(v.storage * es);
  for (int64_t k = 0; k < v.storage; ++k)
    store_any(v.dtype, &storage[k * es], 3 + noise(k, 11) * (1 + (k / 7) % 3));
  for (int64_t i = 0; i < static_cast<int64_t>(offsets.size()); ++i) {
    const int64_t k = offsets[i], group = (i / S) % C / cpg;
    store_any(v.dtype, &storage[k * es],
              3 + 4 * (group % 4) + noise(k, 11) * (1 + (k / 7) % 3) * (1 + group % 3));
  }
  std::vector<float> params(2 * C);
  for (int64_t c = 0; c < C; ++c) {
    params[c] = static_cast<float>(1 + 0.5 * noise(c, 12));
    params[C + c] = static_cast<float>(noise(c, 13));
  }
  diffcoll_tensor_t t{};
  t.dtype = v.dtype;
  t.device_type = DIFFCOLL_DEVICE_CPU;  // the host path first
  t.ndim = static_cast<int32_t>(v.shape.size());
  for (int d = 0; d < t.ndim; ++d) {
    t.shape[d] = v.shape[d];
    t.strides[d] = v.strides[d];
  }
  diffcoll_tensor_t w{};
  w.dtype = DIFFCOLL_FLOAT32;
  w.device_type = DIFFCOLL_DEVICE_CPU;
  w.ndim = 1;
  w.shape[0] = C;
  w.strides[0] = 1;
  diffcoll_tensor_t b = w;

  std::vector<uint8_t> host = storage;
  t.data = host.data() + v.offset * es;
  w.data = params.data();
  b.data = params.data() + C;
  ASSERT_EQ(diffcoll_group_norm(comm, &t, nullptr, &w, &b, v.groups, 1e-5, nullptr),
            DIFFCOLL_SUCCESS)
      << diffcoll_last_error();

  void *dstorage, *dparams;
  ASSERT_EQ(cudaMalloc(&dstorage, storage.size()), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dparams, params.size() * sizeof(float)), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dstorage, storage.data(), storage.size(), cudaMemcpyHostToDevice),
            cudaSuccess);
  ASSERT_EQ(cudaMemcpy(dparams, params.data(), params.size() * sizeof(float),
                       cudaMemcpyHostToDevice),
            cudaSuccess);
  for (diffcoll_tensor_t* d : {&t, &w, &b}) {
    d->device_type = DIFFCOLL_DEVICE_CUDA;
    d->device_id = device;
  }
  t.data = static_cast<uint8_t*>(dstorage) + v.offset * es;
  w.data = dparams;
  b.data = static_cast<float*>(dparams) + C;
  ASSERT_EQ(diffcoll_group_norm(comm, &t, nullptr, &w, &b, v.groups, 1e-5, stream),
            DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  std::vector<uint8_t> device_result(storage.size());
  ASSERT_EQ(cudaMemcpy(device_result.data(), dstorage, storage.size(), cudaMemcpyDeviceToHost),
            cudaSuccess);
  cudaFree(dstorage);
  cudaFree(dparams);

  std::vector<bool> in_view(v.storage, false);
  for (int64_t off : offsets) in_view[off] = true;
  int bad = 0;
  for (int64_t k = 0; k < v.storage; ++k) {
    const uint8_t* got = &device_result[k * es];
    if (!in_view[k]) {
      if (std::memcmp(got, &storage[k * es], es) != 0 && bad++ < 3)
        ADD_FAILURE() << "element " << k << " outside the view changed";
      continue;
    }
    const double want = load_any(v.dtype, &host[k * es]), have = load_any(v.dtype, got);
    const int tol_dtype = v.dtype == DIFFCOLL_FLOAT32 ? DIFFCOLL_FLOAT32 : DIFFCOLL_BFLOAT16;
    if (!(std::fabs(have - want) <= 2 * tolerance(tol_dtype, want)) && bad++ < 3)
      ADD_FAILURE() << "storage element " << k << ": device " << have << ", host " << want;
  }
  EXPECT_EQ(bad, 0);
}

TEST(GpuGroupNorm, EveryWalkMatchesTheHostPath) {
  SKIP_WITHOUT_GPUS(1);
  const int bf16 = DIFFCOLL_BFLOAT16, f32 = DIFFCOLL_FLOAT32, f16 = DIFFCOLL_FLOAT16;
  const std::vector<View> views = {
      // The benchmark's activation, smaller: 16-byte loads, splits, both dense walks.
      whole("contiguous bf16 cpg 8", bf16, {1, 256, 30, 40}, false, 32),
      whole("channels-last bf16 cpg 8", bf16, {1, 256, 30, 40}, true, 32),
      whole("channels-last f16 cpg 8", f16, {1, 256, 30, 40}, true, 32),
      // 8-byte row loads (4 bf16 channels per group), two samples.
      whole("channels-last bf16 cpg 4, N 2", bf16, {2, 128, 20, 24}, true, 32),
      // Element row loads (3 channels per group), in both dtypes.
      whole("channels-last bf16 cpg 3", bf16, {1, 96, 10, 12}, true, 32),
      whole("channels-last f32 cpg 3", f32, {1, 96, 10, 12}, true, 32),
      // Video, channels-last 3-D: 2 channels per group (bf16 elements, f32 8 bytes).
      whole("channels-last-3d bf16 cpg 2", bf16, {1, 64, 5, 24, 40}, true, 32),
      whole("channels-last-3d f32 cpg 2", f32, {1, 64, 5, 24, 40}, true, 32),
      whole("contiguous-3d bf16", bf16, {1, 64, 5, 24, 40}, false, 32),
      // A batch of 1 channels-last (the benchmark's): the one-kernel GroupNorm
      // on 16-byte rows, 2-D above and 3-D here, and, with 8-byte row loads,
      // the moments kernel then the channel-rows apply.
      whole("channels-last-3d bf16 cpg 8", bf16, {1, 256, 3, 20, 24}, true, 32),
      whole("channels-last-3d f32 cpg 8", f32, {1, 256, 3, 20, 24}, true, 32),
      whole("channels-last bf16 cpg 4, N 1", bf16, {1, 128, 20, 24}, true, 32),
      // Held in shared memory by clusters of blocks (group_norm_layout.h,
      // HeldPlan): the benchmark's activation, smaller, each block holding
      // several stages of loads; channel rows of 16 channels a group (two
      // loads a position) and of 8 (one); half and float.
      whole("held contiguous bf16 [1,512,45,80]", bf16, {1, 512, 45, 80}, false, 32),
      whole("held channels-last bf16 [1,512,45,80]", bf16, {1, 512, 45, 80}, true, 32),
      whole("held channels-last f16 cpg 8, N 2", f16, {2, 256, 30, 40}, true, 32),
      whole("held contiguous f32, N 2", f32, {2, 128, 40, 64}, false, 16),
      // The benchmark's activation itself on an H200 (held_shape_order):
      // clusters of 6, channels-last two groups side by side.
      whole("held contiguous bf16 [1,512,90,160]", bf16, {1, 512, 90, 160}, false, 32),
      whole("held channels-last bf16 [1,512,90,160]", bf16, {1, 512, 90, 160}, true, 32),
      // Two groups side by side, in clusters of 5 on an H200 (bf16: 64-byte
      // rows, f32: 128-byte rows).
      whole("held channels-last bf16 G 8 [1,128,104,104]", bf16, {1, 128, 104, 104}, true, 8),
      whole("held channels-last f32 G 8 [1,128,32,144]", f32, {1, 128, 32, 144}, true, 8),
      // Dense, the samples inside the channels: the one-kernel GroupNorm on
      // per-channel runs.
      {"samples in channels bf16", bf16, {2, 64, 16, 24}, {384, 768, 24, 1}, 2 * 64 * 16 * 24, 0,
       16},
      // Odd spatial size: scalar runs, the apply's per-element walk and its tail.
      whole("contiguous bf16 7x9", bf16, {1, 64, 7, 9}, false, 32),
      whole("channels-last bf16 C 36", bf16, {1, 36, 7, 9}, true, 4),
      // Many splits of few pairs; a misaligned pointer (no vectors anywhere).
      whole("contiguous f32 G 8", f32, {2, 64, 128, 128}, false, 8),
      whole("contiguous bf16 misaligned", bf16, {1, 64, 16, 16}, false, 32, 1),
      whole("channels-last bf16 misaligned", bf16, {1, 64, 16, 16}, true, 32, 3),
      // More (sample, group) pairs than blocks resident at once: the merge in
      // a kernel of its own, not after a grid-wide barrier.
      whole("contiguous bf16 2048 pairs", bf16, {64, 64, 4, 4}, false, 32),
      // More channels than one block's row of loads: per-position runs.
      whole("channels-last bf16 C 4096", bf16, {1, 4096, 4, 5}, true, 32),
      // Halo-padded slabs: per-channel runs and channel rows, the strided apply.
      window("NCHW window bf16", bf16, 1, 128, 30, 40, false, 32),
      window("channels-last window bf16", bf16, 1, 128, 30, 40, true, 32),
      window("NCHW window f32", f32, 2, 64, 9, 24, false, 16),
  };
  run_gpu_ranks(1, [&](int r, diffcoll_comm_t* comm, cudaStream_t stream) {
    for (const View& v : views) check_view(v, comm, halo_test::rank_device(r), stream);
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
