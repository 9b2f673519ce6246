// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Helpers of the GPU tests: skip without a GPU, device buffers holding
// strided views, bf16 values that sum exactly, and ranks as processes for the
// multi-rank tests (one per GPU, or sharing GPUs: rank_processes.h).
#pragma once

#include <cuda_runtime.h>
#include <diffcoll/diffcoll.h>
#include <gtest/gtest.h>

#include "rank_processes.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern char** environ;

#define SKIP_WITHOUT_GPU(min_devices)                                              \
  do {                                                                             \
    int n_ = 0;                                                                    \
    if (cudaGetDeviceCount(&n_) != cudaSuccess || n_ < (min_devices)) {            \
      cudaGetLastError();                                                          \
      GTEST_SKIP() << "needs " << (min_devices) << " CUDA device(s), found " << n_; \
    }                                                                              \
  } while (0)

#define ASSERT_OK(call) ASSERT_EQ((call), DIFFCOLL_SUCCESS) << diffcoll_last_error()
#define ASSERT_CUDA(call) ASSERT_EQ((call), cudaSuccess) << cudaGetErrorString(cudaGetLastError())

// A float32 tensor in device memory: a logical shape laid over a physical
// buffer by strides, mirrored on the host for checking.
struct DeviceTensor {
  std::vector<float> host;  // the physical buffer
  float* device = nullptr;
  diffcoll_tensor_t desc{};

  DeviceTensor(std::vector<int64_t> shape, std::vector<int64_t> strides, size_t physical,
               int device_id = 0) {
    host.assign(physical, -1.0f);  // poison: gaps must keep it
    cudaSetDevice(device_id);
    cudaMalloc(&device, physical * sizeof(float));
    desc.data = device;
    desc.dtype = DIFFCOLL_FLOAT32;
    desc.device_type = DIFFCOLL_DEVICE_CUDA;
    desc.device_id = device_id;
    desc.ndim = static_cast<int32_t>(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) {
      desc.shape[d] = shape[d];
      desc.strides[d] = strides[d];
    }
    upload();
  }
  ~DeviceTensor() { cudaFree(device); }
  DeviceTensor(const DeviceTensor&) = delete;

  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < desc.ndim; ++d) n *= desc.shape[d];
    return n;
  }
  // Physical offset of logical row-major element `i`.
  int64_t offset(int64_t i) const {
    int64_t off = 0;
    for (int d = desc.ndim - 1; d >= 0; --d) {
      off += (i % desc.shape[d]) * desc.strides[d];
      i /= desc.shape[d];
    }
    return off;
  }
  template <typename Fn>
  void fill(Fn fn) {
    for (int64_t i = 0; i < numel(); ++i) host[offset(i)] = fn(i);
    upload();
  }
  void upload() { cudaMemcpy(device, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice); }
  void download() { cudaMemcpy(host.data(), device, host.size() * sizeof(float), cudaMemcpyDeviceToHost); }
  float at(int64_t i) const { return host[offset(i)]; }
  // Elements no logical index reaches still hold the poison.
  bool gaps_untouched() const {
    std::vector<bool> covered(host.size(), false);
    for (int64_t i = 0; i < numel(); ++i) covered[offset(i)] = true;
    for (size_t k = 0; k < host.size(); ++k)
      if (!covered[k] && host[k] != -1.0f) return false;
    return true;
  }
};

// Quarter-integers in [-4, 4]: sums and small products stay exact.
inline float value_of(int rank, int64_t i) {
  return static_cast<float>(static_cast<int>((i * 7919 + rank * 104729) % 33) - 16) / 4.0f;
}

using gpu_ranks::gpu_count;
using gpu_ranks::test_device;

// Runs this test program again as `ranks` processes, each running only the
// test `worker` (named DISABLED_*: an entry point for rank processes, never
// run by itself) with gpu_ranks::rank_environment (DIFFCOLL_TEST_RANK,
// _SIZE, _DEVICE and, with more ranks than GPUs, its own NCCL host),
// DIFFCOLL_TEST_STORE (a fresh file:// store) and `extra_env` set; expects
// every one to exit 0.
inline void run_worker_processes(int ranks, const std::string& worker,
                                 const std::vector<std::string>& extra_env = {}) {
  const std::string store = "DIFFCOLL_TEST_STORE=file://" + gpu_ranks::fresh_store_dir();
  std::vector<pid_t> children;
  for (int r = 0; r < ranks; ++r) {
    std::string filter = "--gtest_filter=" + worker;
    std::string disabled = "--gtest_also_run_disabled_tests";
    std::vector<std::string> vars = gpu_ranks::rank_environment(r, ranks);
    vars.push_back(store);
    vars.insert(vars.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> env;
    for (char** e = environ; *e; ++e) env.push_back(*e);
    for (std::string& v : vars) env.push_back(v.data());
    env.push_back(nullptr);
    char* argv[] = {const_cast<char*>("/proc/self/exe"), filter.data(), disabled.data(), nullptr};
    pid_t pid;
    ASSERT_EQ(posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, env.data()), 0);
    children.push_back(pid);
  }
  gpu_ranks::wait_for_ranks(children, std::chrono::seconds(240));
}
