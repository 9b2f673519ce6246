// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Benchmark of issue 5: the Ulysses all-to-all of Wan-like attention
// activations (40 heads x 128, bf16, sequence 1k, 8k, 37.8k) handed over in
// the engine's natural layout [1, S/P, 40, 128], sequence-sharded ->
// head-sharded [1, S, 40/P, 128], one rank per GPU (ranks as threads). For
// one tensor (q) and three (q, k, v in one call) it times diffcoll eager
// calls, the same calls replayed from a CUDA graph, and raw ncclAlltoAll on
// dense buffers of the same bytes (the bandwidth bound: no layout change at
// all), checks diffcoll's result once, prints a table and writes JSON lines.
//
//   ulysses_bench [--ranks P] [--iters N] [--json FILE]
//
// The PyTorch baselines (permute + contiguous + all_to_all_single + permute,
// direct and functional) are in ulysses_bench.py (torchrun), which times this
// call, the baselines and raw NCCL in one run.
#include <cuda_runtime.h>
#include <diffcoll/diffcoll.h>
#include <nccl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.h"
#include "example_support.h"

namespace {

constexpr int64_t kHeads = 40, kHeadDim = 128;

// A contiguous bf16 tensor [1, s, h, kHeadDim] on `device`.
diffcoll_tensor_t bshd(void* data, int64_t s, int64_t h, int device) {
  diffcoll_tensor_t d;
  std::memset(&d, 0, sizeof d);
  d.data = data;
  d.dtype = DIFFCOLL_BFLOAT16;
  d.device_type = DIFFCOLL_DEVICE_CUDA;
  d.device_id = device;
  d.ndim = 4;
  const int64_t shape[4] = {1, s, h, kHeadDim};
  const int64_t strides[4] = {s * h * kHeadDim, h * kHeadDim, kHeadDim, 1};
  for (int i = 0; i < 4; ++i) {
    d.shape[i] = shape[i];
    d.strides[i] = strides[i];
  }
  return d;
}

// Fills a bf16 buffer so that element i of rank r's input is recognisable.
void fill(std::vector<uint16_t>& host, int rank) {
  for (size_t i = 0; i < host.size(); ++i)
    host[i] = to_bf16(static_cast<float>((i * 7 + rank * 131) % 251) - 125.0f);
}

struct Result {
  int64_t seq;
  int tensors;
  double bytes_per_rank;  // input bytes of all tensors
  double eager_us, graph_us, nccl_us;
  bool correct;
};

}  // namespace

int main(int argc, char** argv) {
  BenchArgs args;
  args.iters = 50;
  args.json = "";
  if (int status = parse_bench_args(argc, argv, "ulysses_bench", &args); status >= 0) return status;
  const int ranks = args.ranks, iters = args.iters;
  const std::string json = args.json;
  const std::vector<int64_t> seqs = {1024, 8192, 37800};
  ncclUniqueId id;
  NCCL(ncclGetUniqueId(&id));
  std::vector<Result> results;
  const std::string rendezvous = "local://ulysses-bench";
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      CUDA(cudaSetDevice(r));
      diffcoll_config_t cfg = DIFFCOLL_CONFIG_INIT;
      cfg.device_id = r;
      diffcoll_comm_t* comm;
      CHECK(diffcoll_comm_create(rendezvous.c_str(), r, ranks, &cfg, &comm));
      ncclComm_t nccl;
      NCCL(ncclCommInitRank(&nccl, ranks, id, r));
      cudaStream_t stream;
      CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
      for (int64_t seq : seqs) {
        int64_t s0, s_len, h0, h_len;
        CHECK(diffcoll_split_extent(seq, ranks, r, &s0, &s_len));
        CHECK(diffcoll_split_extent(kHeads, ranks, r, &h0, &h_len));
        const size_t in_bytes = s_len * kHeads * kHeadDim * 2;
        const size_t out_bytes = seq * h_len * kHeadDim * 2;
        for (int tensors : {1, 3}) {
          std::vector<void*> in(tensors), out(tensors);
          std::vector<diffcoll_tensor_t> din, dout;
          std::vector<uint16_t> host(in_bytes / 2);
          for (int t = 0; t < tensors; ++t) {
            CUDA(cudaMalloc(&in[t], in_bytes));
            CUDA(cudaMalloc(&out[t], out_bytes));
            fill(host, r * 3 + t);
            CUDA(cudaMemcpy(in[t], host.data(), in_bytes, cudaMemcpyHostToDevice));
            din.push_back(bshd(in[t], s_len, kHeads, r));
            dout.push_back(bshd(out[t], seq, h_len, r));
          }
          CHECK(diffcoll_comm_reserve(comm, tensors * (in_bytes + out_bytes) + (1 << 20)));
          auto call = [&] {
            CHECK(diffcoll_ulysses_all_to_all(comm, din.data(), dout.data(), tensors, 1, 2,
                                              DIFFCOLL_ULYSSES_SEQ_TO_HEAD, stream));
          };
          for (int i = 0; i < 5; ++i) call();
          // One check: rank r's output row (token s, head j) is token s of the
          // rank holding it, head h0 + j.
          bool correct = true;
          {
            CUDA(cudaStreamSynchronize(stream));
            std::vector<uint16_t> got(out_bytes / 2);
            CUDA(cudaMemcpy(got.data(), out[0], out_bytes, cudaMemcpyDeviceToHost));
            for (int src = 0; src < ranks && correct; ++src) {
              int64_t ss, sl;
              CHECK(diffcoll_split_extent(seq, ranks, src, &ss, &sl));
              std::vector<uint16_t> theirs(sl * kHeads * kHeadDim);
              fill(theirs, src * 3);
              for (int64_t s = 0; s < sl && correct; s += 97)
                for (int64_t j = 0; j < h_len; ++j)
                  for (int64_t d = 0; d < kHeadDim; ++d)
                    if (got[((ss + s) * h_len + j) * kHeadDim + d] !=
                        theirs[(s * kHeads + h0 + j) * kHeadDim + d])
                      correct = false;
            }
          }
          const double eager_us = time_launches_us(comm, stream, call, iters, iters);
          cudaGraph_t graph;
          cudaGraphExec_t exec;
          CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
          for (int i = 0; i < 10; ++i) call();
          CUDA(cudaStreamEndCapture(stream, &graph));
          CUDA(cudaGraphInstantiate(&exec, graph, 0));
          const double graphed_us = time_launches_us(
              comm, stream, [&] { CUDA(cudaGraphLaunch(exec, stream)); }, iters / 10, iters / 10 * 10);
          CUDA(cudaGraphExecDestroy(exec));
          CUDA(cudaGraphDestroy(graph));
          // Raw NCCL on dense buffers of the same bytes (equal blocks).
          const size_t block = tensors * in_bytes / ranks;
          void *send, *recv;
          CUDA(cudaMalloc(&send, block * ranks));
          CUDA(cudaMalloc(&recv, block * ranks));
          auto raw = [&] { NCCL(ncclAlltoAll(send, recv, block, ncclUint8, nccl, stream)); };
          const double nccl_us = time_launches_us(comm, stream, raw, iters, iters);
          CUDA(cudaFree(send));
          CUDA(cudaFree(recv));
          for (int t = 0; t < tensors; ++t) {
            CUDA(cudaFree(in[t]));
            CUDA(cudaFree(out[t]));
          }
          if (r == 0)
            results.push_back({seq, tensors, static_cast<double>(tensors * in_bytes),
                               eager_us, graphed_us, nccl_us, correct});
          else if (!correct)
            std::fprintf(stderr, "rank %d: wrong result for S=%lld\n", r, (long long)seq);
        }
      }
      CUDA(cudaStreamDestroy(stream));
      NCCL(ncclCommDestroy(nccl));
      CHECK(diffcoll_barrier(comm, nullptr));
      CHECK(diffcoll_comm_destroy(comm));
    });
  for (auto& t : threads) t.join();

  std::printf("Ulysses SEQ_TO_HEAD, %d GPUs, bf16 [1, S/P, %lld, %lld] -> [1, S, %lld/P, %lld]\n",
              ranks, (long long)kHeads, (long long)kHeadDim, (long long)kHeads,
              (long long)kHeadDim);
  std::printf("%7s %7s %12s %11s %11s %11s %9s %10s  %s\n", "S", "tensors", "MiB/rank",
              "eager us", "graph us", "nccl us", "vs nccl", "busbw GB/s", "check");
  FILE* out = json.empty() ? nullptr : std::fopen(json.c_str(), "w");
  for (const Result& x : results) {
    const double busbw = x.bytes_per_rank * (ranks - 1) / ranks / (x.graph_us * 1e3);
    std::printf("%7lld %7d %12.2f %11.1f %11.1f %11.1f %8.2fx %10.1f  %s\n", (long long)x.seq,
                x.tensors, x.bytes_per_rank / (1 << 20), x.eager_us, x.graph_us, x.nccl_us,
                x.graph_us / x.nccl_us, busbw, x.correct ? "OK" : "WRONG");
    if (out)
      std::fprintf(out,
                   "{\"op\": \"ulysses_seq_to_head\", \"ranks\": %d, \"seq\": %lld, \"heads\": "
                   "%lld, \"head_dim\": %lld, \"dtype\": \"bf16\", \"tensors\": %d, "
                   "\"bytes_per_rank\": %.0f, \"eager_us\": %.2f, \"graph_us\": %.2f, "
                   "\"nccl_alltoall_us\": %.2f, \"correct\": %s}\n",
                   ranks, (long long)x.seq, (long long)kHeads, (long long)kHeadDim, x.tensors,
                   x.bytes_per_rank, x.eager_us, x.graph_us, x.nccl_us,
                   x.correct ? "true" : "false");
  }
  if (out) std::fclose(out);
  for (const Result& x : results)
    if (!x.correct) return 1;
  return 0;
}
