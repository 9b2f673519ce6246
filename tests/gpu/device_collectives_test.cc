// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The device side on CUDA tensors. One GPU: world size 1, where pre-multiplied
// sums, layout-changing copies, graph capture, the arena limit, wrapping and
// splitting are all observable. Two or more GPUs: the same collectives across
// ranks as processes (MultiGpu.*). Every test skips without a GPU.
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "gpu_test_support.h"
#include "spin_kernel.h"


namespace {

struct Layout {
  const char* name;
  std::vector<int64_t> strides;
  size_t physical;
  bool dense;
};

// Three layouts of the logical shape [4, 6, 10].
const std::vector<int64_t> kShape = {4, 6, 10};
const Layout kLayouts[] = {
    {"contiguous", {60, 10, 1}, 240, true},
    {"transposed", {60, 1, 6}, 240, true},  // memory is [4, 10, 6]
    {"sliced", {96, 16, 1}, 384, false},    // rows padded from 10 to 16
};

class SingleGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_GPU(1);
    ASSERT_CUDA(cudaSetDevice(0));
    ASSERT_CUDA(cudaStreamCreate(&stream_));
    diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
    config.device_id = 0;
    config.timeout_ms = 20000;
    std::string name = "local://gpu-" + std::string(
        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_OK(diffcoll_comm_create(name.c_str(), 0, 1, &config, &comm_));
  }
  void TearDown() override {
    if (comm_) EXPECT_EQ(diffcoll_comm_destroy(comm_), DIFFCOLL_SUCCESS);
    if (stream_) cudaStreamDestroy(stream_);
  }
  diffcoll_stats_t stats() {
    diffcoll_stats_t s = DIFFCOLL_STATS_INIT;
    diffcoll_comm_get_stats(comm_, &s);
    return s;
  }

  cudaStream_t stream_ = nullptr;
  diffcoll_comm_t* comm_ = nullptr;
};

TEST_F(SingleGpu, PreMulSumScalesInPlaceInEveryLayout) {
  for (const Layout& layout : kLayouts) {
    SCOPED_TRACE(layout.name);
    DeviceTensor t(kShape, layout.strides, layout.physical);
    t.fill([](int64_t i) { return value_of(0, i); });
    ASSERT_OK(diffcoll_comm_reset_stats(comm_));
    ASSERT_OK(diffcoll_all_reduce(comm_, &t.desc, DIFFCOLL_PREMUL_SUM, 2.0, stream_));
    ASSERT_CUDA(cudaStreamSynchronize(stream_));
    t.download();
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.at(i), 2.0f * value_of(0, i)) << i;
    EXPECT_TRUE(t.gaps_untouched());
    EXPECT_EQ(stats().bytes_packed == 0, layout.dense) << "dense views must not be packed";
  }
}

TEST_F(SingleGpu, AloneInPlaceReductionsEnqueueNothing) {
  // A rank alone already holds an in-place sum, min, max or average, a
  // broadcast and a reduce: captured, the calls leave an empty graph, and
  // the data and gaps stay as they were.
  for (const Layout& layout : kLayouts) {
    SCOPED_TRACE(layout.name);
    DeviceTensor t(kShape, layout.strides, layout.physical);
    t.fill([](int64_t i) { return value_of(5, i); });
    ASSERT_OK(diffcoll_comm_reset_stats(comm_));
    cudaGraph_t graph = nullptr;
    ASSERT_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    for (int op : {DIFFCOLL_SUM, DIFFCOLL_MIN, DIFFCOLL_MAX, DIFFCOLL_AVG}) {
      ASSERT_OK(diffcoll_all_reduce(comm_, &t.desc, op, 1.0, stream_));
      ASSERT_OK(diffcoll_reduce(comm_, &t.desc, op, 1.0, 0, stream_));
    }
    ASSERT_OK(diffcoll_broadcast(comm_, &t.desc, 0, stream_));
    ASSERT_CUDA(cudaStreamEndCapture(stream_, &graph));
    size_t nodes = 1;
    ASSERT_CUDA(cudaGraphGetNodes(graph, nullptr, &nodes));
    EXPECT_EQ(nodes, 0u);
    cudaGraphDestroy(graph);
    ASSERT_CUDA(cudaStreamSynchronize(stream_));
    t.download();
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.at(i), value_of(5, i)) << i;
    EXPECT_TRUE(t.gaps_untouched());
    EXPECT_EQ(stats().ops, 9u);
    EXPECT_EQ(stats().bytes_packed, 0u);
  }
}

TEST_F(SingleGpu, GatherLikeOpsMoveBetweenLayouts) {
  // With one rank, all-gather, reduce-scatter, all-to-all and a send to
  // oneself are copies from the input's layout into the output's.
  for (const Layout& from : kLayouts) {
    for (const Layout& to : kLayouts) {
      SCOPED_TRACE(std::string(from.name) + " -> " + to.name);
      DeviceTensor in(kShape, from.strides, from.physical);
      in.fill([](int64_t i) { return value_of(3, i); });
      auto check = [&](const char* op, diffcoll_status_t status) {
        SCOPED_TRACE(op);
        ASSERT_EQ(status, DIFFCOLL_SUCCESS) << diffcoll_last_error();
      };
      DeviceTensor a(kShape, to.strides, to.physical), b(kShape, to.strides, to.physical),
          c(kShape, to.strides, to.physical), d(kShape, to.strides, to.physical);
      check("all_gather", diffcoll_all_gather(comm_, &in.desc, &a.desc, 1, stream_));
      check("reduce_scatter", diffcoll_reduce_scatter(comm_, &in.desc, &b.desc, 2, DIFFCOLL_SUM, 1.0, stream_));
      check("all_to_all", diffcoll_all_to_all(comm_, &in.desc, &c.desc, 0, 2, stream_));
      ASSERT_OK(diffcoll_group_start(comm_));
      ASSERT_OK(diffcoll_send(comm_, &in.desc, 0, stream_));
      ASSERT_OK(diffcoll_recv(comm_, &d.desc, 0, stream_));
      check("group_end", diffcoll_group_end(comm_));
      ASSERT_CUDA(cudaStreamSynchronize(stream_));
      for (DeviceTensor* out : {&a, &b, &c, &d}) {
        out->download();
        for (int64_t i = 0; i < out->numel(); ++i) ASSERT_EQ(out->at(i), value_of(3, i)) << i;
        EXPECT_TRUE(out->gaps_untouched());
      }
    }
  }
}

TEST_F(SingleGpu, CapturedGraphReplaysPackReduceUnpack) {
  const Layout& sliced = kLayouts[2];
  DeviceTensor t(kShape, sliced.strides, sliced.physical);
  t.fill([](int64_t i) { return value_of(1, i); });
  ASSERT_OK(diffcoll_comm_reserve(comm_, 1 << 20));
  // Warm up outside the capture (NCCL sets up its kernels on first use).
  ASSERT_OK(diffcoll_all_reduce(comm_, &t.desc, DIFFCOLL_PREMUL_SUM, 1.0, stream_));
  ASSERT_CUDA(cudaStreamSynchronize(stream_));
  cudaGraph_t graph;
  ASSERT_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  diffcoll_status_t s = diffcoll_all_reduce(comm_, &t.desc, DIFFCOLL_PREMUL_SUM, 2.0, stream_);
  ASSERT_CUDA(cudaStreamEndCapture(stream_, &graph));
  ASSERT_EQ(s, DIFFCOLL_SUCCESS) << diffcoll_last_error();
  cudaGraphExec_t exec;
  ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  ASSERT_CUDA(cudaGraphLaunch(exec, stream_));
  ASSERT_CUDA(cudaGraphLaunch(exec, stream_));
  ASSERT_CUDA(cudaStreamSynchronize(stream_));
  t.download();
  for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.at(i), 4.0f * value_of(1, i)) << i;
  EXPECT_TRUE(t.gaps_untouched());
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

TEST_F(SingleGpu, ArenaTooSmallInsideCaptureIsAClearError) {
  const Layout& sliced = kLayouts[2];
  DeviceTensor t(kShape, sliced.strides, sliced.physical);
  t.fill([](int64_t i) { return value_of(1, i); });
  cudaGraph_t graph = nullptr;
  ASSERT_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  // A scaling all-reduce: a rank alone's plain sum would move nothing.
  diffcoll_status_t s = diffcoll_all_reduce(comm_, &t.desc, DIFFCOLL_PREMUL_SUM, 2.0, stream_);
  std::string message = diffcoll_last_error();
  cudaStreamEndCapture(stream_, &graph);
  if (graph) cudaGraphDestroy(graph);
  cudaGetLastError();
  EXPECT_EQ(s, DIFFCOLL_ERR_IN_CAPTURE);
  EXPECT_NE(message.find("diffcoll_comm_reserve"), std::string::npos) << message;
}

TEST_F(SingleGpu, SplitGivesADeviceCommunicator) {
  diffcoll_comm_t* part = nullptr;
  ASSERT_OK(diffcoll_comm_split(comm_, 0, 0, &part));
  ASSERT_NE(part, nullptr);
  DeviceTensor t(kShape, kLayouts[1].strides, kLayouts[1].physical);
  t.fill([](int64_t i) { return value_of(2, i); });
  ASSERT_OK(diffcoll_all_reduce(part, &t.desc, DIFFCOLL_PREMUL_SUM, -1.5, stream_));
  ASSERT_OK(diffcoll_barrier(part, stream_));
  ASSERT_CUDA(cudaStreamSynchronize(stream_));
  t.download();
  for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.at(i), -1.5f * value_of(2, i)) << i;
  ASSERT_OK(diffcoll_comm_destroy(part));
}

TEST(WrappedNccl, IsUsedAndNeverDestroyed) {
  SKIP_WITHOUT_GPU(1);
  ASSERT_CUDA(cudaSetDevice(0));
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclComm_t nccl;
  ASSERT_EQ(ncclCommInitRank(&nccl, 1, id, 0), ncclSuccess);
  diffcoll_comm_t* comm = nullptr;
  ASSERT_OK(diffcoll_comm_wrap_nccl(nccl, "local://wrapped", nullptr, &comm));
  DeviceTensor t(kShape, kLayouts[2].strides, kLayouts[2].physical);
  t.fill([](int64_t i) { return value_of(4, i); });
  ASSERT_OK(diffcoll_all_reduce(comm, &t.desc, DIFFCOLL_PREMUL_SUM, 3.0, nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());
  t.download();
  for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.at(i), 3.0f * value_of(4, i)) << i;
  ASSERT_OK(diffcoll_comm_destroy(comm));
  int count = 0;
  EXPECT_EQ(ncclCommCount(nccl, &count), ncclSuccess) << "the wrapped communicator must survive";
  EXPECT_EQ(count, 1);
  EXPECT_EQ(ncclCommDestroy(nccl), ncclSuccess);
}

TEST(Watchdog, HungOperationAbortsInsteadOfHanging) {
  SKIP_WITHOUT_GPU(1);
  ASSERT_CUDA(cudaSetDevice(0));
  cudaStream_t stream;
  ASSERT_CUDA(cudaStreamCreate(&stream));
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  config.device_id = 0;
  config.timeout_ms = 1500;
  diffcoll_comm_t* comm = nullptr;
  ASSERT_OK(diffcoll_comm_create("local://watchdog", 0, 1, &config, &comm));
  DeviceTensor t(kShape, kLayouts[0].strides, kLayouts[0].physical);
  t.fill([](int64_t i) { return value_of(0, i); });
  int* flag = nullptr;
  ASSERT_CUDA(cudaHostAlloc(&flag, sizeof(int), cudaHostAllocMapped));
  *flag = 0;
  int* device_flag = nullptr;
  ASSERT_CUDA(cudaHostGetDevicePointer(&device_flag, flag, 0));
  // The all-reduce queues behind a kernel that never finishes by itself (a
  // scaling one: a rank alone's plain sum enqueues nothing to wait for).
  launch_spin_until(device_flag, stream);
  ASSERT_OK(diffcoll_all_reduce(comm, &t.desc, DIFFCOLL_PREMUL_SUM, 2.0, stream));
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  diffcoll_status_t after = diffcoll_all_reduce(comm, &t.desc, DIFFCOLL_PREMUL_SUM, 2.0, stream);
  std::string message = diffcoll_last_error();
  __atomic_store_n(flag, 1, __ATOMIC_SEQ_CST);  // let the stream drain
  EXPECT_EQ(after, DIFFCOLL_ERR_REMOTE);
  EXPECT_NE(message.find("did not complete within 1500 ms"), std::string::npos) << message;
  cudaStreamSynchronize(stream);
  cudaGetLastError();
  EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  cudaFreeHost(flag);
  cudaStreamDestroy(stream);
}

// ---- several ranks: one process each, on their own GPUs or sharing them ----

// A peer that never makes its first collective. diffcoll's data communicator
// is blocking, so rank 0's all-reduce either waits on the host inside NCCL
// (the first collective's connection set-up needs the peer) or returns and
// leaves a kernel waiting on the device. Either way it must end in an error
// within about the timeout: the call itself times out (host deadline), or the
// next one is refused (device deadline). Rank 1 idles meanwhile, then leaves.
constexpr int kAbsentPeerTimeoutMs = 3000;

TEST(PeerFaults, AbsentPeerTimesOutInsteadOfHanging) {
  if (gpu_count() < 1) GTEST_SKIP() << "needs a CUDA device";
  run_worker_processes(2, "AbsentPeerWorker.DISABLED_Run");
}

TEST(AbsentPeerWorker, DISABLED_Run) {
  const char* rank_env = std::getenv("DIFFCOLL_TEST_RANK");
  if (!rank_env)
    GTEST_SKIP() << "runs only as a rank of PeerFaults.AbsentPeerTimesOutInsteadOfHanging";
  const int rank = std::atoi(rank_env);
  const int device = test_device();
  ASSERT_CUDA(cudaSetDevice(device));
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  config.device_id = device;
  config.timeout_ms = kAbsentPeerTimeoutMs;
  diffcoll_comm_t* comm = nullptr;
  ASSERT_OK(diffcoll_comm_create(std::getenv("DIFFCOLL_TEST_STORE"), rank, 2, &config, &comm));
  if (rank == 1) {
    std::this_thread::sleep_for(std::chrono::milliseconds(4 * kAbsentPeerTimeoutMs));
    EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS) << diffcoll_last_error();
    return;
  }
  cudaStream_t stream;
  ASSERT_CUDA(cudaStreamCreate(&stream));
  DeviceTensor t(kShape, kLayouts[0].strides, kLayouts[0].physical, device);
  t.fill([](int64_t i) { return value_of(0, i); });
  const auto start = std::chrono::steady_clock::now();
  diffcoll_status_t s = diffcoll_all_reduce(comm, &t.desc, DIFFCOLL_SUM, 1.0, stream);
  std::string message = diffcoll_last_error();
  if (s == DIFFCOLL_SUCCESS) {  // queued: the wait is on the device
    std::this_thread::sleep_for(std::chrono::milliseconds(2 * kAbsentPeerTimeoutMs));
    s = diffcoll_all_reduce(comm, &t.desc, DIFFCOLL_SUM, 1.0, stream);
    message = diffcoll_last_error();
    EXPECT_EQ(s, DIFFCOLL_ERR_REMOTE) << message;
    EXPECT_NE(message.find("did not complete within"), std::string::npos) << message;
  } else {
    EXPECT_EQ(s, DIFFCOLL_ERR_TIMEOUT) << message;
    EXPECT_NE(message.find("did not return within"), std::string::npos) << message;
    const auto waited = std::chrono::steady_clock::now() - start;
    EXPECT_LT(waited, std::chrono::milliseconds(kAbsentPeerTimeoutMs + 2000))
        << "the call should end about the timeout after it started";
    // Every later call is refused.
    s = diffcoll_all_reduce(comm, &t.desc, DIFFCOLL_SUM, 1.0, stream);
    EXPECT_EQ(s, DIFFCOLL_ERR_REMOTE) << diffcoll_last_error();
  }
  cudaStreamSynchronize(stream);  // revoked: the kernels, if any, have exited
  cudaGetLastError();
  EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  cudaStreamDestroy(stream);
}

class MultiGpu : public ::testing::TestWithParam<int> {};

TEST_P(MultiGpu, CollectivesAcrossProcesses) {
  if (gpu_count() < 1) GTEST_SKIP() << "needs a CUDA device";
  run_worker_processes(GetParam(), "MultiGpuWorker.DISABLED_Run");
}

INSTANTIATE_TEST_SUITE_P(Ranks, MultiGpu, ::testing::Range(2, 5),
                         [](const ::testing::TestParamInfo<int>& i) {
                           return "r" + std::to_string(i.param);
                         });

TEST(MultiGpuWorker, DISABLED_Run) {
  const char* rank_env = std::getenv("DIFFCOLL_TEST_RANK");
  if (!rank_env) GTEST_SKIP() << "runs only as a rank of MultiGpu.CollectivesAcrossProcesses";
  const int rank = std::atoi(rank_env), size = std::atoi(std::getenv("DIFFCOLL_TEST_SIZE"));
  const int device = test_device();
  ASSERT_CUDA(cudaSetDevice(device));
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  config.device_id = device;
  config.timeout_ms = 60000;
  diffcoll_comm_t* comm;
  ASSERT_OK(diffcoll_comm_create(std::getenv("DIFFCOLL_TEST_STORE"), rank, size, &config, &comm));
  cudaStream_t stream;
  ASSERT_CUDA(cudaStreamCreate(&stream));
  for (const Layout& layout : kLayouts) {
    SCOPED_TRACE(layout.name);
    // all_reduce sum and pre-multiplied sum (scalar rank + 1)
    DeviceTensor t(kShape, layout.strides, layout.physical, device);
    t.fill([&](int64_t i) { return value_of(rank, i); });
    ASSERT_OK(diffcoll_all_reduce(comm, &t.desc, DIFFCOLL_PREMUL_SUM, rank + 1.0, stream));
    // all_gather along axis 1 into the same layout family
    std::vector<int64_t> gshape = {4, 6 * size, 10};
    std::vector<int64_t> gstrides = layout.dense ? std::vector<int64_t>{60 * size, 10, 1}
                                                 : std::vector<int64_t>{96 * size, 16, 1};
    DeviceTensor src(kShape, layout.strides, layout.physical, device);
    src.fill([&](int64_t i) { return value_of(rank, i); });
    DeviceTensor g(gshape, gstrides, layout.dense ? 240 * size : 384 * size, device);
    g.fill([](int64_t) { return 0.0f; });
    ASSERT_OK(diffcoll_all_gather(comm, &src.desc, &g.desc, 1, stream));
    // ring exchange of the source
    DeviceTensor ring(kShape, layout.strides, layout.physical, device);
    ASSERT_OK(diffcoll_group_start(comm));
    ASSERT_OK(diffcoll_send(comm, &src.desc, (rank + 1) % size, stream));
    ASSERT_OK(diffcoll_recv(comm, &ring.desc, (rank + size - 1) % size, stream));
    ASSERT_OK(diffcoll_group_end(comm));
    ASSERT_CUDA(cudaStreamSynchronize(stream));
    t.download();
    g.download();
    ring.download();
    for (int64_t i = 0; i < t.numel(); ++i) {
      float expected = 0;
      for (int r = 0; r < size; ++r) expected += (r + 1.0f) * value_of(r, i);
      ASSERT_EQ(t.at(i), expected) << i;
      ASSERT_EQ(ring.at(i), value_of((rank + size - 1) % size, i)) << i;
    }
    for (int64_t i = 0; i < g.numel(); ++i) {
      int64_t a = i / (6 * size * 10), b = (i / 10) % (6 * size), c = i % 10;
      int from = static_cast<int>(b / 6);
      ASSERT_EQ(g.at(i), value_of(from, (a * 6 + b % 6) * 10 + c)) << i;
    }
    EXPECT_TRUE(t.gaps_untouched());
  }
  ASSERT_OK(diffcoll_comm_destroy(comm));
  cudaStreamDestroy(stream);
}

}  // namespace
