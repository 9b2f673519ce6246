// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// CUDA and NCCL failures as diffcoll errors.
#pragma once

#include <cuda_runtime.h>

#include "../error.h"

#define DIFFCOLL_CUDA_CHECK(call)                                                     \
  do {                                                                                \
    cudaError_t err_ = (call);                                                        \
    if (err_ != cudaSuccess)                                                          \
      ::diffcoll::fail(::diffcoll::Status::kCuda, #call, " failed: ",                 \
                       cudaGetErrorName(err_), ": ", cudaGetErrorString(err_));       \
  } while (0)

namespace diffcoll {

// Makes `device` current for the scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    DIFFCOLL_CUDA_CHECK(cudaGetDevice(&previous_));
    changed_ = previous_ != device;
    if (changed_) DIFFCOLL_CUDA_CHECK(cudaSetDevice(device));
  }
  // Only a device that was changed is set back: the common case (the caller
  // is on the communicator's device already) costs one cudaGetDevice.
  ~DeviceGuard() {
    if (changed_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool changed_ = false;
};

// True if `stream` is being captured into a CUDA graph.
inline bool is_capturing(void* stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  DIFFCOLL_CUDA_CHECK(cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &status));
  return status != cudaStreamCaptureStatusNone;
}

}  // namespace diffcoll
