// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The fused norm on CUDA tensors, every path (NCCL + kernel, one-shot,
// two-shot, auto), checked against the single-process reference of the host
// tests: one GPU (a one-rank LSA team) in FusedNormGpu.*, one process per GPU
// in FusedNormMultiGpu.* (skipped with fewer than 2 GPUs). Every test skips
// without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "fused_norm_support.h"
#include "gpu_test_support.h"


namespace {

using fn_test::Forms;
using fn_test::Rows;

constexpr float kEps = 1e-6f;
const int kPaths[] = {DIFFCOLL_FUSED_NORM_NCCL, DIFFCOLL_FUSED_NORM_ONE_SHOT,
                      DIFFCOLL_FUSED_NORM_TWO_SHOT, DIFFCOLL_FUSED_NORM_AUTO};
const int kDtypes[] = {DIFFCOLL_BFLOAT16, DIFFCOLL_FLOAT16, DIFFCOLL_FLOAT32};

bool one_kernel(int path) {
  return path == DIFFCOLL_FUSED_NORM_ONE_SHOT || path == DIFFCOLL_FUSED_NORM_TWO_SHOT;
}

const char* path_str(int path) {
  switch (path) {
    case DIFFCOLL_FUSED_NORM_NCCL: return "nccl";
    case DIFFCOLL_FUSED_NORM_ONE_SHOT: return "one-shot";
    case DIFFCOLL_FUSED_NORM_TWO_SHOT: return "two-shot";
    default: return "auto";
  }
}

int visible_gpus() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

// Host rows mirrored in device memory.
struct DeviceRows {
  Rows host;
  void* device = nullptr;
  int device_id;

  DeviceRows(int dtype, int64_t tokens, int64_t hidden, int device_id_)
      : host(dtype, tokens, hidden), device_id(device_id_) {
    cudaMalloc(&device, std::max<size_t>(host.bytes.size(), 1));
  }
  ~DeviceRows() { cudaFree(device); }
  DeviceRows(const DeviceRows&) = delete;
  void upload() {
    cudaMemcpy(device, host.bytes.data(), host.bytes.size(), cudaMemcpyHostToDevice);
  }
  void download() {
    cudaMemcpy(host.bytes.data(), device, host.bytes.size(), cudaMemcpyDeviceToHost);
  }
  diffcoll_tensor_t desc() { return host.desc(device, DIFFCOLL_DEVICE_CUDA, device_id); }
  diffcoll_tensor_t desc_1d() { return host.desc_1d(device, DIFFCOLL_DEVICE_CUDA, device_id); }
};

// The tensors of one call on `device`, filled for this rank.
struct Call {
  DeviceRows x, residual, weight, y, residual_out;
  Forms forms;

  Call(int dtype, int64_t tokens, int64_t hidden, int device, const Forms& f)
      : x(dtype, tokens, hidden, device), residual(dtype, tokens, hidden, device),
        weight(dtype, 1, hidden, device), y(dtype, tokens, hidden, device),
        residual_out(dtype, tokens, hidden, device), forms(f) {
    residual.host.fill(fn_test::residual_value);
    residual.upload();
    weight.host.fill(fn_test::weight_value);
    weight.upload();
  }
  // x as global rank `data_rank` holds it; outputs poisoned.
  void load_x(int data_rank) {
    x.host.fill([&](int64_t i) { return fn_test::x_value(data_rank, i); });
    x.upload();
    y.host.fill([](int64_t) { return 99.0; });
    y.upload();
    residual_out.host.fill([](int64_t) { return 99.0; });
    residual_out.upload();
    residual.upload();  // in place overwrote it
  }
  diffcoll_status_t run(diffcoll_fused_norm_workspace_t* ws, int path, cudaStream_t stream) {
    diffcoll_fused_norm_options_t options = DIFFCOLL_FUSED_NORM_OPTIONS_INIT;
    options.path = path;
    diffcoll_tensor_t xd = x.desc(), rd = residual.desc(), wd = weight.desc_1d();
    diffcoll_tensor_t yd = forms.in_place_y ? x.desc() : y.desc();
    diffcoll_tensor_t rod = forms.in_place_residual ? residual.desc() : residual_out.desc();
    return diffcoll_fused_norm(ws, &xd, forms.residual ? &rd : nullptr,
                               forms.weight ? &wd : nullptr, kEps, &yd,
                               forms.residual_out ? &rod : nullptr, &options, stream);
  }
  // "" if y and residual_out hold what a group of `group` must get.
  std::string check(const std::vector<int>& group) {
    DeviceRows& got_y = forms.in_place_y ? x : y;
    DeviceRows& got_r = forms.in_place_residual ? residual : residual_out;
    got_y.download();
    got_r.download();
    fn_test::Expected e = fn_test::reference(group, x.host.tokens, x.host.hidden, forms.residual,
                                             forms.weight, kEps);
    std::string miss = fn_test::compare(got_y.host, e.y, fn_test::tolerance(x.host.dtype));
    if (!miss.empty()) return "y: " + miss;
    if (!forms.residual_out) return got_r.host.get(0) == 99.0 ? "" : "residual_out was written";
    miss = fn_test::compare(got_r.host, e.residual_out, 0);
    return miss.empty() ? "" : "residual_out: " + miss;
  }
};

// One call by `path` on this rank (global rank `me` of `group`), checked.
void expect_call(diffcoll_fused_norm_workspace_t* ws, cudaStream_t stream, int device, int me,
                 const std::vector<int>& group, int64_t tokens, int64_t hidden, int dtype,
                 int path, const Forms& forms = Forms()) {
  SCOPED_TRACE(fn_test::case_name(tokens, hidden, dtype) + " " + path_str(path));
  Call c(dtype, tokens, hidden, device, forms);
  c.load_x(me);
  ASSERT_EQ(c.run(ws, path, stream), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_EQ(c.check(group), "");
}

// Captures one call by `path` into a CUDA graph, then replays it three times
// with fresh x (the data of "rank" 10 + k) loaded between replays.
void expect_graph_replays(diffcoll_fused_norm_workspace_t* ws, cudaStream_t stream, int device,
                          const std::vector<int>& group, int me_index, int path) {
  SCOPED_TRACE(std::string("graph ") + path_str(path));
  Call c(DIFFCOLL_BFLOAT16, 7, 3072, device, Forms());
  c.load_x(0);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  diffcoll_status_t st = c.run(ws, path, stream);
  ASSERT_EQ(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  ASSERT_EQ(st, DIFFCOLL_SUCCESS) << diffcoll_last_error();
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int k = 0; k < 3; ++k) {
    // Replay k: rank i of the group holds the data of global rank 10 * (k + 1) + i.
    std::vector<int> data_ranks;
    for (size_t i = 0; i < group.size(); ++i)
      data_ranks.push_back(10 * (k + 1) + static_cast<int>(i));
    c.load_x(data_ranks[me_index]);
    ASSERT_EQ(cudaGraphLaunch(exec, stream), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    EXPECT_EQ(c.check(data_ranks), "") << "replay " << k;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

// ---- one GPU ---------------------------------------------------------------

class FusedNormGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (visible_gpus() < 1) GTEST_SKIP() << "needs a CUDA device";
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
    diffcoll_config_t cfg = dct::test_config(60000);
    cfg.device_id = 0;
    const std::string rendezvous = "local://" + dct::unique_name("fn_gpu");
    ASSERT_EQ(diffcoll_comm_create(rendezvous.c_str(), 0, 1, &cfg, &comm_), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
  }
  void TearDown() override {
    if (comm_) EXPECT_EQ(diffcoll_comm_destroy(comm_), DIFFCOLL_SUCCESS) << diffcoll_last_error();
    if (stream_) cudaStreamDestroy(stream_);
  }
  diffcoll_fused_norm_workspace_t* workspace(int64_t tokens, int64_t hidden, int dtype) {
    diffcoll_fused_norm_workspace_t* ws = nullptr;
    EXPECT_EQ(diffcoll_fused_norm_workspace_create(comm_, tokens, hidden, dtype, &ws),
              DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    return ws;
  }
  diffcoll_comm_t* comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
};

TEST_F(FusedNormGpu, EveryPathMatchesTheReference) {
  for (int dtype : kDtypes) {
    diffcoll_fused_norm_workspace_t* ws = workspace(1000, 5120, dtype);
    ASSERT_NE(ws, nullptr);
    for (int64_t tokens : {1, 7, 128, 1000})
      for (int64_t hidden : {2048, 3072, 5120})
        for (int path : kPaths) expect_call(ws, stream_, 0, 0, {0}, tokens, hidden, dtype, path);
    // Rows that are not whole 16-byte units take the scalar kernels.
    for (int path : kPaths) expect_call(ws, stream_, 0, 0, {0}, 5, 1001, dtype, path);
    EXPECT_EQ(diffcoll_fused_norm_workspace_destroy(ws), DIFFCOLL_SUCCESS);
  }
}

// More rows than the one-kernel paths have CTAs (512: CTAs then loop over
// rows), and rows longer than a thread's register cache (8192 16-bit
// elements: the rest waits in residual_out or y between the passes), in
// every form.
TEST_F(FusedNormGpu, ManyRowsAndLongRows) {
  for (int dtype : {DIFFCOLL_BFLOAT16, DIFFCOLL_FLOAT32}) {
    diffcoll_fused_norm_workspace_t* ws = workspace(1100, 12288, dtype);
    ASSERT_NE(ws, nullptr);
    for (int path : kPaths) {
      expect_call(ws, stream_, 0, 0, {0}, 513, 5120, dtype, path);
      expect_call(ws, stream_, 0, 0, {0}, 1100, 2048, dtype, path);
      for (const Forms& f : fn_test::optional_forms())
        expect_call(ws, stream_, 0, 0, {0}, 3, 12288, dtype, path, f);
    }
    EXPECT_EQ(diffcoll_fused_norm_workspace_destroy(ws), DIFFCOLL_SUCCESS);
  }
}

TEST_F(FusedNormGpu, OptionalAndInPlaceForms) {
  diffcoll_fused_norm_workspace_t* ws = workspace(128, 2048, DIFFCOLL_FLOAT32);
  ASSERT_NE(ws, nullptr);
  for (const Forms& f : fn_test::optional_forms())
    for (int path : kPaths)
      for (int dtype : kDtypes) expect_call(ws, stream_, 0, 0, {0}, 128, 2048, dtype, path, f);
  EXPECT_EQ(diffcoll_fused_norm_workspace_destroy(ws), DIFFCOLL_SUCCESS);
}

TEST_F(FusedNormGpu, CapturedGraphReplays) {
  diffcoll_fused_norm_workspace_t* ws = workspace(8, 3072, DIFFCOLL_BFLOAT16);
  ASSERT_NE(ws, nullptr);
  for (int path : kPaths) expect_graph_replays(ws, stream_, 0, {0}, 0, path);
  EXPECT_EQ(diffcoll_fused_norm_workspace_destroy(ws), DIFFCOLL_SUCCESS);
}

// 8192 tokens of 5120 bf16 (80 MiB) exceed the symmetric window: auto takes
// the NCCL path, an explicit one-kernel path is refused with the reason.
TEST_F(FusedNormGpu, LargeMessagesTakeTheNcclPath) {
  diffcoll_fused_norm_workspace_t* ws = workspace(8192, 5120, DIFFCOLL_BFLOAT16);
  ASSERT_NE(ws, nullptr);
  expect_call(ws, stream_, 0, 0, {0}, 8192, 5120, DIFFCOLL_BFLOAT16, DIFFCOLL_FUSED_NORM_AUTO);
  expect_call(ws, stream_, 0, 0, {0}, 8192, 5120, DIFFCOLL_BFLOAT16, DIFFCOLL_FUSED_NORM_NCCL);
  Call c(DIFFCOLL_BFLOAT16, 8192, 5120, 0, Forms());
  EXPECT_EQ(c.run(ws, DIFFCOLL_FUSED_NORM_ONE_SHOT, stream_), DIFFCOLL_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(diffcoll_last_error()).find("exceed the symmetric window"),
            std::string::npos)
      << diffcoll_last_error();
  EXPECT_EQ(diffcoll_fused_norm_workspace_destroy(ws), DIFFCOLL_SUCCESS);
}

TEST_F(FusedNormGpu, WorkspaceTooSmall) {
  diffcoll_fused_norm_workspace_t* ws = workspace(4, 2048, DIFFCOLL_BFLOAT16);
  ASSERT_NE(ws, nullptr);
  Call c(DIFFCOLL_BFLOAT16, 5, 2048, 0, Forms());
  EXPECT_EQ(c.run(ws, DIFFCOLL_FUSED_NORM_AUTO, stream_), DIFFCOLL_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(diffcoll_last_error()).find("workspace is too small"), std::string::npos)
      << diffcoll_last_error();
  EXPECT_EQ(diffcoll_fused_norm_workspace_destroy(ws), DIFFCOLL_SUCCESS);
}

// ---- several GPUs: one process per GPU -----------------------------------------

// Runs FusedNormMultiGpu.Worker as `n` ranks of one world, with `mode` and
// any `extra_env`.
void spawn_ranks(int n, const char* mode, std::vector<std::string> extra_env) {
  extra_env.push_back(std::string("DIFFCOLL_TEST_MODE=") + mode);
  run_worker_processes(n, "FusedNormMultiGpu.DISABLED_Worker", extra_env);
}

TEST(FusedNormMultiGpu, WorldSplitAndSubsetOnEveryPath) {
  if (gpu_count() < 1) GTEST_SKIP() << "needs a CUDA device";
  // 2, 3 and 4 ranks, sharing GPUs where there are fewer (then without
  // load/store between them: the one-kernel paths must be refused).
  for (int n = 2; n <= 4; ++n) spawn_ranks(n, "paths", {});
}

// Without CUDA peer access NCCL's LSA team does not span the group: auto
// must still be right (NCCL path), an explicit one-kernel path is refused
// with the reason, and the communicator stays usable.
TEST(FusedNormMultiGpu, FallsBackWithoutPeerAccess) {
  if (gpu_count() < 1) GTEST_SKIP() << "needs a CUDA device";
  if (gpu_count() >= 2) spawn_ranks(2, "fallback", {"NCCL_P2P_DISABLE=1"});
  spawn_ranks(std::max(gpu_count() + 1, 2), "fallback", {});  // ranks sharing a GPU
}

TEST(FusedNormMultiGpu, DISABLED_Worker) {
  const char* rank_env = std::getenv("DIFFCOLL_TEST_RANK");
  if (!rank_env) GTEST_SKIP() << "runs only as a rank started by the FusedNormMultiGpu tests";
  const int rank = std::atoi(rank_env), size = std::atoi(std::getenv("DIFFCOLL_TEST_SIZE"));
  const std::string mode = std::getenv("DIFFCOLL_TEST_MODE");
  const int device = test_device();
  // Ranks sharing GPUs (or without peer access) reach each other only
  // through NCCL's network transports: no one-kernel path there.
  const bool load_store = !gpu_ranks::shares_gpus(size) && mode != "fallback";
  ASSERT_EQ(cudaSetDevice(device), cudaSuccess);
  diffcoll_config_t cfg = dct::test_config(60000);
  cfg.device_id = device;
  diffcoll_comm_t* world = nullptr;
  ASSERT_EQ(diffcoll_comm_create(std::getenv("DIFFCOLL_TEST_STORE"), rank, size, &cfg, &world),
            DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  std::vector<int> everyone;
  for (int r = 0; r < size; ++r) everyone.push_back(r);

  diffcoll_fused_norm_workspace_t* ws = nullptr;
  ASSERT_EQ(diffcoll_fused_norm_workspace_create(world, 1000, 5120, DIFFCOLL_FLOAT32, &ws),
            DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  // One call per path; a one-kernel path without load/store must be refused
  // with the reason and leave the communicator usable for the next call.
  auto expect_path = [&](const std::vector<int>& group, int64_t tokens, int64_t hidden,
                         int dtype, int path) {
    if (load_store || !one_kernel(path)) {
      expect_call(ws, stream, device, rank, group, tokens, hidden, dtype, path);
      return;
    }
    Call c(dtype, tokens, hidden, device, Forms());
    c.load_x(rank);
    EXPECT_EQ(c.run(ws, path, stream), DIFFCOLL_ERR_UNSUPPORTED) << path_str(path);
    const std::string message = diffcoll_last_error();
    EXPECT_NE(message.find("is not available"), std::string::npos) << message;
    EXPECT_NE(message.find("load/store"), std::string::npos) << message;
  };
  if (mode == "fallback") {
    for (int path : kPaths) expect_path(everyone, 128, 5120, DIFFCOLL_BFLOAT16, path);
  } else {
    for (int dtype : kDtypes)
      for (int64_t tokens : {1, 7, 128, 1000})
        for (int path : kPaths) expect_path(everyone, tokens, 5120, dtype, path);
    for (int path : kPaths)
      if (load_store || !one_kernel(path))
        expect_graph_replays(ws, stream, device, everyone, rank, path);
  }
  EXPECT_EQ(diffcoll_fused_norm_workspace_destroy(ws), DIFFCOLL_SUCCESS) << diffcoll_last_error();

  if (mode == "paths" && size == 4) {
    // A split into {0, 2} and {1, 3}, each pair on its own.
    diffcoll_comm_t* pair = nullptr;
    ASSERT_EQ(diffcoll_comm_split(world, rank % 2, rank, &pair), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    ASSERT_EQ(diffcoll_fused_norm_workspace_create(pair, 128, 5120, DIFFCOLL_BFLOAT16, &ws),
              DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    for (int64_t tokens : {1, 7, 128})
      for (int path : kPaths)
        expect_path({rank % 2, rank % 2 + 2}, tokens, 5120, DIFFCOLL_BFLOAT16, path);
    EXPECT_EQ(diffcoll_fused_norm_workspace_destroy(ws), DIFFCOLL_SUCCESS);
    EXPECT_EQ(diffcoll_comm_destroy(pair), DIFFCOLL_SUCCESS);
    // A listed subset {3, 1, 2}; rank 0 is not in it.
    const int32_t members[] = {3, 1, 2};
    diffcoll_comm_t* subset = nullptr;
    ASSERT_EQ(diffcoll_comm_create_group(world, members, 3, &subset), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    if (subset) {
      ASSERT_EQ(diffcoll_fused_norm_workspace_create(subset, 128, 3072, DIFFCOLL_FLOAT16, &ws),
                DIFFCOLL_SUCCESS)
          << diffcoll_last_error();
      for (int path : kPaths)
        expect_path({3, 1, 2}, 128, 3072, DIFFCOLL_FLOAT16, path);
      EXPECT_EQ(diffcoll_fused_norm_workspace_destroy(ws), DIFFCOLL_SUCCESS);
      EXPECT_EQ(diffcoll_comm_destroy(subset), DIFFCOLL_SUCCESS);
    }
  }
  EXPECT_EQ(diffcoll_comm_destroy(world), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  cudaStreamDestroy(stream);
}

}  // namespace
