// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// A stuck peer (one that died or never arrived) reports nothing by itself.
// It shows in one of two ways, and the watchdog's thread watches both:
// - on the device: a kernel never finishes. The last operation enqueued is
//   marked with an event (track), and the event being overdue by more than
//   the timeout fires the watchdog;
// - on the host: a call into a blocking NCCL communicator never returns (the
//   connection set-up of a first collective waits for the peer). The caller
//   brackets each call (host_deadline, through InsideCall), and a call still
//   inside after the timeout fires the watchdog.
// Firing runs `revoke` once, on the watchdog's thread: it must stop the
// communicator's work without freeing what the caller's thread may still be
// using (see NcclBackend), so that the kernels exit, the blocked call returns
// an error and every later call is refused instead of hanging.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "deadlines.h"

namespace diffcoll {

class Watchdog {
 public:
  Watchdog(int device, std::chrono::milliseconds timeout, std::function<void()> revoke);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Marks the work enqueued so far on `stream`. Skipped inside a graph
  // capture: replays of a graph are the caller's to watch. Lock-free: an
  // event record and two atomic operations.
  void track(cudaStream_t stream);
  // What the caller brackets its NCCL calls with.
  HostDeadline* host_deadline() { return &host_; }
  // Waits, at most about the timeout, until the tracked device work is done
  // or the watchdog has fired; true if the work is done.
  bool drain();
  bool fired() const { return fired_.load(std::memory_order_acquire); }
  // Why it fired; valid once fired() is true.
  const std::string& reason() const { return reason_; }

 private:
  void run();
  // True if it fired in this round.
  bool check_host();
  bool check_device();
  void fire(std::string reason);

  const int device_;
  const std::chrono::milliseconds timeout_;
  std::function<void()> revoke_;
  cudaEvent_t event_ = nullptr;
  HostDeadline host_;
  DeviceMarks marks_;
  std::mutex mutex_;  // guards stop_ only: the caller's thread never takes it
  std::condition_variable wake_;
  bool stop_ = false;
  std::atomic<bool> fired_{false};
  std::string reason_;
  std::thread thread_;
};

}  // namespace diffcoll
