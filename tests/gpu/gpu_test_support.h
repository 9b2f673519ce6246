// Helpers of the GPU tests: skip without a GPU, device buffers holding
// strided views, bf16 values that sum exactly, and ranks as processes (one
// per GPU) for the multi-GPU tests.
#pragma once

#include <cuda_runtime.h>
#include <diffcoll/diffcoll.h>
#include <gtest/gtest.h>

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

// The number of NVIDIA GPUs, read without initialising CUDA in this process
// (a multi-process parent must not hold a CUDA context on its children's GPUs).
inline int gpu_count() {
  FILE* p = popen("nvidia-smi -L 2>/dev/null | grep -c '^GPU'", "r");
  if (!p) return 0;
  int n = 0;
  if (fscanf(p, "%d", &n) != 1) n = 0;
  pclose(p);
  return n;
}

// Runs this test program again as `ranks` processes, each running only the
// test `worker` with DIFFCOLL_TEST_RANK, DIFFCOLL_TEST_SIZE,
// DIFFCOLL_TEST_STORE (a fresh file:// store) and `extra_env` set; expects
// every one to exit 0.
inline void run_worker_processes(int ranks, const std::string& worker,
                                 const std::vector<std::string>& extra_env = {}) {
  char dir[] = "/tmp/diffcoll-gpu-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::vector<pid_t> children;
  for (int r = 0; r < ranks; ++r) {
    std::string filter = "--gtest_filter=" + worker;
    std::vector<std::string> vars = {"DIFFCOLL_TEST_RANK=" + std::to_string(r),
                                     "DIFFCOLL_TEST_SIZE=" + std::to_string(ranks),
                                     "DIFFCOLL_TEST_STORE=file://" + std::string(dir)};
    vars.insert(vars.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> env;
    for (char** e = environ; *e; ++e) env.push_back(*e);
    for (std::string& v : vars) env.push_back(v.data());
    env.push_back(nullptr);
    char* argv[] = {const_cast<char*>("/proc/self/exe"), filter.data(), nullptr};
    pid_t pid;
    ASSERT_EQ(posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, env.data()), 0);
    children.push_back(pid);
  }
  for (int r = 0; r < ranks; ++r) {
    int status = 0;
    waitpid(children[r], &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "rank " << r << " failed";
  }
}
