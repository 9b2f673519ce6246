// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

#include "handles.h"

namespace diffcoll {
namespace capi {

namespace {
thread_local std::string last_error_message;
}

void set_last_error(const std::string& message) { last_error_message = message; }
const char* last_error() { return last_error_message.c_str(); }

void HandleRegistry::add(const void* handle) {
  std::lock_guard<std::mutex> lock(mutex_);
  live_.insert(handle);
}

void HandleRegistry::remove(const void* handle) {
  std::lock_guard<std::mutex> lock(mutex_);
  live_.erase(handle);
}

bool HandleRegistry::contains(const void* handle) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return live_.count(handle) != 0;
}

HandleRegistry& handles() {
  static HandleRegistry* registry = new HandleRegistry;  // never destroyed: used at exit
  return *registry;
}

}  // namespace capi
}  // namespace diffcoll

