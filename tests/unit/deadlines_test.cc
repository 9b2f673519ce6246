// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// White-box tests of the watchdog's bookkeeping (core/cuda/deadlines.h): the
// host deadline of a call into NCCL and the numbered marks of device work.
// Plain C++, so they run without CUDA.
#include <gtest/gtest.h>

#include <thread>

#include "core/cuda/deadlines.h"

namespace diffcoll {
namespace {

using std::chrono::milliseconds;

const DeadlineClock::time_point t0 = DeadlineClock::time_point() + std::chrono::hours(1);

TEST(HostDeadline, OnlyACallStillInsidePastTheTimeoutIsOverdue) {
  HostDeadline d;
  EXPECT_FALSE(d.overdue(t0, milliseconds(10))) << "no call entered yet";
  d.enter(t0);
  EXPECT_FALSE(d.overdue(t0 + milliseconds(10), milliseconds(10)));
  EXPECT_TRUE(d.overdue(t0 + milliseconds(11), milliseconds(10)));
  d.leave();
  EXPECT_FALSE(d.overdue(t0 + milliseconds(1000), milliseconds(10)));
  d.enter(t0 + milliseconds(1000));  // the next call starts its own clock
  EXPECT_FALSE(d.overdue(t0 + milliseconds(1005), milliseconds(10)));
}

TEST(HostDeadline, InsideCallBracketsAndANullDeadlineIsAllowed) {
  HostDeadline d;
  {
    InsideCall inside(&d);
    EXPECT_TRUE(d.overdue(DeadlineClock::now() + std::chrono::hours(1), milliseconds(1)));
  }
  EXPECT_FALSE(d.overdue(DeadlineClock::now() + std::chrono::hours(1), milliseconds(1)));
  InsideCall unwatched(nullptr);
}

TEST(HostDeadline, TheClocksEpochIsAValidEntry) {
  HostDeadline d;
  d.enter(DeadlineClock::time_point());  // the clock's epoch itself is a valid entry
  EXPECT_TRUE(d.overdue(DeadlineClock::time_point() + milliseconds(2), milliseconds(1)));
}

TEST(DeviceMarks, NothingPendingBeforeTheFirstMark) {
  DeviceMarks m;
  const uint64_t latest = m.latest();
  EXPECT_FALSE(m.pending(latest));
  EXPECT_FALSE(m.overdue(latest, t0 + std::chrono::hours(100), milliseconds(1)));
}

TEST(DeviceMarks, AMarkIsPendingUntilCompletedAndOverdueAfterTheTimeout) {
  DeviceMarks m;
  m.marked(t0);
  const uint64_t latest = m.latest();
  EXPECT_TRUE(m.pending(latest));
  EXPECT_FALSE(m.overdue(latest, t0 + milliseconds(10), milliseconds(10)));
  EXPECT_TRUE(m.overdue(latest, t0 + milliseconds(11), milliseconds(10)));
  m.completed(latest);
  EXPECT_FALSE(m.pending(m.latest()));
  EXPECT_FALSE(m.overdue(m.latest(), t0 + milliseconds(11), milliseconds(10)));
}

// The race the numbering exists for: the watchdog reads the latest mark,
// the caller marks newer work, the watchdog's query (of the older record)
// completes. The newer mark must stay pending.
TEST(DeviceMarks, ACompletedOlderQueryNeverHidesANewerMark) {
  DeviceMarks m;
  m.marked(t0);
  const uint64_t seen = m.latest();   // watchdog, before its query
  m.marked(t0 + milliseconds(5));     // caller, meanwhile
  m.completed(seen);                  // watchdog: the query it made completed
  const uint64_t latest = m.latest();
  EXPECT_TRUE(m.pending(latest));
  EXPECT_FALSE(m.overdue(latest, t0 + milliseconds(12), milliseconds(10)))
      << "timed from the newer mark";
  EXPECT_TRUE(m.overdue(latest, t0 + milliseconds(16), milliseconds(10)));
}

TEST(DeviceMarks, MarksFromAnotherThreadAreAllCounted) {
  DeviceMarks m;
  std::thread caller([&] {
    for (int i = 0; i < 10000; ++i) m.marked(DeadlineClock::now());
  });
  caller.join();
  EXPECT_EQ(m.latest(), 10000u);
  m.completed(m.latest());
  EXPECT_FALSE(m.pending(m.latest()));
}

}  // namespace
}  // namespace diffcoll
