// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "watchdog.h"

#include "cuda_error.h"

namespace diffcoll {

Watchdog::Watchdog(int device, std::chrono::milliseconds timeout, std::function<void()> abort)
    : device_(device), timeout_(timeout), abort_(std::move(abort)) {
  DeviceGuard guard(device_);
  DIFFCOLL_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
  DeviceGuard guard(device_);
  cudaEventDestroy(event_);
}

void Watchdog::track(cudaStream_t stream) {
  if (is_capturing(stream)) return;
  // No notify: the thread polls on its own, so that a call costs the caller
  // an event record and no wake-up of another thread.
  std::lock_guard<std::mutex> lock(mutex_);
  DIFFCOLL_CUDA_CHECK(cudaEventRecord(event_, stream));
  pending_ = true;
  marked_at_ = std::chrono::steady_clock::now();
}

void Watchdog::run() {
  cudaSetDevice(device_);
  // While any thread captures a CUDA graph in the global mode (PyTorch's
  // default), a "potentially unsafe" call such as cudaEventQuery from another
  // thread in that mode invalidates the capture. Relaxed mode exempts this
  // thread: it never touches the capturing streams.
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  cudaThreadExchangeStreamCaptureMode(&mode);
  // Poll often enough that an abort lands within about a tenth of the
  // timeout after it is due, and at least every 100 ms.
  const auto period = std::min(std::chrono::milliseconds(100),
                               std::max(std::chrono::milliseconds(1), timeout_ / 10));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    if (pending_) {
      const cudaError_t state = cudaEventQuery(event_);
      if (state != cudaErrorNotReady) {
        if (state != cudaSuccess) cudaGetLastError();  // sticky: the next CUDA call reports it
        pending_ = false;
      } else if (std::chrono::steady_clock::now() - marked_at_ > timeout_) {
        reason_ = "a device operation did not complete within " +
                  std::to_string(timeout_.count()) +
                  " ms (a peer may have died); the NCCL communicator was aborted";
        fired_.store(true, std::memory_order_release);
        pending_ = false;
        lock.unlock();
        abort_();  // may wait for NCCL's kernels to see the abort flag
        lock.lock();
        continue;
      }
    }
    wake_.wait_for(lock, period);  // woken early only by the destructor
  }
}

}  // namespace diffcoll
