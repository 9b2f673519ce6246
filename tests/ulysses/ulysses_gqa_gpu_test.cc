// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause
//
// Grouped-query attention and FP8 transport on CUDA tensors (label gpu; skips
// without a GPU). P = 1..4 rank processes share the GPUs there are (rank r on
// GPU r % count; ranks that share one are separate NCCL hosts, joined by its
// socket transport). Each rank runs every case of gqa_cases.h on host
// tensors and on device tensors of one communicator and checks that the
// device results equal the host's bit for bit (the FP8 kernels compute the
// host codec's arithmetic), besides the checks against the whole tensors
// that both runs make; attention with the GQA-aware exchange equals the
// copy-up path bit for bit on the device too; and an FP8 GQA exchange
// captured into a CUDA graph replays to the eager result.
#define HALO_TEST_CUDA 1

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "../gpu/gpu_test_support.h"
#include "gqa_cases.h"

namespace {

using namespace gqa_test;

class GpuGqa : public ::testing::TestWithParam<int> {};

TEST_P(GpuGqa, DeviceResultsEqualTheHostBitForBit) {
  if (gpu_count() < 1) GTEST_SKIP() << "needs a CUDA device";
  run_worker_processes(GetParam(), "GpuGqaWorker.DISABLED_Run");
}

INSTANTIATE_TEST_SUITE_P(Ranks, GpuGqa, ::testing::Range(1, 5),
                         [](const ::testing::TestParamInfo<int>& i) {
                           return "P" + std::to_string(i.param);
                         });

// A realistic head size, so that the kernels' 16-byte path runs (bf16,
// D = 128, contiguous), with several token blocks per message.
std::vector<Case> gpu_cases() {
  std::vector<Case> v = exchange_cases();
  v.push_back({"e4m3 bf16 D=128 12/4", 1, 70, 12, 4, 128, false, Layout::kContiguous,
               Layout::kContiguous, DIFFCOLL_BFLOAT16, DIFFCOLL_WIRE_FP8_E4M3, 16});
  v.push_back({"e5m2 bf16 D=128 BHSD 10/5", 2, 33, 10, 5, 128, true, Layout::kContiguous,
               Layout::kGapped, DIFFCOLL_BFLOAT16, DIFFCOLL_WIRE_FP8_E5M2, 8});
  return v;
}

void expect_same(const std::vector<Tensor>& host, const std::vector<Tensor>& device,
                 const std::string& what) {
  ASSERT_EQ(host.size(), device.size()) << what;
  for (size_t i = 0; i < host.size(); ++i)
    EXPECT_EQ(differing_elements(host[i], device[i]), 0) << what << ": output " << i;
}

// An FP8 GQA forward exchange captured into a graph after an eager call:
// the replay writes what the eager call wrote.
void graph_replay(diffcoll_comm_t* comm, int rank, int p, int device, cudaStream_t stream) {
  const Case c{"graph e4m3 8/2", 1, 40, 8, 2, 64, false, Layout::kContiguous,
               Layout::kGapped, DIFFCOLL_BFLOAT16, DIFFCOLL_WIRE_FP8_E4M3, 8};
  const Part tokens = split(c.seq, p, rank), heads = split(c.q_heads, p, rank);
  const Part kv = kv_part(c.q_heads, c.kv_heads, p, rank);
  Tensor q = shard(c, 9, kQ, tokens, {0, c.q_heads}, c.in);
  Tensor k = shard(c, 9, kK, tokens, {0, c.kv_heads}, c.in);
  Tensor qh(c.dtype, c.shape(c.seq, heads.length), c.out);
  Tensor kh(c.dtype, c.shape(c.seq, kv.length), c.out);
  halo_test::Mirror mq(q, device), mk(k, device), mqh(qh, device), mkh(kh, device);
  const diffcoll_tensor_t in[2] = {mq.desc(device), mk.desc(device)};
  const diffcoll_tensor_t out[2] = {mqh.desc(device), mkh.desc(device)};
  const diffcoll_ulysses_options_t o = c.options(c.q_heads);
  ASSERT_OK(diffcoll_comm_reserve(comm, size_t{1} << 22));
  ASSERT_OK(diffcoll_ulysses_all_to_all_ex(comm, in, out, 2, 1, 2, DIFFCOLL_ULYSSES_SEQ_TO_HEAD,
                                           &o, stream));
  ASSERT_CUDA(cudaStreamSynchronize(stream));
  mqh.download();
  mkh.download();
  const Tensor eager_q = qh, eager_k = kh;
  ASSERT_CUDA(cudaMemsetAsync(mqh.device, 0, qh.parent_bytes(), stream));
  ASSERT_CUDA(cudaMemsetAsync(mkh.device, 0, kh.parent_bytes(), stream));
  cudaGraph_t graph;
  ASSERT_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  const diffcoll_status_t st = diffcoll_ulysses_all_to_all_ex(
      comm, in, out, 2, 1, 2, DIFFCOLL_ULYSSES_SEQ_TO_HEAD, &o, stream);
  ASSERT_CUDA(cudaStreamEndCapture(stream, &graph));
  ASSERT_OK(st);
  cudaGraphExec_t exec;
  ASSERT_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  ASSERT_CUDA(cudaGraphLaunch(exec, stream));
  ASSERT_CUDA(cudaStreamSynchronize(stream));
  mqh.download();
  mkh.download();
  EXPECT_EQ(differing_elements(qh, eager_q), 0) << "q after the graph ran";
  EXPECT_EQ(differing_elements(kh, eager_k), 0) << "k after the graph ran";
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

// One rank of GpuGqa.DeviceResultsEqualTheHostBitForBit.
TEST(GpuGqaWorker, DISABLED_Run) {
  const char* rank_env = std::getenv("DIFFCOLL_TEST_RANK");
  if (!rank_env) GTEST_SKIP() << "runs only as a rank of GpuGqa.DeviceResultsEqualTheHostBitForBit";
  const int rank = std::atoi(rank_env), p = std::atoi(std::getenv("DIFFCOLL_TEST_SIZE"));
  const int device = test_device();  // sharing GPUs where there are fewer (rank_processes.h)
  ASSERT_CUDA(cudaSetDevice(device));
  diffcoll_config_t config = DIFFCOLL_CONFIG_INIT;
  config.device_id = device;
  config.timeout_ms = 120000;
  diffcoll_comm_t* comm = nullptr;
  ASSERT_OK(diffcoll_comm_create(std::getenv("DIFFCOLL_TEST_STORE"), rank, p, &config, &comm));
  // A blocking stream: the Mirrors upload with pageable cudaMemcpy, which may
  // return before the data reaches the device (see halo_gpu_support.h).
  cudaStream_t stream;
  ASSERT_CUDA(cudaStreamCreate(&stream));
  const Where where{device, stream};

  uint64_t salt = 500;
  for (const Case& c : gpu_cases()) {
    ++salt;
    std::vector<Tensor> host, dev;
    run_exchange(comm, c, salt, rank, p, nullptr, &host);
    run_exchange(comm, c, salt, rank, p, &where, &dev);
    expect_same(host, dev, c.where(rank, p) + " exchange, host vs device");
  }
  for (const Case& c : attention_cases()) {
    ++salt;
    const Tensor host = ulysses_attention(comm, c, salt, rank, p, false, nullptr);
    const Tensor dev = ulysses_attention(comm, c, salt, rank, p, false, &where);
    const Tensor dev_up = ulysses_attention(comm, c, salt, rank, p, true, &where);
    EXPECT_EQ(differing_elements(dev, host), 0) << c.where(rank, p) << ": device vs host";
    EXPECT_EQ(differing_elements(dev, dev_up), 0) << c.where(rank, p) << ": GQA vs copy-up";
  }
  const std::vector<Case> gathers = {
      {"all_gather e4m3 bf16 D=128", 1, 37, 4, 4, 128, false, Layout::kContiguous,
       Layout::kContiguous, DIFFCOLL_BFLOAT16, DIFFCOLL_WIRE_FP8_E4M3, 16},
      {"all_gather e5m2 f32 gapped", 2, 5, 3, 3, 8, false, Layout::kGapped, Layout::kChannelsLast,
       DIFFCOLL_FLOAT32, DIFFCOLL_WIRE_FP8_E5M2, 2}};
  for (const Case& c : gathers) {
    ++salt;
    const Tensor host = run_all_gather(comm, c, salt, rank, p, nullptr);
    const Tensor dev = run_all_gather(comm, c, salt, rank, p, &where);
    EXPECT_EQ(differing_elements(dev, host), 0) << c.where(rank, p) << ": device vs host";
  }
  graph_replay(comm, rank, p, device, stream);

  EXPECT_EQ(diffcoll_barrier(comm, nullptr), DIFFCOLL_SUCCESS) << diffcoll_last_error();
  cudaStreamDestroy(stream);
  EXPECT_EQ(diffcoll_comm_destroy(comm), DIFFCOLL_SUCCESS) << diffcoll_last_error();
}

}  // namespace
