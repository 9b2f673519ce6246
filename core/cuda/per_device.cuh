// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Answers about a device that kernel launches ask every call and that never
// change for it (its SMs, a kernel's occupancy, whether a kernel may launch
// early): asked of the runtime once per device and kept, so that a launch
// costs one cudaGetDevice and a load.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>

#include "cuda_error.h"
#include "dependent_launch.cuh"

namespace diffcoll {

constexpr int kMaxCachedDevices = 64;

// The current device.
inline int current_device() {
  int device = 0;
  DIFFCOLL_CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

// query(device), asked once per device: `cache` holds each device's answer,
// which must be positive (0: not asked yet). Devices past kMaxCachedDevices
// are asked every time.
template <typename Query>
int once_per_device(std::atomic<int> (&cache)[kMaxCachedDevices], int device, Query query) {
  if (device >= kMaxCachedDevices) return query(device);
  int answer = cache[device].load(std::memory_order_relaxed);
  if (answer == 0) {
    answer = query(device);
    cache[device].store(answer, std::memory_order_relaxed);
  }
  return answer;
}

// The same for the current device. A launch that asks several answers asks
// the device once and passes it (cudaGetDevice is a call into the runtime).
template <typename Query>
int once_per_device(std::atomic<int> (&cache)[kMaxCachedDevices], Query query) {
  return once_per_device(cache, current_device(), query);
}

// The device's SMs.
inline int sm_count(int device) {
  static std::atomic<int> cache[kMaxCachedDevices];
  return once_per_device(cache, device, [](int d) {
    int sms = 0;
    DIFFCOLL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, d));
    return std::max(1, sms);
  });
}

// Yes-or-no answers as once_per_device keeps them (positive).
constexpr int kNo = 1, kYes = 2;

// Whether Kernel, on the device, waits for the kernel before it and so may
// be launched early (dependent_launch.cuh).
template <auto Kernel>
bool waits_for_previous(int device) {
  static std::atomic<int> cache[kMaxCachedDevices];
  return once_per_device(cache, device, [](int d) {
    bool waits = false;
    DIFFCOLL_CUDA_CHECK(
        kernel_waits_for_previous(reinterpret_cast<const void*>(Kernel), d, &waits));
    return waits ? kYes : kNo;
  }) == kYes;
}

}  // namespace diffcoll
