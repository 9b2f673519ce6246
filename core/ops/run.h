// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The frame every operation of a communicator runs in.
#pragma once

#include <exception>

#include "../comm.h"

namespace diffcoll {
namespace ops {

// Refuses a broken communicator and calls inside a p2p group.
void begin_operation(Comm& comm, const char* operation);
// Rethrows `failure` of `operation`: transport errors name the operation, the
// group and the rank, and leave the communicator marked broken.
[[noreturn]] void fail_operation(Comm& comm, const char* operation, std::exception_ptr failure);

// Runs body() as operation `operation` of `comm` and counts it when it
// completes. A template, so that the hot path allocates nothing.
template <typename Body>
void run(Comm& comm, const char* operation, Body&& body) {
  begin_operation(comm, operation);
  try {
    body();
  } catch (...) {
    fail_operation(comm, operation, std::current_exception());
  }
  ++comm.stats.ops;
}

}  // namespace ops
}  // namespace diffcoll
