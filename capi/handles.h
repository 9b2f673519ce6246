// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

// The C API's bookkeeping: live handles, thread-local error messages, and the
// wrapper that turns core exceptions into status codes.
#pragma once

#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_set>

#include "../core/comm.h"
#include "../core/error.h"
#include "diffcoll/diffcoll.h"

namespace diffcoll {
namespace capi {

void set_last_error(const std::string& message);
const char* last_error();

// Every handle given out is registered until destroyed, so that a null,
// stale or foreign pointer is reported instead of dereferenced.
class HandleRegistry {
 public:
  void add(const void* handle);
  void remove(const void* handle);
  bool contains(const void* handle) const;

 private:
  mutable std::mutex mutex_;
  std::unordered_set<const void*> live_;
};

HandleRegistry& handles();

// Runs body(); maps exceptions to a status and the thread's last error.
template <typename Body>
diffcoll_status_t guarded(Body&& body) {
  try {
    body();
    return DIFFCOLL_SUCCESS;
  } catch (const Error& e) {
    set_last_error(e.what());
    return static_cast<diffcoll_status_t>(e.status());
  } catch (const std::bad_alloc&) {
    set_last_error("out of host memory");
    return DIFFCOLL_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_last_error(std::string("internal error: ") + e.what());
    return DIFFCOLL_ERR_INTERNAL;
  } catch (...) {
    set_last_error("internal error: unknown exception");
    return DIFFCOLL_ERR_INTERNAL;
  }
}

// Throws Error(kInvalidHandle) unless `handle` is live.
inline void require_live(const void* handle, const char* what) {
  DIFFCOLL_REQUIRE(handle != nullptr, Status::kInvalidHandle, what, " is NULL");
  DIFFCOLL_REQUIRE(handles().contains(handle), Status::kInvalidHandle, what,
                   " is not a live diffcoll handle (already destroyed?)");
}

// The opaque diffcoll_comm_t* is the core communicator's address.
inline diffcoll_comm_t* wrap(Comm* comm) { return reinterpret_cast<diffcoll_comm_t*>(comm); }
// Registers a new communicator and hands out its handle (NULL for none).
inline diffcoll_comm_t* publish(std::unique_ptr<Comm> comm) {
  if (!comm) return nullptr;
  diffcoll_comm_t* handle = wrap(comm.release());
  handles().add(handle);
  return handle;
}
inline Comm& live_comm(const diffcoll_comm_t* handle, const char* what) {
  require_live(handle, what);
  return *reinterpret_cast<Comm*>(const_cast<diffcoll_comm_t*>(handle));
}

inline void require_out(const void* out, const char* what) {
  DIFFCOLL_REQUIRE(out != nullptr, Status::kInvalidArgument, what, " (output pointer) is NULL");
}

}  // namespace capi
}  // namespace diffcoll
