// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// Errors inside the core: one exception type carrying a status and a message.
// The C API turns it into a status code and a thread-local message.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace diffcoll {

// Mirrors diffcoll_status_t; core/ does not include the C header.
enum class Status : int {
  kSuccess = 0,
  kInvalidArgument = 1,
  kInvalidHandle = 2,
  kUnsupported = 3,
  kMismatch = 4,
  kTimeout = 5,
  kRemote = 6,
  kSystem = 7,
  kOutOfMemory = 8,
  kCuda = 9,
  kNccl = 10,
  kInCapture = 11,
  kVersion = 12,
  kInternal = 13,
};

class Error : public std::runtime_error {
 public:
  Error(Status status, std::string message)
      : std::runtime_error(std::move(message)), status_(status) {}
  Status status() const { return status_; }

 private:
  Status status_;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
}  // namespace detail

// Throws Error(status, concatenation of parts).
template <typename... Parts>
[[noreturn]] void fail(Status status, const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw Error(status, os.str());
}

// The transport (Gloo) reports dead peers, closed connections and timeouts
// as exceptions; this names what failed and picks kTimeout or kRemote.
inline Error transport_error(const std::string& context, const std::exception& e) {
  const std::string what = e.what();
  const bool timeout =
      what.find("imed out") != std::string::npos || what.find("imeout") != std::string::npos;
  return Error(timeout ? Status::kTimeout : Status::kRemote, context + ": " + what);
}

#define DIFFCOLL_REQUIRE(cond, status, ...)       \
  do {                                            \
    if (!(cond)) ::diffcoll::fail(status, __VA_ARGS__); \
  } while (0)

}  // namespace diffcoll
