// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "watchdog.h"

#include "cuda_error.h"

namespace diffcoll {
namespace {

// Poll often enough that a revoke lands within about a tenth of the timeout
// after it is due, and at least every 100 ms.
std::chrono::milliseconds poll_period(std::chrono::milliseconds timeout) {
  return std::min(std::chrono::milliseconds(100),
                  std::max(std::chrono::milliseconds(1), timeout / 10));
}

}  // namespace

Watchdog::Watchdog(int device, std::chrono::milliseconds timeout, std::function<void()> revoke)
    : device_(device), timeout_(timeout), revoke_(std::move(revoke)) {
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
  DIFFCOLL_CUDA_CHECK(cudaEventRecord(event_, stream));
  marks_.marked(DeadlineClock::now());
}

bool Watchdog::drain() {
  const auto deadline = DeadlineClock::now() + timeout_ + 2 * poll_period(timeout_);
  while (!fired()) {
    const cudaError_t state = cudaEventQuery(event_);
    if (state != cudaErrorNotReady) {
      if (state != cudaSuccess) cudaGetLastError();  // sticky: the next CUDA call reports it
      return true;
    }
    if (DeadlineClock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

void Watchdog::fire(std::string reason) {
  reason_ = std::move(reason);
  fired_.store(true, std::memory_order_release);
  revoke_();  // may wait for NCCL's kernels to see the abort flag
}

bool Watchdog::check_host() {
  if (!host_.overdue(DeadlineClock::now(), timeout_)) return false;
  fire("a call into NCCL did not return within " + std::to_string(timeout_.count()) +
       " ms (a peer may have died or never arrived); the NCCL communicator was revoked");
  return true;
}

bool Watchdog::check_device() {
  const uint64_t latest = marks_.latest();  // before the query: see DeviceMarks
  if (!marks_.pending(latest)) return false;
  const cudaError_t state = cudaEventQuery(event_);
  if (state != cudaErrorNotReady) {
    if (state != cudaSuccess) cudaGetLastError();  // sticky: the next CUDA call reports it
    marks_.completed(latest);
    return false;
  }
  if (!marks_.overdue(latest, DeadlineClock::now(), timeout_)) return false;
  fire("a device operation did not complete within " + std::to_string(timeout_.count()) +
       " ms (a peer may have died); the NCCL communicator was revoked");
  return true;
}

void Watchdog::run() {
  cudaSetDevice(device_);
  // While any thread captures a CUDA graph in the global mode (PyTorch's
  // default), a "potentially unsafe" call such as cudaEventQuery from another
  // thread in that mode invalidates the capture. Relaxed mode exempts this
  // thread: it never touches the capturing streams.
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  cudaThreadExchangeStreamCaptureMode(&mode);
  const auto period = poll_period(timeout_);
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    lock.unlock();
    const bool done = check_host() || check_device();
    lock.lock();
    if (done) break;  // fired: once is all it does
    wake_.wait_for(lock, period);  // woken early only by the destructor
  }
}

}  // namespace diffcoll
