// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Answers about the current device that kernel launches ask every call and
// that never change for a device (its SMs, a kernel's occupancy, whether a
// kernel may launch early): asked of the runtime once per device and kept,
// so that a launch costs one cudaGetDevice and a load.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>

#include "cuda_error.h"
#include "dependent_launch.cuh"

namespace diffcoll {

constexpr int kMaxCachedDevices = 64;

// query(device) for the current device, asked once per device: `cache`
// holds each device's answer, which must be positive (0: not asked yet).
// Devices past kMaxCachedDevices are asked every time.
template <typename Query>
int once_per_device(std::atomic<int> (&cache)[kMaxCachedDevices], Query query) {
  int device = 0;
  DIFFCOLL_CUDA_CHECK(cudaGetDevice(&device));
  if (device >= kMaxCachedDevices) return query(device);
  int answer = cache[device].load(std::memory_order_relaxed);
  if (answer == 0) {
    answer = query(device);
    cache[device].store(answer, std::memory_order_relaxed);
  }
  return answer;
}

// The current device's SMs.
inline int sm_count() {
  static std::atomic<int> cache[kMaxCachedDevices];
  return once_per_device(cache, [](int device) {
    int sms = 0;
    DIFFCOLL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    return std::max(1, sms);
  });
}

// Yes-or-no answers as once_per_device keeps them (positive).
constexpr int kNo = 1, kYes = 2;

// Whether Kernel, on the current device, waits for the kernel before it
// and so may be launched early (dependent_launch.cuh).
template <auto Kernel>
bool waits_for_previous() {
  static std::atomic<int> cache[kMaxCachedDevices];
  return once_per_device(cache, [](int device) {
    bool waits = false;
    DIFFCOLL_CUDA_CHECK(
        kernel_waits_for_previous(reinterpret_cast<const void*>(Kernel), device, &waits));
    return waits ? kYes : kNo;
  }) == kYes;
}

}  // namespace diffcoll
