// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// CUDA-graph capture next to diffcoll's own threads: no diffcoll thread or
// call may invalidate a capture in any capture mode (global, PyTorch's
// default; thread-local; relaxed), while eager work is still in flight and
// the watchdog polls it. One rank deterministically (the eager work is held
// behind a kernel that spins longer than each capture lasts), then 2-4 ranks
// (sharing GPUs where there are fewer) capturing and replaying many times.
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "gpu_test_support.h"
#include "spin_kernel.h"

namespace {

const cudaStreamCaptureMode kModes[] = {cudaStreamCaptureModeGlobal,
                                        cudaStreamCaptureModeThreadLocal,
                                        cudaStreamCaptureModeRelaxed};

const char* mode_name(cudaStreamCaptureMode m) {
  return m == cudaStreamCaptureModeGlobal        ? "global"
         : m == cudaStreamCaptureModeThreadLocal ? "thread_local"
                                                 : "relaxed";
}

diffcoll_comm_t* make_comm(const std::string& rendezvous, int rank, int size, int device) {
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  config.device_id = device;
  config.timeout_ms = 20000;  // the watchdog polls every 100 ms
  diffcoll_comm_t* comm = nullptr;
  EXPECT_EQ(diffcoll_comm_create(rendezvous.c_str(), rank, size, &config, &comm),
            DIFFCOLL_SUCCESS)
      << diffcoll_last_error();
  return comm;
}

// The work that is captured: an all-reduce of a dense permuted view (shape
// [4, 6, 10] over memory [4, 10, 6]) and of a view with gaps (rows padded
// from 10 to 16, packed and unpacked through staging).
struct CapturedWork {
  DeviceTensor dense, gapped;

  explicit CapturedWork(int device)
      : dense({4, 6, 10}, {60, 1, 6}, 240, device), gapped({4, 6, 10}, {96, 16, 1}, 384, device) {}
  diffcoll_status_t enqueue(diffcoll_comm_t* comm, cudaStream_t stream) {
    diffcoll_status_t st = diffcoll_all_reduce(comm, &dense.desc, DIFFCOLL_SUM, 1.0, stream);
    if (st != DIFFCOLL_SUCCESS) return st;
    return diffcoll_all_reduce(comm, &gapped.desc, DIFFCOLL_PREMUL_SUM, 0.5, stream);
  }
  void load(int rank, int round) {
    dense.fill([&](int64_t i) { return value_of(rank + round, i); });
    gapped.fill([&](int64_t i) { return value_of(rank + 2 * round, i); });
  }
  // "" when the ranks' sums landed in place and the gaps kept their poison.
  std::string check(int size, int round) {
    dense.download();
    gapped.download();
    for (int64_t i = 0; i < dense.numel(); ++i) {
      float want_dense = 0, want_gapped = 0;
      for (int r = 0; r < size; ++r) {
        want_dense += value_of(r + round, i);
        want_gapped += 0.5f * value_of(r + 2 * round, i);
      }
      if (dense.at(i) != want_dense) return "dense element " + std::to_string(i);
      if (gapped.at(i) != want_gapped) return "gapped element " + std::to_string(i);
    }
    return gapped.gaps_untouched() ? "" : "a gap was written";
  }
};

// Captures `work` on `stream` in `mode`; the status of the diffcoll calls and
// of the capture both must be success.
cudaGraphExec_t capture(CapturedWork& work, diffcoll_comm_t* comm, cudaStream_t stream,
                        cudaStreamCaptureMode mode, std::chrono::milliseconds hold) {
  EXPECT_EQ(cudaStreamBeginCapture(stream, mode), cudaSuccess);
  const diffcoll_status_t st = work.enqueue(comm, stream);
  const std::string message = st == DIFFCOLL_SUCCESS ? "" : diffcoll_last_error();
  std::this_thread::sleep_for(hold);  // the watchdog polls meanwhile
  cudaGraph_t graph = nullptr;
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  EXPECT_EQ(st, DIFFCOLL_SUCCESS) << message;
  EXPECT_EQ(end, cudaSuccess) << mode_name(mode) << ": " << cudaGetErrorString(end);
  cudaGetLastError();
  if (end != cudaSuccess || st != DIFFCOLL_SUCCESS) return nullptr;
  cudaGraphExec_t exec = nullptr;
  EXPECT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  cudaGraphDestroy(graph);
  return exec;
}

// One rank: an eager all-reduce (a scaling one: a rank alone's sum enqueues
// nothing) waits behind a kernel that spins for 600 ms,
// so the watchdog finds it pending and polls it throughout each 300 ms
// capture (and NCCL has eager work outstanding when the capture starts).
TEST(Capture, NoModeIsInvalidatedWhileTheWatchdogPolls) {
  SKIP_WITHOUT_GPU(1);
  ASSERT_CUDA(cudaSetDevice(0));
  diffcoll_comm_t* comm = make_comm("local://capture-watchdog", 0, 1, 0);
  ASSERT_NE(comm, nullptr);
  cudaStream_t eager, side;
  ASSERT_CUDA(cudaStreamCreateWithFlags(&eager, cudaStreamNonBlocking));
  ASSERT_CUDA(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  ASSERT_OK(diffcoll_comm_reserve(comm, 1 << 20));
  for (cudaStreamCaptureMode mode : kModes) {
    SCOPED_TRACE(mode_name(mode));
    CapturedWork held(0), work(0);
    ASSERT_CUDA(cudaDeviceSynchronize());  // the uploads are done
    launch_spin_for(std::chrono::milliseconds(600), eager);
    ASSERT_OK(diffcoll_all_reduce(comm, &held.gapped.desc, DIFFCOLL_PREMUL_SUM, 1.0, eager));
    cudaGraphExec_t exec = capture(work, comm, side, mode, std::chrono::milliseconds(300));
    ASSERT_CUDA(cudaStreamSynchronize(eager));
    ASSERT_NE(exec, nullptr);
    for (int round = 0; round < 2; ++round) {
      work.load(0, round);
      ASSERT_CUDA(cudaDeviceSynchronize());
      ASSERT_CUDA(cudaGraphLaunch(exec, side));
      ASSERT_CUDA(cudaStreamSynchronize(side));
      EXPECT_EQ(work.check(1, round), "") << "replay " << round;
    }
    cudaGraphExecDestroy(exec);
  }
  EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  cudaStreamDestroy(eager);
  cudaStreamDestroy(side);
}

class CaptureRanks : public ::testing::TestWithParam<int> {};

TEST_P(CaptureRanks, RepeatedCaptureWithEagerWorkInFlight) {
  if (gpu_count() < 1) GTEST_SKIP() << "needs a CUDA device";
  run_worker_processes(GetParam(), "CaptureWorker.DISABLED_Run");
}

INSTANTIATE_TEST_SUITE_P(Ranks, CaptureRanks, ::testing::Range(2, 5),
                         [](const ::testing::TestParamInfo<int>& i) {
                           return "r" + std::to_string(i.param);
                         });

// One rank of CaptureRanks: every round queues a large eager all-reduce and,
// without waiting for it, captures (in each mode in turn) on another stream,
// then replays the graph on fresh data.
TEST(CaptureWorker, DISABLED_Run) {
  const char* rank_env = std::getenv("DIFFCOLL_TEST_RANK");
  if (!rank_env) GTEST_SKIP() << "runs only as a rank of CaptureRanks";
  const int rank = std::atoi(rank_env), size = std::atoi(std::getenv("DIFFCOLL_TEST_SIZE"));
  const int device = test_device();
  ASSERT_CUDA(cudaSetDevice(device));
  diffcoll_comm_t* comm = make_comm(std::getenv("DIFFCOLL_TEST_STORE"), rank, size, device);
  ASSERT_NE(comm, nullptr);
  cudaStream_t eager, side;
  ASSERT_CUDA(cudaStreamCreateWithFlags(&eager, cudaStreamNonBlocking));
  ASSERT_CUDA(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  ASSERT_OK(diffcoll_comm_reserve(comm, 1 << 20));
  cudaEvent_t eager_done;
  ASSERT_CUDA(cudaEventCreateWithFlags(&eager_done, cudaEventDisableTiming));
  const size_t big = size_t{8} << 20;  // floats
  float* eager_buffer = nullptr;
  ASSERT_CUDA(cudaMalloc(&eager_buffer, big * sizeof(float)));
  ASSERT_CUDA(cudaMemset(eager_buffer, 0, big * sizeof(float)));
  diffcoll_tensor_t eager_desc{};
  eager_desc.data = eager_buffer;
  eager_desc.dtype = DIFFCOLL_FLOAT32;
  eager_desc.device_type = DIFFCOLL_DEVICE_CUDA;
  eager_desc.device_id = device;
  eager_desc.ndim = 1;
  eager_desc.shape[0] = static_cast<int64_t>(big);
  eager_desc.strides[0] = 1;
  for (int round = 0; round < 24; ++round) {
    const cudaStreamCaptureMode mode = kModes[round % 3];
    SCOPED_TRACE(std::string(mode_name(mode)) + " round " + std::to_string(round));
    CapturedWork work(device);
    ASSERT_OK(diffcoll_all_reduce(comm, &eager_desc, DIFFCOLL_SUM, 1.0, eager));
    cudaGraphExec_t exec = capture(work, comm, side, mode, std::chrono::milliseconds(round % 4));
    ASSERT_NE(exec, nullptr);
    work.load(rank, round);
    ASSERT_CUDA(cudaDeviceSynchronize());  // the pageable uploads reached the device
    // Replays run after the eager work, in the same order on every rank.
    ASSERT_CUDA(cudaEventRecord(eager_done, eager));
    ASSERT_CUDA(cudaStreamWaitEvent(side, eager_done, 0));
    ASSERT_CUDA(cudaGraphLaunch(exec, side));
    ASSERT_CUDA(cudaStreamSynchronize(side));
    EXPECT_EQ(work.check(size, round), "");
    cudaGraphExecDestroy(exec);
  }
  ASSERT_CUDA(cudaStreamSynchronize(eager));
  EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  cudaFree(eager_buffer);
  cudaEventDestroy(eager_done);
  cudaStreamDestroy(eager);
  cudaStreamDestroy(side);
}

}  // namespace
