// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// A hung NCCL kernel (a peer that died or never arrived) reports nothing by
// itself: the stream just never gets past it. The watchdog marks the last
// operation enqueued on the device side with an event, and a thread aborts the
// NCCL communicator once that event is overdue by more than the timeout, so
// the kernels exit and every later call returns an error instead of hanging.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace diffcoll {

class Watchdog {
 public:
  // `abort` runs on the watchdog's thread, once, when an operation is overdue.
  Watchdog(int device, std::chrono::milliseconds timeout, std::function<void()> abort);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Marks the work enqueued so far on `stream`. Skipped inside a graph
  // capture: replays of a graph are the caller's to watch.
  void track(cudaStream_t stream);
  bool fired() const { return fired_.load(std::memory_order_acquire); }
  const std::string& reason() const { return reason_; }

 private:
  void run();

  const int device_;
  const std::chrono::milliseconds timeout_;
  std::function<void()> abort_;
  cudaEvent_t event_ = nullptr;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool pending_ = false, stop_ = false;
  std::chrono::steady_clock::time_point marked_at_;
  std::atomic<bool> fired_{false};
  std::string reason_;
  std::thread thread_;
};

}  // namespace diffcoll
