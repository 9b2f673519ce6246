// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The two deadlines the watchdog keeps, as bookkeeping without CUDA or NCCL:
// a thread that stays inside an NCCL call (HostDeadline) and device work that
// stays unfinished (DeviceMarks). The calling thread writes them with a few
// atomic operations per call, no lock; the watchdog's thread reads them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>

namespace diffcoll {

using DeadlineClock = std::chrono::steady_clock;

// Whether the calling thread has been inside an NCCL call for longer than the
// timeout: a blocking communicator's call can wait on the host for a peer
// (the connection set-up of a first collective) without ever returning.
class HostDeadline {
 public:
  void enter(DeadlineClock::time_point now) {
    since_.store(now.time_since_epoch().count(), std::memory_order_release);
  }
  void leave() { since_.store(kOutside, std::memory_order_release); }
  // True if a call entered more than `timeout` before `now` is still inside.
  bool overdue(DeadlineClock::time_point now, DeadlineClock::duration timeout) const {
    const DeadlineClock::rep since = since_.load(std::memory_order_acquire);
    return since != kOutside && now.time_since_epoch().count() - since > timeout.count();
  }

 private:
  static constexpr DeadlineClock::rep kOutside = std::numeric_limits<DeadlineClock::rep>::min();
  std::atomic<DeadlineClock::rep> since_{kOutside};
};

// Brackets one NCCL call: enters at construction, leaves at destruction.
// A null deadline (a borrowed communicator, nobody watches it) costs nothing.
class InsideCall {
 public:
  explicit InsideCall(HostDeadline* deadline) : deadline_(deadline) {
    if (deadline_) deadline_->enter(DeadlineClock::now());
  }
  ~InsideCall() {
    if (deadline_) deadline_->leave();
  }
  InsideCall(const InsideCall&) = delete;
  InsideCall& operator=(const InsideCall&) = delete;

 private:
  HostDeadline* deadline_;
};

// Marks of device work, numbered. The calling thread records its event and
// then calls marked(); the watchdog's thread reads latest() *before* it
// queries the event, and on a completed query calls completed() with that
// number. A mark made while the query ran has a larger number, so it stays
// pending: a completed query of an older record never hides a newer one.
class DeviceMarks {
 public:
  // Calling thread, after recording the event.
  void marked(DeadlineClock::time_point now) {
    marked_at_.store(now.time_since_epoch().count(), std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_release);
  }
  // Watchdog thread.
  uint64_t latest() const { return count_.load(std::memory_order_acquire); }
  bool pending(uint64_t latest) const { return latest != done_; }
  void completed(uint64_t mark) { done_ = mark; }
  // True if the mark `latest` read is pending and older than `timeout`.
  // (marked_at_ may already belong to a newer mark: that only delays.)
  bool overdue(uint64_t latest, DeadlineClock::time_point now,
               DeadlineClock::duration timeout) const {
    return pending(latest) &&
           now.time_since_epoch().count() - marked_at_.load(std::memory_order_relaxed) >
               timeout.count();
  }

 private:
  std::atomic<uint64_t> count_{0};
  std::atomic<DeadlineClock::rep> marked_at_{0};
  uint64_t done_ = 0;  // the watchdog thread's own
};

}  // namespace diffcoll
