// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The split VAE decoder with its communication on CUDA: every halo exchange
// and every distributed GroupNorm runs on device memory on a CUDA stream
// (the network's convolutions stay plain host loops: each padded activation
// goes to the GPU for the exchange and comes back, each GroupNorm likewise),
// ranks as processes (one per GPU, or sharing GPUs): a 1-rank plan, chains of
// 2, 3, 4 ranks and a 2x2 grid. Same check as the host test
// (split_decoder_check.h). Every test skips without a GPU.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "halo_gpu_support.h"
#include "split_decoder_check.h"

namespace {

using split_decoder::Split;

#define EXPECT_CUDA(call) EXPECT_EQ((call), cudaSuccess) << #call

// A host activation's copy in device memory, described for diffcoll.
class DeviceCopy {
 public:
  DeviceCopy(const float* host, size_t count, int device) : count_(count) {
    EXPECT_CUDA(cudaMalloc(&data_, count * sizeof(float)));
    EXPECT_CUDA(cudaMemcpy(data_, host, count * sizeof(float), cudaMemcpyHostToDevice));
    device_ = device;
  }
  ~DeviceCopy() { cudaFree(data_); }
  DeviceCopy(const DeviceCopy&) = delete;
  DeviceCopy& operator=(const DeviceCopy&) = delete;
  diffcoll_tensor_t desc(diffcoll_tensor_t host) const {
    host.data = data_;
    host.device_type = DIFFCOLL_DEVICE_CUDA;
    host.device_id = device_;
    return host;
  }
  void download(float* host) const {
    EXPECT_CUDA(cudaMemcpy(host, data_, count_ * sizeof(float), cudaMemcpyDeviceToHost));
  }

 private:
  float* data_ = nullptr;
  size_t count_;
  int device_;
};

// SplitNeighbours with every call on device memory and `stream`.
class DeviceNeighbours : public vae::Neighbours {
 public:
  DeviceNeighbours(diffcoll_comm_t* comm, bool video, const Split& s, int device,
                   cudaStream_t stream)
      : comm_(comm), device_(device), stream_(stream) {
    const diffcoll_halo_config_t c = vae::halo_config(video, s.rows, s.cols);
    EXPECT_EQ(diffcoll_halo_plan_create(comm, &c, &plan_), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
  }
  ~DeviceNeighbours() override { diffcoll_halo_plan_destroy(plan_); }

  vae::Act pad(const vae::Act& x) override {
    vae::Act p = vae::zero_padded(x);
    DeviceCopy d(p.v.data(), p.v.size(), device_);
    const diffcoll_tensor_t t = d.desc(p.desc());
    EXPECT_EQ(diffcoll_halo_exchange(plan_, &t, stream_), DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    EXPECT_CUDA(cudaStreamSynchronize(stream_));
    d.download(p.v.data());
    return p;
  }
  void group_norm(vae::Act& x, const vae::Norm& n) override {
    DeviceCopy dx(x.v.data(), x.v.size(), device_);
    DeviceCopy dw(n.weight.data(), n.weight.size(), device_);
    DeviceCopy db(n.bias.data(), n.bias.size(), device_);
    const diffcoll_tensor_t t = dx.desc(x.desc()), w = dw.desc(vae::vector_desc(n.weight)),
                            b = db.desc(vae::vector_desc(n.bias));
    EXPECT_EQ(diffcoll_group_norm(comm_, &t, nullptr, &w, &b, static_cast<int32_t>(n.groups),
                                  n.eps, stream_),
              DIFFCOLL_SUCCESS)
        << diffcoll_last_error();
    EXPECT_CUDA(cudaStreamSynchronize(stream_));
    dx.download(x.v.data());
  }

 private:
  diffcoll_comm_t* comm_;
  int device_;
  cudaStream_t stream_;
  diffcoll_halo_plan_t* plan_ = nullptr;
};

void check_split_on_gpus(bool video, const Split& s) {
  SKIP_WITHOUT_GPUS(1);
  const int p = s.rows * s.cols;
  const vae::Config cfg = split_decoder::config(video);
  const vae::Decoder decoder(cfg);
  const vae::Act z = split_decoder::latent(cfg);
  vae::WholeNeighbours plain;
  const vae::Act whole = decoder.decode(z, plain);
  halo_test::run_gpu_ranks(p, [&](int rank, diffcoll_comm_t* comm, cudaStream_t stream) {
    DeviceNeighbours n(comm, video, s, halo_test::rank_device(rank), stream);
    split_decoder::check_rank(decoder, z, whole, s, rank, n);
  });
}

class GpuSplitDecoder2d : public ::testing::TestWithParam<Split> {};
class GpuSplitDecoder3d : public ::testing::TestWithParam<Split> {};

TEST_P(GpuSplitDecoder2d, EqualsTheWholeDecoder) { check_split_on_gpus(false, GetParam()); }

TEST_P(GpuSplitDecoder3d, EqualsTheWholeDecoderWithACausalTimeAxis) {
  check_split_on_gpus(true, GetParam());
}

const Split kSplits[] = {{1, 1}, {2, 1}, {3, 1}, {4, 1}, {2, 2}};

INSTANTIATE_TEST_SUITE_P(Splits, GpuSplitDecoder2d, ::testing::ValuesIn(kSplits),
                         split_decoder::split_name);
INSTANTIATE_TEST_SUITE_P(Splits, GpuSplitDecoder3d, ::testing::ValuesIn(kSplits),
                         split_decoder::split_name);

}  // namespace
