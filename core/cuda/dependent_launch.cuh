// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Programmatic dependent launch (sm_90 and later): a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start while the
// kernel before it in the stream is still running, if that kernel allows it
// (griddepcontrol.launch_dependents), and waits for that kernel's completion
// and memory (griddepcontrol.wait) before it touches memory. Its launch then
// overlaps the previous kernel's tail instead of following it.
#pragma once

#include <cuda_runtime.h>

namespace diffcoll {

// The first thing a kernel that may be launched early does: wait for the
// work before it in the stream, then let the next kernel launch early in
// turn. A no-op in a kernel launched without the attribute, and before
// sm_90.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

// Whether `kernel`, on the current device `device`, waits with
// griddepcontrol.wait: the device and the kernel's binary are sm_90 or
// later.
inline cudaError_t kernel_waits_for_previous(const void* kernel, int device, bool* waits) {
  int major = 0;
  cudaError_t err = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  if (err != cudaSuccess) return err;
  cudaFuncAttributes attr{};
  err = cudaFuncGetAttributes(&attr, kernel);
  if (err != cudaSuccess) return err;
  *waits = major >= 9 && attr.ptxVersion >= 90 && attr.binaryVersion >= 90;
  return cudaSuccess;
}

// The launch attribute that asks for programmatic dependent launch.
inline cudaLaunchAttribute early_launch_attribute() {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  return attr;
}

// Whether a launch on `stream` may ask to start early: only on streams the
// caller made (the default streams' implicit synchronisation is left as it
// is) and outside graph capture (a graph's edges stay plain ones).
inline cudaError_t stream_allows_early_launch(cudaStream_t stream, bool* early) {
  *early = false;
  if (stream == nullptr || stream == cudaStreamLegacy || stream == cudaStreamPerThread)
    return cudaSuccess;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  const cudaError_t err = cudaStreamIsCapturing(stream, &capture);
  *early = err == cudaSuccess && capture == cudaStreamCaptureStatusNone;
  return err;
}

}  // namespace diffcoll
